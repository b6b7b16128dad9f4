/* The container init: the child of `create`, in its new namespaces. It builds the
 * container step by step, reporting every failure to the parent with its message, then
 * waits on the start socket and finally execs the user program. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "container_internal.h"
#include "runcell/cgroups.h"
#include "runcell/console.h"
#include "runcell/gate.h"
#include "runcell/hooks.h"
#include "runcell/namespaces.h"
#include "runcell/process_attrs.h"
#include "runcell/procfs.h"
#include "runcell/rootfs.h"
#include "runcell/state_store.h"
#include "runcell/sync.h"
#include "runcell/terminal.h"
#include "runcell/util.h"
#include "runcell/views.h"
#include "runcell/xgate.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

__attribute__((noreturn)) static void fail(int fd, struct rc_error *err) {
  rc_sync_send_error(fd, err);
  _exit(1);
}

static const char *env_lookup(char *const env[], const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; env && env[i]; i++)
    if (strncmp(env[i], name, n) == 0 && env[i][n] == '=') return env[i] + n + 1;
  return NULL;
}

int rc_find_executable(const char *arg0, char *const env[], char *path, struct rc_error *err) {
  struct stat st;
  if (strchr(arg0, '/')) {
    if (stat(arg0, &st) < 0) return rc_err(err, errno, "exec: \"%s\": stat %s", arg0, arg0);
    if (S_ISDIR(st.st_mode)) return rc_err(err, EACCES, "exec: \"%s\": is a directory", arg0);
    if (access(arg0, X_OK) < 0) return rc_err(err, errno, "exec: \"%s\"", arg0);
    snprintf(path, PATH_MAX, "%s", arg0);
    return 0;
  }
  const char *search = env_lookup(env, "PATH");
  if (!search) search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  cleanup_free char *copy = rc_xstrdup(search);
  char *save = NULL;
  for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
    if (snprintf(path, PATH_MAX, "%s/%s", *dir ? dir : ".", arg0) >= PATH_MAX) continue;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0) return 0;
  }
  return rc_err(err, ENOENT, "exec: \"%s\": executable file not found in $PATH", arg0);
}

/* The image's /etc/passwd is untrusted input: only a regular file is read (a FIFO would
 * block the init forever, a link to /dev/zero never end), at most PASSWD_MAX bytes of it,
 * and a line that does not fit the buffer or holds a NUL is skipped whole, so that its
 * tail is never taken for an entry of its own. */
#define PASSWD_MAX (16 << 20)
#define PASSWD_LINE_MAX 4096

/* Read with the runtime's privileges, before they are dropped: no more than the file says
 * it holds, so that a pseudo-file linked there (/proc/kmsg, whose reads take the host's
 * kernel log messages away from its reader, /proc/kallsyms), which reports size 0, is
 * not read at all. */
static FILE *open_passwd(size_t *size) {
  int fd = open("/etc/passwd", O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat st;
  FILE *f = NULL;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    *size = (uintmax_t)st.st_size < PASSWD_MAX ? (size_t)st.st_size : PASSWD_MAX;
    f = fdopen(fd, "re");
  }
  if (!f) close(fd);
  return f;
}

/* One line into buf (NUL-terminated, without its newline), counted against *budget.
 * Returns 1 for a line to parse, 0 for one to skip (too long, or with a NUL), -1 at the
 * end. */
static int read_passwd_line(FILE *f, char *buf, size_t size, size_t *budget) {
  size_t n = 0;
  bool any = false, bad = false;
  int c;
  while (*budget > 0 && (c = getc_unlocked(f)) != EOF) {
    (*budget)--;
    any = true;
    if (c == '\n') break;
    if (c == '\0' || n + 1 >= size)
      bad = true;
    else
      buf[n++] = (char)c;
  }
  buf[n] = '\0';
  if (!any) return -1;
  return bad ? 0 : 1;
}

/* runc sets HOME, when the process env lacks it, from the user's entry in the
 * container's /etc/passwd ("/" if there is none); programs rely on it. Runs after
 * pivot_root so the container's file is read. Returns the env to exec with. */
static char **env_with_home(const struct oci_process *p) {
  if (env_lookup(p->env, "HOME")) return p->env;
  char home[PATH_MAX] = "/";
  size_t budget = 0;
  FILE *f = open_passwd(&budget);
  if (f) {
    char line[PASSWD_LINE_MAX];
    int r;
    while ((r = read_passwd_line(f, line, sizeof(line), &budget)) >= 0) {
      if (r == 0) continue;
      /* name:pw:uid:gid:gecos:home:shell */
      char *fields[7] = {0};
      size_t n = 0;
      char *rest = line;
      while (rest && n < 7) fields[n++] = strsep(&rest, ":");
      if (n < 6 || !*fields[2] || strspn(fields[2], "0123456789") != strlen(fields[2])) continue;
      errno = 0;
      unsigned long uid = strtoul(fields[2], NULL, 10);
      if (errno || uid != p->user.uid) continue;
      snprintf(home, sizeof(home), "%s", fields[5]);
      break;
    }
    fclose(f);
  }
  char **env = rc_xcalloc(p->n_env + 2, sizeof(char *));
  for (size_t i = 0; i < p->n_env; i++) env[i] = p->env[i];
  env[p->n_env] = rc_xasprintf("HOME=%s", home);
  return env;
}

/* A new network namespace starts with lo down; runc brings it up, and programs expect
 * 127.0.0.1 to work. */
static int loopback_up(struct rc_error *err) {
  cleanup_close int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return rc_err(err, errno, "bring up lo: socket");
  struct ifreq ifr = {0};
  snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) return rc_err(err, errno, "bring up lo: get flags");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) return rc_err(err, errno, "bring up lo");
  return 0;
}

static int setup_keyring(const struct rc_init_ctx *ctx, struct rc_error *err) {
  if (ctx->no_new_keyring) return 0;
  /* KEYCTL_JOIN_SESSION_KEYRING = 1: a fresh session keyring keeps the container from
   * reading the host session's keys. Kernels without keyrings are fine. Named as runc
   * names it: the kernel refuses to make a keyring whose name starts with '.', which an
   * id may. */
  char name[RC_ID_MAX + 8];
  snprintf(name, sizeof(name), "_ses.%s", ctx->id);
  if (syscall(SYS_keyctl, 1, name) < 0 && errno != ENOSYS && errno != EACCES)
    return rc_err(err, errno, "join session keyring %s", name);
  return 0;
}

static int apply_security_labels(const struct oci_process *p, struct rc_error *err) {
  if (p->apparmor_profile && *p->apparmor_profile) {
    cleanup_free char *enabled = NULL;
    struct rc_error ignore;
    if (rc_read_file("/sys/module/apparmor/parameters/enabled", 16, &enabled, NULL, &ignore) < 0 ||
        enabled[0] != 'Y')
      return rc_err(err, 0, "process.apparmorProfile \"%s\": AppArmor is not enabled on this host",
                    p->apparmor_profile);
    cleanup_free char *cmd = rc_xasprintf("exec %s", p->apparmor_profile);
    if (rc_write_proc_file("/proc/thread-self/attr/apparmor/exec", cmd, strlen(cmd), err) < 0 &&
        rc_write_proc_file("/proc/thread-self/attr/exec", cmd, strlen(cmd), err) < 0)
      return rc_err_wrap(err, "apply AppArmor profile %s", p->apparmor_profile);
  }
  if (p->selinux_label && *p->selinux_label) {
    if (access("/sys/fs/selinux/enforce", F_OK) != 0)
      return rc_err(err, 0, "process.selinuxLabel \"%s\": SELinux is not enabled on this host",
                    p->selinux_label);
    if (rc_write_proc_file("/proc/thread-self/attr/exec", p->selinux_label,
                           strlen(p->selinux_label), err) < 0)
      return rc_err_wrap(err, "apply SELinux label %s", p->selinux_label);
  }
  return 0;
}

int rc_setup_process_terminal(const struct oci_process *p, int console_fd,
                              const struct oci_config *dev_console, struct rc_error *err) {
  if (!p->terminal) return 0;
  int master = -1, slave = -1;
  if (rc_pty_open(&master, &slave, p->has_console_size ? p->console_width : 0,
                  p->has_console_size ? p->console_height : 0, err) < 0)
    return rc_err_wrap(err, "set up terminal");
  /* before the master leaves: a container that cannot have its console is not created */
  if (dev_console && rc_console_mount(dev_console, slave, err) < 0) {
    close(master);
    close(slave);
    return rc_err_wrap(err, "set up terminal");
  }
  char name[64] = "/dev/pts/ptmx";
  (void)!ptsname_r(master, name, sizeof(name));
  int r = rc_send_fd(console_fd, master, name, err);
  close(master);
  if (r < 0) {
    close(slave);
    return rc_err_wrap(err, "send pty master to the console socket");
  }
  r = rc_pty_make_controlling(slave, err);
  if (slave > 2) close(slave);
  close(console_fd);
  return r;
}

/* The init's terminal, with /dev/console: rc_rootfs_finalize calls it once the container's
 * root is this process's root (the pty must come from the container's devpts), before the
 * masks and read-only remounts (rootfs.c says why that order is safe). */
static int setup_init_terminal(void *arg, struct rc_error *err) {
  struct rc_init_ctx *ctx = arg;
  int r = rc_setup_process_terminal(&ctx->cfg->process, ctx->console_fd, ctx->cfg, err);
  if (r == 0) ctx->console_fd = -1; /* closed */
  return r;
}

/* Makes sure the working directory exists before the root may become read-only. */
static int prepare_cwd(const struct rc_init_ctx *ctx, struct rc_error *err) {
  cleanup_close int rootfd = open(ctx->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) return rc_err(err, errno, "open rootfs %s", ctx->rootfs);
  int fd = rc_mkdir_in_root(rootfd, ctx->cfg->process.cwd, 0755, err);
  if (fd < 0) return rc_err_wrap(err, "create cwd %s", ctx->cfg->process.cwd);
  close(fd);
  return 0;
}

int rc_wait_for_start(int listen_fd, int *conn_out, struct rc_error *err) {
  for (;;) {
    int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return rc_err(err, errno, "wait for start");
    }
    struct rc_sync_msg m;
    ssize_t n = recv(conn, &m, sizeof(m), 0);
    if (n >= (ssize_t)sizeof(uint32_t) && m.type == RC_SYNC_START) {
      *conn_out = conn;
      return 0;
    }
    close(conn); /* a stray connection: keep waiting for a real start */
  }
}

/* The cell's file views: the views filesystem is mounted here, in the container's mount
 * namespace only, on the /dev/fuse fd the cell kernel (started by the runtime) serves once
 * it gets the mount's root from here; each file is then bound over its place in the
 * rootfs. */
static int views_fd_from_runtime(struct rc_init_ctx *ctx, const char *what, int *fd,
                                 struct rc_error *err) {
  int t = rc_sync_recv_fd(ctx->sync_fd, "cell views", fd, err);
  if (t < 0) return -1;
  if (t != RC_SYNC_VIEWS || *fd < 0) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
    return rc_err(err, 0, "cell views: expected %s from the runtime, got sync message %d", what, t);
  }
  return 0;
}

/* The views of a cell with a user namespace of its own: mounted by descriptor on what the
 * runtime sends (see rc_views_open_fuse_in), nothing looked up by path. Returns the root. */
static int mount_views_in_userns(struct rc_init_ctx *ctx, struct rc_error *err) {
  cleanup_close int staging = -1, fuse = -1;
  if (views_fd_from_runtime(ctx, "the staging directory", &staging, err) < 0 ||
      views_fd_from_runtime(ctx, "/dev/fuse", &fuse, err) < 0)
    return -1;
  return rc_views_mount_in_userns(staging, fuse, err);
}

/* The views mounted on the staging directory the runtime made; returns the root. */
static int mount_views(struct rc_init_ctx *ctx, struct rc_error *err) {
  /* The fd the runtime opened names the directory in the host's mount namespace, where
   * this process cannot mount: look it up again here, and check it is the same one. */
  cleanup_close int staging = open(ctx->views_path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat want, got;
  if (staging < 0 || fstat(staging, &got) < 0 || fstat(ctx->views_dirfd, &want) < 0 ||
      want.st_dev != got.st_dev || want.st_ino != got.st_ino)
    return staging < 0 ? rc_err(err, errno, "cell views: open %s", ctx->views_path)
                       : rc_err(err, 0, "cell views: %s was replaced", ctx->views_path);
  if (rc_views_mount(staging, ctx->views_fuse, err) < 0) return -1;
  close(ctx->views_fuse);
  ctx->views_fuse = -1;
  /* The mount's root, by path: the mount is on top of the staging directory. */
  int root = open(ctx->views_path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root < 0) return rc_err(err, errno, "cell views: open %s", ctx->views_path);
  return root;
}

static int setup_views(struct rc_init_ctx *ctx, struct rc_error *err) {
  cleanup_close int root =
      ctx->views_in_userns ? mount_views_in_userns(ctx, err) : mount_views(ctx, err);
  close(ctx->views_dirfd);
  ctx->views_dirfd = -1;
  if (root < 0) return -1;
  /* The root goes to the cell kernel (started by the runtime meanwhile), which then
   * serves the filesystem; the lookups of rc_views_bind wait for it in the kernel. While
   * it holds the root, the container's exit does not tear the filesystem down (a FUSE
   * superblock's end waits for RCU grace periods and the writeback flush, ~2 ms here); it
   * lets go once the init is gone, off the container's exit. */
  if (rc_sync_send_fd(ctx->views_control, RC_SYNC_VIEWS, root, err) < 0)
    return rc_err_wrap(err, "cell views: hand the views to the cell kernel");
  close(ctx->views_control);
  ctx->views_control = -1;
  cleanup_close int rootfd = open(ctx->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) return rc_err(err, errno, "open rootfs %s", ctx->rootfs);
  return rc_views_bind(root, ctx->views_path, rootfd, ctx->no_pivot, err);
}

void rc_hook_state_json(const struct rc_init_ctx *ctx, enum oci_status status, char **out) {
  struct oci_state st = {
      .oci_version = (char *)OCI_VERSION,
      .id = (char *)ctx->id,
      .status = status,
      /* as runc: the pid as the container sees it (its init is 1 in a new pid namespace) */
      .pid = ctx->hook_pid > 0 ? ctx->hook_pid : getpid(),
      .bundle = (char *)ctx->bundle,
      .annotations = ctx->cfg->annotations,
      .n_annotations = ctx->cfg->n_annotations,
  };
  *out = oci_state_to_hook_json(&st);
}

int rc_process_finalize(const struct oci_config *cfg, const struct oci_process *p, bool new_userns,
                        const struct rc_gate_program *gate, int *listener, char exe[PATH_MAX],
                        char ***exec_env, bool *late_seccomp, struct rc_error *err) {
  *listener = -1;
  /* before the rlimits: a low RLIMIT_NOFILE must not keep the loader from its descriptor */
  if (gate && gate->xgate && rc_xgate_prepare_loader(err) < 0) return -1;
  if (rc_apply_rlimits(p, err) < 0) return -1;
  if (rc_apply_oom_score_adj(p, err) < 0) return -1;
  if (rc_apply_scheduler(p, err) < 0 || rc_apply_io_priority(p, err) < 0) return -1;
  if (cfg->has_linux && rc_apply_personality(&cfg->linux_, err) < 0) return -1;
  if (apply_security_labels(p, err) < 0) return -1;
  umask(p->user.has_umask ? p->user.umask : 022);
  *exec_env = env_with_home(p);

  /* The gate closes while the process still has CAP_SYS_ADMIN (loading a filter needs it
   * or no_new_privs); what runcell does after this point (dropping privileges, waiting
   * for start, exec) is all within the gate's allow-list. */
  if (gate && rc_gate_install(gate, listener, err) < 0) return -1;
  if (gate && gate->xgate && rc_xgate_install_filter(err) < 0) return -1;

  /* Without noNewPrivileges, loading a filter needs CAP_SYS_ADMIN: load it before the
   * capabilities are dropped. With it, load it as late as possible (just before exec) so
   * that fewer of the runtime's own syscalls must be allowed. */
  *late_seccomp = p->no_new_privileges;
  if (cfg->has_linux && cfg->linux_.has_seccomp && !*late_seccomp &&
      rc_seccomp_load(&cfg->linux_.seccomp, err) < 0)
    return -1;
  bool setgroups_ok = true;
  if (new_userns) {
    cleanup_free char *sg = NULL;
    struct rc_error ignore;
    if (rc_read_proc_file("/proc/self/setgroups", 64, &sg, &ignore) == 0 &&
        strncmp(sg, "deny", 4) == 0)
      setgroups_ok = false;
  }
  if (rc_caps_drop_bounding(p, err) < 0) return -1;
  if (rc_apply_user_and_caps(p, setgroups_ok, err) < 0) return -1;
  if (rc_apply_no_new_privs(p, err) < 0) return -1;
  /* The runtime's procfs handle is the host's /proc (its pid namespace, mounted nowhere):
   * a program path such as /proc/self/fd/N/<pid>/root/... would reach, through it, the
   * root of any host process the container's user may ptrace-access — another pod's
   * processes, every host process with CAP_SYS_PTRACE (session-19 red team). It is let go
   * before the program is looked up; what follows reads the container's /proc. */
  rc_procfs_release();
  /* Looked up as the container's user, with its capabilities: what execve will see. */
  return rc_find_executable(p->args[0], p->env, exe, err);
}

void rc_close_inherited_fds(int first) {
  /* runc's init is a fresh exec that gets only stdio and the preserved fds; runcell's init
   * and exec'd processes are clones of this process and would hold, until their final
   * execve, every descriptor runcell inherited without close-on-exec. A host directory
   * among them is reachable through /proc/self/fd/N in a cwd or in the program's path
   * (CVE-2024-21626). runcell opens its own descriptors close-on-exec, so the ones without
   * it above the preserved range are the caller's leaks: nobody inside may have them. */
  DIR *d = opendir("/proc/self/fd");
  if (!d) return;
  int self = dirfd(d);
  struct dirent *de;
  while ((de = readdir(d))) {
    char *end = NULL;
    long fd = strtol(de->d_name, &end, 10);
    if (*end || end == de->d_name || fd < first || fd == self) continue;
    int fl = fcntl((int)fd, F_GETFD);
    if (fl >= 0 && !(fl & FD_CLOEXEC)) close((int)fd);
  }
  closedir(d);
}

int rc_verify_cwd_inside_root(const char *cwd, struct rc_error *err) {
  /* CVE-2024-21626: a cwd such as /proc/self/fd/N follows a descriptor this process still
   * holds (one the runtime inherited from its caller, say) to a directory outside the
   * container's root. The kernel reports such a cwd as "(unreachable)...", which getcwd
   * turns into ENOENT; the process must not run there. */
  char buf[PATH_MAX];
  if (!getcwd(buf, sizeof(buf)) && errno == ENOENT)
    return rc_err(err, 0,
                  "cwd (\"%s\") is outside of the container's root -- possible container "
                  "breakout detected",
                  cwd);
  return 0;
}

void rc_prepare_exec_fds(int preserve_fds, int keep) {
  /* Only stdio and the preserved fds reach the user program. */
  for (int fd = 3; fd < 3 + preserve_fds; fd++) {
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0) fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
  }
  /* The rest are closed now, not on exec: execve looks the program's path up while
   * close-on-exec fds are still open, and one of them in a path (/proc/self/fd/N/...)
   * would lead outside the container (CVE-2024-21626's program-path form; runc closes
   * them before exec too). Kept: keep (close-on-exec: where an exec failure is told)
   * and an xgate cell's loader, which stays open across the exec (its filter traps a
   * range that covers it). */
  cleanup_free int *kept = rc_xcalloc((size_t)preserve_fds + 2, sizeof(int));
  for (int i = 0; i < preserve_fds; i++) kept[i] = 3 + i;
  kept[preserve_fds] = keep;
  kept[preserve_fds + 1] = rc_xgate_active ? RC_XGATE_LOADER_FD : -1;
  rc_close_fds_except(kept, (size_t)preserve_fds + 2);
  if (keep >= 0) fcntl(keep, F_SETFD, FD_CLOEXEC);
}

int rc_init_enter_namespaces(struct rc_init_ctx *ctx, struct rc_error *err) {
  if (ctx->clone_flags & CLONE_NEWUSER) {
    /* Become the namespace's root, so what follows is done with its privileges. */
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
      return rc_err(err, errno, "become root in the new user namespace (is uid/gid 0 mapped?)");
  }
  if (rc_ns_join_paths(ctx->ns_fds, err) < 0) return -1;
  if (rc_ns_unshare_cgroup(ctx->cfg, err) < 0) return -1;
  rc_ns_close_paths(ctx->ns_fds);
  if (setsid() < 0) return rc_err(err, errno, "setsid");
  return 0;
}

int rc_init_create_container_hooks(const struct rc_init_ctx *ctx, struct rc_error *err) {
  const struct oci_hooks *h = &ctx->cfg->hooks;
  if (h->n_create_container == 0) return 0;
  if (chdir(ctx->rootfs) < 0) return rc_err(err, errno, "chdir to rootfs %s", ctx->rootfs);
  cleanup_free char *state = NULL;
  rc_hook_state_json(ctx, OCI_STATUS_CREATING, &state);
  return rc_hooks_run("createContainer", h->create_container, h->n_create_container, state, err);
}

int rc_init_start_container_hooks(const struct rc_init_ctx *ctx, struct rc_error *err) {
  const struct oci_hooks *h = &ctx->cfg->hooks;
  if (h->n_start_container == 0) return 0;
  cleanup_free char *state = NULL;
  rc_hook_state_json(ctx, OCI_STATUS_CREATED, &state);
  return rc_hooks_run("startContainer", h->start_container, h->n_start_container, state, err);
}

void rc_init_main(struct rc_init_ctx *ctx) {
  struct rc_error err = {0};
  const struct oci_config *cfg = ctx->cfg;
  const struct oci_process *p = &cfg->process;
  int sync = ctx->sync_fd;
  /* A foreground run blocks the signals it forwards; the container starts with none. */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* flock belongs to the open file description this fd shares with the parent: keeping it
   * would hold the container's lock until exec, and `start` would wait forever. */
  close(ctx->state_dir_fd);

  /* Die with the runtime while setting up; cleared once the container is created. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) _exit(1);
  /* Not dumpable: container processes must not open /proc/<init>/exe, which is the
   * runtime binary until exec (CVE-2019-5736). exec of the user program resets it. */
  prctl(PR_SET_DUMPABLE, 0);

  if (rc_sync_expect(sync, RC_SYNC_GO, "wait for parent", &err) < 0) _exit(1);
  /* First: a new cgroup namespace (entered next) is rooted at the cgroup we are in. */
  if (ctx->cgroup_join && rc_cgroup_join_self(ctx->cgroup_join, &err) < 0) fail(sync, &err);

  if (rc_init_enter_namespaces(ctx, &err) < 0) fail(sync, &err);
  if (setup_keyring(ctx, &err) < 0) fail(sync, &err);
  if ((ctx->clone_flags & CLONE_NEWNET) && loopback_up(&err) < 0) fail(sync, &err);
  if (rc_ns_apply_uts(cfg, ctx->clone_flags & CLONE_NEWUTS, &err) < 0) fail(sync, &err);
  if (rc_ns_apply_sysctl(cfg, &err) < 0) fail(sync, &err);

  struct rc_rootfs_opts ro = {
      .cfg = cfg,
      .rootfs = ctx->rootfs,
      .bundle = ctx->bundle,
      .no_pivot = ctx->no_pivot,
      .new_userns = (ctx->clone_flags & CLONE_NEWUSER) || ctx->ns_fds[OCI_NS_USER] >= 0,
      .new_netns = (ctx->clone_flags & CLONE_NEWNET) != 0,
      .new_cgroupns = oci_config_namespace(cfg, OCI_NS_CGROUP) != NULL,
      .after_pivot = setup_init_terminal,
      .after_pivot_arg = ctx,
  };
  if (rc_rootfs_prepare(&ro, &err) < 0) fail(sync, &err);
  if (prepare_cwd(ctx, &err) < 0) fail(sync, &err);
  if (ctx->views_dirfd >= 0 && setup_views(ctx, &err) < 0) fail(sync, &err);

  /* prestart and createRuntime hooks run in the runtime's namespaces: the parent's. */
  if (rc_sync_send(sync, RC_SYNC_HOOKS, &err) < 0) _exit(1);
  if (rc_sync_expect(sync, RC_SYNC_GO, "wait for createRuntime hooks", &err) < 0) _exit(1);

  /* As runc: in the container's namespaces, before pivot_root, with the rootfs as the
   * working directory (so hooks can prepare it with relative paths). */
  if (rc_init_create_container_hooks(ctx, &err) < 0) fail(sync, &err);

  /* with the terminal (setup_init_terminal) */
  if (rc_rootfs_finalize(&ro, &err) < 0) fail(sync, &err);
  if (chdir(p->cwd) < 0) {
    rc_err(&err, errno, "chdir to cwd (\"%s\") set in config.json", p->cwd);
    fail(sync, &err);
  }
  if (rc_verify_cwd_inside_root(p->cwd, &err) < 0) fail(sync, &err);

  char exe[PATH_MAX];
  char **exec_env = NULL;
  bool late_seccomp = false;
  int listener = -1;
  if (rc_process_finalize(cfg, p, (ctx->clone_flags & CLONE_NEWUSER) != 0, ctx->gate, &listener,
                          exe, &exec_env, &late_seccomp, &err) < 0)
    fail(sync, &err);
  /* The cell kernel that serves the routed syscalls is started by the parent with this
   * listener, before anything in the cell can make one. */
  if (listener >= 0) {
    if (rc_sync_send_fd(sync, RC_SYNC_LISTENER, listener, &err) < 0) _exit(1);
    close(listener);
  }

  prctl(PR_SET_PDEATHSIG, 0);
  if (rc_sync_send(sync, RC_SYNC_CREATED, &err) < 0) _exit(1);
  close(sync);

  int conn = -1;
  if (rc_wait_for_start(ctx->start_fd, &conn, &err) < 0) _exit(1);
  close(ctx->start_fd);

  if (rc_init_start_container_hooks(ctx, &err) < 0) fail(conn, &err);
  /* as runc: startContainer hooks run before the late filter, which could refuse them */
  if (cfg->has_linux && cfg->linux_.has_seccomp && late_seccomp &&
      rc_seccomp_load(&cfg->linux_.seccomp, &err) < 0)
    fail(conn, &err);

  rc_prepare_exec_fds(ctx->preserve_fds, conn);

  if (rc_xgate_active)
    rc_xgate_exec(exe, p->args, exec_env);
  else
    execve(exe, p->args, exec_env);
  rc_err(&err, errno, "exec %s", exe);
  fail(conn, &err);
}
