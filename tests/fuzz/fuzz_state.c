/* libFuzzer target: state.json text through the state parser, and a parsed state back
 * through the serializers that `state`, hooks and the store use. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "runcell/oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct oci_state *st = NULL;
  struct rc_error err = {0};
  if (oci_state_parse((const char *)data, size, &st, &err) < 0) return 0;
  free(oci_state_to_json(st));
  free(oci_state_to_runc_json(st));
  free(oci_state_to_hook_json(st));
  oci_state_free(st);
  return 0;
}
