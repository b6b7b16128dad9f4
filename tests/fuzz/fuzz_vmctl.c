/* libFuzzer target: the VMM's control side (src/microvm_control.c) driven as the relay
 * drives it (rc_vmctl_poll_fill, poll, rc_vmctl_poll_handle, rc_vmctl_flush, and
 * rc_vmctl_on_frame for each frame from the agent), with callers on a real listening socket
 * (abstract, one per input) and a fake agent behind the send/queued callbacks, as in
 * tests/unit/test_vmctl.c; no KVM, no machine (PAUSE, RESUME and MEMORY answer ENOTSUP).
 *
 * The input is a script of events, one opcode byte each followed by its operands (a
 * missing byte reads as 0), see the OP_ list:
 *   - callers: connect, send a request of each type (EXEC with stdio from pipes, or a pty
 *     or socket standing in for a terminal; wrong fd counts, extra payload, a broken
 *     header), write or close an EXEC's stdin, read or close its stdout and stderr, read
 *     the VMM's answers, hang up;
 *   - the agent: a frame built with the project's encoder from fuzzed fields (process
 *     numbers and request ids picked among those the VMM sent, or any number), or a raw
 *     frame of any type; the agent's queue full or not;
 *   - the loop: a turn (poll without waiting), a wait for the next deadline (only with the
 *     deadline shortened to a few ms, at most MAX_WAITS per input), the container's end
 *     (rc_vmctl_finish).
 * A protocol error from rc_vmctl_on_frame ends the input as it ends the VM.
 *
 * Besides the sanitizers, the target checks what the VMM sends: every frame to the agent
 * decodes with its type's decoder and names a process the VMM started, stdin stays within
 * its window and stops after STDIN_EOF, output is never credited beyond what came; every
 * message to a caller is a REPLY the client can read (rc_vmctl_reply), with the result
 * its request has, or an EXITED; and at the end of each input no descriptor is left open
 * that was not open before it. */
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
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "fuzz_script.h"
#include "runcell/agent_proto.h"
#include "runcell/log.h"
#include "runcell/microvm_control.h"
#include "runcell/util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CONNS 40   /* callers at once: more than the VMM's 32 slots */
#define MAX_EVENTS 512 /* per input */
#define MAX_WAITS 4    /* deadline waits per input, each at most WAIT_CAP_MS */
#define WAIT_CAP_MS 4
#define TRACK 512 /* process numbers followed by the fake agent */
/* new descriptors take the lowest numbers free: what an input opens (a few hundred at most)
 * lies below this */
#define MAX_FDS_CHECKED 1024

/* ---- The input ------------------------------------------------------------------------ */

/* struct script, u8..u64: fuzz_script.h */

/* Up to max bytes: a length byte, then that many (fewer at the end of the input). */
static size_t bytes(struct script *s, const uint8_t **out, size_t max) {
  size_t len = u8(s);
  if (len > max) len = max;
  if (len > s->n) len = s->n;
  *out = s->p;
  s->p += len;
  s->n -= len;
  return len;
}

/* A NUL-terminated string of up to size - 1 bytes from the input (cut at a NUL in it). */
static char *string(struct script *s, char *buf, size_t size) {
  const uint8_t *b = NULL;
  size_t len = bytes(s, &b, size - 1);
  memcpy(buf, b, len);
  buf[len] = '\0';
  return buf;
}

/* A large payload's worth of one byte: len from a size class. */
static uint8_t pattern[AGENT_FRAME_MAX_PAYLOAD];

/* Data for a frame or a write: from the input, or (a length byte of 0xf0 and up) a run
 * of the pattern up to a frame's worth, to reach the windows' limits in a few steps. */
static size_t payload(struct script *s, const uint8_t **out, size_t max) {
  uint8_t mode = s->n ? s->p[0] : 0;
  if (mode < 0xf0) return bytes(s, out, max);
  u8(s);
  size_t len = (size_t)(mode - 0xef) * 4096u + u8(s);
  *out = pattern;
  return len > max ? max : len;
}

/* ---- The fake agent ------------------------------------------------------------------- */

struct fake_agent {
  size_t queued;
  uint32_t max_id; /* the highest process number the VMM sent an EXEC for */
  uint32_t exec_ids[64];
  size_t n_exec;
  uint32_t requests[64];
  size_t n_requests;
  uint32_t stdin_in_flight[TRACK];
  bool stdin_eof[TRACK];
  uint64_t out_accepted[TRACK][2], out_credited[TRACK][2];
};

static struct fake_agent agent;
static struct rc_vmctl *vm_ctl;

static void fail(const char *what, uint32_t v) {
  fprintf(stderr, "fuzz_vmctl: %s (%u)\n", what, v);
  abort();
}

/* A process number the VMM names must be one it started. */
static void check_proc(uint32_t proc) {
  if (proc == AGENT_PROC_CONTAINER || proc > agent.max_id)
    fail("the VMM sent the agent a frame for a process it never started", proc);
}

static int fake_send(void *vm, struct agent_msg *m, struct rc_error *err) {
  (void)vm;
  if (agent_msg_end(m, err) < 0) fail("the VMM sent the agent an overflowing frame", 0);
  struct agent_frame f = {.type = (uint16_t)(m->bytes[6] | m->bytes[7] << 8),
                          .length = (uint32_t)(m->len - AGENT_FRAME_HEADER_SIZE),
                          .payload = m->bytes + AGENT_FRAME_HEADER_SIZE};
  struct rc_error e = {0};
  uint32_t proc = 0, v = 0;
  switch (f.type) {
    case AGENT_MSG_EXEC: {
      struct agent_exec *ex = NULL;
      if (agent_decode_exec(&f, &ex, &e) < 0) fail("EXEC that does not decode", 0);
      proc = ex->proc;
      agent_exec_free(ex);
      if (proc == AGENT_PROC_CONTAINER || proc <= agent.max_id)
        fail("EXEC with a number already used", proc);
      agent.max_id = proc;
      if (agent.n_exec < RC_ARRAY_SIZE(agent.exec_ids)) agent.exec_ids[agent.n_exec++] = proc;
      return 0;
    }
    case AGENT_MSG_PS:
    case AGENT_MSG_STATS:
    case AGENT_MSG_PIDS_LIMIT: {
      uint64_t limit = 0;
      int r = f.type == AGENT_MSG_PS      ? agent_decode_ps(&f, &v, &e)
              : f.type == AGENT_MSG_STATS ? agent_decode_stats(&f, &v, &e)
                                          : agent_decode_pids_limit(&f, &v, &limit, &e);
      if (r < 0 || v == 0) fail("a request to the agent that does not decode", f.type);
      if (agent.n_requests < RC_ARRAY_SIZE(agent.requests)) agent.requests[agent.n_requests++] = v;
      return 0;
    }
    case AGENT_MSG_SIGNAL:
      if (agent_decode_signal(&f, &proc, &v, &e) < 0 || v < 1 || v > 64)
        fail("SIGNAL that does not decode", v);
      check_proc(proc);
      return 0;
    case AGENT_MSG_WINSIZE: {
      struct agent_winsize ws;
      if (agent_decode_winsize(&f, &proc, &ws, &e) < 0) fail("WINSIZE that does not decode", 0);
      check_proc(proc);
      return 0;
    }
    case AGENT_MSG_STDIN: {
      struct agent_data d;
      if (agent_decode_data(&f, &d, &e) < 0 || d.len == 0) fail("STDIN that does not decode", 0);
      check_proc(d.proc);
      if (d.proc < TRACK) {
        if (agent.stdin_eof[d.proc]) fail("STDIN after STDIN_EOF", d.proc);
        agent.stdin_in_flight[d.proc] += (uint32_t)d.len;
        if (agent.stdin_in_flight[d.proc] > AGENT_STDIO_WINDOW)
          fail("stdin sent beyond its window", agent.stdin_in_flight[d.proc]);
      }
      return 0;
    }
    case AGENT_MSG_STDIN_EOF:
      if (agent_decode_stdin_eof(&f, &proc, &e) < 0) fail("STDIN_EOF that does not decode", 0);
      check_proc(proc);
      if (proc < TRACK) {
        if (agent.stdin_eof[proc]) fail("STDIN_EOF twice", proc);
        agent.stdin_eof[proc] = true;
      }
      return 0;
    case AGENT_MSG_OUTPUT_CREDIT: {
      struct agent_output_credit cr;
      if (agent_decode_output_credit(&f, &cr, &e) < 0)
        fail("OUTPUT_CREDIT that does not decode", 0);
      check_proc(cr.proc);
      if (cr.stdout_bytes == 0 && cr.stderr_bytes == 0) fail("an empty OUTPUT_CREDIT", cr.proc);
      if (cr.proc < TRACK) {
        agent.out_credited[cr.proc][0] += cr.stdout_bytes;
        agent.out_credited[cr.proc][1] += cr.stderr_bytes;
        for (int s = 0; s < 2; s++)
          if (agent.out_credited[cr.proc][s] > agent.out_accepted[cr.proc][s])
            fail("output credited that never came", cr.proc);
      }
      return 0;
    }
    default:
      fail("the VMM sent the agent a frame of a type not its to send", f.type);
  }
  return 0;
}

static size_t fake_queued(void *vm) {
  (void)vm;
  return agent.queued;
}

/* A process number: one the VMM started (most of the time), or another. */
static uint32_t pick_proc(struct script *s) {
  uint8_t b = u8(s);
  if (b < 0xf0) return agent.n_exec ? agent.exec_ids[b % agent.n_exec] : b % 4u;
  switch (b) {
    case 0xf0:
      return AGENT_PROC_CONTAINER;
    case 0xf1:
      return agent.max_id + 1;
    case 0xf2:
      return u32(s);
    default:
      return b & 0x0fu;
  }
}

static uint32_t pick_request(struct script *s) {
  uint8_t b = u8(s);
  if (b < 0xf0) return agent.n_requests ? agent.requests[b % agent.n_requests] : b % 4u;
  return b == 0xf0 ? u32(s) : b & 0x0fu;
}

/* ---- Callers ---------------------------------------------------------------------------- */

struct conn {
  int fd;        /* -1: none */
  int in_w;      /* its EXEC's stdin (or the terminal's master side) */
  int out_r[2];  /* stdout, stderr */
  uint16_t sent; /* the type of the first request it sent, 0 for a broken one */
  bool any_sent;
};

static struct conn conns[MAX_CONNS];
static struct sockaddr_un addr;
static socklen_t addr_len;
static struct agent_msg msg, raw;

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void set_nonblocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* What the VMM sent a caller must be a REPLY the client reads (with the result its
 * request has on success) or an EXITED. */
static void check_message(const struct conn *k, const uint8_t *b, size_t n) {
  struct rc_error err = {0};
  uint16_t type = 0;
  uint32_t len = 0;
  if (n < AGENT_FRAME_HEADER_SIZE || agent_header_decode(b, &type, &len, &err) < 0 ||
      len != n - AGENT_FRAME_HEADER_SIZE)
    fail("a message to a caller with a broken header", (uint32_t)n);
  struct agent_frame f = {.type = type, .length = len, .payload = b + AGENT_FRAME_HEADER_SIZE};
  struct agent_cursor cur;
  if (type == RC_VMCTL_EXITED) {
    agent_cursor_init(&cur, f.payload, f.length);
    agent_get_u32(&cur);
    agent_get_u32(&cur);
    if (agent_cursor_finish(&cur, "exited", &err) < 0) fail("a malformed EXITED", len);
    return;
  }
  if (type != RC_VMCTL_REPLY) fail("a message to a caller of an unknown type", type);
  /* the errno and message as the client reads them */
  agent_cursor_init(&cur, f.payload, f.length);
  uint32_t errnum = agent_get_u32(&cur);
  char message[AGENT_MAX_MESSAGE + 1];
  if (!agent_get_str_into(&cur, message, sizeof(message)) || cur.bad)
    fail("a REPLY the client cannot read (its message too long?)", len);
  if (rc_vmctl_reply(&f, &cur, &err) < 0) {
    if (cur.off != cur.len) fail("a failed REPLY with a result", len);
    return;
  }
  if (errnum != 0 || message[0]) fail("a successful REPLY with a message", errnum);
  struct agent_frame result = {
      .type = 0, .length = (uint32_t)(cur.len - cur.off), .payload = cur.p + cur.off};
  switch (k->sent) {
    case RC_VMCTL_EXEC:
      if (result.length != 4) fail("EXEC's REPLY without its pid", result.length);
      break;
    case RC_VMCTL_PS: {
      struct agent_ps_reply ps;
      result.type = AGENT_MSG_PS_REPLY;
      if (agent_decode_ps_reply(&result, &ps, &err) < 0) fail("PS's REPLY does not decode", 0);
      agent_ps_reply_free(&ps);
      break;
    }
    case RC_VMCTL_STATS: {
      struct agent_stats st;
      result.type = AGENT_MSG_STATS_REPLY;
      if (agent_decode_stats_reply(&result, &st, &err) < 0)
        fail("STATS's REPLY does not decode", 0);
      break;
    }
    case RC_VMCTL_PIDS_LIMIT:
      if (result.length != 0) fail("PIDS_LIMIT's REPLY with a result", result.length);
      break;
    default:
      /* no other request succeeds without a machine */
      fail("a successful REPLY to a request that cannot succeed here", k->sent);
  }
}

/* Reads (and checks) what waits on the caller's socket. */
static void drain_conn(struct conn *k) {
  if (k->fd < 0) return;
  for (int i = 0; i < 64; i++) {
    ssize_t n = recv(k->fd, raw.bytes, sizeof(raw.bytes), MSG_DONTWAIT | MSG_TRUNC);
    if (n <= 0) return;
    if ((size_t)n > sizeof(raw.bytes)) fail("a message to a caller over a frame", (uint32_t)n);
    check_message(k, raw.bytes, (size_t)n);
  }
}

static void drain_fd(int fd) {
  static uint8_t buf[16384];
  for (int i = 0; fd >= 0 && i < 64; i++)
    if (read(fd, buf, sizeof(buf)) <= 0) return;
}

static void conn_close_stdio(struct conn *k) {
  close_fd(&k->in_w);
  close_fd(&k->out_r[0]);
  close_fd(&k->out_r[1]);
}

static void conn_close(struct conn *k) {
  close_fd(&k->fd);
  conn_close_stdio(k);
  k->sent = 0;
  k->any_sent = false;
}

static struct conn *conn_connect(struct conn *k) {
  if (k->fd >= 0) return k;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return k;
  if (connect(fd, (const struct sockaddr *)&addr, addr_len) < 0) {
    close(fd);
    return k;
  }
  k->fd = fd;
  return k;
}

/* Sends a message with up to four fds (one more than any request takes): whether it went. */
static bool send_with_fds(int fd, const void *b, size_t n, const int *fds, size_t nfds) {
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int) * 4)];
  } ctl;
  struct iovec iov = {.iov_base = (void *)b, .iov_len = n};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds) {
    memset(&ctl, 0, sizeof(ctl));
    mh.msg_control = ctl.buf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(h), fds, sizeof(int) * nfds);
  }
  return sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0;
}

/* A terminal's slave side, its master kept in *master; a socket pair when there is no
 * pty (RESIZE then finds no terminal, as with a file). */
static int open_terminal(int *master) {
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m >= 0) {
    char name[128];
    int slave = -1;
    if (grantpt(m) == 0 && unlockpt(m) == 0 && ptsname_r(m, name, sizeof(name)) == 0)
      slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave >= 0) {
      struct winsize ws = {.ws_row = 24, .ws_col = 80};
      (void)ioctl(m, TIOCSWINSZ, &ws);
      set_nonblocking(m);
      *master = m;
      return slave;
    }
    close(m);
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -1;
  set_nonblocking(sv[0]);
  *master = sv[0];
  return sv[1];
}

/* EXEC's payload as runcell exec builds it, from fuzzed fields; false if it does not
 * encode (the validator refused it): then the fields go raw. */
static bool exec_request(struct script *s, uint8_t flags) {
  char a0[64], a1[64], cwd[64], env0[64];
  char *args[3] = {string(s, a0, sizeof(a0)), NULL, NULL};
  uint32_t n_args = 1;
  if (flags & 0x10) args[n_args++] = string(s, a1, sizeof(a1));
  char *env[2] = {NULL, NULL};
  if (flags & 0x20) env[0] = string(s, env0, sizeof(env0));
  if (!a0[0]) snprintf(a0, sizeof(a0), "/bin/true");
  struct agent_exec e = {.args = args,
                         .n_args = n_args,
                         .env = env,
                         .n_env = env[0] ? 1 : 0,
                         .cwd = (flags & 0x40) ? string(s, cwd, sizeof(cwd)) : "/",
                         .terminal = flags & 1};
  e.winsize.rows = u8(s);
  e.winsize.cols = u8(s);
  if (flags & 0x80) e.proc = u32(s); /* the VMM's to set: whatever the caller put there */
  struct rc_error err = {0};
  if (agent_encode_exec(&msg, &e, &err) < 0) return false;
  msg.bytes[6] = (uint8_t)(RC_VMCTL_EXEC & 0xff);
  msg.bytes[7] = (uint8_t)(RC_VMCTL_EXEC >> 8);
  return true;
}

static const uint16_t request_types[] = {
    RC_VMCTL_EXEC,       RC_VMCTL_PS,     RC_VMCTL_SIGNAL, RC_VMCTL_RESIZE,
    RC_VMCTL_PAUSE,      RC_VMCTL_RESUME, RC_VMCTL_MEMORY, RC_VMCTL_STATS,
    RC_VMCTL_PIDS_LIMIT, RC_VMCTL_REPLY,  RC_VMCTL_EXITED,
};

/* A request on connection k (made if there is none): its type and fields from the input. */
static void op_request(struct script *s) {
  struct conn *k = conn_connect(&conns[u8(s) % MAX_CONNS]);
  uint8_t which = u8(s), flags = u8(s);
  uint16_t type = which < 0xf0 ? request_types[which % RC_ARRAY_SIZE(request_types)] : u16(s);
  bool encoded = true;
  int fds[4] = {-1, -1, -1, -1}, mine[3] = {-1, -1, -1};
  size_t nfds = 0;
  if (type == RC_VMCTL_EXEC && !(flags & 8)) {
    encoded = exec_request(s, flags);
    if (flags & 1) {
      fds[nfds++] = open_terminal(&mine[0]);
    } else {
      int p[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
      for (int i = 0; i < 3; i++)
        if (pipe2(p[i], O_CLOEXEC) < 0) p[i][0] = p[i][1] = -1;
      fds[nfds++] = p[0][0];
      fds[nfds++] = p[1][1];
      fds[nfds++] = p[2][1];
      mine[0] = p[0][1];
      mine[1] = p[1][0];
      mine[2] = p[2][0];
      for (int i = 0; i < 3; i++)
        if (mine[i] >= 0) set_nonblocking(mine[i]);
    }
  } else {
    const uint8_t *b = NULL;
    agent_msg_begin(&msg, type);
    switch (type) {
      case RC_VMCTL_SIGNAL:
        agent_put_u32(&msg, u8(s) % 70u);
        break;
      case RC_VMCTL_MEMORY:
      case RC_VMCTL_PIDS_LIMIT:
        agent_put_u64(&msg, (flags & 8) ? u64(s) : u8(s));
        break;
      case RC_VMCTL_PS:
      case RC_VMCTL_RESIZE:
      case RC_VMCTL_PAUSE:
      case RC_VMCTL_RESUME:
      case RC_VMCTL_STATS:
        break;
      default: { /* any payload */
        size_t n = payload(s, &b, AGENT_FRAME_MAX_PAYLOAD);
        agent_put_bytes(&msg, b, n);
        break;
      }
    }
    struct rc_error err = {0};
    encoded = agent_msg_end(&msg, &err) == 0;
  }
  /* one byte more than the header says (unless the frame is full) */
  size_t ended = msg.len;
  if (flags & 2) agent_put_u8(&msg, u8(s));
  bool longer = msg.len != ended;
  /* fds the request should not have, or one too many / few for EXEC */
  if (flags & 4) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) == 0) {
      close(p[1]);
      if (nfds < 4)
        fds[nfds++] = p[0];
      else
        close(p[0]);
    }
  }
  if ((flags & 0x60) == 0x60 && nfds) nfds--; /* one short (the last one stays ours) */
  if (k->fd >= 0) {
    bool sent = false;
    if (!encoded) {
      /* a broken request: a short message, or the header's bytes mangled */
      size_t n = u8(s) % (AGENT_FRAME_HEADER_SIZE + 8u);
      for (size_t i = 0; i < n; i++) msg.bytes[i] ^= u8(s);
      sent = send_with_fds(k->fd, msg.bytes, n, fds, nfds);
    } else {
      sent = send_with_fds(k->fd, msg.bytes, msg.len, fds, nfds);
    }
    /* the first request that went is the one the VMM answers */
    if (sent && !k->any_sent) {
      k->sent = encoded && !longer ? type : 0;
      k->any_sent = true;
    }
  }
  for (size_t i = 0; i < 4; i++) close_fd(&fds[i]);
  if (k->fd >= 0 && type == RC_VMCTL_EXEC && mine[0] >= 0) {
    conn_close_stdio(k);
    k->in_w = mine[0];
    k->out_r[0] = mine[1];
    k->out_r[1] = mine[2];
  } else {
    for (int i = 0; i < 3; i++) close_fd(&mine[i]);
  }
}

/* ---- Frames from the agent -------------------------------------------------------------- */

static const uint16_t agent_types[] = {
    AGENT_MSG_STDOUT,           AGENT_MSG_STDERR,     AGENT_MSG_EXIT,     AGENT_MSG_STDIN_CREDIT,
    AGENT_MSG_EXEC_STARTED,     AGENT_MSG_EXEC_ERROR, AGENT_MSG_PS_REPLY, AGENT_MSG_STATS_REPLY,
    AGENT_MSG_PIDS_LIMIT_REPLY, AGENT_MSG_HELLO,      AGENT_MSG_ERROR,    AGENT_MSG_STARTED,
    AGENT_MSG_CONFIGURED,       AGENT_MSG_STDIN,      AGENT_MSG_SIGNAL,   AGENT_MSG_EXEC,
};

static void encode_ps_reply(struct script *s) {
  static struct agent_ps_entry entries[256];
  struct agent_ps_reply ps = {.request = pick_request(s)};
  ps.truncated = u8(s) & 1;
  ps.n = u8(s);
  bool long_cmds = ps.n & 0x80;
  for (uint32_t i = 0; i < ps.n; i++) {
    struct agent_ps_entry *en = &entries[i];
    *en = (struct agent_ps_entry){.pid = i + 1, .ppid = 1, .uid = 0, .tty_nr = 0, .cpu_ticks = i};
    if (long_cmds) {
      memset(en->cmd, 'a' + (int)(i % 26), AGENT_MAX_PS_CMD);
      en->cmd[AGENT_MAX_PS_CMD] = '\0';
    } else {
      snprintf(en->cmd, sizeof(en->cmd), "cmd%u", i);
    }
  }
  if (!long_cmds && ps.n) string(s, entries[0].cmd, sizeof(entries[0].cmd));
  ps.entries = entries;
  agent_encode_ps_reply(&msg, &ps);
}

/* One frame from the agent: 0 goes on, 1 when it broke the protocol (the VM ends). */
static int op_agent_frame(struct script *s, bool raw_frame) {
  uint8_t which = u8(s);
  uint16_t type = which < 0xf0 ? agent_types[which % RC_ARRAY_SIZE(agent_types)] : u16(s);
  const uint8_t *b = NULL;
  if (raw_frame) {
    size_t n = payload(s, &b, AGENT_FRAME_MAX_PAYLOAD);
    agent_msg_begin(&msg, type);
    agent_put_bytes(&msg, b, n);
  } else {
    switch (type) {
      case AGENT_MSG_STDOUT:
      case AGENT_MSG_STDERR: {
        uint32_t proc = pick_proc(s);
        size_t len = payload(s, &b, AGENT_FRAME_MAX_PAYLOAD - 4);
        agent_encode_data(&msg, type, proc, b, len);
        break;
      }
      case AGENT_MSG_EXIT: {
        struct agent_exit x = {.proc = pick_proc(s)};
        x.kind = u8(s) % 3u;
        x.value = u8(s);
        agent_encode_exit(&msg, &x);
        break;
      }
      case AGENT_MSG_STDIN_CREDIT: {
        uint32_t proc = pick_proc(s);
        uint8_t mode = u8(s);
        uint32_t due = proc < TRACK ? agent.stdin_in_flight[proc] : 0;
        uint32_t v = mode < 0x80 ? due : mode < 0xc0 ? due / 2 : mode < 0xf0 ? due + 1 : u32(s);
        agent_encode_stdin_credit(&msg, proc, v);
        break;
      }
      case AGENT_MSG_EXEC_STARTED: {
        uint32_t proc = pick_proc(s);
        agent_encode_exec_started(&msg, proc, u32(s));
        break;
      }
      case AGENT_MSG_EXEC_ERROR: {
        char words[128];
        uint32_t proc = pick_proc(s);
        uint32_t stage = u8(s);
        int32_t errnum = (int32_t)(int8_t)u8(s);
        agent_encode_exec_error(&msg, proc, stage, errnum, string(s, words, sizeof(words)));
        break;
      }
      case AGENT_MSG_PS_REPLY:
        encode_ps_reply(s);
        break;
      case AGENT_MSG_STATS_REPLY: {
        struct agent_stats st = {.request = pick_request(s)};
        st.ncpus = u8(s) % 3u;
        st.cpu_user_ns = u64(s);
        st.mem_total = u32(s);
        st.mem_free = u16(s);
        st.mem_available = u16(s);
        st.nprocs = u8(s);
        st.pids_limit = u8(s);
        agent_encode_stats_reply(&msg, &st);
        break;
      }
      case AGENT_MSG_PIDS_LIMIT_REPLY: {
        struct agent_pids_limit_reply r = {.request = pick_request(s)};
        r.errnum = (int32_t)(int16_t)u16(s);
        string(s, r.message, sizeof(r.message) < 200 ? sizeof(r.message) : 200);
        if (u8(s) & 1) r.errnum = 0, r.message[0] = '\0';
        agent_encode_pids_limit_reply(&msg, &r);
        break;
      }
      default: {
        size_t n = payload(s, &b, 64);
        agent_msg_begin(&msg, type);
        agent_put_bytes(&msg, b, n);
        break;
      }
    }
  }
  struct rc_error err = {0};
  if (agent_msg_end(&msg, &err) < 0) return 0; /* did not fit: not sent */
  struct agent_frame f = {.type = type,
                          .length = (uint32_t)(msg.len - AGENT_FRAME_HEADER_SIZE),
                          .payload = msg.bytes + AGENT_FRAME_HEADER_SIZE};
  /* what the VMM accepted, for the fake agent's own accounting (from the frame itself: a
   * raw one names its process too) */
  uint32_t fproc = f.length >= 4 ? (uint32_t)(f.payload[0] | f.payload[1] << 8 |
                                              f.payload[2] << 16 | (uint32_t)f.payload[3] << 24)
                                 : 0;
  int r = rc_vmctl_on_frame(vm_ctl, &f, &err);
  if (r < 0) return 1;
  if (r == 1 && fproc < TRACK) {
    if (type == AGENT_MSG_STDOUT || type == AGENT_MSG_STDERR)
      agent.out_accepted[fproc][type == AGENT_MSG_STDERR] += f.length - 4;
    if (type == AGENT_MSG_STDIN_CREDIT && f.length == 8) {
      uint32_t n = (uint32_t)(f.payload[4] | f.payload[5] << 8 | f.payload[6] << 16 |
                              (uint32_t)f.payload[7] << 24);
      agent.stdin_in_flight[fproc] -=
          n < agent.stdin_in_flight[fproc] ? n : agent.stdin_in_flight[fproc];
    }
  }
  if (rc_vmctl_flush(vm_ctl, &err) < 0) fail("rc_vmctl_flush failed", 0);
  return 0;
}

/* ---- The loop ----------------------------------------------------------------------------- */

static struct pollfd *pfds;

/* One turn of the relay's loop: poll waiting at most wait_ms. */
static void turn(int wait_ms) {
  size_t n = rc_vmctl_poll_fill(vm_ctl, pfds);
  if (poll(pfds, n, wait_ms) < 0) return;
  struct rc_error err = {0};
  if (rc_vmctl_poll_handle(vm_ctl, pfds, n, &err) < 0) fail("rc_vmctl_poll_handle failed", 0);
  if (rc_vmctl_flush(vm_ctl, &err) < 0) fail("rc_vmctl_flush failed", 0);
}

/* Descriptors open before an input, to find those it leaves open. */
static uint8_t open_before[MAX_FDS_CHECKED / 8];
static int fd_limit;

static void snapshot_fds(uint8_t *map) {
  memset(map, 0, MAX_FDS_CHECKED / 8);
  for (int fd = 0; fd < fd_limit; fd++)
    if (fcntl(fd, F_GETFD) >= 0) map[fd / 8] |= (uint8_t)(1u << (fd % 8));
}

static void check_fds(void) {
  static uint8_t now[MAX_FDS_CHECKED / 8];
  snapshot_fds(now);
  for (int fd = 0; fd < fd_limit; fd++) {
    if (!(now[fd / 8] & ~open_before[fd / 8] & (1u << (fd % 8)))) continue;
    char link[64], target[256] = "?";
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n >= 0) target[n] = '\0';
    fprintf(stderr, "fuzz_vmctl: descriptor %d (%s) left open\n", fd, target);
    abort();
  }
}

enum {
  OP_CONNECT,
  OP_REQUEST,
  OP_HANGUP,
  OP_STDIN,
  OP_STDIN_CLOSE,
  OP_OUTPUT,
  OP_REPLIES,
  OP_FRAME,
  OP_RAW_FRAME,
  OP_TURN,
  OP_WAIT,
  OP_QUEUED,
  OP_FINISH,
  OP_COUNT,
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN); /* as in the VMM: a reader gone is EPIPE */
  /* the control side's warnings (one per protocol error, exec given up on...) to nowhere */
  rc_log_init("/dev/null", "text", false);
  memset(pattern, 'o', sizeof(pattern));
  pfds = rc_xcalloc(rc_vmctl_max_pollfds(), sizeof(*pfds));
  struct rlimit rl;
  fd_limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < MAX_FDS_CHECKED ? (int)rl.rlim_cur
                                                                                 : MAX_FDS_CHECKED;
  for (size_t i = 0; i < MAX_CONNS; i++)
    conns[i] = (struct conn){.fd = -1, .in_w = -1, .out_r = {-1, -1}};
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static unsigned seq;
  struct script s = {data, size};
  snapshot_fds(open_before);
  memset(&agent, 0, sizeof(agent));
  /* the first byte: the deadline, the default (55 s: never reached here) or a few ms */
  uint8_t head = u8(&s);
  bool short_deadline = head & 1;
  rc_vmctl_set_deadline_ms(short_deadline ? 1u + (head >> 1) % 4u : 0);

  addr = (struct sockaddr_un){.sun_family = AF_UNIX};
  /* abstract: nothing to clean up, and gone with the socket */
  snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "runcell-fuzz-vmctl-%d-%u", getpid(),
           seq++);
  addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(addr.sun_path + 1));
  int l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (l < 0 || bind(l, (struct sockaddr *)&addr, addr_len) < 0 || listen(l, 64) < 0)
    fail("no listening socket", (uint32_t)errno);
  struct rc_vmctl_agent link = {
      .vm = NULL, .send = fake_send, .queued = fake_queued, .machine = NULL};
  vm_ctl = rc_vmctl_new(l, &link);

  unsigned waits = 0;
  bool over = false;
  for (unsigned ev = 0; ev < MAX_EVENTS && s.n && !over; ev++) {
    struct conn *k = NULL;
    uint8_t op = u8(&s) % OP_COUNT;
    switch (op) {
      case OP_CONNECT:
        conn_connect(&conns[u8(&s) % MAX_CONNS]);
        break;
      case OP_REQUEST:
        op_request(&s);
        break;
      case OP_HANGUP:
        k = &conns[u8(&s) % MAX_CONNS];
        if (u8(&s) & 1) {
          drain_conn(k);
          conn_close(k);
        } else {
          close_fd(&k->fd); /* its process's stdio stays open */
          k->sent = 0;
          k->any_sent = false;
        }
        break;
      case OP_STDIN: {
        k = &conns[u8(&s) % MAX_CONNS];
        const uint8_t *b = NULL;
        size_t n = payload(&s, &b, AGENT_FRAME_MAX_PAYLOAD);
        if (k->in_w >= 0) (void)write(k->in_w, b, n);
        break;
      }
      case OP_STDIN_CLOSE:
        close_fd(&conns[u8(&s) % MAX_CONNS].in_w);
        break;
      case OP_OUTPUT: {
        k = &conns[u8(&s) % MAX_CONNS];
        uint8_t how = u8(&s);
        /* a terminal's output comes back on its master side */
        int *fd = k->out_r[0] < 0 && k->out_r[1] < 0 ? &k->in_w : &k->out_r[how & 1];
        if (how & 2)
          close_fd(fd); /* the reader went away: EPIPE */
        else
          drain_fd(*fd);
        break;
      }
      case OP_REPLIES:
        drain_conn(&conns[u8(&s) % MAX_CONNS]);
        break;
      case OP_FRAME:
      case OP_RAW_FRAME:
        /* a protocol error ends the VM: the relay returns, the control side is freed */
        over = op_agent_frame(&s, op == OP_RAW_FRAME) != 0;
        break;
      case OP_TURN:
        turn(0);
        break;
      case OP_WAIT: {
        /* until the next deadline, when it is that close */
        int t = rc_vmctl_poll_timeout(vm_ctl);
        turn(short_deadline && waits < MAX_WAITS && t >= 0 && t <= WAIT_CAP_MS ? t : 0);
        waits++;
        break;
      }
      case OP_QUEUED: {
        uint8_t q = u8(&s);
        agent.queued = q < 0x80 ? 0 : q < 0xf0 ? AGENT_FRAME_MAX : (size_t)u16(&s);
        break;
      }
      case OP_FINISH:
        /* the container's process ended: every caller learns so */
        rc_vmctl_finish(vm_ctl);
        over = true;
        break;
      default:
        break;
    }
  }
  rc_vmctl_free(vm_ctl);
  vm_ctl = NULL;
  rc_vmctl_set_deadline_ms(0);
  for (size_t i = 0; i < MAX_CONNS; i++) {
    drain_conn(&conns[i]);
    conn_close(&conns[i]);
  }
  check_fds();
  return 0;
}
