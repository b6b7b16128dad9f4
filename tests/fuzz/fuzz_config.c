/* libFuzzer target: config.json text through the OCI config parser and validator (the
 * parser sees every bundle a runtime is given). Any input must give a config or an error,
 * never a crash or a leak. */
#include <stddef.h>
#include <stdint.h>

#include "runcell/oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct oci_config *cfg = NULL;
  struct rc_error err = {0};
  if (oci_config_parse((const char *)data, size, &cfg, &err) == 0) {
    /* walk what callers walk after a successful parse */
    for (int t = 0; t < OCI_NS_COUNT; t++) (void)oci_config_namespace(cfg, (enum oci_ns_type)t);
    (void)oci_config_annotation(cfg, "run.runcell.gate");
    oci_config_free(cfg);
  }
  return 0;
}
