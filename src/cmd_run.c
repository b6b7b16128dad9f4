/* run: create + start, then (unless --detach) stay in the foreground as the container's
 * supervisor: forward signals to the init, proxy a terminal, reap it, delete it, and exit
 * with its status (128+N when it died of signal N, like a shell). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
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

/* Foreground run blocks the signals it forwards from before create, so one that arrives
 * while the container is set up is delivered to it rather than killing runcell and
 * orphaning the container. */
static void forwarded_signals(sigset_t *set) {
  sigfillset(set);
  sigdelset(set, SIGKILL);
  sigdelset(set, SIGSTOP);
  /* faults must stay deliverable to ourselves */
  sigdelset(set, SIGSEGV);
  sigdelset(set, SIGBUS);
  sigdelset(set, SIGFPE);
  sigdelset(set, SIGILL);
  sigdelset(set, SIGSYS);
  sigdelset(set, SIGTRAP);
}

struct forwarder {
  int sfd;
  int pidfd;
  pid_t pid;
};

/* Forwards signals to the init until it exits. Runs in its own thread so that the main
 * thread can proxy a terminal meanwhile. */
static void *forward_signals(void *arg) {
  const struct forwarder *f = arg;
  for (;;) {
    struct pollfd p[2] = {{.fd = f->sfd, .events = POLLIN}, {.fd = f->pidfd, .events = POLLIN}};
    int r = poll(p, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      rc_warn("signal forwarding stopped: poll: %s", strerror(errno));
      return NULL;
    }
    if (p[1].revents) return NULL; /* the init exited */
    if (!(p[0].revents & POLLIN)) continue;
    struct signalfd_siginfo si;
    if (read(f->sfd, &si, sizeof(si)) != (ssize_t)sizeof(si)) continue;
    if (si.ssi_signo == SIGCHLD || si.ssi_signo == SIGWINCH || si.ssi_signo == SIGURG) continue;
    syscall(SYS_pidfd_send_signal, f->pidfd, (int)si.ssi_signo, NULL, 0);
  }
}

static int run_run(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  struct rc_create_opts o = {.root = g->root, .bundle = ".", .systemd_cgroup = g->systemd_cgroup};
  bool detach = false, keep = false;
  struct rc_opt opts[RC_CREATE_OPT_COUNT + 2] = {
      {"detach", 'd', RC_OPT_BOOL, &detach, NULL, "detach from the container's process"},
      {"keep", 0, RC_OPT_BOOL, &keep, NULL, "do not delete the container after it exits"},
  };
  rc_create_opt_table(&o, opts + 2);
  char **pos = NULL;
  int n_pos = 0;
  int r = rc_cli_command_args(&rc_cmd_run, opts, RC_ARRAY_SIZE(opts), argc - 1, argv + 1, &pos,
                              &n_pos, err);
  if (r != 0) return r < 0 ? -1 : 0;
  if (rc_cli_expect_args("run", n_pos, 1, 1, err) < 0 || rc_create_opts_check("run", &o, err) < 0) {
    free(pos);
    return -1;
  }
  cleanup_free char *id = rc_xstrdup(pos[0]);
  free(pos);
  o.id = id;
  if (detach && keep) return rc_err(err, 0, "run: --detach and --keep cannot be used together");
  o.receive_console = !detach && !o.console_socket;

  sigset_t fwd, old_mask;
  forwarded_signals(&fwd);
  int sfd = -1;
  if (!detach) {
    sigprocmask(SIG_BLOCK, &fwd, &old_mask);
    /* SIGWINCH stays out of our signalfd: the terminal proxy reads it through its own. */
    sigset_t mine = fwd;
    sigdelset(&mine, SIGWINCH);
    sfd = signalfd(-1, &mine, SFD_CLOEXEC);
    if (sfd < 0) {
      sigprocmask(SIG_SETMASK, &old_mask, NULL);
      return rc_err(err, errno, "run: signalfd");
    }
  }

  struct rc_created c;
  int rc = -1;
  if (rc_container_create(&o, &c, err) < 0) goto restore;
  if (rc_container_start(g->root, id, err) < 0) {
    /* Kill first: an init that never got the start message would wait forever. */
    if (c.pidfd >= 0) syscall(SYS_pidfd_send_signal, c.pidfd, SIGKILL, NULL, 0);
    if (!detach && c.pid > 0) waitpid(c.pid, NULL, 0);
    struct rc_error derr;
    if (rc_container_delete(g->root, id, true, &derr) < 0) rc_warn("%s", derr.msg);
    if (c.pidfd >= 0) close(c.pidfd);
    if (c.console_master >= 0) close(c.console_master);
    goto restore;
  }
  if (detach) {
    if (c.pidfd >= 0) close(c.pidfd);
    return 0;
  }

  struct forwarder f = {.sfd = sfd, .pidfd = c.pidfd, .pid = c.pid};
  pthread_t thread;
  bool threaded = c.pidfd >= 0 && pthread_create(&thread, NULL, forward_signals, &f) == 0;
  if (c.console_master >= 0) {
    struct rc_error perr;
    if (rc_pty_proxy(c.console_master, c.pidfd, &perr) < 0) rc_warn("terminal: %s", perr.msg);
    close(c.console_master);
  }
  int status = 0;
  while (waitpid(c.pid, &status, 0) < 0) {
    if (errno != EINTR) {
      rc_err(err, errno, "wait for container init");
      break;
    }
  }
  if (threaded) pthread_join(thread, NULL);
  if (c.pidfd >= 0) close(c.pidfd);
  /* The container's status is what the caller waits for: a failing cleanup is reported
   * but does not replace it. */
  struct rc_error derr;
  if (!keep && rc_container_delete(g->root, id, true, &derr) < 0) rc_warn("%s", derr.msg);
  rc = exit_status(status);
restore:
  if (sfd >= 0) {
    close(sfd);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
  }
  return rc;
}
