/* OCI lifecycle hooks. Each hook is a host binary run with the container state JSON on
 * its stdin; we capture what it prints so a failure can say why, and we enforce its
 * timeout ourselves because a hung hook would otherwise hang `create`/`start` forever. */
#include "runcell/hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runcell/util.h"
#include "runcell/xgate.h"

/* Only the end of a hook's output makes it into the error: that is where the reason for
 * a failure usually is, and the message has to fit in struct rc_error anyway. */
#define HOOK_TAIL_MAX 4096
/* Without a pidfd we cannot sleep until the hook exits, so we check this often. */
#define HOOK_POLL_SLICE_MS 10
/* After the hook exits, a daemon it left behind may still hold the output pipe and keep
 * writing; read at most this much more so we never loop on it. */
#define HOOK_DRAIN_MAX (1024 * 1024)

struct hook_run {
  pid_t pid;
  int pidfd;  /* -1 when pidfd_open is unavailable */
  int in_w;   /* our end of the hook's stdin; -1 once all is written or it went away */
  int out_r;  /* our end of the hook's stdout+stderr; -1 at EOF */
  int exec_r; /* reads the child's errno if execve failed; EOF means exec happened */
  const char *state;
  size_t state_len, state_off;
  char tail[HOOK_TAIL_MAX];
  size_t tail_len;
};

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void tail_append(struct hook_run *r, const char *buf, size_t n) {
  if (n >= HOOK_TAIL_MAX) {
    memcpy(r->tail, buf + n - HOOK_TAIL_MAX, HOOK_TAIL_MAX);
    r->tail_len = HOOK_TAIL_MAX;
    return;
  }
  if (r->tail_len + n > HOOK_TAIL_MAX) {
    size_t drop = r->tail_len + n - HOOK_TAIL_MAX;
    memmove(r->tail, r->tail + drop, r->tail_len - drop);
    r->tail_len -= drop;
  }
  memcpy(r->tail + r->tail_len, buf, n);
  r->tail_len += n;
}

/* Runs in the forked child: only async-signal-safe calls until execve, because the
 * parent may have had other threads holding libc locks at fork time. */
static _Noreturn void hook_child(const struct oci_hook *hook, int in_r, int out_w, int exec_w) {
  /* Move our three fds above 3 first so the dup2s below cannot clobber one another
   * (runcell may have been started with 0/1/2 closed, making pipe() return them). */
  int in = fcntl(in_r, F_DUPFD_CLOEXEC, 4);
  int out = fcntl(out_w, F_DUPFD_CLOEXEC, 4);
  int ex = fcntl(exec_w, F_DUPFD_CLOEXEC, 4);
  int e = 0;
  if (in < 0 || out < 0 || ex < 0) e = errno;
  if (!e && (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)) e = errno;
  /* The errno pipe lives at fd 3, close-on-exec, so that closing everything from 4 up
   * keeps it while the hook itself starts with only 0, 1 and 2. */
  if (!e && (dup2(ex, 3) < 0 || fcntl(3, F_SETFD, FD_CLOEXEC) < 0)) e = errno;
  if (e) {
    int fd = ex >= 0 ? ex : exec_w;
    (void)!write(fd, &e, sizeof(e));
    _exit(127);
  }
  rc_close_fds_from(4);
  /* Its own process group, so that a hook that times out is killed with whatever it
   * started (a `sleep` under `sh -c` outlived it before). */
  setpgid(0, 0);

  /* A hook is an ordinary program: it should not inherit runcell's blocked signals, nor
   * an ignored SIGPIPE (a hook doing `yes | head` must see its pipeline end normally). */
  sigset_t none;
  sigemptyset(&none);
  /* (in an xgate cell's init the gate's filter traps these; the loader gives the hook
   * the defaults anyway) */
  if (!rc_xgate_active) {
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
  }

  char *default_argv[] = {hook->path, NULL};
  char *empty_env[] = {NULL};
  char *const *argv = hook->n_args > 0 && hook->args && hook->args[0] ? hook->args : default_argv;
  char *const *envp = hook->env ? hook->env : empty_env;
  if (rc_xgate_active)
    rc_xgate_exec(hook->path, argv, envp);
  else
    execve(hook->path, argv, envp);
  e = errno;
  (void)!write(3, &e, sizeof(e));
  _exit(127);
}

/* Writes as much of the state as the pipe takes without blocking. A hook that exits or
 * closes stdin without reading it all is fine (runc ignores that too), so EPIPE just
 * ends the writing; SIGPIPE is blocked by our caller. */
static void feed_stdin(struct hook_run *r) {
  while (r->in_w >= 0 && r->state_off < r->state_len) {
    ssize_t n = write(r->in_w, r->state + r->state_off, r->state_len - r->state_off);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      close_fd(&r->in_w);
      return;
    }
    r->state_off += (size_t)n;
  }
  /* All written: closing gives the hook its EOF. */
  close_fd(&r->in_w);
}

/* Reads what is available from the hook's output; closes it at EOF. */
static void read_output(struct hook_run *r, size_t limit) {
  char buf[8192];
  size_t total = 0;
  while (r->out_r >= 0 && total < limit) {
    ssize_t n = read(r->out_r, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      close_fd(&r->out_r);
      return;
    }
    if (n == 0) {
      close_fd(&r->out_r);
      return;
    }
    tail_append(r, buf, (size_t)n);
    total += (size_t)n;
  }
}

/* Reaps the hook without blocking; returns true once it has been reaped. */
static bool try_reap(struct hook_run *r, int *status) {
  for (;;) {
    pid_t p = waitpid(r->pid, status, WNOHANG);
    if (p == r->pid) return true;
    if (p < 0 && errno == EINTR) continue;
    /* ECHILD would mean someone else reaped it (a waitpid(-1) elsewhere); there is
     * nothing left to wait for, so treat it as gone with an unknown status. */
    if (p < 0) {
      *status = -1;
      return true;
    }
    return false;
  }
}

static void kill_and_reap(struct hook_run *r, int *status) {
  /* The group too, when it is the hook's own (hook_child made it; the hook is not yet
   * reaped, so its pid, and the group's id, cannot have been reused). */
  if (getpgid(r->pid) == r->pid) kill(-r->pid, SIGKILL);
  kill(r->pid, SIGKILL);
  while (waitpid(r->pid, status, 0) < 0) {
    if (errno != EINTR) {
      *status = -1;
      break;
    }
  }
}

/* Feeds stdin, collects output and waits for the hook to exit or its deadline to pass.
 * Returns 0 when it exited (*status set), 1 when it timed out (and was killed), <0 on a
 * failure of our own (err set, hook killed). */
static int supervise(struct hook_run *r, const struct oci_hook *hook, int *status,
                     struct rc_error *err) {
  int64_t deadline = hook->has_timeout ? rc_now_ms() + (int64_t)hook->timeout * 1000 : 0;
  for (;;) {
    struct pollfd pfd[3];
    nfds_t n = 0;
    int in_i = -1, out_i = -1, pid_i = -1;
    if (r->in_w >= 0) {
      in_i = (int)n;
      pfd[n++] = (struct pollfd){.fd = r->in_w, .events = POLLOUT};
    }
    if (r->out_r >= 0) {
      out_i = (int)n;
      pfd[n++] = (struct pollfd){.fd = r->out_r, .events = POLLIN};
    }
    if (r->pidfd >= 0) {
      pid_i = (int)n;
      pfd[n++] = (struct pollfd){.fd = r->pidfd, .events = POLLIN};
    }

    int timeout = -1;
    if (hook->has_timeout) {
      int64_t left = deadline - rc_now_ms();
      if (left <= 0) {
        kill_and_reap(r, status);
        return 1;
      }
      timeout = left > INT32_MAX ? INT32_MAX : (int)left;
    }
    if (r->pidfd < 0 && (timeout < 0 || timeout > HOOK_POLL_SLICE_MS)) timeout = HOOK_POLL_SLICE_MS;

    int ready = poll(pfd, n, timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      kill_and_reap(r, status);
      return rc_err(err, e, "poll");
    }
    if (in_i >= 0 && pfd[in_i].revents) feed_stdin(r);
    if (out_i >= 0 && pfd[out_i].revents) read_output(r, SIZE_MAX);
    bool maybe_exited = r->pidfd < 0 || (pid_i >= 0 && pfd[pid_i].revents);
    if (maybe_exited && try_reap(r, status)) return 0;
  }
}

/* Formats the failure: "<stage> hook #<i> (<path>): <what>[: <output>]", keeping the end
 * of the output when the whole would not fit in the message. */
static int hook_fail(struct rc_error *err, const char *stage, size_t idx, const char *path,
                     const char *what, struct hook_run *r) {
  char head[RC_ERROR_MAX];
  int hn = snprintf(head, sizeof(head), "%s hook #%zu (%s): %s", stage, idx, path, what);
  if (hn < 0) hn = 0;

  /* Trim surrounding whitespace: most output ends in a newline. */
  const char *out = r->tail;
  size_t len = r->tail_len;
  while (len > 0 && (*out == ' ' || *out == '\n' || *out == '\r' || *out == '\t')) {
    out++;
    len--;
  }
  while (len > 0 && (out[len - 1] == ' ' || out[len - 1] == '\n' || out[len - 1] == '\r' ||
                     out[len - 1] == '\t'))
    len--;
  if (len == 0 || (size_t)hn + 8 >= sizeof(err->msg)) return rc_err(err, 0, "%s", head);

  size_t room = sizeof(err->msg) - 1 - (size_t)hn - 2; /* ": " */
  const char *ellipsis = "";
  if (len > room) {
    out += len - (room - 3);
    len = room - 3;
    ellipsis = "...";
  }
  return rc_err(err, 0, "%s: %s%.*s", head, ellipsis, (int)len, out);
}

static int run_one(const char *stage, size_t idx, const struct oci_hook *hook, const char *state,
                   size_t state_len, struct rc_error *err) {
  if (!hook->path || !*hook->path) return rc_err(err, 0, "%s hook #%zu: empty path", stage, idx);

  int in[2] = {-1, -1}, out[2] = {-1, -1}, ex[2] = {-1, -1};
  if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(ex, O_CLOEXEC) < 0) {
    int e = errno;
    for (int i = 0; i < 2; i++) {
      if (in[i] >= 0) close(in[i]);
      if (out[i] >= 0) close(out[i]);
      if (ex[i] >= 0) close(ex[i]);
    }
    return rc_err(err, e, "%s hook #%zu (%s): pipe", stage, idx, hook->path);
  }

  pid_t pid = fork();
  if (pid == 0) hook_child(hook, in[0], out[1], ex[1]);
  int fork_errno = errno;
  if (pid > 0) setpgid(pid, pid); /* as the child does: whichever runs first */
  close(in[0]);
  close(out[1]);
  close(ex[1]);
  struct hook_run *r = rc_xcalloc(1, sizeof(*r));
  r->pid = pid;
  r->pidfd = -1;
  r->in_w = in[1];
  r->out_r = out[0];
  r->exec_r = ex[0];
  r->state = state;
  r->state_len = state_len;
  int rc = -1;
  if (pid < 0) {
    rc_err(err, fork_errno, "%s hook #%zu (%s): fork", stage, idx, hook->path);
    goto out;
  }

  /* Non-blocking so one stuck direction (a hook not reading a large state while writing
   * a lot of output) can never deadlock us. */
  fcntl(r->in_w, F_SETFL, fcntl(r->in_w, F_GETFL) | O_NONBLOCK);
  fcntl(r->out_r, F_SETFL, fcntl(r->out_r, F_GETFL) | O_NONBLOCK);
#ifdef SYS_pidfd_open
  /* A pidfd lets poll wake us exactly when the hook exits; older kernels fall back to
   * short poll slices and waitpid(WNOHANG). pidfds are always close-on-exec. */
  r->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
  if (r->state_len == 0) close_fd(&r->in_w);

  /* Writing to a pipe whose reader is gone raises SIGPIPE, which would kill runcell. Block
   * it while we write, then consume any instance we caused, and only that. */
  sigset_t pipe_set, old_mask, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigemptyset(&old_mask);
  if (!rc_xgate_active) pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
  sigemptyset(&pending);
  sigpending(&pending);
  bool was_pending = sigismember(&pending, SIGPIPE) == 1;

  int status = 0;
  int sv = supervise(r, hook, &status, err);

  if (!was_pending) {
    const struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE) {
    }
  }
  if (!rc_xgate_active) pthread_sigmask(SIG_SETMASK, &old_mask, NULL);

  /* The hook is gone: whatever it wrote is in the pipe now. */
  read_output(r, HOOK_DRAIN_MAX);

  if (sv < 0) {
    rc_err_wrap(err, "%s hook #%zu (%s)", stage, idx, hook->path);
    goto out;
  }
  if (sv == 1) {
    char what[64];
    snprintf(what, sizeof(what), "timed out after %ds", hook->timeout);
    hook_fail(err, stage, idx, hook->path, what, r);
    goto out;
  }

  /* The errno pipe's write end closed on exec or at exit, so this read cannot block. */
  int exec_errno = 0;
  ssize_t got;
  do got = read(r->exec_r, &exec_errno, sizeof(exec_errno));
  while (got < 0 && errno == EINTR);
  if (got == (ssize_t)sizeof(exec_errno) && exec_errno != 0) {
    rc_err(err, exec_errno, "%s hook #%zu (%s): exec", stage, idx, hook->path);
    goto out;
  }

  char what[64];
  if (status == -1) {
    snprintf(what, sizeof(what), "exit status unknown (reaped elsewhere)");
  } else if (WIFEXITED(status)) {
    if (WEXITSTATUS(status) == 0) {
      rc = 0;
      goto out;
    }
    snprintf(what, sizeof(what), "exit status %d", WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    snprintf(what, sizeof(what), "killed by signal %d", WTERMSIG(status));
  } else {
    snprintf(what, sizeof(what), "unexpected wait status 0x%x", (unsigned)status);
  }
  hook_fail(err, stage, idx, hook->path, what, r);

out:
  close_fd(&r->in_w);
  close_fd(&r->out_r);
  close_fd(&r->exec_r);
  close_fd(&r->pidfd);
  free(r);
  return rc;
}

int rc_hooks_run(const char *stage, const struct oci_hook *hooks, size_t n, const char *state_json,
                 struct rc_error *err) {
  const char *state = state_json ? state_json : "";
  size_t len = strlen(state);
  /* Hooks are numbered from 0, as runc numbers them in its errors. */
  for (size_t i = 0; i < n; i++)
    if (run_one(stage, i, &hooks[i], state, len, err) < 0) return -1;
  return 0;
}
