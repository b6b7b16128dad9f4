/* libFuzzer target: the host side of the agent protocol (src/microvm_init.c, through
 * src/microvm_host.h) against a hostile guest agent: the boot exchange (HELLO, NETWORK,
 * CONFIG, CONFIGURED), the start (START, STARTED) and the relay of the running container
 * (stdio, credits, signals, EXIT, and the control side's frames for processes that do not
 * exist), one relay turn at a time. A socketpair stands in for the agent channel, pipes for
 * the container's stdio and its signalfd, an eventfd for the machine's stop; no KVM, no
 * machine, no control socket (fuzz_vmctl covers the control side with callers).
 *
 * The input: a first byte of flags (bit 0: the guest has a NIC, so NETWORK goes before
 * CONFIG; bit 1: begin with the container running, past boot and start; bit 2: the host's
 * end of the channel takes only a few frames), then a script of
 * events, one opcode byte each followed by its operands (a missing byte reads as 0), see
 * the OP_ list:
 *   - the agent: a frame built with the project's encoder from fuzzed fields (HELLO,
 *     CONFIGURED, ERROR, STARTED, STDOUT/STDERR of any length, EXIT, STDIN_CREDIT, the
 *     control side's EXEC_STARTED/EXEC_ERROR/PS_REPLY/STATS_REPLY/PIDS_LIMIT_REPLY, any
 *     type), raw bytes, a header alone (a frame that never ends), reading what the host
 *     sent, hanging up, no longer reading;
 *   - the container's side: stdin written or closed, stdout/stderr read or closed, a
 *     signal;
 *   - the machine: a stop;
 *   - the host: a step (boot's exchange, the start's, or one relay turn without waiting).
 * An error from the host ends the input, as it ends the container.
 *
 * Besides the sanitizers, the target checks: the host's own bounds after every step (its
 * queues within their capacity, output in flight within the window and equal to what is
 * queued plus what is written and not credited, stdin within the window); every frame
 * the host sends is a host->guest frame that decodes, credits never exceed the output the
 * agent sent, stdin never exceeds the agent's credits by more than a window nor follows
 * STDIN_EOF, and its bytes are the container's stdin in order; the container's stdout and
 * stderr get exactly the bytes of the agent's STDOUT/STDERR frames, in order; a relay
 * that ends well reports the agent's first EXIT {proc 0}; every failure comes with a
 * message; once the channel ends or the machine stops the relay ends
 * within a few turns (no hang); and no descriptor is left open. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../src/microvm_host.h"
#include "fuzz_script.h"
#include "runcell/agent_proto.h"
#include "runcell/log.h"
#include "runcell/util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_EVENTS 512
#define OUTBOX_CAP (1u << 20)    /* agent bytes not yet taken by the channel */
#define EXPECT_CAP (2u << 20)    /* output the container's side has yet to read, per stream */
#define PIPE_SIZE (1u << 20)     /* stdout/stderr: room for a window and a frame, and more */
#define DRAIN_ABOVE (512u << 10) /* what the "reader" leaves in a pipe before a host step */
#define END_TURNS 4096           /* after a hang-up or a stop: the relay ends within these */
#define MAX_FDS_CHECKED 1024

/* ---- The input ------------------------------------------------------------------------ */

/* struct script, u8..u64: fuzz_script.h */

/* A string of up to 255 bytes, from the input. */
static void str(struct script *s, char *out, size_t cap) {
  size_t n = u8(s);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    char c = (char)u8(s);
    if (c && k + 1 < cap) out[k++] = c;
  }
  out[k] = '\0';
}

__attribute__((noreturn)) static void fail(const char *what, uint64_t v) {
  fprintf(stderr, "fuzz_agent_host: %s (%llu)\n", what, (unsigned long long)v);
  abort();
}

/* ---- Byte FIFOs: what the container's side should read --------------------------------- */

struct fifo {
  uint8_t *b;
  size_t head, tail;
  bool unchecked; /* overflowed: no longer compared */
};

static void fifo_push(struct fifo *f, const uint8_t *p, size_t n) {
  if (f->unchecked) return;
  if (f->tail + n > EXPECT_CAP) {
    memmove(f->b, f->b + f->head, f->tail - f->head);
    f->tail -= f->head;
    f->head = 0;
  }
  if (f->tail + n > EXPECT_CAP) {
    f->unchecked = true;
    return;
  }
  memcpy(f->b + f->tail, p, n);
  f->tail += n;
}

static void fifo_match(struct fifo *f, const uint8_t *p, size_t n, const char *what) {
  if (f->unchecked) return;
  if (n > f->tail - f->head) fail(what, n);
  if (memcmp(f->b + f->head, p, n) != 0) fail(what, f->head);
  f->head += n;
}

/* ---- The rig ---------------------------------------------------------------------------- */

static struct {
  struct vm vm;
  int agent; /* the fake agent's end, nonblocking */
  int stopped;
  int in_w;
  int out_r[2];
  int sig_r, sig_w;
  bool hung_up, stopped_sent, agent_deaf;
  int phase; /* 0: booting, 1: configured, 2: running, 3: over */
  bool with_net;
  /* what the agent sends: an outbox the channel has not taken yet, and a mirror reader
   * that cuts it into frames as the host will */
  uint8_t *outbox;
  size_t outbox_len;
  struct agent_reader *mirror;
  bool mirror_dead; /* a bad header: the host fails there too, nothing after counts */
  uint64_t out_sent[2];
  struct fifo expect[2];
  /* what the host sent */
  struct agent_reader *from_host;
  uint64_t credited[2];
  uint64_t stdin_got, stdin_credits, stdin_written;
  bool stdin_eof_got;
  bool exit_sent; /* the agent sent EXIT {proc 0}: the first is the container's status */
  struct agent_exit first_exit;
} R;

static struct agent_msg *msg; /* scratch frame */
static uint8_t pattern[AGENT_FRAME_MAX_PAYLOAD];
static uint8_t scratch[1u << 16];
static struct agent_network net;
static uint8_t open_before[MAX_FDS_CHECKED / 8];
static int fd_limit;

static void nonblock(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* stdin's bytes are a function of their offset, so the host's STDIN frames can be checked */
static uint8_t stdin_byte(uint64_t off) {
  return (uint8_t)('a' + off % 23);
}

static void rig_start(bool with_net, bool running, bool small_channel) {
  memset(&R.vm, 0, sizeof(R.vm));
  rc_microvm_host_init(&R.vm, NULL, -1);
  int sv[2], in[2], out[2], err[2], sig[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(in, O_CLOEXEC) < 0 ||
      pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
      pipe2(sig, O_CLOEXEC | O_NONBLOCK) < 0)
    fail("no descriptors", (uint64_t)errno);
  R.vm.agent = sv[0];
  nonblock(sv[0]);
  /* a few frames fill it: the host's credits wait while the agent does not read */
  int small = 4096;
  if (small_channel && setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) < 0)
    fail("SO_SNDBUF", (uint64_t)errno);
  R.agent = sv[1];
  nonblock(sv[1]);
  R.stopped = R.vm.stopped = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (R.stopped < 0) fail("no eventfd", (uint64_t)errno);
  R.vm.in_fd = in[0];
  nonblock(in[0]);
  R.in_w = in[1];
  nonblock(in[1]);
  R.vm.out_fd[0] = out[1];
  R.vm.out_fd[1] = err[1];
  R.out_r[0] = out[0];
  R.out_r[1] = err[0];
  for (int s = 0; s < 2; s++) {
    /* the relay's end, after EXIT with the channel gone, writes what is left blocking:
     * the pipe always has room for it (see DRAIN_ABOVE) */
    if (fcntl(R.vm.out_fd[s], F_SETPIPE_SZ, PIPE_SIZE) < (int)PIPE_SIZE)
      fail("F_SETPIPE_SZ", (uint64_t)errno);
    nonblock(R.vm.out_fd[s]);
    nonblock(R.out_r[s]);
  }
  R.sig_r = sig[0];
  R.sig_w = sig[1];
  R.hung_up = R.stopped_sent = R.agent_deaf = false;
  R.with_net = with_net;
  R.outbox_len = 0;
  agent_reader_init(R.mirror);
  agent_reader_init(R.from_host);
  R.mirror_dead = false;
  for (int s = 0; s < 2; s++) {
    R.out_sent[s] = R.credited[s] = 0;
    R.expect[s].head = R.expect[s].tail = 0;
    R.expect[s].unchecked = false;
  }
  R.stdin_got = R.stdin_credits = R.stdin_written = 0;
  R.stdin_eof_got = false;
  R.exit_sent = false;
  R.phase = running ? 2 : 0;
  if (running) rc_microvm_host_control(&R.vm, -1);
}

static void rig_stop(void) {
  rc_microvm_host_release(&R.vm);
  int *fds[] = {&R.vm.agent, &R.vm.in_fd, &R.vm.out_fd[0], &R.vm.out_fd[1], &R.agent, &R.stopped,
                &R.in_w,     &R.out_r[0], &R.out_r[1],     &R.sig_r,        &R.sig_w};
  for (size_t i = 0; i < RC_ARRAY_SIZE(fds); i++) close_fd(fds[i]);
  R.vm.stopped = -1;
}

/* ---- The agent -------------------------------------------------------------------------- */

/* The mirror takes the bytes as the host will, frame by frame. */
static void mirror_feed(const uint8_t *p, size_t n) {
  while (n && !R.mirror_dead) {
    size_t k = agent_reader_feed(R.mirror, p, n);
    p += k;
    n -= k;
    struct agent_frame f;
    struct rc_error err = {0};
    int r;
    while ((r = agent_reader_next(R.mirror, &f, &err)) > 0) {
      if (f.type != AGENT_MSG_STDOUT && f.type != AGENT_MSG_STDERR) {
        struct agent_exit x;
        if (f.type == AGENT_MSG_EXIT && !R.exit_sent && agent_decode_exit(&f, &x, &err) == 0 &&
            x.proc == AGENT_PROC_CONTAINER) {
          R.exit_sent = true;
          R.first_exit = x;
        }
        if (f.type == AGENT_MSG_STDIN_CREDIT) {
          uint32_t proc = 0, bytes = 0;
          if (agent_decode_stdin_credit(&f, &proc, &bytes, &err) == 0 && proc == 0)
            R.stdin_credits += bytes;
        }
        continue;
      }
      struct agent_data d;
      if (agent_decode_data(&f, &d, &err) < 0 || d.proc != AGENT_PROC_CONTAINER) continue;
      int s = f.type == AGENT_MSG_STDERR;
      R.out_sent[s] += d.len;
      fifo_push(&R.expect[s], d.bytes, d.len);
    }
    if (r < 0) R.mirror_dead = true;
    if (k == 0 && r == 0) fail("mirror stuck", n);
  }
}

static void outbox_flush(void) {
  while (R.outbox_len && !R.hung_up) {
    ssize_t n = write(R.agent, R.outbox, R.outbox_len);
    if (n <= 0) break;
    memmove(R.outbox, R.outbox + n, R.outbox_len - (size_t)n);
    R.outbox_len -= (size_t)n;
  }
}

/* The agent sends bytes: whole, or (no room left) not at all. */
static void agent_send(const uint8_t *p, size_t n) {
  if (R.hung_up || R.outbox_len + n > OUTBOX_CAP) return;
  memcpy(R.outbox + R.outbox_len, p, n);
  R.outbox_len += n;
  mirror_feed(p, n);
  outbox_flush();
}

static void agent_send_msg(struct agent_msg *m) {
  struct rc_error err = {0};
  if (agent_msg_end(m, &err) < 0) return; /* too big for a frame: not sendable */
  agent_send(m->bytes, m->len);
}

/* A process number: mostly the container's, else any. */
static uint32_t proc_of(struct script *s) {
  uint8_t b = u8(s);
  return b < 0xc0 ? AGENT_PROC_CONTAINER : (b == 0xff ? u32(s) : b - 0xc0u);
}

static void agent_frame(struct script *s) {
  char text[256];
  uint8_t kind = u8(s);
  switch (kind % 14) {
    case 0:
      str(s, text, sizeof(text));
      agent_encode_hello(msg, text);
      if (u8(s) & 1) agent_put_u8(msg, 0); /* trailing junk */
      break;
    case 1:
      agent_encode_empty(msg, AGENT_MSG_CONFIGURED);
      break;
    case 2: {
      uint32_t stage = u8(s);
      int32_t errnum = (int32_t)u32(s);
      str(s, text, sizeof(text));
      agent_encode_error(msg, stage, errnum, text);
      break;
    }
    case 3:
      agent_encode_started(msg, u32(s));
      break;
    case 4:
    case 5: {
      uint32_t proc = proc_of(s);
      size_t len = u16(s) % (AGENT_FRAME_MAX_PAYLOAD - 4 + 1);
      uint8_t seed = u8(s);
      for (size_t i = 0; i < len; i++) pattern[i] = (uint8_t)(seed + i * 7);
      agent_encode_data(msg, kind % 14 == 4 ? AGENT_MSG_STDOUT : AGENT_MSG_STDERR, proc, pattern,
                        len);
      break;
    }
    case 6: {
      struct agent_exit e = {.proc = proc_of(s), .kind = u8(s) % 3, .value = u8(s)};
      if (e.kind == 2) e.value = u32(s); /* anything */
      agent_encode_exit(msg, &e);
      break;
    }
    case 7: {
      uint32_t proc = proc_of(s);
      uint8_t how = u8(s);
      /* what is in flight (as far as the agent knows), a part of it, or any number */
      uint64_t in_flight = R.stdin_got > R.stdin_credits ? R.stdin_got - R.stdin_credits : 0;
      uint32_t n = how < 0x80   ? (uint32_t)in_flight
                   : how < 0xf0 ? (uint32_t)(in_flight * (how - 0x80u) / 0x70u)
                                : u32(s);
      agent_encode_stdin_credit(msg, proc, n);
      break;
    }
    case 8: {
      uint32_t proc = proc_of(s);
      agent_encode_exec_started(msg, proc, u32(s));
      break;
    }
    case 9: {
      uint32_t proc = proc_of(s);
      uint32_t stage = u8(s);
      str(s, text, sizeof(text));
      agent_encode_exec_error(msg, proc, stage, (int32_t)u8(s), text);
      break;
    }
    case 10: {
      struct agent_ps_entry e = {.pid = 1, .ppid = 0, .cmd = "/sbin/init"};
      struct agent_ps_reply r = {.request = u32(s), .n = u8(s) % 2, .entries = &e};
      agent_encode_ps_reply(msg, &r);
      break;
    }
    case 11: {
      struct agent_stats st = {.request = u32(s), .ncpus = 1, .mem_total = 1 << 20};
      agent_encode_stats_reply(msg, &st);
      break;
    }
    case 12: {
      struct agent_pids_limit_reply r = {.request = u32(s), .errnum = (int32_t)u8(s)};
      str(s, r.message, sizeof(r.message));
      agent_encode_pids_limit_reply(msg, &r);
      break;
    }
    default: { /* any type, any payload */
      agent_msg_begin(msg, u16(s));
      size_t n = u8(s);
      for (size_t i = 0; i < n; i++) agent_put_u8(msg, u8(s));
      break;
    }
  }
  agent_send_msg(msg);
}

/* The agent reads what the host sent, and checks it. */
static void agent_read(void) {
  if (R.agent_deaf) return;
  for (;;) {
    ssize_t n = read(R.agent, scratch, sizeof(scratch));
    if (n <= 0) return;
    size_t off = 0;
    while (off < (size_t)n) {
      off += agent_reader_feed(R.from_host, scratch + off, (size_t)n - off);
      struct agent_frame f;
      struct rc_error err = {0};
      int r;
      while ((r = agent_reader_next(R.from_host, &f, &err)) > 0) {
        if (!agent_msg_from_host(f.type)) fail("a frame of the wrong direction", f.type);
        switch (f.type) {
          case AGENT_MSG_OUTPUT_CREDIT: {
            struct agent_output_credit c;
            if (agent_decode_output_credit(&f, &c, &err) < 0) fail("OUTPUT_CREDIT", 0);
            if (c.proc != AGENT_PROC_CONTAINER) fail("a credit for another process", c.proc);
            if (c.stdout_bytes == 0 && c.stderr_bytes == 0) fail("an empty credit", 0);
            R.credited[0] += c.stdout_bytes;
            R.credited[1] += c.stderr_bytes;
            for (int s = 0; s < 2; s++)
              if (R.credited[s] > R.out_sent[s])
                fail("credit beyond the output sent", R.credited[s]);
            break;
          }
          case AGENT_MSG_STDIN: {
            struct agent_data d;
            if (agent_decode_data(&f, &d, &err) < 0) fail("STDIN", 0);
            if (d.proc != AGENT_PROC_CONTAINER) fail("stdin for another process", d.proc);
            if (R.stdin_eof_got) fail("stdin after STDIN_EOF", d.len);
            if (d.len == 0) fail("an empty STDIN", 0);
            for (uint32_t i = 0; i < d.len; i++)
              if (d.bytes[i] != stdin_byte(R.stdin_got + i))
                fail("stdin out of order", R.stdin_got);
            R.stdin_got += d.len;
            if (R.stdin_got > R.stdin_written) fail("more stdin than written", R.stdin_got);
            if (R.stdin_got > R.stdin_credits + AGENT_STDIO_WINDOW)
              fail("stdin beyond the window", R.stdin_got - R.stdin_credits);
            break;
          }
          case AGENT_MSG_STDIN_EOF: {
            uint32_t proc = 1;
            if (agent_decode_stdin_eof(&f, &proc, &err) < 0 || proc != 0) fail("STDIN_EOF", proc);
            if (R.stdin_eof_got) fail("STDIN_EOF twice", 0);
            R.stdin_eof_got = true;
            break;
          }
          case AGENT_MSG_SIGNAL: {
            uint32_t proc = 1, signo = 0;
            if (agent_decode_signal(&f, &proc, &signo, &err) < 0 || proc != 0) fail("SIGNAL", proc);
            break;
          }
          case AGENT_MSG_CONFIG:
          case AGENT_MSG_START:
            break;
          case AGENT_MSG_NETWORK: {
            struct agent_network got;
            if (agent_decode_network(&f, &got, &err) < 0) fail("NETWORK", 0);
            break;
          }
          default:
            fail("an unexpected frame from the host", f.type);
        }
      }
      if (r < 0) fail("the host's frames do not parse", 0);
    }
  }
}

/* ---- The container's side --------------------------------------------------------------- */

static void out_read(int s, size_t max) {
  while (R.out_r[s] >= 0 && max) {
    ssize_t n = read(R.out_r[s], scratch, max < sizeof(scratch) ? max : sizeof(scratch));
    if (n <= 0) return;
    fifo_match(&R.expect[s], scratch, (size_t)n,
               s ? "stderr is not what the agent sent" : "stdout is not what the agent sent");
    max -= (size_t)n;
  }
}

/* The reader keeps the pipe below DRAIN_ABOVE, so that a blocking write of what the relay
 * holds (a window and a frame at most) always fits. */
static void out_keep_room(void) {
  for (int s = 0; s < 2; s++) {
    int q = 0;
    if (R.out_r[s] >= 0 && ioctl(R.out_r[s], FIONREAD, &q) == 0 && (size_t)q > DRAIN_ABOVE)
      out_read(s, (size_t)q);
  }
}

static void stdin_write(size_t n) {
  if (R.in_w < 0) return;
  while (n) {
    size_t k = n < sizeof(scratch) ? n : sizeof(scratch);
    for (size_t i = 0; i < k; i++) scratch[i] = stdin_byte(R.stdin_written + i);
    ssize_t w = write(R.in_w, scratch, k);
    if (w <= 0) return;
    R.stdin_written += (uint64_t)w;
    n -= (size_t)w;
  }
}

/* ---- The host ---------------------------------------------------------------------------- */

static void check_host(void) {
  struct vm *vm = &R.vm;
  if (vm->to_agent.len > vm->to_agent.cap) fail("to_agent past its cap", vm->to_agent.len);
  if (vm->reader->len > AGENT_FRAME_MAX) fail("reader past a frame", vm->reader->len);
  if (vm->stdin_in_flight > AGENT_STDIO_WINDOW) fail("stdin past the window", vm->stdin_in_flight);
  for (int s = 0; s < 2; s++) {
    if (vm->out[s].len > vm->out[s].cap) fail("output queue past its cap", vm->out[s].len);
    if (vm->out_in_flight[s] > AGENT_STDIO_WINDOW) fail("output past the window", s);
    if (vm->out_in_flight[s] != vm->out[s].len + vm->out_uncredited[s])
      fail("output in flight miscounted", vm->out_in_flight[s]);
  }
}

/* FUZZ_AGENT_HOST_VERBOSE=1: how each input ended, to see what a seed reaches */
static bool verbose;

static void host_failed(const struct rc_error *err) {
  if (!err->msg[0]) fail("a failure without a message", (uint64_t)R.phase);
  if (verbose) fprintf(stderr, "fuzz_agent_host: phase %d failed: %s\n", R.phase, err->msg);
  R.phase = 3;
}

/* One step of the host: boot's exchange, the start's, or a relay turn. */
static void host_step(void) {
  struct rc_error err = {0};
  out_keep_room();
  switch (R.phase) {
    case 0: {
      agent_encode_empty(msg, AGENT_MSG_CONFIG); /* the host does not look inside */
      uint64_t t_hello = 0;
      /* everything the agent sent is in the channel already: two milliseconds are the
       * wait for what never comes */
      if (rc_microvm_host_configure(&R.vm, R.with_net ? &net : NULL, msg, (uint64_t)rc_now_ms() + 2,
                                    &t_hello, &err) < 0)
        host_failed(&err);
      else
        R.phase = 1;
      break;
    }
    case 1: {
      uint32_t pid = 0;
      if (rc_microvm_host_start(&R.vm, (uint64_t)rc_now_ms() + 2, &pid, &err) < 0) {
        host_failed(&err);
      } else {
        if (pid == 0) fail("STARTED with pid 0 taken", 0);
        R.phase = 2;
        rc_microvm_host_control(&R.vm, -1);
      }
      break;
    }
    case 2: {
      int r = rc_microvm_host_relay_turn(&R.vm, R.sig_r, 0, &err);
      if (r < 0) {
        host_failed(&err);
      } else if (r > 0) {
        if (!R.vm.exited || !R.exit_sent) fail("the relay ended without EXIT", 0);
        if (R.vm.exit.kind != R.first_exit.kind || R.vm.exit.value != R.first_exit.value)
          fail("the status is not the agent's EXIT's", R.vm.exit.value);
        R.phase = 3;
        if (verbose)
          fprintf(stderr, "fuzz_agent_host: exit %u/%u\n", R.vm.exit.kind, R.vm.exit.value);
      }
      break;
    }
    default:
      break;
  }
  check_host();
}

/* After a hang-up or a stop the relay must end: the agent's last bytes go in, and a few
 * turns later it is over. */
static void host_must_end(void) {
  for (unsigned i = 0; i < END_TURNS && R.phase == 2; i++) {
    outbox_flush();
    agent_read();
    host_step();
  }
  if (R.phase == 2 && (R.stopped_sent || (R.hung_up && R.outbox_len == 0)))
    fail("the relay goes on after the guest is gone", R.stopped_sent);
}

/* ---- Descriptors ------------------------------------------------------------------------- */

static void snapshot_fds(uint8_t *map) {
  memset(map, 0, MAX_FDS_CHECKED / 8);
  for (int fd = 0; fd < fd_limit; fd++)
    if (fcntl(fd, F_GETFD) >= 0) map[fd / 8] |= (uint8_t)(1u << (fd % 8));
}

static void check_fds(void) {
  static uint8_t now[MAX_FDS_CHECKED / 8];
  snapshot_fds(now);
  for (int fd = 0; fd < fd_limit; fd++)
    if (now[fd / 8] & ~open_before[fd / 8] & (1u << (fd % 8))) fail("descriptor left open", fd);
}

/* ---- The script --------------------------------------------------------------------------- */

enum {
  OP_FRAME,       /* a frame from fuzzed fields (agent_frame) */
  OP_RAW,         /* {u8 n, n bytes} as they are */
  OP_HEADER,      /* {u16 type, u32 length}: a header alone */
  OP_STEP,        /* the host takes a step */
  OP_STEPS,       /* {u8 n}: n steps */
  OP_AGENT_READ,  /* the agent reads what the host sent */
  OP_OUT_READ,    /* {u8 stream, u8 kib}: the container's side reads output */
  OP_OUT_CLOSE,   /* {u8 stream}: and stops reading it */
  OP_STDIN,       /* {u16 n}: stdin bytes */
  OP_STDIN_CLOSE, /* stdin's end */
  OP_SIGNAL,      /* {u8 signo}: 1 + signo % 64 */
  OP_HANG_UP,     /* the agent closes its side of the channel */
  OP_STOP,        /* the machine stops */
  OP_DEAF,        /* the agent no longer reads the channel (shutdown SHUT_RD) */
  OP_COUNT,
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN); /* as in the VMM */
  verbose = getenv("FUZZ_AGENT_HOST_VERBOSE") != NULL;
  rc_log_init("/dev/null", "text", false);
  msg = rc_xcalloc(1, sizeof(*msg));
  R.outbox = rc_xcalloc(1, OUTBOX_CAP);
  R.mirror = rc_xcalloc(1, sizeof(*R.mirror));
  R.from_host = rc_xcalloc(1, sizeof(*R.from_host));
  for (int s = 0; s < 2; s++) R.expect[s].b = rc_xcalloc(1, EXPECT_CAP);
  net = (struct agent_network){.ifname = "eth0", .mac = {2, 0, 0, 0, 0, 1}, .mtu = 1500};
  struct rc_error err = {0};
  if (agent_network_validate(&net, &err) < 0) fail("the test's NETWORK", 0);
  struct rlimit rl;
  fd_limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < MAX_FDS_CHECKED ? (int)rl.rlim_cur
                                                                                 : MAX_FDS_CHECKED;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct script s = {data, size};
  snapshot_fds(open_before);
  uint8_t flags = u8(&s);
  rig_start(flags & 1, flags & 2, flags & 4);
  for (unsigned ev = 0; ev < MAX_EVENTS && s.n && R.phase < 3; ev++) {
    outbox_flush();
    uint8_t op = u8(&s) % OP_COUNT;
    switch (op) {
      case OP_FRAME:
        agent_frame(&s);
        break;
      case OP_RAW: {
        size_t n = u8(&s);
        size_t k = n < s.n ? n : s.n;
        agent_send(s.p, k);
        s.p += k;
        s.n -= k;
        break;
      }
      case OP_HEADER: {
        uint8_t h[AGENT_FRAME_HEADER_SIZE];
        uint16_t type = u16(&s);
        uint32_t len = u32(&s);
        uint32_t magic = AGENT_PROTO_MAGIC;
        memcpy(h, &magic, 4);
        h[4] = AGENT_PROTO_VERSION;
        h[5] = 0;
        memcpy(h + 6, &type, 2);
        memcpy(h + 8, &len, 4);
        agent_send(h, sizeof(h));
        break;
      }
      case OP_STEP:
        host_step();
        break;
      case OP_STEPS:
        for (unsigned n = 1 + u8(&s) % 16; n && R.phase < 3; n--) {
          outbox_flush();
          host_step();
        }
        break;
      case OP_AGENT_READ:
        agent_read();
        break;
      case OP_OUT_READ: {
        int st = u8(&s) & 1;
        out_read(st, (1 + (size_t)u8(&s)) * 1024);
        break;
      }
      case OP_OUT_CLOSE: {
        int st = u8(&s) & 1;
        close_fd(&R.out_r[st]);
        R.expect[st].unchecked = true;
        break;
      }
      case OP_STDIN:
        stdin_write(u16(&s));
        break;
      case OP_STDIN_CLOSE:
        close_fd(&R.in_w);
        break;
      case OP_SIGNAL: {
        /* what a signalfd gives: 1..SIGRTMAX */
        struct signalfd_siginfo si = {.ssi_signo = 1u + u8(&s) % 64u};
        (void)!write(R.sig_w, &si, sizeof(si));
        break;
      }
      case OP_HANG_UP:
        outbox_flush();
        if (R.outbox_len == 0 && !R.hung_up) {
          shutdown(R.agent, SHUT_WR);
          R.hung_up = true;
        }
        break;
      case OP_STOP: {
        uint64_t one = 1;
        if (write(R.stopped, &one, sizeof(one)) == sizeof(one)) R.stopped_sent = true;
        break;
      }
      case OP_DEAF:
        shutdown(R.agent, SHUT_RD);
        R.agent_deaf = true;
        break;
    }
  }
  if (R.hung_up || R.stopped_sent) host_must_end();
  if (verbose && R.phase < 3) fprintf(stderr, "fuzz_agent_host: left in phase %d\n", R.phase);
  rig_stop();
  check_fds();
  return 0;
}
