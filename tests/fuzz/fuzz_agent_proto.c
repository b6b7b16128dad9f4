/* libFuzzer target: bytes from a hostile peer of the agent protocol, cut into frames by the
 * incremental reader (fed in uneven pieces, as a socket would) and each frame given to
 * every decoder; a decoded CONFIG, EXEC or PS_REPLY is encoded again and must give the same
 * frame. */
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
  struct agent_data data;
  struct agent_ps_reply ps;
  uint32_t v, proc;
  agent_decode_hello(f, &hello, &err);
  agent_decode_error(f, &error, &err);
  agent_decode_started(f, &v, &err);
  agent_decode_data(f, &data, &err);
  agent_decode_stdin_eof(f, &proc, &err);
  agent_decode_exit(f, &ex, &err);
  agent_decode_stdin_credit(f, &proc, &v, &err);
  agent_decode_output_credit(f, &oc, &err);
  agent_decode_signal(f, &proc, &v, &err);
  agent_decode_winsize(f, &proc, &ws, &err);
  agent_decode_exec_started(f, &proc, &v, &err);
  agent_decode_exec_error(f, &proc, &error, &err);
  agent_decode_ps(f, &v, &err);
  agent_decode_stats(f, &v, &err);
  struct agent_stats stats;
  if (agent_decode_stats_reply(f, &stats, &err) == 0) {
    agent_encode_stats_reply(&again, &stats);
    if (agent_msg_end(&again, &err) != 0 || again.len - AGENT_FRAME_HEADER_SIZE != f->length ||
        memcmp(again.bytes + AGENT_FRAME_HEADER_SIZE, f->payload, f->length) != 0)
      abort();
  }
  uint64_t limit;
  if (agent_decode_pids_limit(f, &v, &limit, &err) == 0) {
    agent_encode_pids_limit(&again, v, limit);
    if (agent_msg_end(&again, &err) != 0 || again.len - AGENT_FRAME_HEADER_SIZE != f->length ||
        memcmp(again.bytes + AGENT_FRAME_HEADER_SIZE, f->payload, f->length) != 0)
      abort();
  }
  /* (its message is made printable, so it need not encode back the same) */
  struct agent_pids_limit_reply pids_reply;
  agent_decode_pids_limit_reply(f, &pids_reply, &err);
  agent_decode_empty(f, f->type, &err);
  if (agent_decode_ps_reply(f, &ps, &err) == 0) {
    /* re-encoded, a reply is the same frame (nothing is cut: it came in one) */
    agent_encode_ps_reply(&again, &ps);
    if (agent_msg_end(&again, &err) != 0 || again.len - AGENT_FRAME_HEADER_SIZE != f->length ||
        memcmp(again.bytes + AGENT_FRAME_HEADER_SIZE, f->payload, f->length) != 0)
      abort();
    agent_ps_reply_free(&ps);
  }
  struct agent_exec *exec = NULL;
  if (agent_decode_exec(f, &exec, &err) == 0) {
    if (agent_encode_exec(&again, exec, &err) != 0) abort();
    if (again.len - AGENT_FRAME_HEADER_SIZE != f->length ||
        memcmp(again.bytes + AGENT_FRAME_HEADER_SIZE, f->payload, f->length) != 0)
      abort();
    agent_exec_free(exec);
  }
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
