/* run: create + start, then (unless --detach) stay in the foreground as the container's
 * supervisor: forward signals to the init, proxy a terminal, reap it, delete it, and exit
 * with its status (128+N when it died of signal N, like a shell). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/cli.h"
#include "runcell/container.h"
#include "runcell/log.h"
#include "runcell/terminal.h"
#include "runcell/util.h"

static int run_run(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_run = {
    "run", "<container-id>", "create and run a container",
    "   Creates and starts the container, waits for it and exits with its exit status.\n"
    "   With --detach it returns once the container is running.",
    run_run};

static int exit_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

/* Forwards every catchable signal to the init until it exits; returns its wait status. */
static int supervise(pid_t pid, int pidfd, struct rc_error *err) {
  sigset_t all, old;
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  /* Faults must stay deliverable to ourselves. */
  sigdelset(&all, SIGSEGV);
  sigdelset(&all, SIGBUS);
  sigdelset(&all, SIGFPE);
  sigdelset(&all, SIGILL);
  sigprocmask(SIG_BLOCK, &all, &old);
  int sfd = signalfd(-1, &all, SFD_CLOEXEC);
  if (sfd < 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc_err(err, errno, "signalfd");
  }
  int status = 0;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      close(sfd);
      sigprocmask(SIG_SETMASK, &old, NULL);
      return rc_err(err, errno, "wait for container init");
    }
    struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
    if (poll(p, pidfd >= 0 ? 2 : 1, pidfd >= 0 ? -1 : 100) < 0 && errno != EINTR) break;
    if (p[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si) && si.ssi_signo != SIGCHLD &&
          si.ssi_signo != SIGWINCH && si.ssi_signo != SIGURG) {
        if (pidfd >= 0)
          syscall(SYS_pidfd_send_signal, pidfd, (int)si.ssi_signo, NULL, 0);
        else
          kill(pid, (int)si.ssi_signo);
      }
    }
  }
  close(sfd);
  sigprocmask(SIG_SETMASK, &old, NULL);
  return status;
}

static int run_run(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  struct rc_create_opts o = {.root = g->root, .bundle = ".", .systemd_cgroup = g->systemd_cgroup};
  bool detach = false, keep = false;
  const struct rc_opt opts[] = {
      {"bundle", 'b', RC_OPT_STRING, &o.bundle, "DIR", "path to the bundle (default: .)"},
      {"console-socket", 0, RC_OPT_STRING, &o.console_socket, "PATH",
       "unix socket that receives the pty master of a terminal container"},
      {"detach", 'd', RC_OPT_BOOL, &detach, NULL, "detach from the container's process"},
      {"keep", 0, RC_OPT_BOOL, &keep, NULL, "do not delete the container after it exits"},
      {"pid-file", 0, RC_OPT_STRING, &o.pid_file, "FILE", "write the init's pid to FILE"},
      {"no-pivot", 0, RC_OPT_BOOL, &o.no_pivot, NULL, "use chroot instead of pivot_root"},
      {"no-new-keyring", 0, RC_OPT_BOOL, &o.no_new_keyring, NULL,
       "keep the caller's session keyring"},
      {"preserve-fds", 0, RC_OPT_INT, &o.preserve_fds, "N",
       "pass N more fds (from 3) to the container"},
  };
  char **pos = NULL;
  int n_pos = 0;
  int r = rc_cli_command_args(&rc_cmd_run, opts, RC_ARRAY_SIZE(opts), argc - 1, argv + 1, &pos,
                              &n_pos, err);
  if (r != 0) return r < 0 ? -1 : 0;
  if (rc_cli_expect_args("run", n_pos, 1, 1, err) < 0) {
    free(pos);
    return -1;
  }
  cleanup_free char *id = rc_xstrdup(pos[0]);
  free(pos);
  o.id = id;
  if (detach && keep) return rc_err(err, 0, "run: --detach and --keep cannot be used together");
  o.receive_console = !detach && !o.console_socket;

  struct rc_created c;
  if (rc_container_create(&o, &c, err) < 0) return -1;
  if (rc_container_start(g->root, id, err) < 0) {
    struct rc_error derr;
    if (!detach && c.pid > 0) waitpid(c.pid, NULL, 0);
    if (rc_container_delete(g->root, id, true, &derr) < 0) rc_warn("%s", derr.msg);
    if (c.pidfd >= 0) close(c.pidfd);
    if (c.console_master >= 0) close(c.console_master);
    return -1;
  }
  if (detach) {
    if (c.pidfd >= 0) close(c.pidfd);
    return 0;
  }
  if (c.console_master >= 0) {
    struct rc_error perr;
    if (rc_pty_proxy(c.console_master, c.pidfd, &perr) < 0) rc_warn("terminal: %s", perr.msg);
    close(c.console_master);
  }
  int status = supervise(c.pid, c.pidfd, err);
  if (c.pidfd >= 0) close(c.pidfd);
  if (status < 0) return -1;
  if (!keep && rc_container_delete(g->root, id, true, err) < 0) return -1;
  return exit_status(status);
}
