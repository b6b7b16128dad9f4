/* exec: a new process in a running container. The runtime forks a helper that joins
 * every namespace of the container's init through its pidfd (one setns call, so the
 * namespaces cannot come from different processes), and clones the process itself with
 * CLONE_PARENT so it is the runtime's child (the caller waits for it, or a subreaper
 * inherits it with --detach). The runtime moves it into the container's cgroup before it
 * goes on; it then gets the container's seccomp filter and the process's capabilities,
 * user, rlimits and terminal, exactly like the init, and execs. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container_internal.h"
#include "runcell/cell_kernel.h"
#include "runcell/cgroups.h"
#include "runcell/container.h"
#include "runcell/gate.h"
#include "runcell/log.h"
#include "runcell/microvm_control.h"
#include "runcell/mode.h"
#include "runcell/process_attrs.h"
#include "runcell/procfs.h"
#include "runcell/sync.h"
#include "runcell/terminal.h"
#include "runcell/util.h"
#include "runcell/xgate.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

int rc_container_load_config(const char *root, const char *id, struct oci_config **cfg,
                             struct rc_error *err) {
  cleanup_free char *path = rc_xasprintf("%s/%s/config.json", root, id);
  cleanup_free char *text = NULL;
  size_t len = 0;
  if (rc_read_file(path, 16 << 20, &text, &len, err) < 0) {
    if (err->code == ENOENT) return rc_err(err, 0, "container does not exist");
    return -1;
  }
  return oci_config_parse(text, len, cfg, err);
}

/* True if the process behind pidfd exits within timeout_ms. */
static bool exits_within(int pidfd, int timeout_ms) {
  struct pollfd p = {.fd = pidfd, .events = POLLIN};
  int r;
  while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
  }
  return r > 0;
}

/* The namespaces of the init that differ from ours: the ones to enter. An init that
 * shows none of a kind this kernel has is exiting: do_exit drops a task's namespaces
 * long before it is a zombie (its files, a big memfd say, are released in between, while
 * /proc/<pid>/stat still says R or S). Taking "none to show" for "the same as ours" ran
 * the process in the runtime's own namespaces — the host's, for a container without a
 * pid namespace of its own (hostPID), where nothing then joins any. So that is a stopped
 * container; and the links read are the init's only if it has not exited by the time
 * they were all read (pidfd), as its pid could be another process's afterwards. */
static int namespaces_to_join(pid_t pid, int pidfd, struct rc_error *err) {
  static const struct {
    const char *name;
    int flag;
  } kinds[] = {{"user", CLONE_NEWUSER},     {"mnt", CLONE_NEWNS},   {"pid", CLONE_NEWPID},
               {"net", CLONE_NEWNET},       {"ipc", CLONE_NEWIPC},  {"uts", CLONE_NEWUTS},
               {"cgroup", CLONE_NEWCGROUP}, {"time", CLONE_NEWTIME}};
  int flags = 0;
  for (size_t i = 0; i < RC_ARRAY_SIZE(kinds); i++) {
    char theirs[64], ours[64];
    snprintf(theirs, sizeof(theirs), "/proc/%d/ns/%s", (int)pid, kinds[i].name);
    snprintf(ours, sizeof(ours), "/proc/self/ns/%s", kinds[i].name);
    struct stat a, b;
    if (stat(ours, &b) < 0) continue; /* a kind this kernel has not got */
    if (stat(theirs, &a) < 0) {
      int e = errno;
      rc_debug("exec: %s of the init: %s (it is exiting)", theirs, strerror(e));
      return rc_err(err, 0, "cannot exec in a stopped container");
    }
    if (a.st_ino != b.st_ino || a.st_dev != b.st_dev) flags |= kinds[i].flag;
  }
  if (exits_within(pidfd, 0)) return rc_err(err, 0, "cannot exec in a stopped container");
  return flags;
}

struct exec_child {
  const struct oci_config *cfg;
  const struct oci_process *p;
  int sync_fd;
  int console_fd;
  int preserve_fds;
  bool new_userns;
  /* the container is a cell with its gate on: so is every process exec'd in it */
  const struct rc_gate_program *gate;
  struct rc_cgroup_join *cgroup_join; /* the process's way into the container's cgroups */
};

__attribute__((noreturn)) static void child_fail(int fd, struct rc_error *err) {
  rc_sync_send_error(fd, err);
  _exit(127);
}

/* The exec'd process, inside every namespace of the container. */
__attribute__((noreturn)) static void exec_child_main(const struct exec_child *c) {
  struct rc_error err = {0};
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  /* CVE-2019-5736: runtime code runs inside the container until exec */
  prctl(PR_SET_DUMPABLE, 0);
  if (c->cgroup_join && rc_cgroup_join_self(c->cgroup_join, &err) < 0) child_fail(c->sync_fd, &err);
  if (rc_sync_expect(c->sync_fd, RC_SYNC_GO, "wait for the cgroup", &err) < 0) _exit(127);
  if (c->p->terminal && setsid() < 0) {
    rc_err(&err, errno, "setsid");
    child_fail(c->sync_fd, &err);
  }
  if (c->console_fd >= 0 && rc_setup_process_terminal(c->p, c->console_fd, NULL, &err) < 0)
    child_fail(c->sync_fd, &err);
  if (chdir(c->p->cwd) < 0) {
    rc_err(&err, errno, "chdir to cwd (\"%s\")", c->p->cwd);
    child_fail(c->sync_fd, &err);
  }
  if (rc_verify_cwd_inside_root(c->p->cwd, &err) < 0) child_fail(c->sync_fd, &err);
  char exe[PATH_MAX];
  char **env = NULL;
  bool late = false;
  int listener = -1;
  if (rc_process_finalize(c->cfg, c->p, c->new_userns, c->gate, &listener, exe, &env, &late, &err) <
      0)
    child_fail(c->sync_fd, &err);
  if (listener >= 0) {
    if (rc_sync_send_fd(c->sync_fd, RC_SYNC_LISTENER, listener, &err) < 0) _exit(127);
    close(listener);
  }
  if (late && c->cfg->has_linux && c->cfg->linux_.has_seccomp &&
      rc_seccomp_load(&c->cfg->linux_.seccomp, &err) < 0)
    child_fail(c->sync_fd, &err);
  prctl(PR_SET_PDEATHSIG, 0);
  rc_prepare_exec_fds(c->preserve_fds, c->sync_fd);
  if (rc_xgate_active)
    rc_xgate_exec(exe, c->p->args, env);
  else
    execve(exe, c->p->args, env);
  rc_err(&err, errno, "exec %s", exe);
  child_fail(c->sync_fd, &err);
}

/* Errors with which setting up the process fails when the container's init exits
 * meanwhile (a concurrent kill or delete): setns on its pidfd (ESRCH), a clone into its
 * dying pid namespace (ENOMEM), a sync message to a process the namespace took with it
 * (EPIPE, ECONNRESET). */
static bool init_may_have_exited(int code) {
  return code == ESRCH || code == ENOMEM || code == EPIPE || code == ECONNRESET;
}

int rc_container_exec(const struct rc_exec_opts *o, struct rc_exec_result *out,
                      struct rc_error *err) {
  out->pid = -1;
  out->console_master = -1;
  rc_close_inherited_fds(3 + o->preserve_fds);
  /* before the process joins the container's mount namespace, whose /proc the container
   * can mount over (it may hold CAP_SYS_ADMIN in a user namespace of its own) */
  if (rc_procfs_prepare(err) < 0) return -1;
  /* the exec'd process is not dumpable from its clone on (see rc_container_create) */
  prctl(PR_SET_DUMPABLE, 0);
  struct oci_state *st = NULL;
  if (rc_state_read(o->root, o->id, &st, err) < 0) return -1;
  int rc = -1;
  int pidfd = -1, sv[2] = {-1, -1}, console = -1, console_pair[2] = {-1, -1};
  pid_t helper = -1, pid = -1;
  struct rc_cgroup_join *cgroup_join = NULL;

  switch (st->status) {
    case OCI_STATUS_RUNNING:
    case OCI_STATUS_CREATED:
      break;
    case OCI_STATUS_PAUSED:
      rc_err(err, 0, "cannot exec in a paused container");
      goto out;
    default:
      rc_err(err, 0, "cannot exec in a stopped container");
      goto out;
  }
  const struct oci_process *p = o->process;
  if (p->terminal && !o->console_socket && o->detach) {
    rc_err(err, 0, "cannot allocate tty if runcell will detach without setting console socket");
    goto out;
  }
  if (!p->terminal && o->console_socket) {
    rc_err(err, 0, "cannot use console socket if runcell will not detach or allocate tty");
    goto out;
  }
  if (o->cfg->has_linux && o->cfg->linux_.has_seccomp &&
      rc_seccomp_check(&o->cfg->linux_.seccomp, err) < 0)
    goto out;
  if ((pidfd = rc_state_open_pidfd(st)) < 0) {
    rc_err(err, 0, "cannot exec in a stopped container");
    goto out;
  }
  if (rc_state_is_microvm(st)) {
    /* The workload lives in the guest: so does the process, started by the guest agent. */
    rc = rc_microvm_exec(o, st, out, err);
    goto out;
  }
  int flags = namespaces_to_join(st->pid, pidfd, err);
  if (flags < 0) goto out;
  if (p->terminal) {
    if (o->console_socket) {
      if ((console = rc_console_socket_connect(o->console_socket, err)) < 0) goto out;
    } else {
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, console_pair) < 0) {
        rc_err(err, errno, "socketpair for the console");
        goto out;
      }
      console = console_pair[1];
      console_pair[1] = -1;
    }
  }
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    rc_err(err, errno, "socketpair");
    goto out;
  }
  /* The process joins the container's cgroups itself (rc_cgroup_join_open says why), except
   * the v2 one when it enters a cgroup namespace of the container's: from there the
   * runtime's cgroup is out of sight and the kernel refuses the move, so the runtime
   * makes it. */
  bool v2_by_runtime = (flags & CLONE_NEWCGROUP) != 0;
  if (st->cgroup_path && rc_cgroup_exists(st->cgroup_path)) {
    if (rc_cgroup_join_open(st->cgroup_path, &cgroup_join, err) < 0) goto out;
    if (v2_by_runtime) rc_cgroup_join_leave_v2(cgroup_join);
  }
  struct exec_child c = {.cfg = o->cfg,
                         .p = p,
                         .sync_fd = sv[1],
                         .console_fd = console,
                         .preserve_fds = o->preserve_fds,
                         .new_userns = (flags & CLONE_NEWUSER) != 0,
                         .gate = !rc_state_gate_on(st) ? NULL
                                 : rc_state_xgate(st)  ? rc_xgate_gate()
                                                       : &rc_gate_builtin_routed,
                         .cgroup_join = cgroup_join};
  fflush(NULL);
  helper = fork();
  if (helper < 0) {
    rc_err(err, errno, "fork");
    goto out;
  }
  if (helper == 0) {
    close(sv[0]);
    struct rc_error herr = {0};
    if (flags && setns(pidfd, flags) < 0) {
      rc_err(&herr, errno, "join the namespaces of container %s", o->id);
      child_fail(sv[1], &herr);
    }
    /* CLONE_PARENT: the process is the runtime's child, not the helper's, so the runtime
     * can wait for it; a new pid namespace only takes effect for a new process. */
    pid_t child = rc_cgroup_clone(CLONE_PARENT, cgroup_join);
    if (child < 0) {
      rc_err(&herr, errno, "clone the exec'd process");
      child_fail(sv[1], &herr);
    }
    if (child == 0) exec_child_main(&c);
    struct rc_sync_msg m = {.type = RC_SYNC_PID, .code = child};
    (void)!send(sv[1], &m, offsetof(struct rc_sync_msg, msg) + 1, MSG_NOSIGNAL);
    _exit(0);
  }
  close(sv[1]);
  sv[1] = -1;
  if (console >= 0) close(console);
  console = -1;
  {
    struct rc_sync_msg m;
    memset(&m, 0, sizeof(m));
    ssize_t n;
    do n = recv(sv[0], &m, sizeof(m), 0);
    while (n < 0 && errno == EINTR);
    while (waitpid(helper, NULL, 0) < 0 && errno == EINTR) {
    }
    helper = -1;
    if (n > 0 && m.type == RC_SYNC_ERROR) {
      m.msg[sizeof(m.msg) - 1] = '\0';
      rc_err(err, 0, "%s", m.msg);
      err->code = m.code;
      goto out;
    }
    if (n <= 0 || m.type != RC_SYNC_PID || m.code <= 0) {
      rc_err(err, 0, "exec: the helper process failed");
      goto out;
    }
    pid = (pid_t)m.code;
  }
  if (cgroup_join && v2_by_runtime && rc_cgroup_enter_v2(st->cgroup_path, pid, err) < 0) goto out;
  if (rc_sync_send(sv[0], RC_SYNC_GO, err) < 0) goto out;
  /* EOF: exec closed the connection; a message: the error that kept it from exec'ing, or
   * the listener of its gate for the cell kernel that must serve it (then go on). */
  for (;;) {
    struct rc_error child = {0};
    int listener = -1;
    int t = rc_sync_recv_fd(sv[0], "exec", &listener, &child);
    if (t == RC_SYNC_LISTENER && listener >= 0) {
      struct rc_cell_kernel_fds fds = {
          .listener = listener, .fuse = -1, .control = -1, .init_pidfd = -1};
      int r = rc_cell_kernel_spawn(&fds, st->cgroup_path ? st->cgroup_path : "/", st->pid, err);
      close(listener);
      if (r < 0) goto out;
      continue;
    }
    if (listener >= 0) close(listener);
    if (t == RC_SYNC_PEER_ERROR) {
      *err = child;
      goto out;
    }
    break;
  }
  if (console_pair[0] >= 0 && rc_recv_fd(console_pair[0], &out->console_master, err) < 0) goto out;
  out->pid = pid;
  rc = 0;
out:
  rc_cgroup_join_free(cgroup_join);
  if (rc < 0 && pid > 0) {
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
  }
  if (helper > 0) {
    kill(helper, SIGKILL);
    while (waitpid(helper, NULL, 0) < 0 && errno == EINTR) {
    }
  }
  /* The container stopped under us: say so, as when it had stopped before we looked.
   * (Only now: the init of a pid namespace exits once every process in it is reaped, and
   * the process we cloned into it is ours to reap.) A cgroup that vanished while we
   * joined it (ENOENT, ENODEV) means the same once the init is dead: delete removes the
   * cgroups only after the init has gone. No wait for those: a missing program is ENOENT
   * too, and must not cost a second. */
  bool stopped_under_us =
      rc < 0 && pidfd >= 0 &&
      ((init_may_have_exited(err->code) && exits_within(pidfd, 1000)) ||
       ((err->code == ENOENT || err->code == ENODEV) && exits_within(pidfd, 0)));
  if (stopped_under_us) rc_err(err, 0, "cannot exec in a stopped container");
  if (pidfd >= 0) close(pidfd);
  if (sv[0] >= 0) close(sv[0]);
  if (sv[1] >= 0) close(sv[1]);
  if (console >= 0) close(console);
  if (console_pair[0] >= 0) close(console_pair[0]);
  if (console_pair[1] >= 0) close(console_pair[1]);
  oci_state_free(st);
  return rc;
}
