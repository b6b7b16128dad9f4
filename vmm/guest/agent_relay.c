/* The workload's life after START: one poll loop moves the output of every process the
 * agent runs (the container's, number 0, and those the host EXECs) to the host as STDOUT /
 * STDERR frames while the host's credit for that process lasts, writes the host's STDIN
 * frames to each (buffering at most the window the host may have in flight) and credits
 * them back, forwards SIGNAL and WINSIZE, starts EXEC'd processes, answers PS, and reaps
 * every child (the agent is PID 1). An EXEC'd process is reported (EXIT with its number)
 * once it has exited and its output is drained. When the workload exits, every other
 * process in the guest is killed, as when a container's init dies, so that its pipes
 * reach end-of-file; the loop ends once all of them are drained and reported. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"

/* Host bytes waiting for a process's stdin: a ring of exactly one window, which a host
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

/* One process whose stdio the agent relays. */
struct proc {
  bool used;
  uint32_t id; /* AGENT_PROC_CONTAINER or the host's number */
  pid_t pid;
  bool terminal;
  bool exited;
  int status;
  struct agent_stdio io;
  struct output out[2];
  struct stdin_ring *in; /* heap: a window each */
};

#define MAX_PROCS (1 + AGENT_MAX_EXECS)
/* channel, signalfd, and stdout, stderr, stdin of each process */
#define MAX_POLLFDS (2 + 3 * MAX_PROCS)

struct relay {
  struct agent_channel *ch;
  const struct agent_config *cfg;
  struct proc procs[MAX_PROCS]; /* procs[0] is the container's process */
};

static uint8_t chunk[AGENT_STDIO_CHUNK];

static void set_nonblocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static struct proc *find_proc(struct relay *r, uint32_t id) {
  for (size_t i = 0; i < MAX_PROCS; i++)
    if (r->procs[i].used && r->procs[i].id == id) return &r->procs[i];
  return NULL;
}

/* Takes over io (the fds of a started process). */
static int proc_init(struct proc *p, uint32_t id, pid_t pid, struct agent_stdio *io,
                     struct rc_error *err) {
  memset(p, 0, sizeof(*p));
  p->in = calloc(1, sizeof(*p->in));
  if (!p->in) return rc_err(err, ENOMEM, "stdin buffer");
  p->used = true;
  p->id = id;
  p->pid = pid;
  p->io = *io;
  p->terminal = io->pty_master >= 0;
  p->out[0] = (struct output){io->out_fd, AGENT_MSG_STDOUT, AGENT_STDIO_WINDOW, false};
  p->out[1] = (struct output){io->err_fd, AGENT_MSG_STDERR, AGENT_STDIO_WINDOW, io->err_fd < 0};
  for (int i = 0; i < 2; i++)
    if (p->out[i].fd >= 0) set_nonblocking(p->out[i].fd);
  /* with a terminal, in_fd is the master: out[0] closes it at end-of-file */
  if (!p->terminal) set_nonblocking(io->in_fd);
  return 0;
}

static void proc_release(struct proc *p) {
  for (int i = 0; i < 2; i++)
    if (p->out[i].fd >= 0) close(p->out[i].fd);
  if (!p->terminal && p->io.in_fd >= 0) close(p->io.in_fd);
  free(p->in);
  memset(p, 0, sizeof(*p));
}

static bool proc_done(const struct proc *p) {
  return p->exited && p->out[0].eof && p->out[1].eof;
}

static int send_stdin_credit(struct relay *r, struct proc *p, size_t n, struct rc_error *err) {
  if (n == 0) return 0;
  agent_encode_stdin_credit(&r->ch->out, p->id, (uint32_t)n);
  return agent_send(r->ch, err);
}

static int stdin_push(struct relay *r, struct proc *p, const uint8_t *data, size_t n,
                      struct rc_error *err) {
  struct stdin_ring *in = p->in;
  if (in->eof_received) return rc_err(err, EPROTO, "agent protocol: STDIN after STDIN_EOF");
  if (in->broken || in->closed) return send_stdin_credit(r, p, n, err); /* nobody reads: drop */
  if (n > sizeof(in->buf) - in->len)
    return rc_err(err, EPROTO, "agent protocol: the host overran the stdin window");
  for (size_t i = 0; i < n; i++) in->buf[(in->head + in->len + i) % sizeof(in->buf)] = data[i];
  in->len += n;
  return 0;
}

/* Writes what the ring holds to the process; credits the host for what went. */
static int stdin_flush(struct relay *r, struct proc *p, struct rc_error *err) {
  struct stdin_ring *in = p->in;
  if (p->io.in_fd < 0) return 0;
  while (in->len > 0 && !in->broken) {
    size_t n = in->len;
    if (n > sizeof(in->buf) - in->head) n = sizeof(in->buf) - in->head;
    ssize_t w = write(p->io.in_fd, in->buf + in->head, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) return 0;
    if (w <= 0) {
      /* the process closed its stdin: what is left will never be read */
      in->broken = true;
      size_t dropped = in->len;
      in->len = 0;
      return send_stdin_credit(r, p, dropped, err);
    }
    in->head = (in->head + (size_t)w) % sizeof(in->buf);
    in->len -= (size_t)w;
    if (send_stdin_credit(r, p, (size_t)w, err) < 0) return -1;
  }
  /* end of stdin reaches a pipe by closing it; a terminal has no end, as with runc */
  if (in->len == 0 && in->eof_received && !in->closed && !p->terminal) {
    close(p->io.in_fd);
    p->io.in_fd = -1;
    in->closed = true;
  }
  return 0;
}

/* EXEC: starts the process, or tells the host why not; either way the container goes on. */
static int start_exec(struct relay *r, const struct agent_frame *f, struct rc_error *err) {
  struct agent_exec *e = NULL;
  if (agent_decode_exec(f, &e, err) < 0) return -1;
  struct agent_failure fail = {.stage = AGENT_STAGE_PROTOCOL};
  struct proc *slot = NULL;
  for (size_t i = 1; i < MAX_PROCS && !slot; i++)
    if (!r->procs[i].used) slot = &r->procs[i];
  int rc = 0;
  if (e->proc == AGENT_PROC_CONTAINER || find_proc(r, e->proc)) {
    rc_err(&fail.err, EINVAL, "EXEC: process number %u is in use", e->proc);
    rc = -1;
  } else if (r->procs[0].exited) {
    fail.stage = AGENT_STAGE_EXEC;
    rc = rc_err(&fail.err, ESRCH, "the container's process has exited");
  } else if (!slot) {
    fail.stage = AGENT_STAGE_EXEC;
    rc = rc_err(&fail.err, EAGAIN, "more than %u exec'd processes at once", AGENT_MAX_EXECS);
  }
  struct agent_stdio io;
  pid_t pid = -1;
  if (rc == 0) rc = agent_spawn_exec(r->cfg, e, r->procs[0].pid, &io, &pid, &fail);
  if (rc == 0 && proc_init(slot, e->proc, pid, &io, &fail.err) < 0) {
    /* cannot relay it: it must not run unseen */
    kill(pid, SIGKILL);
    for (int i = 0; i < 3; i++) {
      int fd = i == 0 ? io.in_fd : i == 1 ? io.out_fd : io.err_fd;
      if (fd >= 0 && (i == 0 || fd != io.in_fd)) close(fd);
    }
    rc = -1;
  }
  if (rc < 0) {
    agent_log("exec %u failed: %s", e->proc, fail.err.msg);
    agent_encode_exec_error(&r->ch->out, e->proc, fail.stage, fail.err.code, fail.err.msg);
  } else {
    agent_encode_exec_started(&r->ch->out, e->proc, (uint32_t)pid);
  }
  agent_exec_free(e);
  return agent_send(r->ch, err);
}

static int answer_ps(struct relay *r, const struct agent_frame *f, struct rc_error *err) {
  uint32_t request = 0;
  if (agent_decode_ps(f, &request, err) < 0) return -1;
  struct agent_ps_reply reply = {0};
  struct rc_error lerr = {0};
  if (agent_list_processes(&reply, &lerr) < 0) agent_log("ps: %s", lerr.msg);
  reply.request = request;
  agent_encode_ps_reply(&r->ch->out, &reply);
  agent_ps_reply_free(&reply);
  return agent_send(r->ch, err);
}

static int answer_stats(struct relay *r, const struct agent_frame *f, struct rc_error *err) {
  struct agent_stats stats = {0};
  if (agent_decode_stats(f, &stats.request, err) < 0) return -1;
  struct rc_error lerr = {0};
  if (agent_read_stats(&stats, &lerr) < 0) {
    /* an answer all the same (the host waits for one): zeroes, read as "no numbers" */
    agent_log("stats: %s", lerr.msg);
    stats = (struct agent_stats){.request = stats.request, .ncpus = 1};
  }
  agent_encode_stats_reply(&r->ch->out, &stats);
  return agent_send(r->ch, err);
}

static int answer_pids_limit(struct relay *r, const struct agent_frame *f, struct rc_error *err) {
  struct agent_pids_limit_reply reply = {0};
  uint64_t limit = 0;
  if (agent_decode_pids_limit(f, &reply.request, &limit, err) < 0) return -1;
  struct rc_error lerr = {0};
  if (agent_set_pids_limit(limit, &lerr) < 0) {
    /* the host reports it; the container goes on with the limit it had */
    agent_log("pids limit: %s", lerr.msg);
    reply.errnum = lerr.code > 0 ? lerr.code : EIO;
    snprintf(reply.message, sizeof(reply.message), "%s", lerr.msg);
  }
  agent_encode_pids_limit_reply(&r->ch->out, &reply);
  return agent_send(r->ch, err);
}

static int handle_frame(struct relay *r, const struct agent_frame *f, struct rc_error *err) {
  uint32_t id = 0;
  struct proc *p;
  switch (f->type) {
    case AGENT_MSG_STDIN: {
      struct agent_data d;
      if (agent_decode_data(f, &d, err) < 0) return -1;
      /* a process that is gone: the host sent this before it saw the EXIT */
      p = find_proc(r, d.proc);
      return p ? stdin_push(r, p, d.bytes, d.len, err) : 0;
    }
    case AGENT_MSG_STDIN_EOF:
      if (agent_decode_stdin_eof(f, &id, err) < 0) return -1;
      if ((p = find_proc(r, id))) p->in->eof_received = true;
      return 0;
    case AGENT_MSG_OUTPUT_CREDIT: {
      struct agent_output_credit c;
      if (agent_decode_output_credit(f, &c, err) < 0) return -1;
      if (!(p = find_proc(r, c.proc))) return 0;
      uint32_t add[2] = {c.stdout_bytes, c.stderr_bytes};
      for (int i = 0; i < 2; i++) {
        if (add[i] > AGENT_STDIO_WINDOW - p->out[i].window)
          return rc_err(err, EPROTO, "agent protocol: credit for %s bytes never sent",
                        agent_msg_name(p->out[i].type));
        p->out[i].window += add[i];
      }
      return 0;
    }
    case AGENT_MSG_SIGNAL: {
      uint32_t signo = 0;
      if (agent_decode_signal(f, &id, &signo, err) < 0) return -1;
      p = find_proc(r, id);
      if (p && !p->exited && kill(p->pid, (int)signo) < 0 && errno != ESRCH)
        agent_log("kill %d %u: %s", p->pid, signo, strerror(errno));
      return 0;
    }
    case AGENT_MSG_WINSIZE: {
      struct agent_winsize w;
      if (agent_decode_winsize(f, &id, &w, err) < 0) return -1;
      p = find_proc(r, id);
      if (p && p->io.pty_master >= 0) {
        struct winsize ws = {.ws_row = w.rows, .ws_col = w.cols};
        ioctl(p->io.pty_master, TIOCSWINSZ, &ws);
      }
      return 0;
    }
    case AGENT_MSG_EXEC:
      return start_exec(r, f, err);
    case AGENT_MSG_PS:
      return answer_ps(r, f, err);
    case AGENT_MSG_STATS:
      return answer_stats(r, f, err);
    case AGENT_MSG_PIDS_LIMIT:
      return answer_pids_limit(r, f, err);
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

/* Moves one chunk of a process's output to the host, as much as the window allows. */
static int pump_output(struct relay *r, struct proc *p, struct output *o, struct rc_error *err) {
  size_t want = o->window < sizeof(chunk) ? o->window : sizeof(chunk);
  if (want == 0) return 0;
  ssize_t n = read(o->fd, chunk, want);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  if (n <= 0) {
    /* a pty master reads EIO once no process holds the terminal any more: that is its end */
    o->eof = true;
    if (o->fd == p->io.pty_master) {
      /* the master was stdin and the window-size handle too */
      p->io.pty_master = -1;
      p->io.in_fd = -1;
      p->in->closed = true;
    }
    close(o->fd);
    o->fd = -1;
    return 0;
  }
  o->window -= (uint32_t)n;
  agent_encode_data(&r->ch->out, o->type, p->id, chunk, (size_t)n);
  return agent_send(r->ch, err);
}

static void reap(struct relay *r) {
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (size_t i = 0; i < MAX_PROCS; i++) {
      struct proc *p = &r->procs[i];
      if (!p->used || p->pid != pid || p->exited) continue;
      p->exited = true;
      p->status = status;
      /* the container's init is gone: so is everything it left behind */
      if (i == 0) kill(-1, SIGKILL);
    }
  }
}

static void exit_of(const struct proc *p, struct agent_exit *e) {
  e->proc = p->id;
  if (WIFSIGNALED(p->status)) {
    e->kind = AGENT_EXIT_SIGNAL;
    e->value = (uint32_t)WTERMSIG(p->status);
  } else {
    e->kind = AGENT_EXIT_CODE;
    e->value = (uint32_t)WEXITSTATUS(p->status);
  }
}

/* EXIT for every EXEC'd process that is over; its slot is free again. */
static int report_exec_exits(struct relay *r, struct rc_error *err) {
  for (size_t i = 1; i < MAX_PROCS; i++) {
    struct proc *p = &r->procs[i];
    if (!p->used || !proc_done(p)) continue;
    struct agent_exit e;
    exit_of(p, &e);
    proc_release(p);
    agent_encode_exit(&r->ch->out, &e);
    if (agent_send(r->ch, err) < 0) return -1;
  }
  return 0;
}

static bool all_done(const struct relay *r) {
  for (size_t i = 0; i < MAX_PROCS; i++)
    if (r->procs[i].used && !proc_done(&r->procs[i])) return false;
  return true;
}

/* Which process and stream a pollfd belongs to. */
struct poll_slot {
  struct proc *p;
  int stream; /* 0, 1: output; 2: stdin */
};

static int loop(struct relay *r, int sfd, struct rc_error *err) {
  static struct pollfd pfd[MAX_POLLFDS];
  static struct poll_slot slot[MAX_POLLFDS];
  while (!all_done(r)) {
    nfds_t np = 0;
    pfd[np++] = (struct pollfd){.fd = r->ch->rfd, .events = POLLIN};
    pfd[np++] = (struct pollfd){.fd = sfd, .events = POLLIN};
    for (size_t i = 0; i < MAX_PROCS; i++) {
      struct proc *p = &r->procs[i];
      if (!p->used) continue;
      for (int s = 0; s < 2; s++) {
        slot[np] = (struct poll_slot){p, s};
        pfd[np++] = (struct pollfd){.fd = (!p->out[s].eof && p->out[s].window) ? p->out[s].fd : -1,
                                    .events = POLLIN};
      }
      bool in_open = p->io.in_fd >= 0 && !p->in->closed;
      slot[np] = (struct poll_slot){p, 2};
      pfd[np++] =
          (struct pollfd){.fd = (in_open && p->in->len) ? p->io.in_fd : -1, .events = POLLOUT};
    }
    if (poll(pfd, np, -1) < 0) {
      if (errno == EINTR) continue;
      return rc_err(err, errno, "poll");
    }
    if (pfd[1].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof(si)) > 0) {
      }
      reap(r);
    }
    /* outputs before the channel: a process that an EXEC or a release below replaces must
     * not have its slot's pollfds applied to the newcomer */
    for (nfds_t i = 2; i < np; i++) {
      if (!pfd[i].revents || slot[i].stream == 2) continue;
      struct proc *p = slot[i].p;
      if (pump_output(r, p, &p->out[slot[i].stream], err) < 0) return -1;
    }
    if (pfd[0].revents && read_channel(r, err) < 0) return -1;
    /* after the channel: what just came is written at once, and a STDIN_EOF that finds
     * the ring already empty closes the pipe now (its pollfd is only armed while the ring
     * holds bytes, so nothing later would wake us for it: the process would wait for the
     * end of its input until some other event came) */
    for (size_t i = 0; i < MAX_PROCS; i++) {
      struct proc *p = &r->procs[i];
      if (p->used && p->io.in_fd >= 0 && !p->in->closed && stdin_flush(r, p, err) < 0) return -1;
    }
    if (report_exec_exits(r, err) < 0) return -1;
  }
  return 0;
}

int agent_relay(struct agent_channel *ch, const struct agent_config *cfg, struct agent_stdio *io,
                pid_t pid, struct agent_exit *exit, struct rc_error *err) {
  static struct relay r;
  memset(&r, 0, sizeof(r));
  r.ch = ch;
  r.cfg = cfg;
  if (proc_init(&r.procs[0], AGENT_PROC_CONTAINER, pid, io, err) < 0) {
    kill(-1, SIGKILL);
    return -1;
  }

  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) return rc_err(err, errno, "signalfd");
  reap(&r); /* a child that died before the signalfd existed */

  int ret = loop(&r, sfd, err);
  close(sfd);
  if (ret < 0) {
    if (!r.procs[0].exited) kill(-1, SIGKILL);
    return -1;
  }
  exit_of(&r.procs[0], exit);
  proc_release(&r.procs[0]);
  io->in_fd = io->out_fd = io->err_fd = io->pty_master = -1; /* closed with the process */
  return 0;
}
