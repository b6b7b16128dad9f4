/* The workload's life after START: one poll loop moves its output to the host as STDOUT /
 * STDERR frames while the host's credit lasts, writes the host's STDIN frames to it
 * (buffering at most the window the host may have in flight) and credits them back,
 * forwards SIGNAL and WINSIZE, and reaps every child (the agent is PID 1). When the workload
 * exits, every other process in the guest is killed, as when a container's init dies, so
 * that its pipes reach end-of-file; the loop ends once they are drained. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"

/* Host bytes waiting for the workload's stdin: a ring of exactly one window, which a host
 * that respects the window can never overflow. */
struct stdin_ring {
  size_t head, len;
  bool eof_received, closed, broken;
  uint8_t buf[AGENT_STDIO_WINDOW];
};

struct output {
  int fd;
  uint16_t type;   /* STDOUT / STDERR */
  uint32_t window; /* bytes the host still accepts */
  bool eof;
};

struct relay {
  struct agent_channel *ch;
  struct agent_stdio *io;
  pid_t pid;
  bool terminal;
  bool exited;
  int status;
  struct output out[2];
  struct stdin_ring in;
};

static uint8_t chunk[AGENT_STDIO_CHUNK];

static int send_stdin_credit(struct relay *r, size_t n, struct rc_error *err) {
  if (n == 0) return 0;
  agent_encode_stdin_credit(&r->ch->out, (uint32_t)n);
  return agent_send(r->ch, err);
}

static int stdin_push(struct relay *r, const uint8_t *data, size_t n, struct rc_error *err) {
  struct stdin_ring *in = &r->in;
  if (in->eof_received) return rc_err(err, EPROTO, "agent protocol: STDIN after STDIN_EOF");
  if (in->broken || in->closed) return send_stdin_credit(r, n, err); /* nobody reads: drop */
  if (n > sizeof(in->buf) - in->len)
    return rc_err(err, EPROTO, "agent protocol: the host overran the stdin window");
  for (size_t i = 0; i < n; i++) in->buf[(in->head + in->len + i) % sizeof(in->buf)] = data[i];
  in->len += n;
  return 0;
}

/* Writes what the ring holds to the workload; credits the host for what went. */
static int stdin_flush(struct relay *r, struct rc_error *err) {
  struct stdin_ring *in = &r->in;
  if (r->io->in_fd < 0) return 0;
  while (in->len > 0 && !in->broken) {
    size_t n = in->len;
    if (n > sizeof(in->buf) - in->head) n = sizeof(in->buf) - in->head;
    ssize_t w = write(r->io->in_fd, in->buf + in->head, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) return 0;
    if (w <= 0) {
      /* the workload closed its stdin: what is left will never be read */
      in->broken = true;
      size_t dropped = in->len;
      in->len = 0;
      return send_stdin_credit(r, dropped, err);
    }
    in->head = (in->head + (size_t)w) % sizeof(in->buf);
    in->len -= (size_t)w;
    if (send_stdin_credit(r, (size_t)w, err) < 0) return -1;
  }
  /* end of stdin reaches a pipe by closing it; a terminal has no end, as with runc */
  if (in->len == 0 && in->eof_received && !in->closed && !r->terminal) {
    close(r->io->in_fd);
    r->io->in_fd = -1;
    in->closed = true;
  }
  return 0;
}

static int handle_frame(struct relay *r, const struct agent_frame *f, struct rc_error *err) {
  switch (f->type) {
    case AGENT_MSG_STDIN:
      return stdin_push(r, f->payload, f->length, err);
    case AGENT_MSG_STDIN_EOF:
      if (agent_decode_empty(f, AGENT_MSG_STDIN_EOF, err) < 0) return -1;
      r->in.eof_received = true;
      return 0;
    case AGENT_MSG_OUTPUT_CREDIT: {
      struct agent_output_credit c;
      if (agent_decode_output_credit(f, &c, err) < 0) return -1;
      uint32_t add[2] = {c.stdout_bytes, c.stderr_bytes};
      for (int i = 0; i < 2; i++) {
        if (add[i] > AGENT_STDIO_WINDOW - r->out[i].window)
          return rc_err(err, EPROTO, "agent protocol: credit for %s bytes never sent",
                        agent_msg_name(r->out[i].type));
        r->out[i].window += add[i];
      }
      return 0;
    }
    case AGENT_MSG_SIGNAL: {
      uint32_t signo = 0;
      if (agent_decode_signal(f, &signo, err) < 0) return -1;
      if (!r->exited && kill(r->pid, (int)signo) < 0 && errno != ESRCH)
        agent_log("kill %d %u: %s", r->pid, signo, strerror(errno));
      return 0;
    }
    case AGENT_MSG_WINSIZE: {
      struct agent_winsize w;
      if (agent_decode_winsize(f, &w, err) < 0) return -1;
      if (r->io->pty_master >= 0) {
        struct winsize ws = {.ws_row = w.rows, .ws_col = w.cols};
        ioctl(r->io->pty_master, TIOCSWINSZ, &ws);
      }
      return 0;
    }
    default:
      return rc_err(err, EPROTO, "agent protocol: %s (0x%04x) after START", agent_msg_name(f->type),
                    f->type);
  }
}

static int read_channel(struct relay *r, struct rc_error *err) {
  bool eof = false;
  if (agent_reader_fill(&r->ch->reader, r->ch->rfd, &eof, err) < 0) return -1;
  for (;;) {
    struct agent_frame f;
    int n = agent_reader_next(&r->ch->reader, &f, err);
    if (n < 0) return -1;
    if (n == 0) break;
    if (handle_frame(r, &f, err) < 0) return -1;
  }
  if (eof) return rc_err(err, EPIPE, "the host closed the agent channel");
  return 0;
}

/* Moves one chunk of output to the host, as much as the window allows. */
static int pump_output(struct relay *r, struct output *o, struct rc_error *err) {
  size_t want = o->window < sizeof(chunk) ? o->window : sizeof(chunk);
  if (want == 0) return 0;
  ssize_t n = read(o->fd, chunk, want);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  if (n <= 0) {
    /* a pty master reads EIO once no process holds the terminal any more: that is its end */
    o->eof = true;
    if (o->fd == r->io->pty_master) {
      /* the master was stdin and the window-size handle too */
      r->io->pty_master = -1;
      r->io->in_fd = -1;
      r->in.closed = true;
    }
    close(o->fd);
    o->fd = -1;
    return 0;
  }
  o->window -= (uint32_t)n;
  agent_encode_data(&r->ch->out, o->type, chunk, (size_t)n);
  return agent_send(r->ch, err);
}

static void reap(struct relay *r) {
  for (;;) {
    int status = 0;
    pid_t p = waitpid(-1, &status, WNOHANG);
    if (p <= 0) return;
    if (p == r->pid && !r->exited) {
      r->exited = true;
      r->status = status;
      /* the container's init is gone: so is everything it left behind */
      kill(-1, SIGKILL);
    }
  }
}

static void set_nonblocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int agent_relay(struct agent_channel *ch, const struct agent_config *cfg, struct agent_stdio *io,
                pid_t pid, struct agent_exit *exit, struct rc_error *err) {
  (void)cfg;
  static struct relay r;
  memset(&r, 0, sizeof(r));
  r.ch = ch;
  r.io = io;
  r.pid = pid;
  r.terminal = io->pty_master >= 0;
  r.out[0] = (struct output){io->out_fd, AGENT_MSG_STDOUT, AGENT_STDIO_WINDOW, false};
  r.out[1] = (struct output){io->err_fd, AGENT_MSG_STDERR, AGENT_STDIO_WINDOW, io->err_fd < 0};
  for (int i = 0; i < 2; i++)
    if (r.out[i].fd >= 0) set_nonblocking(r.out[i].fd);
  /* with a terminal, in_fd is the master: out[0] closes it at end-of-file */
  if (!r.terminal) set_nonblocking(io->in_fd);

  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) return rc_err(err, errno, "signalfd");
  reap(&r); /* a child that died before the signalfd existed */

  int ret = 0;
  while (!(r.exited && r.out[0].eof && r.out[1].eof)) {
    struct pollfd p[5];
    int np = 0;
    p[np++] = (struct pollfd){.fd = ch->rfd, .events = POLLIN};
    p[np++] = (struct pollfd){.fd = sfd, .events = POLLIN};
    for (int i = 0; i < 2; i++)
      p[np++] = (struct pollfd){.fd = (!r.out[i].eof && r.out[i].window) ? r.out[i].fd : -1,
                                .events = POLLIN};
    bool in_open = io->in_fd >= 0 && !r.in.closed;
    p[np++] = (struct pollfd){.fd = (in_open && r.in.len) ? io->in_fd : -1, .events = POLLOUT};
    if (poll(p, (nfds_t)np, -1) < 0) {
      if (errno == EINTR) continue;
      ret = rc_err(err, errno, "poll");
      break;
    }
    if (p[1].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof(si)) > 0) {
      }
      reap(&r);
    }
    if (p[0].revents && read_channel(&r, err) < 0) {
      ret = -1;
      break;
    }
    for (int i = 0; i < 2; i++)
      if (p[2 + i].revents && pump_output(&r, &r.out[i], err) < 0) {
        ret = -1;
        break;
      }
    if (ret < 0) break;
    if (in_open && stdin_flush(&r, err) < 0) {
      ret = -1;
      break;
    }
  }
  close(sfd);
  if (ret < 0) {
    if (!r.exited) kill(-1, SIGKILL);
    return -1;
  }
  if (WIFSIGNALED(r.status)) {
    exit->kind = AGENT_EXIT_SIGNAL;
    exit->value = (uint32_t)WTERMSIG(r.status);
  } else {
    exit->kind = AGENT_EXIT_CODE;
    exit->value = (uint32_t)WEXITSTATUS(r.status);
  }
  if (io->in_fd >= 0 && !r.terminal) close(io->in_fd);
  return 0;
}
