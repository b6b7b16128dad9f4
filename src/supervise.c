#include "runcell/supervise.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/log.h"
#include "runcell/terminal.h"

int rc_exit_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

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

int rc_supervise_begin(struct rc_supervisor *s, struct rc_error *err) {
  /* Blocked from before the process exists, so a signal that arrives while it is set up
   * reaches it instead of killing runcell and orphaning it. */
  sigset_t fwd;
  forwarded_signals(&fwd);
  sigprocmask(SIG_BLOCK, &fwd, &s->old_mask);
  /* SIGWINCH stays out of this signalfd: the terminal proxy reads it through its own. */
  sigdelset(&fwd, SIGWINCH);
  s->sfd = signalfd(-1, &fwd, SFD_CLOEXEC);
  if (s->sfd < 0) {
    sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
    return rc_err(err, errno, "signalfd");
  }
  return 0;
}

void rc_supervise_end(struct rc_supervisor *s) {
  if (s->sfd < 0) return;
  close(s->sfd);
  s->sfd = -1;
  sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
}

struct forwarder {
  int sfd;
  int pidfd;
};

/* Forwards signals until the process exits. Its own thread, so that the main thread can
 * proxy a terminal meanwhile. */
static void *forward_signals(void *arg) {
  const struct forwarder *f = arg;
  for (;;) {
    struct pollfd p[2] = {{.fd = f->sfd, .events = POLLIN}, {.fd = f->pidfd, .events = POLLIN}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      rc_warn("signal forwarding stopped: poll: %s", strerror(errno));
      return NULL;
    }
    if (p[1].revents) return NULL; /* exited */
    if (!(p[0].revents & POLLIN)) continue;
    struct signalfd_siginfo si;
    if (read(f->sfd, &si, sizeof(si)) != (ssize_t)sizeof(si)) continue;
    if (si.ssi_signo == SIGCHLD || si.ssi_signo == SIGWINCH || si.ssi_signo == SIGURG) continue;
    syscall(SYS_pidfd_send_signal, f->pidfd, (int)si.ssi_signo, NULL, 0);
  }
}

int rc_supervise_wait(struct rc_supervisor *s, pid_t pid, int pidfd, int console_master,
                      struct rc_error *err) {
  struct forwarder f = {.sfd = s->sfd, .pidfd = pidfd};
  pthread_t thread;
  bool threaded =
      s->sfd >= 0 && pidfd >= 0 && pthread_create(&thread, NULL, forward_signals, &f) == 0;
  if (console_master >= 0) {
    struct rc_error perr;
    if (rc_pty_proxy(console_master, pidfd, &perr) < 0) rc_warn("terminal: %s", perr.msg);
    close(console_master);
  }
  int status = 0;
  int rc = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      rc = rc_err(err, errno, "wait for process %d", (int)pid);
      break;
    }
  }
  if (threaded) pthread_join(thread, NULL);
  return rc < 0 ? -1 : status;
}
