/* `runcell exec` into a microVM: the process runs in the guest, started by the agent
 * through the VMM's control socket, with the caller's stdio (or a pty made here, whose
 * master goes to the console socket as runc sends it) relayed by the VMM.
 *
 * containerd's shim waits on the pid it is given and signals it (`ctr task kill
 * --exec-id`), so the pid is a host process that stands for the guest one: the stand-in,
 * a child of the caller that holds the EXEC's connection, forwards every signal it gets
 * (a window-size change of its terminal as RESIZE), and exits as the guest process did —
 * with its code, or killed by its signal. If the stand-in is killed (SIGKILL cannot be
 * forwarded) its connection closes and the VMM kills the guest process. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "runcell/log.h"
#include "runcell/microvm_agent_config.h"
#include "runcell/microvm_control.h"
#include "runcell/terminal.h"
#include "runcell/util.h"

/* The process's description as the agent takes it, borrowed from p. */
static void exec_of(const struct oci_process *p, struct agent_exec *e, uint32_t *gids,
                    struct agent_rlimit *rlimits) {
  memset(e, 0, sizeof(*e));
  e->args = p->args;
  e->n_args = (uint32_t)p->n_args;
  e->env = p->env;
  e->n_env = (uint32_t)p->n_env;
  e->cwd = p->cwd;
  e->uid = p->user.uid;
  e->gid = p->user.gid;
  e->n_additional_gids = (uint32_t)p->user.n_additional_gids;
  for (size_t i = 0; i < p->user.n_additional_gids && i < AGENT_MAX_GIDS; i++)
    gids[i] = p->user.additional_gids[i];
  e->additional_gids = gids;
  e->terminal = p->terminal;
  if (p->has_console_size)
    e->winsize = (struct agent_winsize){(uint16_t)p->console_height, (uint16_t)p->console_width};
  rc_microvm_privileges(p, &e->privileges);
  rc_microvm_rlimits(p, rlimits); /* the caller checked they fit */
  e->rlimits = rlimits;
  e->n_rlimits = (uint32_t)p->n_rlimits;
  e->has_umask = p->user.has_umask;
  e->umask = p->user.umask;
}

/* ---- The stand-in ---------------------------------------------------------------------- */

/* Exits as the guest process did: killed by the same signal where the kernel lets us,
 * else 128 + signal, which is what a shell and containerd's shim report anyway. */
__attribute__((noreturn)) static void exit_like(uint32_t kind, uint32_t value) {
  if (kind == AGENT_EXIT_SIGNAL && value > 0 && (int)value < NSIG && value != SIGSTOP &&
      value != SIGTSTP && value != SIGTTIN && value != SIGTTOU) {
    signal((int)value, SIG_DFL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, (int)value);
    sigprocmask(SIG_UNBLOCK, &s, NULL);
    raise((int)value);
  }
  _exit(kind == AGENT_EXIT_SIGNAL ? 128 + (int)(value & 0x7f) : (int)(value & 0xff));
}

static void send_simple(int conn, uint16_t type, const uint32_t *value) {
  struct rc_error err = {0};
  static struct agent_msg m;
  agent_msg_begin(&m, type);
  if (value) agent_put_u32(&m, *value);
  if (agent_msg_end(&m, &err) < 0 || rc_vmctl_send(conn, &m, NULL, 0, &err) < 0)
    rc_debug("exec stand-in: %s", err.msg);
}

/* Every signal but the ones that cannot or must not be forwarded. */
static int forwarded_signals(sigset_t *set) {
  sigfillset(set);
  const int keep[] = {SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP};
  for (size_t i = 0; i < RC_ARRAY_SIZE(keep); i++) sigdelset(set, keep[i]);
  sigprocmask(SIG_BLOCK, set, NULL);
  return signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK);
}

__attribute__((noreturn)) static void stand_in_main(int conn, int tty_slave) {
  bool tty = tty_slave >= 0;
  sigset_t set;
  int sfd = forwarded_signals(&set);
  setsid();
  /* the terminal's window-size changes reach its session's foreground: us */
  if (tty_slave >= 0) {
    (void)ioctl(tty_slave, TIOCSCTTY, 0);
    close(tty_slave);
    /* a resize before we held the terminal sent its SIGWINCH to nobody: pass the size on
     * now, whatever it is */
    send_simple(conn, RC_VMCTL_RESIZE, NULL);
  }
  /* the caller's stdio is the VMM's to relay now: holding it would keep its readers from
   * seeing the end after the process is gone */
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int fd = 0; fd <= 2 && null >= 0; fd++) dup2(null, fd);
  if (null > 2) close(null);

  static struct agent_msg m;
  for (;;) {
    struct pollfd p[2] = {{.fd = conn, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    if (poll(p, sfd >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (sfd >= 0 && p[1].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD) continue;
        if (si.ssi_signo == SIGWINCH && tty) {
          send_simple(conn, RC_VMCTL_RESIZE, NULL);
          continue;
        }
        uint32_t signo = si.ssi_signo;
        send_simple(conn, RC_VMCTL_SIGNAL, &signo);
      }
    }
    if (!p[0].revents) continue;
    struct rc_error err = {0};
    struct agent_frame f = {0};
    if (rc_vmctl_recv(conn, &m, &f, &err) < 0) {
      rc_debug("exec stand-in: %s", err.msg);
      break;
    }
    if (f.type != RC_VMCTL_EXITED) continue;
    struct agent_cursor c;
    agent_cursor_init(&c, f.payload, f.length);
    uint32_t kind = agent_get_u32(&c), value = agent_get_u32(&c);
    if (c.bad || (kind != AGENT_EXIT_CODE && kind != AGENT_EXIT_SIGNAL)) {
      rc_debug("exec stand-in: a malformed EXITED message");
      break;
    }
    exit_like(kind, value);
  }
  /* the VMM is gone, and the guest with it: the process was killed with the container */
  exit_like(AGENT_EXIT_SIGNAL, SIGKILL);
}

/* ---- exec ------------------------------------------------------------------------------ */

/* The terminal: a pty here, its master to the console socket (or back to a foreground
 * caller), its slave raw (the guest's pty does the line discipline) for the VMM. */
static int make_terminal(const struct rc_exec_opts *o, struct rc_exec_result *out, int *slave,
                         struct rc_error *err) {
  const struct oci_process *p = o->process;
  int master = -1;
  if (rc_pty_open(&master, slave, p->has_console_size ? p->console_width : 0,
                  p->has_console_size ? p->console_height : 0, err) < 0)
    return rc_err_wrap(err, "set up terminal");
  struct termios t;
  if (tcgetattr(*slave, &t) == 0) {
    cfmakeraw(&t);
    (void)tcsetattr(*slave, TCSANOW, &t);
  }
  if (!o->console_socket) {
    out->console_master = master;
    return 0;
  }
  int sock = rc_console_socket_connect(o->console_socket, err);
  int r = sock < 0 ? -1 : rc_send_fd(sock, master, "/dev/ptmx", err);
  if (sock >= 0) close(sock);
  close(master);
  if (r < 0) return rc_err_wrap(err, "send pty master to the console socket");
  return 0;
}

int rc_microvm_exec(const struct rc_exec_opts *o, const struct oci_state *st,
                    struct rc_exec_result *out, struct rc_error *err) {
  const struct oci_process *p = o->process;
  if (st->status == OCI_STATUS_CREATED)
    return rc_err(err, 0,
                  "cannot exec in container %s: a microVM runs processes only once it is "
                  "started",
                  st->id);
  if (o->preserve_fds > 0)
    return rc_err(err, 0, "cannot exec in container %s: --preserve-fds does not reach a microVM",
                  st->id);
  if (p->user.n_additional_gids > AGENT_MAX_GIDS)
    return rc_err(err, 0, "exec: more than %u additional groups", AGENT_MAX_GIDS);
  if (p->n_rlimits > AGENT_MAX_RLIMIT_TYPE)
    return rc_err(err, 0, "exec: more than %u rlimits", AGENT_MAX_RLIMIT_TYPE);
  uint32_t gids[AGENT_MAX_GIDS];
  struct agent_rlimit rlimits[AGENT_MAX_RLIMIT_TYPE];
  struct agent_exec e;
  exec_of(p, &e, gids, rlimits);
  cleanup_free struct agent_msg *m = rc_xcalloc(1, sizeof(*m));
  if (agent_encode_exec(m, &e, err) < 0) return -1;
  /* the agent's EXEC payload under the control request's type */
  m->bytes[6] = (uint8_t)(RC_VMCTL_EXEC & 0xff);
  m->bytes[7] = (uint8_t)(RC_VMCTL_EXEC >> 8);

  int rc = -1, slave = -1;
  int conn = rc_vmctl_connect(o->root, o->id, err);
  if (conn < 0) {
    if (strcmp(err->msg, "container is not running") == 0)
      rc_err(err, 0, "cannot exec in a stopped container");
    return -1;
  }
  if (p->terminal && make_terminal(o, out, &slave, err) < 0) goto out;
  const int stdio[3] = {0, 1, 2};
  struct agent_frame f = {0};
  struct agent_cursor result = {0};
  if (rc_vmctl_send(conn, m, p->terminal ? &slave : stdio, p->terminal ? 1 : 3, err) < 0 ||
      rc_vmctl_recv(conn, m, &f, err) < 0 || rc_vmctl_reply(&f, &result, err) < 0) {
    if (strcmp(err->msg, "container is not running") == 0)
      rc_err(err, 0, "cannot exec in a stopped container");
    goto out;
  }
  uint32_t guest_pid = agent_get_u32(&result);
  if (agent_cursor_finish(&result, "exec reply", err) < 0) goto out;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    rc_err(err, errno, "fork the exec stand-in");
    goto out;
  }
  if (pid == 0) stand_in_main(conn, slave);
  rc_debug("exec in microVM %s: guest pid %u, stand-in %d", o->id, guest_pid, (int)pid);
  out->pid = pid;
  rc = 0;
out:
  if (rc < 0 && out->console_master >= 0) {
    close(out->console_master);
    out->console_master = -1;
  }
  if (slave >= 0) close(slave);
  close(conn);
  return rc;
}
