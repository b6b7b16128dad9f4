/* The VMM's control socket (src/microvm_control.c) driven as the relay drives it (fill,
 * poll, handle), with callers on a real listening socket and a fake agent behind the
 * send/queued callbacks, against a guest that never answers: the loop sleeps rather than
 * spins while callers wait, a caller past the limit is told the VMM is busy, callers and
 * EXECs past the deadline are answered and let go (their slots and stdio freed), requests
 * that do not need the agent are served while its queue is full, and hang-ups are seen
 * then too. The deadline is shortened (rc_vmctl_set_deadline_ms): every wait is the
 * control side's own poll timeout, so nothing sleeps on a guess. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "runcell/agent_proto.h"
#include "runcell/microvm_control.h"
#include "runcell/util.h"
#include "unit.h"
#include "vmm/machine_internal.h" /* a machine that is only its pause flag */

/* What the fake agent was sent; it answers nothing itself. */
struct fake_agent {
  size_t queued; /* what it reports as queued for it: AGENT_FRAME_MAX means no room */
  unsigned ps, execs, frames;
  uint32_t exec_ids[64];
  uint32_t kill_proc; /* the last SIGKILL's process */
  unsigned kills;
};

static int fake_send(void *vm, struct agent_msg *m, struct rc_error *err) {
  struct fake_agent *a = vm;
  if (agent_msg_end(m, err) < 0) return -1;
  struct agent_frame f = {.type = (uint16_t)(m->bytes[6] | m->bytes[7] << 8),
                          .length = (uint32_t)(m->len - AGENT_FRAME_HEADER_SIZE),
                          .payload = m->bytes + AGENT_FRAME_HEADER_SIZE};
  a->frames++;
  if (f.type == AGENT_MSG_PS) a->ps++;
  if (f.type == AGENT_MSG_EXEC) {
    struct agent_exec *ex = NULL;
    if (agent_decode_exec(&f, &ex, err) < 0) return -1;
    if (a->execs < RC_ARRAY_SIZE(a->exec_ids)) a->exec_ids[a->execs] = ex->proc;
    a->execs++;
    agent_exec_free(ex);
  }
  if (f.type == AGENT_MSG_SIGNAL) {
    uint32_t proc = 0, signo = 0;
    if (agent_decode_signal(&f, &proc, &signo, err) < 0) return -1;
    if (signo == SIGKILL) {
      a->kills++;
      a->kill_proc = proc;
    }
  }
  return 0;
}

static size_t fake_queued(void *vm) {
  return ((struct fake_agent *)vm)->queued;
}

struct rig {
  struct fake_agent agent;
  struct rc_vmctl *c;
  struct sockaddr_un sa;
  socklen_t salen;
  struct pollfd *p;
};

static void rig_start_on(struct rig *r, uint32_t deadline_ms, struct vmm_machine *machine) {
  static unsigned seq;
  memset(r, 0, sizeof(*r));
  signal(SIGPIPE, SIG_IGN); /* as in the VMM: a reader gone is EPIPE */
  rc_vmctl_set_deadline_ms(deadline_ms);
  r->sa.sun_family = AF_UNIX;
  /* abstract: nothing to clean up */
  snprintf(r->sa.sun_path + 1, sizeof(r->sa.sun_path) - 1, "runcell-test-vmctl-%d-%u", getpid(),
           seq++);
  r->salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(r->sa.sun_path + 1));
  int l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  CHECK(l >= 0);
  CHECK(bind(l, (struct sockaddr *)&r->sa, r->salen) == 0);
  CHECK(listen(l, 64) == 0);
  struct rc_vmctl_agent link = {
      .vm = &r->agent, .send = fake_send, .queued = fake_queued, .machine = machine};
  r->c = rc_vmctl_new(l, &link);
  r->p = rc_xcalloc(rc_vmctl_max_pollfds(), sizeof(*r->p));
}

static void rig_start(struct rig *r, uint32_t deadline_ms) {
  rig_start_on(r, deadline_ms, NULL);
}

static void rig_stop(struct rig *r) {
  rc_vmctl_free(r->c);
  free(r->p);
  rc_vmctl_set_deadline_ms(0);
}

/* One turn of the relay's loop, waiting at most cap_ms: whether poll reported anything. */
static bool turn(struct rig *r, int cap_ms) {
  size_t n = rc_vmctl_poll_fill(r->c, r->p);
  int t = rc_vmctl_poll_timeout(r->c);
  int got = poll(r->p, n, t < 0 || t > cap_ms ? cap_ms : t);
  struct rc_error err = {0};
  CHECK(rc_vmctl_poll_handle(r->c, r->p, n, &err) == 0);
  CHECK(rc_vmctl_flush(r->c, &err) == 0);
  return got > 0;
}

/* Turns for ms milliseconds: how many of them poll woke for something. */
static unsigned run_for(struct rig *r, int ms) {
  unsigned wakeups = 0;
  int64_t end = rc_now_ms() + ms;
  for (int64_t now = rc_now_ms(); now < end; now = rc_now_ms())
    wakeups += turn(r, (int)(end - now));
  return wakeups;
}

/* Turns until cond holds, at most ms: for the positive checks, which a busy machine may
 * make take longer than a fixed run_for (those stay before the negative ones). */
#define RUN_UNTIL(r, cond, ms)                           \
  do {                                                   \
    int64_t end_ = rc_now_ms() + (ms);                   \
    while (!(cond) && rc_now_ms() < end_) turn((r), 10); \
  } while (0)

static bool readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, 0) > 0;
}

/* Turns until every one of fds has something to read (an answer or a hang-up), at most
 * cap_ms: whether they all had. */
static bool run_until_answered(struct rig *r, const int *fds, size_t n, int cap_ms) {
  int64_t end = rc_now_ms() + cap_ms;
  for (;;) {
    size_t ready = 0;
    for (size_t i = 0; i < n; i++) ready += readable(fds[i]);
    if (ready == n) return true;
    int64_t now = rc_now_ms();
    if (now >= end) return false;
    turn(r, (int)(end - now) < 20 ? (int)(end - now) : 20);
  }
}

static int connect_to(const struct rig *r) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0);
  CHECK(connect(fd, (const struct sockaddr *)&r->sa, r->salen) == 0);
  return fd;
}

/* A caller that sent an empty request of type, or MEMORY {0}. */
static int request(const struct rig *r, uint16_t type) {
  struct agent_msg m;
  struct rc_error err = {0};
  agent_msg_begin(&m, type);
  if (type == RC_VMCTL_MEMORY) agent_put_u64(&m, 0);
  CHECK(agent_msg_end(&m, &err) == 0);
  int fd = connect_to(r);
  CHECK(rc_vmctl_send(fd, &m, NULL, 0, &err) == 0);
  return fd;
}

/* A caller that sent EXEC with stdio: stdin from a pipe, stdout and stderr into another,
 * whose read end is *out (it reads EOF once the VMM has let go of the process's stdio). */
static int request_exec(const struct rig *r, int *out) {
  static char *args[] = {"/bin/true", NULL};
  static char *env[] = {NULL};
  struct agent_exec e = {.args = args, .n_args = 1, .env = env, .cwd = "/"};
  struct agent_msg m;
  struct rc_error err = {0};
  CHECK(agent_encode_exec(&m, &e, &err) == 0);
  m.bytes[6] = (uint8_t)(RC_VMCTL_EXEC & 0xff);
  m.bytes[7] = (uint8_t)(RC_VMCTL_EXEC >> 8);
  int in[2] = {-1, -1}, o[2] = {-1, -1};
  CHECK(pipe2(in, O_CLOEXEC) == 0 && pipe2(o, O_CLOEXEC) == 0);
  const int stdio[3] = {in[0], o[1], o[1]};
  int fd = connect_to(r);
  CHECK(rc_vmctl_send(fd, &m, stdio, 3, &err) == 0);
  close(in[0]);
  close(in[1]);
  close(o[1]);
  fcntl(o[0], F_SETFL, O_NONBLOCK); /* an old VMM that holds it must not hang the test */
  *out = o[0];
  return fd;
}

/* The REPLY waiting on fd: 1 with its errno and message, 0 when none came (nothing to
 * read, or a hang-up without one). */
static int reply_of(int fd, uint32_t *errnum, char *message, size_t size) {
  struct agent_msg m;
  *errnum = 0;
  message[0] = '\0';
  ssize_t n = recv(fd, m.bytes, sizeof(m.bytes), MSG_DONTWAIT);
  if (n < AGENT_FRAME_HEADER_SIZE) return 0;
  struct agent_frame f = {.type = (uint16_t)(m.bytes[6] | m.bytes[7] << 8),
                          .length = (uint32_t)(n - AGENT_FRAME_HEADER_SIZE),
                          .payload = m.bytes + AGENT_FRAME_HEADER_SIZE};
  if (f.type != RC_VMCTL_REPLY) return 0;
  struct agent_cursor cur;
  agent_cursor_init(&cur, f.payload, f.length);
  *errnum = agent_get_u32(&cur);
  if (!agent_get_str_into(&cur, message, size) || cur.bad) return 0;
  return 1;
}

/* The frame an agent would send, handed to the control side: what rc_vmctl_on_frame said. */
static int from_agent(struct rig *r, struct agent_msg *m) {
  struct rc_error err = {0};
  CHECK(agent_msg_end(m, &err) == 0);
  struct agent_frame f = {.type = (uint16_t)(m->bytes[6] | m->bytes[7] << 8),
                          .length = (uint32_t)(m->len - AGENT_FRAME_HEADER_SIZE),
                          .payload = m->bytes + AGENT_FRAME_HEADER_SIZE};
  return rc_vmctl_on_frame(r->c, &f, &err);
}

/* An EXEC sent while there is room and started by the agent (pid 42), its caller told so:
 * the exec's id; *ex the caller, *out its stdout's read end. */
static uint32_t started_exec(struct rig *r, int *ex, int *out) {
  char msg[AGENT_MAX_MESSAGE + 1];
  uint32_t errnum = 0;
  unsigned before = r->agent.execs;
  *ex = request_exec(r, out);
  RUN_UNTIL(r, r->agent.execs == before + 1, 2000);
  CHECK(r->agent.execs == before + 1);
  uint32_t id = r->agent.exec_ids[before];
  struct agent_msg m;
  agent_encode_exec_started(&m, id, 42);
  CHECK(from_agent(r, &m) == 1);
  CHECK(reply_of(*ex, &errnum, msg, sizeof(msg)) == 1 && errnum == 0);
  return id;
}

/* 17 ps with an agent that never answers: 16 wait (the loop sleeps meanwhile), the 17th
 * is told the VMM is busy at once, a request that needs no agent is still served, and at
 * the deadline the 16 get an error and their slots back. */
static void test_unanswered_callers_neither_spin_nor_stay(void) {
  struct rig r;
  rig_start(&r, 600);
  int fd[17];
  char msg[AGENT_MAX_MESSAGE + 1];
  uint32_t errnum = 0;
  for (int i = 0; i < 17; i++) fd[i] = request(&r, RC_VMCTL_PS);
  int64_t t0 = rc_now_ms();
  unsigned wakeups = run_for(&r, 200);
  CHECK(wakeups < 100);
  CHECK(r.agent.ps == 16);
  CHECK(reply_of(fd[16], &errnum, msg, sizeof(msg)) == 1);
  CHECK(errnum == EBUSY);
  CHECK_CONTAINS(msg, "busy");
  int waited = 0;
  for (int i = 0; i < 16; i++) waited += !readable(fd[i]);
  CHECK(waited == 16 || rc_now_ms() - t0 >= 600); /* none answered before the deadline */

  /* memory needs no agent: answered (no balloon here) while 16 wait */
  int mem = request(&r, RC_VMCTL_MEMORY);
  CHECK(run_until_answered(&r, &mem, 1, 1000));
  CHECK(reply_of(mem, &errnum, msg, sizeof(msg)) == 1);
  CHECK(errnum == ENOTSUP);
  close(mem);

  CHECK(run_until_answered(&r, fd, 16, 3000));
  for (int i = 0; i < 16; i++) {
    CHECK(reply_of(fd[i], &errnum, msg, sizeof(msg)) == 1);
    CHECK(errnum == ETIMEDOUT);
    CHECK_CONTAINS(msg, "did not answer");
  }
  CHECK(rc_now_ms() - t0 >= 600);
  /* a late answer goes to no one */
  struct agent_msg late;
  agent_encode_ps_reply(&late, &(struct agent_ps_reply){.request = 1});
  CHECK(from_agent(&r, &late) == 1);

  /* the slots are free again: a new ps reaches the agent */
  int again = request(&r, RC_VMCTL_PS);
  RUN_UNTIL(&r, r.agent.ps == 17, 2000);
  CHECK(r.agent.ps == 17);
  close(again);
  for (int i = 0; i < 17; i++) close(fd[i]);
  rig_stop(&r);
}

/* The agent's queue full (the guest stopped reading): pause, resume and memory are still
 * served, ps waits for room without the loop spinning, a hang-up frees its slot, and an
 * EXEC'd process whose caller hangs up is killed. */
static void test_no_room_for_the_agent(void) {
  struct rig r;
  rig_start(&r, 10000);
  char msg[AGENT_MAX_MESSAGE + 1];
  uint32_t errnum = 0;

  /* a running exec first, while there is room */
  int out = -1, ex = -1;
  uint32_t id = started_exec(&r, &ex, &out);

  r.agent.queued = AGENT_FRAME_MAX;
  int ps[17];
  for (int i = 0; i < 17; i++) ps[i] = request(&r, RC_VMCTL_PS);
  const uint16_t served[] = {RC_VMCTL_PAUSE, RC_VMCTL_RESUME, RC_VMCTL_MEMORY};
  int fd[3];
  for (int i = 0; i < 3; i++) fd[i] = request(&r, served[i]);
  CHECK(run_until_answered(&r, fd, 3, 1000));
  for (int i = 0; i < 3; i++) {
    CHECK(reply_of(fd[i], &errnum, msg, sizeof(msg)) == 1);
    CHECK(errnum == ENOTSUP); /* no machine here: the handler's own answer */
    close(fd[i]);
  }
  CHECK(run_until_answered(&r, &ps[16], 1, 1000));
  CHECK(reply_of(ps[16], &errnum, msg, sizeof(msg)) == 1 && errnum == EBUSY);
  close(ps[16]);
  CHECK(run_for(&r, 150) < 50);
  CHECK(r.agent.ps == 0);
  for (int i = 0; i < 16; i++) CHECK(!readable(ps[i]));

  /* every ps caller and the exec's caller hang up: seen without room; the exec is
   * killed (one small frame) and the slots are free */
  for (int i = 0; i < 16; i++) close(ps[i]);
  close(ex);
  CHECK(run_for(&r, 100) < 50);
  CHECK(r.agent.kills == 1 && r.agent.kill_proc == id);
  size_t n = rc_vmctl_poll_fill(r.c, r.p);
  CHECK(n == 1 + 4); /* the listener and the exec's four: no caller left */
  CHECK(r.agent.ps == 0);

  /* one waiting for room is sent once there is */
  int later = request(&r, RC_VMCTL_PS);
  run_for(&r, 30);
  CHECK(r.agent.ps == 0);
  r.agent.queued = 0;
  RUN_UNTIL(&r, r.agent.ps == 1, 2000);
  CHECK(r.agent.ps == 1);
  close(later);
  close(out);
  rig_stop(&r);
}

/* A paused machine whose agent's queue is full: ps, stats and a pids limit are refused
 * ("paused") at once, not parked for room until the deadline; one parked before the pause
 * is answered when the pause comes; an exec stays parked, and the loop does not spin on
 * it. Only the machine's pause flag is read here (no request acts on the machine). */
static void test_a_paused_machine_refuses_at_once_without_room(void) {
  static struct vmm_machine machine; /* zeroed: not paused */
  struct rig r;
  rig_start_on(&r, 10000, &machine);
  char msg[AGENT_MAX_MESSAGE + 1];
  uint32_t errnum = 0;
  r.agent.queued = AGENT_FRAME_MAX;
  int before = request(&r, RC_VMCTL_PS);
  int out = -1;
  int ex = request_exec(&r, &out);
  CHECK(run_for(&r, 100) < 50);
  CHECK(!readable(before) && !readable(ex));

  atomic_store(&machine.pause_requested, true);
  int fd[3] = {request(&r, RC_VMCTL_PS), request(&r, RC_VMCTL_STATS), before};
  int64_t t0 = rc_now_ms();
  CHECK(run_until_answered(&r, fd, 3, 2000));
  CHECK(rc_now_ms() - t0 < 2000);
  for (int i = 0; i < 3; i++) {
    CHECK(reply_of(fd[i], &errnum, msg, sizeof(msg)) == 1);
    CHECK(errnum == EBUSY);
    CHECK_CONTAINS(msg, "the container is paused");
    close(fd[i]);
  }
  CHECK(r.agent.ps == 0 && r.agent.frames == 0);
  /* the exec waits for room (exec refuses a paused container before it gets here) */
  CHECK(run_for(&r, 150) < 50);
  CHECK(!readable(ex));
  CHECK(r.agent.execs == 0);

  atomic_store(&machine.pause_requested, false);
  r.agent.queued = 0;
  RUN_UNTIL(&r, r.agent.execs == 1, 2000);
  CHECK(r.agent.execs == 1);
  close(ex);
  close(out);
  rig_stop(&r);
}

/* 32 EXECs the guest never starts, half their callers gone: at the deadline the callers
 * left are told, every slot and the callers' stdio are let go, and a new exec goes
 * through; a late EXEC_STARTED is answered with a kill, and what follows is dropped. */
static void test_unstarted_execs_are_given_up(void) {
  struct rig r;
  rig_start(&r, 1000);
  char msg[AGENT_MAX_MESSAGE + 1];
  uint32_t errnum = 0;
  int conn[32], out[32];
  for (int i = 0; i < 32; i++) {
    conn[i] = request_exec(&r, &out[i]);
    run_for(&r, 1);
  }
  int64_t t0 = rc_now_ms();
  while (r.agent.execs < 32 && rc_now_ms() - t0 < 1000) turn(&r, 10);
  CHECK(r.agent.execs == 32);
  int full_out = -1;
  int full = request_exec(&r, &full_out);
  CHECK(run_until_answered(&r, &full, 1, 1000));
  CHECK(reply_of(full, &errnum, msg, sizeof(msg)) == 1 && errnum == EAGAIN);
  close(full);
  close(full_out);
  for (int i = 0; i < 16; i++) close(conn[i]);
  run_for(&r, 20);
  for (int i = 0; i < 32; i++) CHECK(!readable(out[i])); /* held until the deadline */

  CHECK(run_until_answered(&r, out, 32, 3000));
  for (int i = 0; i < 32; i++) {
    char b;
    CHECK(read(out[i], &b, 1) == 0); /* the VMM closed its copy of the caller's stdio */
    close(out[i]);
  }
  CHECK(run_until_answered(&r, &conn[16], 16, 1000));
  for (int i = 16; i < 32; i++) {
    CHECK(reply_of(conn[i], &errnum, msg, sizeof(msg)) == 1 && errnum == ETIMEDOUT);
    CHECK_CONTAINS(msg, "did not start");
    close(conn[i]);
  }

  int o = -1;
  int fresh = request_exec(&r, &o);
  RUN_UNTIL(&r, r.agent.execs == 33, 2000);
  CHECK(r.agent.execs == 33);
  close(fresh);
  close(o);

  /* the guest wakes up: a late start is killed, its output and exit dropped */
  uint32_t late = r.agent.exec_ids[0], refused = r.agent.exec_ids[1];
  struct agent_msg m;
  agent_encode_exec_started(&m, late, 7);
  CHECK(from_agent(&r, &m) == 1);
  CHECK(r.agent.kill_proc == late && r.agent.kills == 1);
  agent_encode_exec_started(&m, late, 7);
  CHECK(from_agent(&r, &m) < 0); /* twice is still a protocol error */
  agent_encode_data(&m, AGENT_MSG_STDOUT, late, "x", 1);
  CHECK(from_agent(&r, &m) == 1);
  agent_encode_stdin_credit(&m, late, 0);
  CHECK(from_agent(&r, &m) == 1);
  agent_encode_exit(&m, &(struct agent_exit){.proc = late, .kind = AGENT_EXIT_CODE, .value = 0});
  CHECK(from_agent(&r, &m) == 1);
  agent_encode_data(&m, AGENT_MSG_STDOUT, late, "x", 1);
  CHECK(from_agent(&r, &m) < 0); /* over: a number it no longer has */
  agent_encode_exec_error(&m, refused, 0, ENOENT, "no such file");
  CHECK(from_agent(&r, &m) == 1);
  agent_encode_exit(&m, &(struct agent_exit){.proc = r.agent.exec_ids[2], .value = 0});
  CHECK(from_agent(&r, &m) < 0); /* never started: out of turn */
  rig_stop(&r);
}

/* The deadline is for waiting on the guest, not for running: an exec that started, whose
 * caller is still there, runs on past it (a long `runcell exec` must not be cut off), and
 * its output still reaches the caller. Only when the caller hangs up does its clock
 * start. */
static void test_a_started_exec_outlives_the_deadline(void) {
  struct rig r;
  rig_start(&r, 300);
  int out = -1, ex = -1;
  uint32_t id = started_exec(&r, &ex, &out);
  struct agent_msg m;
  run_for(&r, 900); /* three deadlines */
  CHECK(r.agent.kills == 0);
  CHECK(!readable(ex)); /* no ETIMEDOUT, no hang-up */
  agent_encode_data(&m, AGENT_MSG_STDOUT, id, "late", 4);
  CHECK(from_agent(&r, &m) == 1);
  RUN_UNTIL(&r, readable(out), 2000);
  char buf[8] = {0};
  CHECK(read(out, buf, sizeof(buf)) == 4 && memcmp(buf, "late", 4) == 0);
  /* its caller goes: killed at once, and given up on (stdio let go) a deadline later */
  int64_t t0 = rc_now_ms(); /* the deadline cannot start before the hang-up */
  close(ex);
  RUN_UNTIL(&r, r.agent.kills == 1, 2000);
  CHECK(r.agent.kills == 1 && r.agent.kill_proc == id);
  CHECK(run_until_answered(&r, &out, 1, 3000));
  CHECK(rc_now_ms() - t0 >= 300);
  CHECK(read(out, buf, 1) == 0);
  close(out);
  rig_stop(&r);
}

UNIT_MAIN("vmctl", UNIT_CASE(test_unanswered_callers_neither_spin_nor_stay),
          UNIT_CASE(test_no_room_for_the_agent), UNIT_CASE(test_unstarted_execs_are_given_up),
          UNIT_CASE(test_a_started_exec_outlives_the_deadline),
          UNIT_CASE(test_a_paused_machine_refuses_at_once_without_room))
