/* libFuzzer target: bytes from a hostile peer of the agent protocol, cut into frames by the
 * incremental reader (fed in uneven pieces, as a socket would) and each frame given to
 * every decoder; a decoded CONFIG is encoded again and must decode to the same frame. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runcell/agent_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct agent_reader reader;
static struct agent_msg again;

static void decode_all(const struct agent_frame *f) {
  struct rc_error err = {0};
  struct agent_hello hello;
  struct agent_error_msg error;
  struct agent_exit ex;
  struct agent_output_credit oc;
  struct agent_winsize ws;
  uint32_t v;
  agent_decode_hello(f, &hello, &err);
  agent_decode_error(f, &error, &err);
  agent_decode_started(f, &v, &err);
  agent_decode_exit(f, &ex, &err);
  agent_decode_stdin_credit(f, &v, &err);
  agent_decode_output_credit(f, &oc, &err);
  agent_decode_signal(f, &v, &err);
  agent_decode_winsize(f, &ws, &err);
  agent_decode_empty(f, f->type, &err);
  struct agent_config *cfg = NULL;
  if (agent_decode_config(f, &cfg, &err) == 0) {
    /* what decodes must encode back to the very same payload */
    if (agent_encode_config(&again, cfg, &err) != 0) abort();
    if (again.len - AGENT_FRAME_HEADER_SIZE != f->length ||
        memcmp(again.bytes + AGENT_FRAME_HEADER_SIZE, f->payload, f->length) != 0)
      abort();
    agent_config_free(cfg);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  agent_reader_init(&reader);
  size_t off = 0, step = size ? (size_t)data[0] % 97 + 1 : 1;
  struct rc_error err = {0};
  for (;;) {
    struct agent_frame f;
    int r = agent_reader_next(&reader, &f, &err);
    if (r < 0) break;
    if (r == 1) {
      decode_all(&f);
      continue;
    }
    if (off >= size) break;
    size_t n = step < size - off ? step : size - off;
    off += agent_reader_feed(&reader, data + off, n);
  }
  return 0;
}
