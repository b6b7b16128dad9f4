/* The host side of the agent protocol (src/microvm_init.c through src/microvm_host.h): the
 * VMM's boot and start exchanges and its relay, driven against a hostile guest agent — a
 * socketpair stands in for the agent channel, pipes for the container's stdio, an eventfd
 * for the machine's stop; no KVM. What the guest sends out of order, for processes that do
 * not exist, beyond its credits, after its EXIT, or never finishes, fails the container with
 * an error naming it, within bounded memory and without spinning. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../src/microvm_host.h"
#include "runcell/agent_proto.h"
#include "runcell/util.h"
#include "unit.h"

/* The VMM's side and the fake agent's. */
struct rig {
  struct vm vm;
  int agent;   /* the fake agent's end of the channel (blocking) */
  int stopped; /* the machine's stop, as an eventfd (the VMM polls it) */
  int in_w;    /* the container's stdin, written by the test */
  int out_r[2];
  int sig_w; /* fake signalfd records, written by the test */
  int sig_r;
  /* what the agent read from the host */
  struct agent_reader *from_host;
  unsigned frames[0x20]; /* by type & 0x1f, host types */
  uint64_t credited[2];  /* OUTPUT_CREDIT bytes for proc 0 */
  uint64_t stdin_bytes;  /* STDIN bytes for proc 0 */
  unsigned signals;
};

static int open_fds(void) {
  int n = 0;
  for (int fd = 0; fd < 1024; fd++) n += fcntl(fd, F_GETFD) >= 0;
  return n;
}

static void nonblock(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void rig_start(struct rig *r) {
  memset(r, 0, sizeof(*r));
  signal(SIGPIPE, SIG_IGN); /* as in the VMM */
  rc_microvm_host_init(&r->vm, NULL, -1);
  int sv[2] = {-1, -1}, in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1}, sig[2] = {-1, -1};
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  CHECK(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0 && pipe2(errp, O_CLOEXEC) == 0 &&
        pipe2(sig, O_CLOEXEC | O_NONBLOCK) == 0);
  r->vm.agent = sv[0];
  nonblock(sv[0]);
  r->agent = sv[1];
  r->stopped = r->vm.stopped = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  CHECK(r->stopped >= 0);
  r->vm.in_fd = in[0];
  r->in_w = in[1];
  r->vm.out_fd[0] = out[1];
  r->vm.out_fd[1] = errp[1];
  r->out_r[0] = out[0];
  r->out_r[1] = errp[0];
  for (int i = 0; i < 2; i++) {
    nonblock(r->vm.out_fd[i]);
    nonblock(r->out_r[i]);
  }
  nonblock(in[0]);
  r->sig_r = sig[0];
  r->sig_w = sig[1];
  r->from_host = rc_xcalloc(1, sizeof(*r->from_host));
  agent_reader_init(r->from_host);
  rc_microvm_host_control(&r->vm, -1);
}

static void close_if(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void rig_stop(struct rig *r) {
  rc_microvm_host_release(&r->vm);
  int fds[] = {r->vm.agent, r->vm.in_fd, r->vm.out_fd[0], r->vm.out_fd[1], r->agent, r->stopped,
               r->in_w,     r->out_r[0], r->out_r[1],     r->sig_w,        r->sig_r};
  for (size_t i = 0; i < RC_ARRAY_SIZE(fds); i++) close_if(&fds[i]);
  free(r->from_host);
}

/* The agent writes a frame (whole: the channel has room for what the tests send at once). */
static void put(struct rig *r, struct agent_msg *m) {
  struct rc_error err = {0};
  CHECK(agent_msg_end(m, &err) == 0);
  CHECK(write(r->agent, m->bytes, m->len) == (ssize_t)m->len);
}

static void put_raw(struct rig *r, const void *p, size_t n) {
  CHECK(write(r->agent, p, n) == (ssize_t)n);
}

static void put_empty(struct rig *r, uint16_t type) {
  struct agent_msg m;
  agent_encode_empty(&m, type);
  put(r, &m);
}

static void put_data(struct rig *r, uint16_t type, uint32_t proc, const void *p, size_t n) {
  struct agent_msg *m = rc_xcalloc(1, sizeof(*m));
  agent_encode_data(m, type, proc, p, n);
  put(r, m);
  free(m);
}

static void put_exit(struct rig *r, uint32_t proc, uint32_t kind, uint32_t value) {
  struct agent_msg m;
  agent_encode_exit(&m, &(struct agent_exit){.proc = proc, .kind = kind, .value = value});
  put(r, &m);
}

/* The agent reads what the host sent and keeps count. */
static void agent_reads(struct rig *r) {
  uint8_t buf[16384];
  for (;;) {
    struct pollfd p = {.fd = r->agent, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) break;
    ssize_t n = read(r->agent, buf, sizeof(buf));
    if (n <= 0) break;
    size_t off = 0;
    while (off < (size_t)n) {
      off += agent_reader_feed(r->from_host, buf + off, (size_t)n - off);
      struct agent_frame f;
      struct rc_error err = {0};
      int got;
      while ((got = agent_reader_next(r->from_host, &f, &err)) > 0) {
        CHECK(agent_msg_from_host(f.type));
        r->frames[f.type & 0x1f]++;
        if (f.type == AGENT_MSG_OUTPUT_CREDIT) {
          struct agent_output_credit c;
          CHECK(agent_decode_output_credit(&f, &c, &err) == 0);
          CHECK(c.proc == AGENT_PROC_CONTAINER);
          r->credited[0] += c.stdout_bytes;
          r->credited[1] += c.stderr_bytes;
        } else if (f.type == AGENT_MSG_STDIN) {
          struct agent_data d;
          CHECK(agent_decode_data(&f, &d, &err) == 0);
          r->stdin_bytes += d.len;
        } else if (f.type == AGENT_MSG_SIGNAL) {
          r->signals++;
        }
      }
      CHECK(got == 0);
    }
  }
}

/* Relay turns (each waiting at most 10 ms) until one ends the relay or ms pass: the last
 * turn's result. */
static int turns(struct rig *r, int ms, struct rc_error *err) {
  int64_t end = rc_now_ms() + ms;
  int got = 0;
  while (got == 0 && rc_now_ms() < end) got = rc_microvm_host_relay_turn(&r->vm, r->sig_r, 10, err);
  return got;
}

static size_t drain(int fd, char *buf, size_t cap) {
  size_t got = 0;
  char scratch[65536];
  for (;;) {
    ssize_t n = read(fd, scratch, sizeof(scratch));
    if (n <= 0) break;
    size_t keep = (size_t)n < cap - got ? (size_t)n : cap - got;
    if (buf) memcpy(buf + got, scratch, keep);
    got += (size_t)n;
  }
  return got;
}

static uint64_t soon(int ms) {
  return (uint64_t)rc_now_ms() + (uint64_t)ms;
}

/* HELLO, then CONFIGURED; START, then STARTED. */
static void boot_and_start(struct rig *r) {
  struct agent_msg *m = rc_xcalloc(1, sizeof(*m));
  agent_encode_hello(m, "test");
  put(r, m);
  put_empty(r, AGENT_MSG_CONFIGURED);
  agent_encode_empty(m, AGENT_MSG_CONFIG);
  struct rc_error err = {0};
  uint64_t t_hello = 0;
  CHECK(rc_microvm_host_configure(&r->vm, NULL, m, soon(5000), &t_hello, &err) == 0);
  CHECK(t_hello > 0);
  agent_encode_started(m, 42);
  put(r, m);
  uint32_t pid = 0;
  CHECK(rc_microvm_host_start(&r->vm, soon(5000), &pid, &err) == 0);
  CHECK(pid == 42);
  agent_reads(r);
  CHECK(r->frames[AGENT_MSG_CONFIG & 0x1f] == 1 && r->frames[AGENT_MSG_START & 0x1f] == 1);
  free(m);
}

static void test_a_session(void) {
  int before = open_fds();
  struct rig r;
  rig_start(&r);
  boot_and_start(&r);
  put_data(&r, AGENT_MSG_STDOUT, 0, "hello\n", 6);
  put_data(&r, AGENT_MSG_STDERR, 0, "oops\n", 5);
  put_data(&r, AGENT_MSG_STDOUT, 0, "", 0); /* empty: nothing to write, nothing to credit */
  CHECK(write(r.in_w, "in", 2) == 2);
  struct rc_error err = {0};
  char out[64] = "", errout[64] = "";
  int64_t end = rc_now_ms() + 5000;
  size_t got_out = 0, got_err = 0;
  while ((got_out < 6 || got_err < 5 || r.stdin_bytes < 2) && rc_now_ms() < end) {
    CHECK(turns(&r, 10, &err) == 0);
    got_out += drain(r.out_r[0], out + got_out, sizeof(out) - 1 - got_out);
    got_err += drain(r.out_r[1], errout + got_err, sizeof(errout) - 1 - got_err);
    agent_reads(&r);
  }
  CHECK_STR_EQ(out, "hello\n");
  CHECK_STR_EQ(errout, "oops\n");
  CHECK(r.stdin_bytes == 2);
  /* every byte written out is credited, no more */
  CHECK(r.credited[0] == 6 && r.credited[1] == 5);
  struct agent_msg m;
  agent_encode_stdin_credit(&m, 0, 2);
  put(&r, &m);
  put_exit(&r, 0, AGENT_EXIT_CODE, 3);
  CHECK(turns(&r, 5000, &err) == 1);
  CHECK(r.vm.exited && r.vm.exit.kind == AGENT_EXIT_CODE && r.vm.exit.value == 3);
  CHECK(r.vm.stdin_in_flight == 0);
  rig_stop(&r);
  CHECK(open_fds() == before);
}

/* Boot and start: anything but the frame expected, an ERROR with the guest's words made
 * safe, a frame never finished (the deadline, without spinning), the channel's end. */
static void test_boot_out_of_order(void) {
  struct rc_error err = {0};
  struct agent_msg *config = rc_xcalloc(1, sizeof(*config));
  uint64_t t = 0;
  struct rig r;

  rig_start(&r);
  put_empty(&r, AGENT_MSG_CONFIGURED);
  agent_encode_empty(config, AGENT_MSG_CONFIG);
  CHECK(rc_microvm_host_configure(&r.vm, NULL, config, soon(5000), &t, &err) < 0);
  CHECK_CONTAINS(err.msg, "sent CONFIGURED while booting (expected HELLO)");
  rig_stop(&r);

  rig_start(&r); /* HELLO twice */
  agent_encode_hello(config, "x");
  put(&r, config);
  put(&r, config);
  agent_encode_empty(config, AGENT_MSG_CONFIG);
  CHECK(rc_microvm_host_configure(&r.vm, NULL, config, soon(5000), &t, &err) < 0);
  CHECK_CONTAINS(err.msg, "sent HELLO while setting up the container (expected CONFIGURED)");
  rig_stop(&r);

  rig_start(&r); /* EXIT before STARTED */
  put_exit(&r, 0, AGENT_EXIT_CODE, 0);
  uint32_t pid = 0;
  CHECK(rc_microvm_host_start(&r.vm, soon(5000), &pid, &err) < 0);
  CHECK_CONTAINS(err.msg, "sent EXIT while starting (expected STARTED)");
  rig_stop(&r);

  rig_start(&r); /* STARTED with no pid */
  agent_encode_started(config, 0);
  put(&r, config);
  CHECK(rc_microvm_host_start(&r.vm, soon(5000), &pid, &err) < 0);
  CHECK_CONTAINS(err.msg, "STARTED with pid 0");
  rig_stop(&r);

  rig_start(&r); /* a frame the guest may not send */
  put_empty(&r, AGENT_MSG_START);
  CHECK(rc_microvm_host_start(&r.vm, soon(5000), &pid, &err) < 0);
  CHECK_CONTAINS(err.msg, "(expected STARTED)");
  rig_stop(&r);
  free(config);
}

static void test_boot_error_text(void) {
  struct rc_error err = {0};
  struct agent_msg *m = rc_xcalloc(1, sizeof(*m));
  uint64_t t = 0;
  struct rig r;
  rig_start(&r);
  /* an unknown stage, an errno out of range, terminal escapes and a bidi override (U+202E,
   * spelled as bytes: a literal of it is what misleads a reader) */
  static const char rlo[] = {(char)0xe2, (char)0x80, (char)0xae, 0};
  char text[64];
  snprintf(text, sizeof(text),
           "\x1b]0;owned\x07 \x9b"
           "2J %sevil",
           rlo);
  agent_encode_error(m, 999, 123456, text);
  put(&r, m);
  agent_encode_empty(m, AGENT_MSG_CONFIG);
  CHECK(rc_microvm_host_configure(&r.vm, NULL, m, soon(5000), &t, &err) < 0);
  CHECK_CONTAINS(err.msg, "microVM guest agent: unknown stage: ");
  CHECK(strchr(err.msg, 0x1b) == NULL && strchr(err.msg, 0x07) == NULL &&
        strchr(err.msg, (char)0x9b) == NULL && strstr(err.msg, rlo) == NULL);
  CHECK(err.code == 0);
  rig_stop(&r);

  rig_start(&r);
  agent_encode_error(m, AGENT_STAGE_ROOTFS, ENOENT, "no root disk");
  put(&r, m);
  agent_encode_empty(m, AGENT_MSG_CONFIG);
  CHECK(rc_microvm_host_configure(&r.vm, NULL, m, soon(5000), &t, &err) < 0);
  CHECK_CONTAINS(err.msg, "microVM guest agent: rootfs: no root disk");
  CHECK(err.code == ENOENT);
  rig_stop(&r);

  rig_start(&r); /* an ERROR that does not decode */
  agent_encode_error(m, AGENT_STAGE_ROOTFS, ENOENT, "x");
  agent_put_u8(m, 0);
  put(&r, m);
  agent_encode_empty(m, AGENT_MSG_CONFIG);
  CHECK(rc_microvm_host_configure(&r.vm, NULL, m, soon(5000), &t, &err) < 0);
  CHECK_CONTAINS(err.msg, "ERROR");
  rig_stop(&r);
  free(m);
}

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void test_boot_unfinished_frame(void) {
  struct rc_error err = {0};
  struct agent_msg *m = rc_xcalloc(1, sizeof(*m));
  uint64_t t = 0;
  struct rig r;
  rig_start(&r);
  /* a HELLO whose header promises more than ever comes */
  agent_encode_hello(m, "a version string");
  CHECK(agent_msg_end(m, &err) == 0);
  put_raw(&r, m->bytes, m->len - 3);
  agent_encode_empty(m, AGENT_MSG_CONFIG);
  int64_t t0 = rc_now_ms();
  double c0 = cpu_ms();
  CHECK(rc_microvm_host_configure(&r.vm, NULL, m, soon(300), &t, &err) < 0);
  int64_t waited = rc_now_ms() - t0;
  CHECK_CONTAINS(err.msg, "no answer from the guest agent while booting");
  CHECK(err.code == ETIMEDOUT);
  CHECK(waited >= 290 && waited < 3000);
  CHECK(cpu_ms() - c0 < 100); /* it slept */
  rig_stop(&r);

  rig_start(&r); /* the channel's end, mid-frame */
  put_raw(&r, m->bytes, 5);
  shutdown(r.agent, SHUT_WR);
  CHECK(rc_microvm_host_configure(&r.vm, NULL, m, soon(5000), &t, &err) < 0);
  CHECK_CONTAINS(err.msg, "the guest stopped while booting");
  rig_stop(&r);

  rig_start(&r); /* garbage */
  put_raw(&r, "GET / HTTP/1.1\r\n\r\n", 18);
  CHECK(rc_microvm_host_configure(&r.vm, NULL, m, soon(5000), &t, &err) < 0);
  CHECK_CONTAINS(err.msg, "bad frame magic");
  rig_stop(&r);
  free(m);
}

/* The running container: each of these ends the relay with an error naming it. */
static void relay_fails(void (*send)(struct rig *), const char *expected) {
  int before = open_fds();
  struct rig r;
  rig_start(&r);
  boot_and_start(&r);
  send(&r);
  struct rc_error err = {0};
  CHECK(turns(&r, 5000, &err) < 0);
  CHECK_CONTAINS(err.msg, expected);
  rig_stop(&r);
  CHECK(open_fds() == before);
}

static void exit_twice(struct rig *r) {
  put_exit(r, 0, AGENT_EXIT_CODE, 0);
  put_exit(r, 0, AGENT_EXIT_SIGNAL, 9);
}

static void output_after_exit(struct rig *r) {
  put_exit(r, 0, AGENT_EXIT_CODE, 0);
  put_data(r, AGENT_MSG_STDOUT, 0, "late", 4);
}

static void credit_after_exit(struct rig *r) {
  put_exit(r, 0, AGENT_EXIT_CODE, 0);
  struct agent_msg m;
  agent_encode_stdin_credit(&m, 0, 0);
  put(r, &m);
}

static void unknown_exec_output(struct rig *r) {
  put_data(r, AGENT_MSG_STDOUT, 7, "x", 1);
}

static void unknown_exec_exit(struct rig *r) {
  put_exit(r, 9, AGENT_EXIT_CODE, 0);
}

static void unknown_exec_started(struct rig *r) {
  struct agent_msg m;
  agent_encode_exec_started(&m, 3, 100);
  put(r, &m);
}

static void unknown_exec_credit(struct rig *r) {
  struct agent_msg m;
  agent_encode_stdin_credit(&m, 5, 1);
  put(r, &m);
}

static void stdin_never_sent(struct rig *r) {
  struct agent_msg m;
  agent_encode_stdin_credit(&m, 0, 1);
  put(r, &m);
}

static void started_again(struct rig *r) {
  struct agent_msg m;
  agent_encode_started(&m, 43);
  put(r, &m);
}

static void hello_again(struct rig *r) {
  struct agent_msg m;
  agent_encode_hello(&m, "again");
  put(r, &m);
}

static void host_type(struct rig *r) {
  put_empty(r, AGENT_MSG_CONFIG);
}

static void short_data(struct rig *r) {
  /* a STDOUT too short for its proc field */
  struct agent_msg m;
  agent_msg_begin(&m, AGENT_MSG_STDOUT);
  agent_put_u16(&m, 0);
  put(r, &m);
}

static void exit_bad_value(struct rig *r) {
  put_exit(r, 0, AGENT_EXIT_SIGNAL, 0);
}

static void relay_error(struct rig *r) {
  struct agent_msg m;
  agent_encode_error(&m, AGENT_STAGE_RELAY, EIO, "relay broke");
  put(r, &m);
}

static void oversized(struct rig *r) {
  uint8_t h[AGENT_FRAME_HEADER_SIZE] = {0x52, 0x43, 0x43, 0x4c, AGENT_PROTO_VERSION, 0, 0x05, 0x01,
                                        0x01, 0x00, 0x01, 0x00};
  put_raw(r, h, sizeof(h));
}

static void hang_up(struct rig *r) {
  put_data(r, AGENT_MSG_STDOUT, 0, "last words", 10);
  shutdown(r->agent, SHUT_WR);
}

static void machine_stops(struct rig *r) {
  uint64_t one = 1;
  CHECK(write(r->stopped, &one, sizeof(one)) == sizeof(one));
}

static void test_relay_protocol_errors(void) {
  relay_fails(exit_twice, "sent EXIT after the container's exit");
  relay_fails(output_after_exit, "sent STDOUT after the container's exit");
  relay_fails(credit_after_exit, "sent STDIN_CREDIT after the container's exit");
  relay_fails(unknown_exec_output, "STDOUT for process 7");
  relay_fails(unknown_exec_exit, "EXIT for process 9");
  relay_fails(unknown_exec_started, "EXEC_STARTED for process 3");
  relay_fails(unknown_exec_credit, "process 5");
  relay_fails(stdin_never_sent, "credited stdin it was never sent");
  relay_fails(started_again, "sent STARTED while the container ran");
  relay_fails(hello_again, "sent HELLO while the container ran");
  relay_fails(host_type, "sent CONFIG while the container ran");
  relay_fails(short_data, "malformed STDOUT");
  relay_fails(exit_bad_value, "EXIT with kind 1 value 0");
  relay_fails(relay_error, "microVM guest agent: stdio relay: relay broke");
  relay_fails(oversized, "frame of 65537 bytes");
  relay_fails(hang_up, "the guest stopped while the container ran, without reporting its exit");
  relay_fails(machine_stops, "without reporting its exit");
}

/* Output beyond the window while nothing is read: refused, the queue never past its cap. */
static void test_output_beyond_the_window(void) {
  struct rig r;
  rig_start(&r);
  boot_and_start(&r);
  /* the smallest pipe: the host writes a page out, and credits nothing below a chunk */
  CHECK(fcntl(r.vm.out_fd[0], F_SETPIPE_SZ, 4096) >= 0);
  static uint8_t chunk[AGENT_FRAME_MAX_PAYLOAD - 4];
  memset(chunk, 'o', sizeof(chunk));
  struct rc_error err = {0};
  uint64_t sent = 0;
  int got = 0;
  nonblock(r.agent);
  struct agent_msg *m = rc_xcalloc(1, sizeof(*m));
  int64_t end = rc_now_ms() + 10000;
  while (got == 0 && rc_now_ms() < end) {
    agent_encode_data(m, AGENT_MSG_STDOUT, 0, chunk, sizeof(chunk));
    CHECK(agent_msg_end(m, &err) == 0);
    size_t off = 0;
    while (off < m->len && got == 0 && rc_now_ms() < end) {
      ssize_t n = write(r.agent, m->bytes + off, m->len - off);
      if (n > 0) off += (size_t)n;
      got = rc_microvm_host_relay_turn(&r.vm, r.sig_r, 1, &err);
      CHECK(r.vm.out[0].len <= r.vm.out[0].cap && r.vm.out_in_flight[0] <= AGENT_STDIO_WINDOW);
    }
    sent += sizeof(chunk);
  }
  CHECK(got < 0);
  CHECK_CONTAINS(err.msg, "more output than it was credited");
  CHECK(sent > AGENT_STDIO_WINDOW);
  free(m);
  rig_stop(&r);
}

/* An agent that does not read its channel: the host stops reading stdin at the window,
 * holds its credits, and refuses to queue signals without end. */
static void test_agent_not_reading(void) {
  struct rig r;
  rig_start(&r);
  boot_and_start(&r);
  struct rc_error err = {0};
  static char in[65536];
  memset(in, 'i', sizeof(in));
  nonblock(r.in_w);
  /* stdin until the host stops taking it */
  for (int i = 0; i < 400; i++) {
    (void)!write(r.in_w, in, sizeof(in));
    CHECK(rc_microvm_host_relay_turn(&r.vm, r.sig_r, 1, &err) == 0);
  }
  /* it stopped at the window, or earlier with a frame's worth queued, and stays there */
  uint32_t taken = r.vm.stdin_in_flight;
  CHECK(taken > 0 && taken <= AGENT_STDIO_WINDOW);
  CHECK(taken == AGENT_STDIO_WINDOW || r.vm.to_agent.len >= AGENT_FRAME_MAX);
  for (int i = 0; i < 20; i++) {
    (void)!write(r.in_w, in, sizeof(in));
    CHECK(rc_microvm_host_relay_turn(&r.vm, r.sig_r, 1, &err) == 0);
  }
  CHECK(r.vm.stdin_in_flight == taken);
  CHECK(r.vm.to_agent.len > 0 && r.vm.to_agent.len <= r.vm.to_agent.cap);
  /* output: written out, its credit held back while the channel is full */
  put_data(&r, AGENT_MSG_STDOUT, 0, "held", 4);
  for (int i = 0; i < 20; i++) CHECK(rc_microvm_host_relay_turn(&r.vm, r.sig_r, 1, &err) == 0);
  char out[8] = "";
  CHECK(drain(r.out_r[0], out, sizeof(out) - 1) == 4);
  CHECK(r.vm.out_uncredited[0] == 4);
  /* signals: queued up to the cap, then the container fails */
  struct signalfd_siginfo si = {.ssi_signo = SIGUSR1};
  int got = 0;
  for (int i = 0; i < 100000 && got == 0; i++) {
    if (write(r.sig_w, &si, sizeof(si)) != sizeof(si))
      got = rc_microvm_host_relay_turn(&r.vm, r.sig_r, 1, &err);
    CHECK(r.vm.to_agent.len <= r.vm.to_agent.cap);
  }
  CHECK(got < 0 && err.code == ENOBUFS);
  CHECK_CONTAINS(err.msg, "does not read its channel");
  rig_stop(&r);
}

/* A relay with nothing to do sleeps: whatever is pending (half a frame, output nobody
 * reads after EXIT, credits the agent does not take) costs no CPU. */
static void sleeps(void (*setup)(struct rig *), const char *what) {
  struct rig r;
  rig_start(&r);
  boot_and_start(&r);
  setup(&r);
  pid_t pid = fork();
  if (pid == 0) {
    struct rc_error err = {0};
    while (rc_microvm_host_relay_turn(&r.vm, r.sig_r, -1, &err) == 0) {
    }
    _exit(3);
  }
  CHECK(pid > 0);
  struct timespec ts = {.tv_nsec = 400 * 1000 * 1000};
  nanosleep(&ts, NULL);
  kill(pid, SIGKILL);
  int status = 0;
  struct rusage ru;
  CHECK(wait4(pid, &status, 0, &ru) == pid);
  double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
  if (!(WIFSIGNALED(status) && cpu < 100))
    fprintf(stderr, "%s: status 0x%x, %.1f ms of CPU in 400 ms\n", what, status, cpu);
  CHECK(WIFSIGNALED(status)); /* still relaying: nothing ended it */
  CHECK(cpu < 100);
  rig_stop(&r);
}

static void half_a_frame(struct rig *r) {
  struct agent_msg m;
  agent_encode_data(&m, AGENT_MSG_STDOUT, 0, "0123456789", 10);
  struct rc_error err = {0};
  CHECK(agent_msg_end(&m, &err) == 0);
  put_raw(r, m.bytes, m.len - 4);
}

static void output_nobody_reads(struct rig *r) {
  CHECK(fcntl(r->vm.out_fd[0], F_SETPIPE_SZ, 4096) >= 0);
  static char big[8192];
  memset(big, 'x', sizeof(big));
  put_data(r, AGENT_MSG_STDOUT, 0, big, sizeof(big));
  /* not EXIT: with EXIT in and output pending, the relay only waits on the writer too, but
   * a full stdout and a silent agent is the case that must not spin */
}

static void stdin_at_window(struct rig *r) {
  static char in[65536];
  memset(in, 'i', sizeof(in));
  nonblock(r->in_w);
  struct rc_error err = {0};
  for (int i = 0; i < 40; i++) {
    (void)!write(r->in_w, in, sizeof(in));
    (void)rc_microvm_host_relay_turn(&r->vm, r->sig_r, 1, &err);
  }
}

static void stdin_closed(struct rig *r) {
  close_if(&r->in_w);
}

static void test_no_spin(void) {
  sleeps(half_a_frame, "half a frame");
  sleeps(output_nobody_reads, "output nobody reads");
  sleeps(stdin_at_window, "stdin at the window, agent not reading");
  sleeps(stdin_closed, "stdin closed");
}

UNIT_MAIN("agent_host", UNIT_CASE(test_a_session), UNIT_CASE(test_boot_out_of_order),
          UNIT_CASE(test_boot_error_text), UNIT_CASE(test_boot_unfinished_frame),
          UNIT_CASE(test_relay_protocol_errors), UNIT_CASE(test_output_beyond_the_window),
          UNIT_CASE(test_agent_not_reading), UNIT_CASE(test_no_spin))
