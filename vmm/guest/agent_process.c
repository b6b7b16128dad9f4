/* Starting the workload: find its executable in the container's root, fork, move the
 * container's root onto "/" in a mount namespace of its own and chroot into it, give it a
 * session with a terminal or pipes, its rlimits, umask, groups and ids, its cwd, and exec.
 * An EXEC'd process does the same but enters the workload's mount namespace (and with it
 * the root the workload sees) instead of making one, as runc exec joins the init's.
 * The child reports a failure through a close-on-exec pipe, so the parent knows whether
 * exec happened before it says STARTED (or EXEC_STARTED). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* What the child needs to become the process: the container's process or an EXEC'd one. */
struct spawn_spec {
  const struct agent_config *cfg; /* the container's: its security settings */
  const struct agent_privileges *privileges;
  const struct agent_rlimit *rlimits; /* the process's own */
  uint32_t n_rlimits;
  bool has_umask;
  uint32_t umask;
  char *const *args;
  char *const *env;
  uint32_t n_env;
  const char *cwd;
  uint32_t uid, gid;
  const uint32_t *gids;
  uint32_t n_gids;
  bool terminal;
  struct agent_winsize winsize;
  int mntns; /* the workload's mount namespace to join, or -1 to make the root anew */
};

static const char *env_path(char *const *env, uint32_t n_env) {
  const char *path = NULL;
  for (uint32_t i = 0; i < n_env; i++)
    if (strncmp(env[i], "PATH=", 5) == 0) path = env[i] + 5;
  return path ? path : DEFAULT_PATH;
}

/* 0 if path (inside the root) is a regular file someone may execute, else an errno. */
static int check_executable(int rootfd, const char *path) {
  int fd = agent_open_in_root(rootfd, path, O_PATH);
  if (fd < 0) return errno;
  struct stat st;
  int e = 0;
  if (fstat(fd, &st) < 0)
    e = errno;
  else if (!S_ISREG(st.st_mode))
    e = S_ISDIR(st.st_mode) ? EISDIR : EACCES;
  else if (!(st.st_mode & 0111))
    e = EACCES;
  close(fd);
  return e;
}

int agent_find_executable(int rootfd, const char *name, char *const *env, uint32_t n_env,
                          const char *cwd, char *out, size_t size, struct rc_error *err) {
  if (strchr(name, '/')) {
    char full[8192];
    if (name[0] == '/')
      snprintf(full, sizeof(full), "%s", name);
    else
      snprintf(full, sizeof(full), "%s/%s", cwd, name);
    int e = check_executable(rootfd, full);
    if (e) return rc_err(err, e, "exec: \"%s\"", name);
    snprintf(out, size, "%s", name);
    return 0;
  }
  const char *p = env_path(env, n_env);
  int denied = 0;
  while (*p) {
    size_t n = strcspn(p, ":");
    char dir[4096];
    if (n == 0)
      snprintf(dir, sizeof(dir), "%s", cwd); /* an empty entry is the cwd */
    else
      snprintf(dir, sizeof(dir), "%.*s", (int)n, p);
    char full[8192];
    snprintf(full, sizeof(full), "%s/%s", dir, name);
    int e = check_executable(rootfd, full);
    if (e == 0) {
      if (strlen(full) >= size) return rc_err(err, ENAMETOOLONG, "exec: \"%s\"", name);
      snprintf(out, size, "%s", full);
      return 0;
    }
    if (e == EACCES) denied = EACCES;
    p += n;
    if (*p == ':') p++;
  }
  if (denied) return rc_err(err, EACCES, "exec: \"%s\"", name);
  return rc_err(err, ENOENT, "exec: \"%s\": executable file not found in $PATH", name);
}

/* What a failed child tells the parent. */
struct child_report {
  uint32_t stage;
  int32_t errnum;
  char message[512];
};

static __attribute__((noreturn)) void child_fail(int pipe_fd, uint32_t stage, int errnum,
                                                 const char *what) {
  struct child_report rep = {.stage = stage, .errnum = errnum};
  snprintf(rep.message, sizeof(rep.message), "%s", what);
  ssize_t w = write(pipe_fd, &rep, sizeof(rep));
  (void)w;
  _exit(127);
}

/* The bounding set first (while still privileged), keeping what the process may have
 * across the uid change. */
static int drop_bounding(uint64_t keep) {
  for (int cap = 0; cap < 64; cap++) {
    if (keep & (1ULL << cap)) continue;
    /* EINVAL: a capability this kernel does not have */
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) return -1;
  }
  return prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
}

/* After the uid change: the three sets, then the ambient set (each ambient capability
 * must be permitted and inheritable already), as runc applies them. */
static int set_capabilities(const struct agent_privileges *pv) {
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) return -1;
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2] = {{.effective = (uint32_t)pv->effective,
                                            .permitted = (uint32_t)pv->permitted,
                                            .inheritable = (uint32_t)pv->inheritable},
                                           {.effective = (uint32_t)(pv->effective >> 32),
                                            .permitted = (uint32_t)(pv->permitted >> 32),
                                            .inheritable = (uint32_t)(pv->inheritable >> 32)}};
  if (syscall(SYS_capset, &hdr, data) < 0) return -1;
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -1;
  /* an ambient capability that is not both permitted and inheritable cannot be raised:
   * runc leaves it out (its default spec lists ambient capabilities but no inheritable
   * ones), and so does the agent */
  uint64_t ambient = pv->ambient & pv->permitted & pv->inheritable;
  for (int cap = 0; cap < 64; cap++)
    if ((ambient & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
      return -1;
  return 0;
}

/* Makes the container's root the root of a new mount namespace: the mount moves onto "/"
 * (the initramfs cannot be pivoted away), then chroot follows it. */
static int enter_root(void) {
  if (unshare(CLONE_NEWNS) < 0) return -1;
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return -1;
  if (chdir(AGENT_ROOT_DIR) < 0) return -1;
  if (mount(AGENT_ROOT_DIR, "/", NULL, MS_MOVE, NULL) < 0) return -1;
  if (chroot(".") < 0) return -1;
  return chdir("/");
}

/* An EXEC'd process: into the workload's mount namespace, whose root is the container's
 * (setns moves root and cwd there). */
static int join_root(int mntns) {
  if (setns(mntns, CLONE_NEWNS) < 0) return -1;
  return chdir("/");
}

/* The working directory, resolved inside the container's root with magic links refused: a
 * plain chdir would follow /proc/self/fd/N to a descriptor the agent holds here (still open
 * until exec), /proc/self/cwd or /proc/1/root, and start the process outside its root
 * (CVE-2024-21626's path). Runs as the process's own ids, so search permission is theirs. */
static int enter_cwd(const char *cwd) {
  int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return -1;
  int dir = agent_open_in_root(root, cwd, O_PATH | O_DIRECTORY);
  int e = errno;
  close(root);
  if (dir < 0) {
    errno = e;
    return -1;
  }
  int r = fchdir(dir);
  e = errno;
  close(dir);
  errno = e;
  return r;
}

/* Closes every fd above stdio but keep. */
static void close_all_but(int keep) {
  if (keep > 3 && syscall(SYS_close_range, 3, keep - 1, 0) < 0)
    for (int fd = 3; fd < keep; fd++) close(fd);
  int from = keep >= 3 ? keep + 1 : 3;
  if (syscall(SYS_close_range, from, ~0U, 0) < 0)
    for (int fd = from; fd < 65536; fd++) close(fd);
}

static __attribute__((noreturn)) void child(const struct spawn_spec *sp, const char *exe, int slave,
                                            const int pipes[3][2], int report) {
  const struct agent_config *cfg = sp->cfg;
  char what[600];
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* before it can fork: its children are counted from the start */
  if (agent_join_cgroup() < 0)
    child_fail(report, AGENT_STAGE_PROCESS, errno, "join the container's pids cgroup");
  if (setsid() < 0) child_fail(report, AGENT_STAGE_PROCESS, errno, "setsid");
  /* through the agent's /proc, before the container's root (whose /proc may be masked)
   * and while lowering or raising it is still allowed */
  if (agent_set_oom_score_adj(&cfg->security) < 0)
    child_fail(report, AGENT_STAGE_SECURITY, errno, "set oom_score_adj");
  if (sp->terminal) {
    if (ioctl(slave, TIOCSCTTY, 0) < 0)
      child_fail(report, AGENT_STAGE_PROCESS, errno, "make the terminal the controlling one");
    for (int fd = 0; fd <= 2; fd++)
      if (dup2(slave, fd) < 0) child_fail(report, AGENT_STAGE_PROCESS, errno, "dup2");
  } else {
    if (dup2(pipes[0][0], 0) < 0 || dup2(pipes[1][1], 1) < 0 || dup2(pipes[2][1], 2) < 0)
      child_fail(report, AGENT_STAGE_PROCESS, errno, "dup2");
  }
  if ((sp->mntns >= 0 ? join_root(sp->mntns) : enter_root()) < 0)
    child_fail(report, AGENT_STAGE_ROOTFS, errno, "enter the container root");
  for (uint32_t i = 0; i < sp->n_rlimits; i++) {
    const struct agent_rlimit *r = &sp->rlimits[i];
    struct rlimit rl = {.rlim_cur = r->soft, .rlim_max = r->hard};
    if (setrlimit((int)r->type, &rl) < 0) {
      snprintf(what, sizeof(what), "setrlimit %u", r->type);
      child_fail(report, AGENT_STAGE_PROCESS, errno, what);
    }
  }
  umask(sp->has_umask ? (mode_t)sp->umask : 022);
  /* runc's order: without no_new_privs the filter needs CAP_SYS_ADMIN to load, so it goes
   * in before the ids and capabilities change (and must allow what follows); with it, it
   * goes in last, right before execve */
  if (!sp->privileges->no_new_privs && agent_load_seccomp(&cfg->security) < 0)
    child_fail(report, AGENT_STAGE_SECURITY, errno, "load the seccomp filter");
  gid_t groups[AGENT_MAX_GIDS];
  uint32_t n_gids = sp->n_gids < AGENT_MAX_GIDS ? sp->n_gids : AGENT_MAX_GIDS;
  for (uint32_t i = 0; i < n_gids; i++) groups[i] = sp->gids[i];
  if (setgroups(n_gids, groups) < 0) child_fail(report, AGENT_STAGE_PROCESS, errno, "setgroups");
  if (drop_bounding(sp->privileges->bounding) < 0)
    child_fail(report, AGENT_STAGE_PROCESS, errno, "drop capabilities from the bounding set");
  if (setgid(sp->gid) < 0) child_fail(report, AGENT_STAGE_PROCESS, errno, "setgid");
  if (setuid(sp->uid) < 0) child_fail(report, AGENT_STAGE_PROCESS, errno, "setuid");

  if (enter_cwd(sp->cwd) < 0) {
    int e = errno;
    snprintf(what, sizeof(what), "chdir to cwd \"%s\"%s", sp->cwd,
             e == ELOOP ? " (a link loop, or a /proc link, which could lead out of the "
                          "container's root and is not followed)"
                        : "");
    child_fail(report, AGENT_STAGE_PROCESS, e, what);
  }
  /* the working directory as the new uid, before the final sets (runc's order) */
  if (set_capabilities(sp->privileges) < 0)
    child_fail(report, AGENT_STAGE_PROCESS, errno, "set capabilities");
  if (sp->privileges->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    child_fail(report, AGENT_STAGE_PROCESS, errno, "no_new_privs");
  if (sp->privileges->no_new_privs && agent_load_seccomp(&cfg->security) < 0)
    child_fail(report, AGENT_STAGE_SECURITY, errno, "load the seccomp filter");
  /* Every descriptor of the agent's but stdio and the report is closed now, not on exec:
   * execve looks the program up while close-on-exec ones are still open, and one in the
   * path (/proc/self/fd/N/..., say through a symlink swapped after the lookup above) would
   * lead to the agent's own files (CVE-2024-21626's program-path form; runc closes them
   * too, and so does runcell on the host since session 19). */
  close_all_but(report);
  execve(exe, sp->args, sp->env);
  snprintf(what, sizeof(what), "exec: \"%s\"", sp->args[0]);
  child_fail(report, AGENT_STAGE_EXEC, errno, what);
}

static void close_pipes(int pipes[3][2]) {
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 2; j++)
      if (pipes[i][j] >= 0) {
        close(pipes[i][j]);
        pipes[i][j] = -1;
      }
}

/* The pty comes from the container's own devpts instance (its /dev/ptmx), so that the
 * workload finds its terminal under its /dev/pts; a root without one gets the guest's. */
static int open_terminal(int rootfd, const struct agent_winsize *size, int *master, int *slave,
                         struct rc_error *err) {
  *master = agent_open_in_root(rootfd, "/dev/ptmx", O_RDWR | O_NOCTTY);
  if (*master < 0) *master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (*master < 0) return rc_err(err, errno, "open a pty");
  int unlock = 0;
  if (ioctl(*master, TIOCSPTLCK, &unlock) < 0) {
    int e = errno;
    close(*master);
    return rc_err(err, e, "unlock the pty");
  }
  *slave = ioctl(*master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (*slave < 0) {
    int e = errno;
    close(*master);
    return rc_err(err, e, "open the pty's peer");
  }
  if (size->rows && size->cols) {
    struct winsize ws = {.ws_row = size->rows, .ws_col = size->cols};
    ioctl(*master, TIOCSWINSZ, &ws);
  }
  return 0;
}

/* rootfd: the container's root as the process will see it (closed here). */
static int spawn(const struct spawn_spec *sp, int rootfd, struct agent_stdio *io, pid_t *pid,
                 struct agent_failure *f) {
  char exe[4096];
  int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
  int master = -1, slave = -1, report[2] = {-1, -1};
  f->stage = AGENT_STAGE_EXEC;
  int r = agent_find_executable(rootfd, sp->args[0], sp->env, sp->n_env, sp->cwd, exe, sizeof(exe),
                                &f->err);
  if (r < 0) {
    close(rootfd);
    return -1;
  }

  f->stage = AGENT_STAGE_PROCESS;
  if (sp->terminal) {
    r = open_terminal(rootfd, &sp->winsize, &master, &slave, &f->err);
    /* the container's own process: an exec'd one leaves /dev/console alone, as with runc */
    if (r == 0 && sp->mntns < 0 && agent_make_console(rootfd, slave, &f->err) < 0) {
      close(rootfd);
      r = -1;
      goto out;
    }
    close(rootfd);
    if (r < 0) return -1;
  } else {
    close(rootfd);
    for (int i = 0; i < 3; i++)
      if (pipe2(pipes[i], O_CLOEXEC) < 0) {
        int e = errno;
        close_pipes(pipes);
        return rc_err(&f->err, e, "pipe");
      }
  }
  if (pipe2(report, O_CLOEXEC) < 0) {
    r = rc_err(&f->err, errno, "pipe");
    goto out;
  }
  pid_t p = fork();
  if (p < 0) {
    r = rc_err(&f->err, errno, "fork");
    goto out;
  }
  if (p == 0) {
    close(report[0]);
    child(sp, exe, slave, (const int(*)[2])pipes, report[1]);
  }
  close(report[1]);
  report[1] = -1;
  struct child_report rep;
  ssize_t n;
  do {
    n = read(report[0], &rep, sizeof(rep));
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    waitpid(p, NULL, 0);
    rep.message[sizeof(rep.message) - 1] = '\0';
    f->stage = n == (ssize_t)sizeof(rep) ? rep.stage : AGENT_STAGE_PROCESS;
    r = rc_err(&f->err, n == (ssize_t)sizeof(rep) ? rep.errnum : EIO, "%s",
               n == (ssize_t)sizeof(rep) ? rep.message : "the process failed to start");
    goto out;
  }
  *pid = p;
  if (sp->terminal) {
    io->pty_master = master;
    io->in_fd = master;
    io->out_fd = master;
    io->err_fd = -1;
    master = -1;
  } else {
    io->pty_master = -1;
    io->in_fd = pipes[0][1];
    io->out_fd = pipes[1][0];
    io->err_fd = pipes[2][0];
    pipes[0][1] = pipes[1][0] = pipes[2][0] = -1;
  }
  r = 0;
out:
  close_pipes(pipes);
  if (master >= 0) close(master);
  if (slave >= 0) close(slave);
  if (report[0] >= 0) close(report[0]);
  if (report[1] >= 0) close(report[1]);
  return r;
}

int agent_spawn(const struct agent_config *cfg, struct agent_stdio *io, pid_t *pid,
                struct agent_failure *f) {
  struct spawn_spec sp = {.cfg = cfg,
                          .privileges = &cfg->privileges,
                          .rlimits = cfg->rlimits,
                          .n_rlimits = cfg->n_rlimits,
                          .has_umask = cfg->has_umask,
                          .umask = cfg->umask,
                          .args = cfg->args,
                          .env = cfg->env,
                          .n_env = cfg->n_env,
                          .cwd = cfg->cwd,
                          .uid = cfg->uid,
                          .gid = cfg->gid,
                          .gids = cfg->additional_gids,
                          .n_gids = cfg->n_additional_gids,
                          .terminal = cfg->terminal,
                          .winsize = cfg->winsize,
                          .mntns = -1};
  f->stage = AGENT_STAGE_EXEC;
  int rootfd = open(AGENT_ROOT_DIR, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) return rc_err(&f->err, errno, "open %s", AGENT_ROOT_DIR);
  return spawn(&sp, rootfd, io, pid, f);
}

int agent_spawn_exec(const struct agent_config *cfg, const struct agent_exec *e,
                     pid_t container_pid, struct agent_stdio *io, pid_t *pid,
                     struct agent_failure *f) {
  struct spawn_spec sp = {.cfg = cfg,
                          .privileges = &e->privileges,
                          .rlimits = e->rlimits,
                          .n_rlimits = e->n_rlimits,
                          .has_umask = e->has_umask,
                          .umask = e->umask,
                          .args = e->args,
                          .env = e->env,
                          .n_env = e->n_env,
                          .cwd = e->cwd,
                          .uid = e->uid,
                          .gid = e->gid,
                          .gids = e->additional_gids,
                          .n_gids = e->n_additional_gids,
                          .terminal = e->terminal,
                          .winsize = e->winsize};
  char path[64];
  f->stage = AGENT_STAGE_ROOTFS;
  snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)container_pid);
  sp.mntns = open(path, O_RDONLY | O_CLOEXEC);
  if (sp.mntns < 0) return rc_err(&f->err, errno, "open %s", path);
  snprintf(path, sizeof(path), "/proc/%d/root", (int)container_pid);
  int rootfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) {
    int e2 = errno;
    close(sp.mntns);
    return rc_err(&f->err, e2, "open %s", path);
  }
  int r = spawn(&sp, rootfd, io, pid, f);
  close(sp.mntns);
  return r;
}
