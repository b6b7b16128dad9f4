/* The VMM's control socket (include/runcell/microvm_control.h): callers' requests are
 * dispatched by a table of request types, EXEC'd processes get their stdio relayed between
 * the fds their caller passed and the agent, with a flow-control window per stream and
 * process as for the container's own, and each caller learns its process's exit.
 *
 * What the agent sends about these processes is checked like everything else from the
 * guest: numbers it never got, output beyond its credit, credits for stdin never sent are
 * protocol errors. Callers are the runtime on the host (root, through the state directory),
 * yet their requests are decoded with the same bounds-checked codec.
 *
 * Nor can a guest that stops answering, or stops reading its channel, stall the VMM or
 * its callers: nothing is polled that could not be served (no spinning loop), hang-ups
 * are seen whatever the agent does, requests that need no agent are served regardless,
 * and callers and EXECs it leaves waiting are answered and let go at a deadline. */
#include "runcell/microvm_control.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "runcell/log.h"
#include "runcell/util.h"

/* Callers connected that have not sent their request yet, or wait for the agent's answer
 * (PS, STATS, PIDS_LIMIT), or wait for room to send the agent their request. While every
 * slot is taken the listening socket is not polled (a connection left in its backlog
 * would keep it readable: a spinning loop); new callers wait in the backlog until a slot
 * frees, which the deadline below bounds. */
#define MAX_CALLERS 32
/* At most this many of them wait on the agent (answer or room): a request past that which
 * needs the agent is answered EBUSY at once, so that a guest that never answers cannot
 * take every slot, and PAUSE, RESUME and MEMORY, which do not need it, are still served. */
#define MAX_WAITING 16
#define MAX_REQUEST_FDS 3

/* How long the VMM holds a caller: from its connection to its answer, and an EXEC'd
 * process from its EXEC to EXEC_STARTED (or, once started, from its caller's hang-up to
 * its EXIT). The caller gives up after 60 s (REPLY_TIMEOUT_MS in
 * src/microvm_control_client.c), counted from its request; a little less here, so that it
 * reads why rather than its own bare timeout, and a guest that never answers holds
 * neither a slot nor a caller's stdio past it. rc_vmctl_set_deadline_ms (tests) changes it. */
#define DEADLINE_MS 55000
static int64_t deadline_ms = DEADLINE_MS;
/* accept(2) out of descriptors leaves the connection queued and the socket readable: the
 * listener rests this long rather than spin. */
#define ACCEPT_REST_MS 1000

struct out_queue {
  uint8_t *data;
  size_t len, cap;
};

/* An EXEC'd process as the VMM relays it. */
struct exec_proc {
  uint32_t id;
  int conn;          /* its caller (the stand-in), -1 once it hung up */
  int in_fd;         /* stdin, or the terminal */
  int out_fd[2];     /* stdout, stderr; both the terminal with one */
  bool tty;          /* the three are one fd */
  bool started;      /* EXEC_STARTED came */
  bool exited;       /* EXIT came */
  bool in_eof;       /* stdin ended (STDIN_EOF sent) */
  bool kill_pending; /* the caller hung up before it started: kill once it has */
  bool killed;
  /* nonzero: when the VMM gives up on it (rc_now_ms): not started yet, or its caller gone
   * (give_up_exec) */
  int64_t give_up_at;
  uint32_t stdin_in_flight;
  struct out_queue out[2];
  uint32_t out_uncredited[2]; /* written out, not yet credited */
  uint32_t out_in_flight[2];  /* received and not yet credited: at most a window */
  struct agent_exit exit;
};

struct caller {
  int fd;                 /* -1: free */
  uint32_t agent_request; /* nonzero: waits for the agent's answer to this request */
  uint16_t reply_type;    /* ... which must be of this type (PS_REPLY, STATS_REPLY, ...) */
  const char *what;       /* ... to a request of this name */
  bool parked;            /* its request needs the agent, which had no room: left unread */
  bool parked_refusable;  /* ... and is one a paused machine refuses (ps, stats, pids) */
  int64_t deadline;       /* answered ETIMEDOUT and hung up on at this time (rc_now_ms) */
};

/* An EXEC'd process given up on (give_up_exec): slot, stdio and buffers are freed, and
 * what the agent still says about it is answered with a kill (EXEC_STARTED) or dropped. */
struct ghost {
  uint32_t id; /* 0: none */
  bool started;
};

/* What one of our pollfds stands for (the objects may go while the events are handled,
 * so they are found again by number). */
enum poll_what { POLL_LISTEN, POLL_CALLER, POLL_EXEC_CONN, POLL_EXEC_IN, POLL_EXEC_OUT };
struct poll_tag {
  enum poll_what what;
  uint32_t id; /* caller index or exec number */
  int stream;
};

struct rc_vmctl {
  int listen_fd;
  struct rc_vmctl_agent agent;
  struct caller callers[MAX_CALLERS];
  struct exec_proc *execs[AGENT_MAX_EXECS];
  /* the latest given up on; the oldest is forgotten for a newer one (the agent naming it
   * after that is a protocol error, as for any number it never got) */
  struct ghost ghosts[AGENT_MAX_EXECS];
  size_t next_ghost;
  int64_t listen_rests_until; /* accept failed for want of descriptors */
  uint32_t next_id, next_request;
  struct agent_msg *msg; /* to the agent or a caller */
  struct agent_msg *in;  /* a caller's request */
  struct poll_tag tags[1 + MAX_CALLERS + 4 * AGENT_MAX_EXECS];
};

/* A request from a caller: who sent it (the exec it controls, if any). */
struct request {
  struct rc_vmctl *c;
  struct caller *who;     /* a fresh caller, or NULL on an EXEC's connection */
  struct exec_proc *exec; /* the connection's process, for SIGNAL and RESIZE */
  int fd;
  const struct agent_frame *frame;
  int *fds; /* taken over by a handler that keeps them (it sets them to -1) */
  size_t nfds;
};

static int handle_exec(struct request *rq, struct rc_error *err);
static int handle_ps(struct request *rq, struct rc_error *err);
static int handle_signal(struct request *rq, struct rc_error *err);
static int handle_resize(struct request *rq, struct rc_error *err);
static int handle_pause(struct request *rq, struct rc_error *err);
static int handle_resume(struct request *rq, struct rc_error *err);
static int handle_memory(struct request *rq, struct rc_error *err);
static int handle_stats(struct request *rq, struct rc_error *err);
static int handle_pids_limit(struct request *rq, struct rc_error *err);
static int refuse_if_paused(const struct rc_vmctl *c, const char *what, struct rc_error *err);

/* The requests the VMM serves. on_exec: only on an EXEC's own connection (else only on a
 * fresh one). needs_agent: the handler sends the agent a frame, so the request is read
 * only while the agent's queue has room (the others act on the machine and are served
 * whatever the guest does). refused_when_paused: the handler refuses it on a paused
 * machine (refuse_if_paused), so then it is read at once, room or not, and answered,
 * rather than left waiting for room until the deadline. A handler that answers at once
 * returns 1; 0 when the answer comes later (it keeps the connection); <0 with err for a
 * failure to report to the caller. */
static const struct request_type {
  uint16_t type;
  const char *name;
  size_t max_fds;
  bool on_exec;
  bool needs_agent;
  bool refused_when_paused;
  int (*handle)(struct request *rq, struct rc_error *err);
} request_types[] = {
    {RC_VMCTL_EXEC, "exec", MAX_REQUEST_FDS, false, true, false, handle_exec},
    {RC_VMCTL_PS, "ps", 0, false, true, true, handle_ps},
    {RC_VMCTL_SIGNAL, "signal", 0, true, true, false, handle_signal},
    {RC_VMCTL_RESIZE, "resize", 0, true, true, false, handle_resize},
    {RC_VMCTL_PAUSE, "pause", 0, false, false, false, handle_pause},
    {RC_VMCTL_RESUME, "resume", 0, false, false, false, handle_resume},
    {RC_VMCTL_MEMORY, "memory", 0, false, false, false, handle_memory},
    {RC_VMCTL_STATS, "stats", 0, false, true, true, handle_stats},
    {RC_VMCTL_PIDS_LIMIT, "pids limit", 0, false, true, true, handle_pids_limit},
};

static const struct request_type *request_type_of(uint16_t type) {
  for (size_t i = 0; i < RC_ARRAY_SIZE(request_types); i++)
    if (request_types[i].type == type) return &request_types[i];
  return NULL;
}

void rc_vmctl_set_deadline_ms(uint32_t ms) {
  deadline_ms = ms ? ms : DEADLINE_MS;
}

/* The deadline in words: "55 s" (a test's shortened one in ms). */
static const char *deadline_words(char buf[32]) {
  if (deadline_ms % 1000 == 0)
    snprintf(buf, 32, "%lld s", (long long)(deadline_ms / 1000));
  else
    snprintf(buf, 32, "%lld ms", (long long)deadline_ms);
  return buf;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

struct rc_vmctl *rc_vmctl_new(int listen_fd, const struct rc_vmctl_agent *agent) {
  struct rc_vmctl *c = rc_xcalloc(1, sizeof(*c));
  c->listen_fd = listen_fd;
  c->agent = *agent;
  c->next_id = 1;
  c->next_request = 1;
  c->msg = rc_xcalloc(1, sizeof(*c->msg));
  c->in = rc_xcalloc(1, sizeof(*c->in));
  for (size_t i = 0; i < MAX_CALLERS; i++) c->callers[i].fd = -1;
  if (listen_fd >= 0) fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
  return c;
}

size_t rc_vmctl_max_pollfds(void) {
  return 1 + MAX_CALLERS + 4 * AGENT_MAX_EXECS;
}

/* ---- Replies --------------------------------------------------------------------- */

/* Best effort: a caller that went away misses its answer, nothing else. */
static void send_to_caller(int fd, struct agent_msg *m) {
  struct rc_error err = {0};
  if (fd < 0 || agent_msg_end(m, &err) < 0) return;
  (void)send(fd, m->bytes, m->len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void reply_begin(struct agent_msg *m, int errnum, const char *message) {
  agent_msg_begin(m, RC_VMCTL_REPLY);
  agent_put_u32(m, (uint32_t)errnum);
  agent_put_str(m, message);
}

static void reply_error(struct rc_vmctl *c, int fd, const struct rc_error *e) {
  reply_begin(c->msg, e->code > 0 ? e->code : EIO, e->msg[0] ? e->msg : "failed");
  send_to_caller(fd, c->msg);
}

/* ---- EXEC'd processes -------------------------------------------------------------- */

static struct exec_proc **exec_slot(struct rc_vmctl *c, uint32_t id) {
  for (size_t i = 0; i < AGENT_MAX_EXECS; i++)
    if (c->execs[i] && c->execs[i]->id == id) return &c->execs[i];
  return NULL;
}

static struct exec_proc *find_exec(struct rc_vmctl *c, uint32_t id) {
  struct exec_proc **s = exec_slot(c, id);
  return s ? *s : NULL;
}

static void exec_close_stdio(struct exec_proc *e) {
  if (e->tty) {
    close_fd(&e->in_fd);
    e->out_fd[0] = e->out_fd[1] = -1;
    return;
  }
  close_fd(&e->in_fd);
  close_fd(&e->out_fd[0]);
  close_fd(&e->out_fd[1]);
}

static void exec_free(struct rc_vmctl *c, uint32_t id) {
  struct exec_proc **s = exec_slot(c, id);
  if (!s) return;
  struct exec_proc *e = *s;
  exec_close_stdio(e);
  close_fd(&e->conn);
  free(e->out[0].data);
  free(e->out[1].data);
  free(e);
  *s = NULL;
}

static int to_agent(struct rc_vmctl *c, struct rc_error *err) {
  return c->agent.send(c->agent.vm, c->msg, err);
}

static bool agent_has_room(const struct rc_vmctl *c) {
  return c->agent.queued(c->agent.vm) < AGENT_FRAME_MAX;
}

/* Sent whether or not the agent's queue has room: one small frame per process at most
 * (killed; a ghost's once, when it starts), which the queue's spare window holds. */
static int kill_exec(struct rc_vmctl *c, struct exec_proc *e, struct rc_error *err) {
  if (e->killed || e->exited) return 0;
  if (!e->started) {
    e->kill_pending = true;
    return 0;
  }
  e->killed = true;
  agent_encode_signal(c->msg, e->id, SIGKILL);
  return to_agent(c, err);
}

/* Pipes and sockets become nonblocking so that one full reader cannot stall the VMM, and
 * so does the terminal the caller made for the process; other ttys and files (shared with
 * whoever gave them) stay as they are. */
static void nonblocking_if_pipe(int fd, bool own_tty) {
  struct stat sb;
  if (own_tty || (fstat(fd, &sb) == 0 && (S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode))))
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static struct ghost *find_ghost(struct rc_vmctl *c, uint32_t id) {
  for (size_t i = 0; i < RC_ARRAY_SIZE(c->ghosts); i++)
    if (c->ghosts[i].id && c->ghosts[i].id == id) return &c->ghosts[i];
  return NULL;
}

/* The guest never started it in time, or its caller is gone and it has not ended: the
 * caller (if still there) learns so, and the slot, the caller's stdio and the buffers are
 * freed at once rather than held for as long as the guest likes. The agent may still
 * report it: a ghost remembers it for that. */
static void give_up_exec(struct rc_vmctl *c, struct exec_proc *e) {
  if (!e->started) {
    struct rc_error late;
    char words[32];
    rc_err(&late, ETIMEDOUT, "exec: the guest agent did not start the process within %s",
           deadline_words(words));
    reply_error(c, e->conn, &late);
  }
  if (!e->exited) {
    c->ghosts[c->next_ghost] = (struct ghost){.id = e->id, .started = e->started};
    c->next_ghost = (c->next_ghost + 1) % RC_ARRAY_SIZE(c->ghosts);
  }
  rc_warn("microVM: exec %u: given up on (%s)", e->id,
          e->started ? "no exit after its caller went" : "the guest never started it");
  exec_free(c, e->id);
}

static uint32_t new_exec_id(struct rc_vmctl *c) {
  for (;;) {
    uint32_t id = c->next_id++;
    if (id != AGENT_PROC_CONTAINER && !find_exec(c, id) && !find_ghost(c, id)) return id;
  }
}

static int handle_exec(struct request *rq, struct rc_error *err) {
  struct rc_vmctl *c = rq->c;
  /* the payload is the agent's EXEC: decoded (and so validated) as the agent will */
  struct agent_frame f = *rq->frame;
  f.type = AGENT_MSG_EXEC;
  struct agent_exec *ex = NULL;
  if (agent_decode_exec(&f, &ex, err) < 0) return -1;
  int rc = -1;
  size_t want = ex->terminal ? 1 : 3;
  struct exec_proc **slot = NULL;
  for (size_t i = 0; i < AGENT_MAX_EXECS && !slot; i++)
    if (!c->execs[i]) slot = &c->execs[i];
  if (rq->nfds != want) {
    rc_err(err, EINVAL, "exec: %zu file descriptors for a process %s a terminal (want %zu)",
           rq->nfds, ex->terminal ? "with" : "without", want);
    goto out;
  }
  if (!slot) {
    rc_err(err, EAGAIN, "exec: more than %u exec'd processes at once", AGENT_MAX_EXECS);
    goto out;
  }
  struct exec_proc *e = rc_xcalloc(1, sizeof(*e));
  e->id = new_exec_id(c);
  e->tty = ex->terminal;
  e->in_fd = rq->fds[0];
  e->out_fd[0] = e->tty ? rq->fds[0] : rq->fds[1];
  e->out_fd[1] = e->tty ? rq->fds[0] : rq->fds[2];
  for (size_t i = 0; i < rq->nfds; i++) {
    nonblocking_if_pipe(rq->fds[i], e->tty);
    rq->fds[i] = -1;
  }
  for (int s = 0; s < 2; s++)
    e->out[s] = (struct out_queue){.data = rc_xcalloc(1, AGENT_STDIO_WINDOW + AGENT_FRAME_MAX),
                                   .cap = AGENT_STDIO_WINDOW + AGENT_FRAME_MAX};
  e->conn = rq->fd;
  e->give_up_at = rc_now_ms() + deadline_ms;
  *slot = e;
  ex->proc = e->id;
  if (agent_encode_exec(c->msg, ex, err) < 0 || to_agent(c, err) < 0) {
    e->conn = -1; /* the caller's connection is answered (and closed) by our caller */
    exec_free(c, e->id);
    goto out;
  }
  rc_debug("microvm: exec %u: %s", e->id, ex->args[0]);
  rc = 0; /* answered when the agent says EXEC_STARTED or EXEC_ERROR */
out:
  agent_exec_free(ex);
  return rc;
}

static uint32_t new_request(struct rc_vmctl *c) {
  uint32_t request = c->next_request++;
  return request ? request : c->next_request++;
}

/* The caller waits for the agent's answer to request, a frame of type reply_type. */
static void await_agent(struct request *rq, uint32_t request, uint16_t reply_type) {
  rq->who->agent_request = request;
  rq->who->reply_type = reply_type;
}

static int handle_ps(struct request *rq, struct rc_error *err) {
  struct rc_vmctl *c = rq->c;
  uint32_t request = new_request(c);
  if (rq->frame->length != 0) return rc_err(err, EPROTO, "ps: unexpected payload");
  if (refuse_if_paused(c, "list the guest's processes", err) < 0) return -1;
  agent_encode_ps(c->msg, request);
  if (to_agent(c, err) < 0) return -1;
  await_agent(rq, request, AGENT_MSG_PS_REPLY);
  return 0;
}

/* A paused guest runs nothing, its agent included: what needs an answer from it is
 * refused rather than left hanging. */
static bool machine_paused(const struct rc_vmctl *c) {
  return c->agent.machine && vmm_machine_paused(c->agent.machine);
}

static int refuse_if_paused(const struct rc_vmctl *c, const char *what, struct rc_error *err) {
  if (machine_paused(c)) return rc_err(err, EBUSY, "cannot %s: the container is paused", what);
  return 0;
}

static int handle_pause(struct request *rq, struct rc_error *err) {
  if (rq->frame->length != 0) return rc_err(err, EPROTO, "pause: unexpected payload");
  if (!rq->c->agent.machine) return rc_err(err, ENOTSUP, "pause: no machine");
  if (vmm_machine_pause(rq->c->agent.machine, err) < 0) return -1;
  reply_begin(rq->c->msg, 0, "");
  send_to_caller(rq->fd, rq->c->msg);
  return 1;
}

static int handle_resume(struct request *rq, struct rc_error *err) {
  if (rq->frame->length != 0) return rc_err(err, EPROTO, "resume: unexpected payload");
  if (!rq->c->agent.machine) return rc_err(err, ENOTSUP, "resume: no machine");
  vmm_machine_resume(rq->c->agent.machine);
  reply_begin(rq->c->msg, 0, "");
  send_to_caller(rq->fd, rq->c->msg);
  return 1;
}

static int handle_memory(struct request *rq, struct rc_error *err) {
  struct agent_cursor cur;
  agent_cursor_init(&cur, rq->frame->payload, rq->frame->length);
  uint64_t keep = agent_get_u64(&cur);
  if (agent_cursor_finish(&cur, "memory", err) < 0) return -1;
  struct vmm_balloon *b = rq->c->agent.machine ? vmm_machine_balloon(rq->c->agent.machine) : NULL;
  if (!b) return rc_err(err, ENOTSUP, "this microVM has no balloon");
  /* These take the balloon's device lock on this, the relay's, thread, with
   * virtio_dev_host_lock: a vCPU serving a notification makes way between two requests
   * (virtio_dev_serve), so the wait here is one request's work (at most 4096 hole punches,
   * a few ms), and the relay, signal forwarding and other requests go on however the
   * guest feeds its queues. */
  if (keep && vmm_balloon_set_target_bytes(b, keep, err) < 0) return -1;
  struct vmm_balloon_counters k;
  vmm_balloon_counters(b, &k);
  reply_begin(rq->c->msg, 0, "");
  agent_put_u64(rq->c->msg, k.total_bytes);
  agent_put_u64(rq->c->msg, k.target_bytes);
  agent_put_u64(rq->c->msg, k.actual_bytes);
  send_to_caller(rq->fd, rq->c->msg);
  return 1;
}

static int handle_stats(struct request *rq, struct rc_error *err) {
  struct rc_vmctl *c = rq->c;
  if (rq->frame->length != 0) return rc_err(err, EPROTO, "stats: unexpected payload");
  if (refuse_if_paused(c, "read the guest's stats", err) < 0) return -1;
  uint32_t request = new_request(c);
  agent_encode_stats(c->msg, request);
  if (to_agent(c, err) < 0) return -1;
  await_agent(rq, request, AGENT_MSG_STATS_REPLY);
  return 0;
}

/* The agent sets the guest cgroup's pids.max and says whether the guest kernel took it: the
 * caller learns the outcome, as a write to a host cgroup would tell it. */
static int handle_pids_limit(struct request *rq, struct rc_error *err) {
  struct rc_vmctl *c = rq->c;
  struct agent_cursor cur;
  agent_cursor_init(&cur, rq->frame->payload, rq->frame->length);
  uint64_t limit = agent_get_u64(&cur);
  if (agent_cursor_finish(&cur, "pids limit", err) < 0) return -1;
  if (refuse_if_paused(c, "set the guest's pids limit", err) < 0) return -1;
  uint32_t request = new_request(c);
  agent_encode_pids_limit(c->msg, request, limit);
  if (to_agent(c, err) < 0) return -1;
  await_agent(rq, request, AGENT_MSG_PIDS_LIMIT_REPLY);
  return 0;
}

static int handle_signal(struct request *rq, struct rc_error *err) {
  struct agent_cursor cur;
  agent_cursor_init(&cur, rq->frame->payload, rq->frame->length);
  uint32_t signo = agent_get_u32(&cur);
  if (agent_cursor_finish(&cur, "signal", err) < 0) return -1;
  if (signo < 1 || signo > 64) return rc_err(err, EINVAL, "signal %u is not a signal", signo);
  struct exec_proc *e = rq->exec;
  if (e->exited || !e->started) return 1; /* too late or too early: as kill(2) on a zombie */
  agent_encode_signal(rq->c->msg, e->id, signo);
  if (to_agent(rq->c, err) < 0) return -1;
  return 1;
}

static int handle_resize(struct request *rq, struct rc_error *err) {
  struct exec_proc *e = rq->exec;
  struct winsize ws;
  if (rq->frame->length != 0) return rc_err(err, EPROTO, "resize: unexpected payload");
  if (!e->tty || e->exited || !e->started || e->in_fd < 0 || ioctl(e->in_fd, TIOCGWINSZ, &ws) < 0)
    return 1;
  agent_encode_winsize(rq->c->msg, e->id, &(struct agent_winsize){ws.ws_row, ws.ws_col});
  if (to_agent(rq->c, err) < 0) return -1;
  return 1;
}

/* ---- Callers' messages ------------------------------------------------------------- */

/* One message from fd, with up to MAX_REQUEST_FDS fds. 1: a request in *f; 0: the caller
 * hung up; <0: a broken message (err). */
static int read_request(struct rc_vmctl *c, int fd, struct agent_frame *f, int *fds, size_t *nfds,
                        struct rc_error *err) {
  *nfds = 0;
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int) * MAX_REQUEST_FDS)];
  } ctl;
  struct iovec iov = {.iov_base = c->in->bytes, .iov_len = sizeof(c->in->bytes)};
  struct msghdr mh = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
  ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 2;
  if (n < 0) return 0;
  /* The descriptors first, whatever the message: an empty one (read as a hang-up) can
   * carry some too, and they are ours from recvmsg on (fuzz_vmctl found them leaked). */
  for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
    if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; i++) {
      int got;
      memcpy(&got, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
      if (*nfds < MAX_REQUEST_FDS)
        fds[(*nfds)++] = got;
      else
        close(got);
    }
  }
  if (n == 0) {
    for (size_t i = 0; i < *nfds; i++) close(fds[i]);
    *nfds = 0;
    return 0;
  }
  if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
    return rc_err(err, EMSGSIZE, "control request too large");
  if ((size_t)n < AGENT_FRAME_HEADER_SIZE) return rc_err(err, EPROTO, "short control request");
  uint32_t len = 0;
  if (agent_header_decode(c->in->bytes, &f->type, &len, err) < 0) return -1;
  if (len != (size_t)n - AGENT_FRAME_HEADER_SIZE)
    return rc_err(err, EPROTO, "control request length %u in a %zd-byte message", len, n);
  f->length = len;
  f->payload = c->in->bytes + AGENT_FRAME_HEADER_SIZE;
  return 1;
}

/* Reads one message from fd and runs its request: 3 when the peer hung up, 2 when there
 * was nothing to read, else the handler's result (1 answered, 0 answer later, <0 err);
 * *type is the request's type. who (a fresh caller) or exec (an EXEC's connection). */
static int dispatch(struct rc_vmctl *c, int fd, struct caller *who, struct exec_proc *exec,
                    uint16_t *type, struct rc_error *err) {
  struct agent_frame f = {0};
  int fds[MAX_REQUEST_FDS];
  size_t nfds = 0;
  int r = read_request(c, fd, &f, fds, &nfds, err);
  if (r == 2) return 2;
  if (r == 0) return 3;
  const struct request_type *t = NULL;
  if (r == 1) {
    t = request_type_of(f.type);
    if (!t)
      r = rc_err(err, EINVAL, "unknown control request 0x%04x", f.type);
    else if (t->on_exec != (exec != NULL))
      r = rc_err(err, EINVAL, "%s: not on this connection", t->name);
    else if (nfds > t->max_fds)
      r = rc_err(err, EINVAL, "%s: %zu file descriptors", t->name, nfds);
  }
  if (r == 1 && t) {
    *type = t->type;
    struct request rq = {c, who, exec, fd, &f, fds, nfds};
    r = t->handle(&rq, err);
    if (r < 0) rc_err_wrap(err, "%s", t->name);
    if (r == 0 && who) who->what = t->name;
  }
  for (size_t i = 0; i < nfds; i++)
    if (fds[i] >= 0) close(fds[i]);
  return r;
}

/* The caller's slot is free again (answered, given up on, or it hung up). */
static void caller_free(struct caller *who) {
  close_fd(&who->fd);
  *who = (struct caller){.fd = -1};
}

/* The type of the request waiting on fd, its header read without taking it (nor its
 * fds: there is no control buffer to receive them); 0 for a hang-up or a broken request,
 * which dispatch answers. */
static uint16_t peek_request_type(int fd) {
  uint8_t hdr[AGENT_FRAME_HEADER_SIZE];
  struct rc_error ignored = {0};
  uint16_t type = 0;
  uint32_t len = 0;
  ssize_t n = recv(fd, hdr, sizeof(hdr), MSG_PEEK | MSG_DONTWAIT);
  if (n < (ssize_t)sizeof(hdr) || agent_header_decode(hdr, &type, &len, &ignored) < 0) return 0;
  return type;
}

/* Callers other than but that wait on the agent: for its answer, or for room. */
static size_t callers_waiting(const struct rc_vmctl *c, const struct caller *but) {
  size_t n = 0;
  for (size_t i = 0; i < MAX_CALLERS; i++) {
    const struct caller *who = &c->callers[i];
    n += who != but && who->fd >= 0 && (who->agent_request || who->parked);
  }
  return n;
}

/* A fresh caller's request: answered, or kept (EXEC hands the connection to its process,
 * PS waits for the agent, one that needs the agent waits for room); a failure is answered
 * and ends the connection. */
static void on_caller_request(struct rc_vmctl *c, struct caller *who) {
  struct rc_error err = {0};
  const struct request_type *t = request_type_of(peek_request_type(who->fd));
  bool refused_now = t && t->refused_when_paused && machine_paused(c);
  if (t && t->needs_agent && !t->on_exec && !refused_now) {
    bool room = agent_has_room(c);
    /* an EXEC sent at once holds no slot; others wait for the answer, or for room */
    if ((!room || t->type != RC_VMCTL_EXEC) && callers_waiting(c, who) >= MAX_WAITING) {
      struct agent_frame f;
      int fds[MAX_REQUEST_FDS];
      size_t nfds = 0;
      (void)read_request(c, who->fd, &f, fds, &nfds, &err); /* taken, so it is not reset */
      for (size_t i = 0; i < nfds; i++) close(fds[i]);
      rc_err(&err, EBUSY, "%s: the microVM is busy (%u requests wait for its guest agent)", t->name,
             MAX_WAITING);
      reply_error(c, who->fd, &err);
      caller_free(who);
      return;
    }
    if (!room) {
      /* unread until the agent's queue has room again (or the machine is paused, for a
       * request that is then refused); its hang-up still shows */
      who->parked = true;
      who->parked_refusable = t->refused_when_paused;
      return;
    }
  }
  who->parked = false;
  uint16_t type = 0;
  int r = dispatch(c, who->fd, who, NULL, &type, &err);
  if (r == 2) return;
  if (r < 0) reply_error(c, who->fd, &err);
  if (r < 0 || r == 3) {
    caller_free(who);
    return;
  }
  if (r == 0 && type == RC_VMCTL_EXEC) {
    who->fd = -1; /* the exec owns it now */
    caller_free(who);
  }
}

/* An EXEC's caller (its stand-in) hung up: the process goes too, and is given up on if
 * it has not started, or not ended, by the deadline. SIGNAL or RESIZE it left unread go
 * with it (it is killed). */
static int exec_caller_gone(struct rc_vmctl *c, struct exec_proc *e, struct rc_error *err) {
  close_fd(&e->conn);
  if (e->started) e->give_up_at = rc_now_ms() + deadline_ms;
  return kill_exec(c, e, err);
}

/* A stand-in's message (SIGNAL, RESIZE), or its hang-up: then its process goes too. */
static void on_exec_request(struct rc_vmctl *c, struct exec_proc *e) {
  struct rc_error err = {0};
  uint16_t type = 0;
  int r = dispatch(c, e->conn, NULL, e, &type, &err);
  if (r == 3) r = exec_caller_gone(c, e, &err);
  if (r < 0) rc_warn("microVM: exec %u: %s", e->id, err.msg);
}

static void accept_callers(struct rc_vmctl *c) {
  for (size_t i = 0; i < MAX_CALLERS; i++) {
    if (c->callers[i].fd >= 0) continue;
    int fd;
    do fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        c->listen_rests_until = rc_now_ms() + ACCEPT_REST_MS;
      return;
    }
    c->callers[i] = (struct caller){.fd = fd, .deadline = rc_now_ms() + deadline_ms};
  }
}

/* ---- Stdio ----------------------------------------------------------------------------- */

static int read_stdin(struct rc_vmctl *c, struct exec_proc *e, struct rc_error *err) {
  uint32_t room = AGENT_STDIO_WINDOW - e->stdin_in_flight;
  if (room == 0 || !agent_has_room(c)) return 0;
  uint8_t buf[AGENT_STDIO_CHUNK];
  ssize_t n = read(e->in_fd, buf, room < sizeof(buf) ? room : sizeof(buf));
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  if (n <= 0) {
    /* end of input (a terminal whose other side closed reads as an error) */
    e->in_eof = true;
    agent_encode_stdin_eof(c->msg, e->id);
  } else {
    e->stdin_in_flight += (uint32_t)n;
    agent_encode_data(c->msg, AGENT_MSG_STDIN, e->id, buf, (size_t)n);
  }
  return to_agent(c, err);
}

/* Writes queued output out; what went is credited (in rc_vmctl_flush). */
static void write_output(struct exec_proc *e, int s) {
  struct out_queue *q = &e->out[s];
  while (q->len) {
    ssize_t n = e->out_fd[s] >= 0 ? write(e->out_fd[s], q->data, q->len) : -1;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    /* the reader went away (EPIPE): the output is dropped, as a closed pipe would drop it */
    if (n < 0) n = (ssize_t)q->len;
    memmove(q->data, q->data + n, q->len - (size_t)n);
    q->len -= (size_t)n;
    e->out_uncredited[s] += (uint32_t)n;
  }
}

static int send_credits(struct rc_vmctl *c, struct exec_proc *e, struct rc_error *err) {
  if (c->agent.queued(c->agent.vm)) return 0; /* an agent that does not read gets none */
  bool due = false;
  for (int s = 0; s < 2; s++)
    due |=
        e->out_uncredited[s] >= AGENT_STDIO_CHUNK || (e->out[s].len == 0 && e->out_uncredited[s]);
  if (!due || e->exited) return 0;
  struct agent_output_credit cr = {e->id, e->out_uncredited[0], e->out_uncredited[1]};
  for (int s = 0; s < 2; s++) {
    e->out_in_flight[s] -= e->out_uncredited[s];
    e->out_uncredited[s] = 0;
  }
  agent_encode_output_credit(c->msg, &cr);
  return to_agent(c, err);
}

/* The process is over and what it wrote is out: its caller learns how it ended. */
static void report_exit(struct rc_vmctl *c, struct exec_proc *e) {
  exec_close_stdio(e); /* before EXITED: the caller's readers see the end first */
  agent_msg_begin(c->msg, RC_VMCTL_EXITED);
  agent_put_u32(c->msg, e->exit.kind);
  agent_put_u32(c->msg, e->exit.value);
  send_to_caller(e->conn, c->msg);
  exec_free(c, e->id);
}

int rc_vmctl_flush(struct rc_vmctl *c, struct rc_error *err) {
  for (size_t i = 0; i < AGENT_MAX_EXECS; i++) {
    struct exec_proc *e = c->execs[i];
    if (!e) continue;
    for (int s = 0; s < 2; s++) write_output(e, s);
    if (e->exited && e->out[0].len == 0 && e->out[1].len == 0) {
      report_exit(c, e);
      continue;
    }
    if (send_credits(c, e, err) < 0) return -1;
  }
  return 0;
}

/* ---- Deadlines ------------------------------------------------------------------------ */

/* Whoever the VMM has held past the deadline is answered (if still there) and let go. */
static void expire(struct rc_vmctl *c) {
  int64_t now = rc_now_ms();
  char s[32];
  deadline_words(s);
  for (size_t i = 0; i < MAX_CALLERS; i++) {
    struct caller *who = &c->callers[i];
    if (who->fd < 0 || now < who->deadline) continue;
    struct rc_error late;
    if (who->agent_request) {
      rc_err(&late, ETIMEDOUT, "%s: the guest agent did not answer within %s", who->what, s);
      rc_warn("microVM: %s", late.msg);
    } else if (who->parked) {
      rc_err(&late, ETIMEDOUT,
             "the guest agent has not read its channel for %s: the request was not sent", s);
    } else {
      rc_err(&late, ETIMEDOUT, "no request within %s", s);
    }
    reply_error(c, who->fd, &late);
    caller_free(who); /* a late answer from the agent goes to no one */
  }
  for (size_t i = 0; i < AGENT_MAX_EXECS; i++) {
    struct exec_proc *e = c->execs[i];
    if (e && e->give_up_at && now >= e->give_up_at) give_up_exec(c, e);
  }
}

/* ---- Poll ---------------------------------------------------------------------------- */

size_t rc_vmctl_poll_fill(struct rc_vmctl *c, struct pollfd *p) {
  size_t n = 0;
  bool room = agent_has_room(c);
  if (c->listen_fd >= 0) {
    bool slot = false;
    for (size_t i = 0; i < MAX_CALLERS && !slot; i++) slot = c->callers[i].fd < 0;
    /* with no slot to take it, a connection would keep the socket readable */
    bool resting = c->listen_rests_until && rc_now_ms() < c->listen_rests_until;
    c->tags[n] = (struct poll_tag){POLL_LISTEN, 0, 0};
    p[n++] = (struct pollfd){.fd = slot && !resting ? c->listen_fd : -1, .events = POLLIN};
  }
  for (uint32_t i = 0; i < MAX_CALLERS; i++) {
    const struct caller *who = &c->callers[i];
    if (who->fd < 0) continue;
    c->tags[n] = (struct poll_tag){POLL_CALLER, i, 0};
    /* one waiting for the agent (its answer, or room for its request) has nothing to be
     * read now; its hang-up still shows (POLLHUP needs no events) and frees its slot */
    bool quiet = who->agent_request ||
                 (who->parked && !room && !(who->parked_refusable && machine_paused(c)));
    p[n++] = (struct pollfd){.fd = who->fd, .events = quiet ? 0 : POLLIN};
  }
  for (size_t i = 0; i < AGENT_MAX_EXECS; i++) {
    struct exec_proc *e = c->execs[i];
    if (!e) continue;
    c->tags[n] = (struct poll_tag){POLL_EXEC_CONN, e->id, 0};
    /* SIGNAL and RESIZE wait for room; the hang-up still shows */
    p[n++] = (struct pollfd){.fd = e->conn, .events = room ? POLLIN : 0};
    bool want_in =
        e->started && !e->exited && !e->in_eof && room && e->stdin_in_flight < AGENT_STDIO_WINDOW;
    c->tags[n] = (struct poll_tag){POLL_EXEC_IN, e->id, 0};
    p[n++] = (struct pollfd){.fd = want_in ? e->in_fd : -1, .events = POLLIN};
    for (int s = 0; s < 2; s++) {
      c->tags[n] = (struct poll_tag){POLL_EXEC_OUT, e->id, s};
      p[n++] = (struct pollfd){.fd = e->out[s].len ? e->out_fd[s] : -1, .events = POLLOUT};
    }
  }
  return n;
}

int rc_vmctl_poll_handle(struct rc_vmctl *c, const struct pollfd *p, size_t n,
                         struct rc_error *err) {
  for (size_t i = 0; i < n; i++) {
    if (!p[i].revents) continue;
    const struct poll_tag *t = &c->tags[i];
    struct exec_proc *e = t->what >= POLL_EXEC_CONN ? find_exec(c, t->id) : NULL;
    switch (t->what) {
      case POLL_LISTEN:
        accept_callers(c);
        break;
      case POLL_CALLER: {
        struct caller *who = &c->callers[t->id];
        if (who->fd < 0) break;
        if (p[i].revents & POLLIN)
          on_caller_request(c, who);
        else
          caller_free(who); /* it hung up (or its socket failed) while it waited */
        break;
      }
      case POLL_EXEC_CONN:
        if (!e || e->conn < 0) break;
        if ((p[i].revents & POLLIN) && agent_has_room(c)) {
          on_exec_request(c, e);
        } else if (p[i].revents & (POLLHUP | POLLERR)) {
          struct rc_error gone = {0};
          if (exec_caller_gone(c, e, &gone) < 0) rc_warn("microVM: exec %u: %s", e->id, gone.msg);
        }
        break;
      case POLL_EXEC_IN:
        if (e && e->in_fd >= 0 && !e->in_eof && read_stdin(c, e, err) < 0) return -1;
        break;
      case POLL_EXEC_OUT:
        if (e) write_output(e, t->stream);
        break;
    }
  }
  expire(c);
  return 0;
}

int rc_vmctl_poll_timeout(const struct rc_vmctl *c) {
  int64_t next = INT64_MAX, now = rc_now_ms();
  for (size_t i = 0; i < MAX_CALLERS; i++)
    if (c->callers[i].fd >= 0 && c->callers[i].deadline < next) next = c->callers[i].deadline;
  for (size_t i = 0; i < AGENT_MAX_EXECS; i++)
    if (c->execs[i] && c->execs[i]->give_up_at && c->execs[i]->give_up_at < next)
      next = c->execs[i]->give_up_at;
  if (c->listen_rests_until > now && c->listen_rests_until < next) next = c->listen_rests_until;
  if (next == INT64_MAX) return -1;
  if (next <= now) return 0;
  return next - now > INT_MAX ? INT_MAX : (int)(next - now);
}

/* ---- Frames from the agent ------------------------------------------------------------ */

static struct exec_proc *known_exec(struct rc_vmctl *c, uint32_t id, uint16_t type,
                                    struct rc_error *err) {
  struct exec_proc *e = find_exec(c, id);
  if (!e)
    rc_err(err, EPROTO, "microVM: the guest agent sent %s for process %u, which it never started",
           agent_msg_name(type), id);
  return e;
}

static int on_exec_result(struct rc_vmctl *c, const struct agent_frame *f, struct rc_error *err) {
  uint32_t id = 0, pid = 0;
  struct agent_error_msg em;
  bool ok = f->type == AGENT_MSG_EXEC_STARTED;
  if (ok ? agent_decode_exec_started(f, &id, &pid, err) < 0
         : agent_decode_exec_error(f, &id, &em, err) < 0)
    return -1;
  struct ghost *g = find_exec(c, id) ? NULL : find_ghost(c, id);
  if (g) {
    if (g->started)
      return rc_err(err, EPROTO, "microVM: the guest agent started process %u twice", id);
    if (!ok) {
      g->id = 0; /* never ran: nothing more comes about it */
      return 1;
    }
    /* given up on before it started: nobody is there for it */
    g->started = true;
    agent_encode_signal(c->msg, id, SIGKILL);
    return to_agent(c, err) < 0 ? -1 : 1;
  }
  struct exec_proc *e = known_exec(c, id, f->type, err);
  if (!e) return -1;
  if (e->started)
    return rc_err(err, EPROTO, "microVM: the guest agent started process %u twice", id);
  if (!ok) {
    /* in the agent's words, which are the runtime's own (exec: "x": executable file not
     * found in $PATH) */
    reply_begin(c->msg, em.errnum > 0 ? em.errnum : EIO, em.message);
    send_to_caller(e->conn, c->msg);
    exec_free(c, id);
    return 1;
  }
  e->started = true;
  /* its caller is there for as long as it runs; one that left has it killed, and waits
   * no longer for its end than for its start */
  e->give_up_at = e->conn >= 0 ? 0 : rc_now_ms() + deadline_ms;
  reply_begin(c->msg, 0, "");
  agent_put_u32(c->msg, pid);
  send_to_caller(e->conn, c->msg);
  if (e->kill_pending && kill_exec(c, e, err) < 0) return -1;
  return 1;
}

/* The caller waiting for the agent's answer to request, if it still waits; an answer of
 * another type than its request's goes to no one. */
static struct caller *waiting_caller(struct rc_vmctl *c, uint32_t request, uint16_t type) {
  for (size_t i = 0; i < MAX_CALLERS; i++) {
    struct caller *who = &c->callers[i];
    if (who->fd >= 0 && who->agent_request && who->agent_request == request &&
        who->reply_type == type)
      return who;
  }
  return NULL;
}

/* The caller has its answer: the connection ends. */
static void answered(struct caller *who) {
  caller_free(who);
}

static int on_ps_reply(struct rc_vmctl *c, const struct agent_frame *f, struct rc_error *err) {
  struct agent_ps_reply ps;
  if (agent_decode_ps_reply(f, &ps, err) < 0) return -1;
  struct caller *who = waiting_caller(c, ps.request, AGENT_MSG_PS_REPLY);
  if (who) {
    /* the validated reply, encoded anew after the REPLY header; a full frame loses its
     * last entries to make room for that header */
    static struct agent_msg body;
    for (;;) {
      agent_encode_ps_reply(&body, &ps);
      reply_begin(c->msg, 0, "");
      agent_put_bytes(c->msg, body.bytes + AGENT_FRAME_HEADER_SIZE,
                      body.len - AGENT_FRAME_HEADER_SIZE);
      if (!c->msg->overflow || ps.n == 0) break;
      ps.n--;
      ps.truncated = true;
    }
    send_to_caller(who->fd, c->msg);
    answered(who);
  }
  agent_ps_reply_free(&ps);
  return 1;
}

static int on_stats_reply(struct rc_vmctl *c, const struct agent_frame *f, struct rc_error *err) {
  struct agent_stats st;
  if (agent_decode_stats_reply(f, &st, err) < 0) return -1;
  struct caller *who = waiting_caller(c, st.request, AGENT_MSG_STATS_REPLY);
  if (who) {
    static struct agent_msg body;
    agent_encode_stats_reply(&body, &st);
    reply_begin(c->msg, 0, "");
    agent_put_bytes(c->msg, body.bytes + AGENT_FRAME_HEADER_SIZE,
                    body.len - AGENT_FRAME_HEADER_SIZE);
    send_to_caller(who->fd, c->msg);
    answered(who);
  }
  return 1;
}

static int on_pids_limit_reply(struct rc_vmctl *c, const struct agent_frame *f,
                               struct rc_error *err) {
  struct agent_pids_limit_reply r;
  if (agent_decode_pids_limit_reply(f, &r, err) < 0) return -1;
  struct caller *who = waiting_caller(c, r.request, AGENT_MSG_PIDS_LIMIT_REPLY);
  if (who) {
    /* the guest's errno and words (already made printable) are the caller's error */
    reply_begin(c->msg, r.errnum, r.errnum && !r.message[0] ? "refused by the guest" : r.message);
    send_to_caller(who->fd, c->msg);
    answered(who);
  }
  return 1;
}

int rc_vmctl_on_frame(struct rc_vmctl *c, const struct agent_frame *f, struct rc_error *err) {
  switch (f->type) {
    case AGENT_MSG_STDOUT:
    case AGENT_MSG_STDERR: {
      struct agent_data d;
      if (agent_decode_data(f, &d, err) < 0) return -1;
      if (d.proc == AGENT_PROC_CONTAINER) return 0;
      if (!find_exec(c, d.proc) && find_ghost(c, d.proc)) return 1; /* nobody reads it */
      struct exec_proc *e = known_exec(c, d.proc, f->type, err);
      if (!e) return -1;
      int s = f->type == AGENT_MSG_STDERR;
      struct out_queue *q = &e->out[s];
      if (e->exited || d.len > AGENT_STDIO_WINDOW - e->out_in_flight[s] || d.len > q->cap - q->len)
        return rc_err(err, EPROTO,
                      "microVM: the guest agent sent more output than it was credited");
      memcpy(q->data + q->len, d.bytes, d.len);
      q->len += d.len;
      e->out_in_flight[s] += d.len;
      write_output(e, s);
      return 1;
    }
    case AGENT_MSG_STDIN_CREDIT: {
      uint32_t id = 0, n = 0;
      if (agent_decode_stdin_credit(f, &id, &n, err) < 0) return -1;
      if (id == AGENT_PROC_CONTAINER) return 0;
      if (!find_exec(c, id) && find_ghost(c, id)) return 1;
      struct exec_proc *e = known_exec(c, id, f->type, err);
      if (!e) return -1;
      if (n > e->stdin_in_flight)
        return rc_err(err, EPROTO, "microVM: the guest agent credited stdin it was never sent");
      e->stdin_in_flight -= n;
      return 1;
    }
    case AGENT_MSG_EXIT: {
      struct agent_exit x;
      if (agent_decode_exit(f, &x, err) < 0) return -1;
      if (x.proc == AGENT_PROC_CONTAINER) return 0;
      struct ghost *g = find_exec(c, x.proc) ? NULL : find_ghost(c, x.proc);
      if (g && g->started) {
        g->id = 0; /* its end: nothing more comes about it */
        return 1;
      }
      struct exec_proc *e = g ? NULL : known_exec(c, x.proc, f->type, err);
      if (!e && !g) return -1;
      if (!e || !e->started || e->exited)
        return rc_err(err, EPROTO, "microVM: the guest agent sent EXIT for process %u out of turn",
                      x.proc);
      e->exited = true;
      e->exit = x;
      return 1;
    }
    case AGENT_MSG_EXEC_STARTED:
    case AGENT_MSG_EXEC_ERROR:
      return on_exec_result(c, f, err);
    case AGENT_MSG_PS_REPLY:
      return on_ps_reply(c, f, err);
    case AGENT_MSG_STATS_REPLY:
      return on_stats_reply(c, f, err);
    case AGENT_MSG_PIDS_LIMIT_REPLY:
      return on_pids_limit_reply(c, f, err);
    default:
      return 0;
  }
}

/* ---- The end ----------------------------------------------------------------------------- */

void rc_vmctl_finish(struct rc_vmctl *c) {
  for (size_t i = 0; i < AGENT_MAX_EXECS; i++) {
    struct exec_proc *e = c->execs[i];
    if (!e) continue;
    for (int s = 0; s < 2; s++) write_output(e, s);
    if (!e->exited) {
      /* the agent kills every process when the container's ends; it never said so */
      e->exit = (struct agent_exit){.proc = e->id, .kind = AGENT_EXIT_SIGNAL, .value = SIGKILL};
      e->exited = true;
    }
    if (e->started) {
      report_exit(c, e);
    } else {
      struct rc_error gone;
      rc_err(&gone, ESRCH, "cannot exec in a stopped container");
      reply_error(c, e->conn, &gone);
      exec_free(c, e->id);
    }
  }
  for (size_t i = 0; i < MAX_CALLERS; i++) {
    if (c->callers[i].fd < 0) continue;
    if (c->callers[i].agent_request || c->callers[i].parked) {
      struct rc_error gone;
      rc_err(&gone, ESRCH, "container is not running");
      reply_error(c, c->callers[i].fd, &gone);
    }
    close_fd(&c->callers[i].fd);
  }
  close_fd(&c->listen_fd);
}

void rc_vmctl_free(struct rc_vmctl *c) {
  if (!c) return;
  for (size_t i = 0; i < AGENT_MAX_EXECS; i++)
    if (c->execs[i]) exec_free(c, c->execs[i]->id);
  for (size_t i = 0; i < MAX_CALLERS; i++) close_fd(&c->callers[i].fd);
  close_fd(&c->listen_fd);
  free(c->msg);
  free(c->in);
  free(c);
}
