/* Checkpoint and restore with CRIU's command line. The arguments follow what runc 1.1
 * sends criu over RPC (libcontainer/container_linux.go, Checkpoint and Restore):
 *
 *   dump:    -t <init> --root <rootfs> --freeze-cgroup <freezer dir> --manage-cgroups
 *            --empty-ns net, external mounts for the bundle's bind mounts, the v1 cgroup
 *            binds, masked files and device nodes, external net/pid namespaces joined
 *            by path, -v4 -o dump.log; descriptors.json records the init's stdio.
 *   restore: --root <rootfs bound on a private mount point> --restore-detached
 *            --restore-sibling --pidfile, criu moved into the container's cgroup before it
 *            runs and --cgroup-root pointing there, the same external mounts mapped to
 *            their host sources, --inherit-fd for the stdio pipes and for namespaces
 *            joined by path, -v4 -o restore.log.
 *
 * runc's RPC notifications have CLI equivalents or are not needed: the restored pid comes
 * from --pidfile, prestart/createRuntime hooks run from an --action-script at
 * "setup-namespaces", and a pty master (orphan-pts-master) can only travel over RPC, so
 * containers with a terminal are refused with a message that says so. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "container_internal.h"
#include "linux/cgroups_internal.h"
#include "linux/rootfs_internal.h"
#include "runcell/cgroups.h"
#include "runcell/checkpoint.h"
#include "runcell/container.h"
#include "runcell/hooks.h"
#include "runcell/log.h"
#include "runcell/mode.h"
#include "runcell/rootfs.h"
#include "runcell/util.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define CRIU_MIN_VERSION 30000       /* 3.0.0: what runc 1.1 requires */
#define CRIU_EXT_NETNS_VERSION 31100 /* external network namespaces */
#define CRIU_EXT_PIDNS_VERSION 31500 /* external PID namespaces */
#define DESCRIPTORS_FILE "descriptors.json"
#define DUMP_LOG "dump.log"
#define RESTORE_LOG "restore.log"
#define CRIU_ROOT_DIR "criu-root"
#define CRIU_PID_FILE "criu-restore.pid"
#define HOOK_SCRIPT "runcell-criu-hook.sh"
#define EXT_NETNS_KEY "extRootNetNS"
#define EXT_PIDNS_KEY "extRootPidNS"
/* How much of criu's reasons goes into one error message. */
#define MAX_REASON_LINES 8
#define MAX_REASON_LEN 1400

static const char *criu_bin(const struct rc_criu_opts *c) {
  return c->criu && *c->criu ? c->criu : "criu";
}

/* ---------------------------------------------------------------------------------------
 * argv building
 * ------------------------------------------------------------------------------------- */

struct argv_buf {
  char **v;
  size_t n, cap;
};

static void av_add(struct argv_buf *a, const char *s) {
  if (a->n + 2 > a->cap) {
    a->cap = a->cap ? a->cap * 2 : 32;
    a->v = rc_xrealloc(a->v, a->cap * sizeof(char *));
  }
  a->v[a->n++] = rc_xstrdup(s);
  a->v[a->n] = NULL;
}

__attribute__((format(printf, 2, 3))) static void av_addf(struct argv_buf *a, const char *fmt,
                                                          ...) {
  va_list ap;
  char *s = NULL;
  va_start(ap, fmt);
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (n < 0) abort();
  av_add(a, s);
  free(s);
}

static void av_free(struct argv_buf *a) {
  for (size_t i = 0; i < a->n; i++) free(a->v[i]);
  free(a->v);
  a->v = NULL;
  a->n = a->cap = 0;
}

/* For the debug log: the command line criu runs with. */
static char *av_join(const struct argv_buf *a) {
  size_t len = 1;
  for (size_t i = 0; i < a->n; i++) len += strlen(a->v[i]) + 1;
  char *s = rc_xmalloc(len);
  s[0] = '\0';
  for (size_t i = 0; i < a->n; i++) {
    if (i) strcat(s, " ");
    strcat(s, a->v[i]);
  }
  return s;
}

/* A mount criu must not dump but take from outside: on dump key is the mount point in the
 * container and val the name recorded in the image; on restore key is that name and val
 * the host path to bind there. */
static void add_ext_mount(struct argv_buf *a, const char *key, const char *val) {
  av_add(a, "--external");
  av_addf(a, "mnt[%s]:%s", key, val);
}

/* ---------------------------------------------------------------------------------------
 * Running criu
 * ------------------------------------------------------------------------------------- */

struct fd_map {
  int src; /* our fd */
  int dst; /* the number criu gets it as */
};

struct criu_child {
  pid_t pid;
  int gate;   /* write end: a byte lets the child exec criu, EOF makes it give up */
  int status; /* read end: errno of a failed exec, EOF once criu is exec'd */
  int output; /* captured stdout and stderr, or -1 */
};

/* In the forked child: fds moved out of the way of the numbers criu gets, everything
 * else close-on-exec, signals as a fresh process has them. Never returns. */
__attribute__((noreturn)) static void criu_child_main(const char *bin, char *const argv[],
                                                      bool capture, int out_w,
                                                      const struct fd_map *map, size_t nmap,
                                                      int gate_r, int status_w) {
  /* The supervisor blocks the signals it forwards; criu relies on SIGCHLD and would
   * inherit the blocked mask across exec. */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);

  gate_r = fcntl(gate_r, F_DUPFD_CLOEXEC, 100);
  status_w = fcntl(status_w, F_DUPFD_CLOEXEC, 100);
  if (capture) out_w = fcntl(out_w, F_DUPFD_CLOEXEC, 100);
  char b;
  if (gate_r < 0 || status_w < 0 || read(gate_r, &b, 1) != 1) _exit(127);

  int e = 0;
  int moved[8];
  for (size_t i = 0; i < nmap && i < RC_ARRAY_SIZE(moved); i++) {
    moved[i] = fcntl(map[i].src, F_DUPFD_CLOEXEC, 100);
    if (moved[i] < 0) e = errno;
  }
  if (capture && !e) {
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(out_w, 1) < 0 || dup2(out_w, 2) < 0) e = errno;
  }
  if (!e && syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    /* before 5.11: one fcntl per fd */
    for (int fd = 3; fd < 4096; fd++) (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  for (size_t i = 0; !e && i < nmap && i < RC_ARRAY_SIZE(moved); i++)
    if (dup2(moved[i], map[i].dst) < 0) e = errno;
  if (!e) {
    execvp(bin, argv);
    e = errno;
  }
  (void)!write(status_w, &e, sizeof(e));
  _exit(127);
}

/* Forks the child that will run criu; it waits at the gate (criu_release) so the caller
 * can move it into a cgroup first. capture: stdin is /dev/null and stdout/stderr are read
 * back by criu_finish; otherwise criu has our stdio (a restore hands it on). */
static int criu_fork(const char *bin, char *const argv[], bool capture, const struct fd_map *map,
                     size_t nmap, struct criu_child *c, struct rc_error *err) {
  int gate[2] = {-1, -1}, status[2] = {-1, -1}, out[2] = {-1, -1};
  c->pid = -1;
  c->gate = c->status = c->output = -1;
  if (nmap > 8) return rc_err(err, EINVAL, "criu: too many inherited fds");
  if (pipe2(gate, O_CLOEXEC) < 0 || pipe2(status, O_CLOEXEC) < 0 ||
      (capture && pipe2(out, O_CLOEXEC) < 0)) {
    int e = errno;
    for (int i = 0; i < 2; i++) {
      if (gate[i] >= 0) close(gate[i]);
      if (status[i] >= 0) close(status[i]);
      if (out[i] >= 0) close(out[i]);
    }
    return rc_err(err, e, "criu: pipe");
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    for (int i = 0; i < 2; i++) {
      close(gate[i]);
      close(status[i]);
      if (out[i] >= 0) close(out[i]);
    }
    return rc_err(err, e, "criu: fork");
  }
  if (pid == 0) criu_child_main(bin, argv, capture, out[1], map, nmap, gate[0], status[1]);
  close(gate[0]);
  close(status[1]);
  if (out[1] >= 0) close(out[1]);
  c->pid = pid;
  c->gate = gate[1];
  c->status = status[0];
  c->output = out[0];
  return 0;
}

/* Lets the child exec criu; fails with the reason when it could not. */
static int criu_release(struct criu_child *c, const char *bin, struct rc_error *err) {
  char go = 1;
  if (rc_write_all(c->gate, &go, 1) < 0) return rc_err(err, errno, "criu: start %s", bin);
  close(c->gate);
  c->gate = -1;
  int e = 0;
  ssize_t n = rc_read_all(c->status, &e, sizeof(e));
  close(c->status);
  c->status = -1;
  if (n == (ssize_t)sizeof(e)) {
    while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    c->pid = -1;
    if (c->output >= 0) close(c->output);
    c->output = -1;
    return rc_err(err, e, "cannot run %s", bin);
  }
  return 0;
}

/* Reads what criu printed (when captured) and waits for it. */
static int criu_finish(struct criu_child *c, char **output, int *wstatus, struct rc_error *err) {
  size_t cap = 1024, used = 0;
  char *buf = rc_xmalloc(cap);
  while (c->output >= 0) {
    if (used + 512 > cap) {
      if (cap >= (1u << 20)) {
        /* keep draining, drop the rest: the log file has everything */
        char sink[4096];
        ssize_t n = read(c->output, sink, sizeof(sink));
        if (n > 0 || (n < 0 && errno == EINTR)) continue;
        break;
      }
      cap *= 2;
      buf = rc_xrealloc(buf, cap);
    }
    ssize_t n = read(c->output, buf + used, cap - used - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += (size_t)n;
  }
  buf[used] = '\0';
  if (c->output >= 0) close(c->output);
  c->output = -1;
  int st = 0;
  while (waitpid(c->pid, &st, 0) < 0) {
    if (errno != EINTR) {
      free(buf);
      c->pid = -1;
      return rc_err(err, errno, "wait for criu");
    }
  }
  c->pid = -1;
  *wstatus = st;
  if (output)
    *output = buf;
  else
    free(buf);
  return 0;
}

/* Ends a child that must not go on (closing the gate makes a waiting child exit). */
static void criu_abort(struct criu_child *c) {
  if (c->gate >= 0) close(c->gate);
  c->gate = -1;
  if (c->pid > 0) {
    kill(c->pid, SIGKILL);
    while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR) {
    }
  }
  c->pid = -1;
  if (c->status >= 0) close(c->status);
  if (c->output >= 0) close(c->output);
  c->status = c->output = -1;
}

/* Runs criu with captured output to the end. */
static int criu_run_captured(const char *bin, char *const argv[], char **output, int *wstatus,
                             struct rc_error *err) {
  struct criu_child c;
  if (criu_fork(bin, argv, true, NULL, 0, &c, err) < 0) return -1;
  if (criu_release(&c, bin, err) < 0) {
    criu_abort(&c);
    return -1;
  }
  return criu_finish(&c, output, wstatus, err);
}

static void describe_status(int st, char *buf, size_t len) {
  if (WIFEXITED(st))
    snprintf(buf, len, "exit status %d", WEXITSTATUS(st));
  else if (WIFSIGNALED(st))
    snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
  else
    snprintf(buf, len, "wait status %#x", st);
}

/* The last non-empty line of text (in place). */
static const char *last_line(char *text) {
  size_t n = strlen(text);
  while (n && (text[n - 1] == '\n' || text[n - 1] == ' ')) text[--n] = '\0';
  char *nl = strrchr(text, '\n');
  return nl ? nl + 1 : text;
}

/* Appends one reason to the list, skipping a repeat of the previous one. */
static void add_reason(char *out, size_t cap, size_t *count, const char *msg) {
  size_t used = strlen(out);
  const char *prev = out;
  const char *sep = NULL;
  for (const char *p = strstr(out, "; "); p; p = strstr(p + 2, "; ")) sep = p;
  if (sep) prev = sep + 2;
  if (*count && strcmp(prev, msg) == 0) return;
  if (*count >= MAX_REASON_LINES) {
    if (!strstr(out, "; ...") && used + 6 < cap) strcat(out, "; ...");
    return;
  }
  snprintf(out + used, cap - used, "%s%s", *count ? "; " : "", msg);
  (*count)++;
}

/* criu's own reasons: the "Error (file:line): message" lines of its log, messages only.
 * NULL when the log has none (or cannot be read). */
static char *log_reasons(const char *log_path) {
  cleanup_fclose FILE *f = fopen(log_path, "re");
  if (!f) return NULL;
  char reasons[MAX_REASON_LEN] = "";
  size_t count = 0;
  cleanup_free char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, f)) > 0) {
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    const char *e = strstr(line, "Error (");
    if (!e) continue;
    const char *msg = strstr(e, "): ");
    msg = msg ? msg + 3 : e;
    if (*msg) add_reason(reasons, sizeof(reasons), &count, msg);
  }
  return count ? rc_xstrdup(reasons) : NULL;
}

/* "criu failed: <criu's reasons> (log: <path>)": what criu said, else what it printed,
 * else how it ended. */
static int criu_failed(const char *log_path, char *output, int wstatus, struct rc_error *err) {
  cleanup_free char *reasons = log_reasons(log_path);
  if (reasons) return rc_err(err, 0, "criu failed: %s (log: %s)", reasons, log_path);
  char how[64];
  describe_status(wstatus, how, sizeof(how));
  const char *said = output ? last_line(output) : "";
  if (*said) return rc_err(err, 0, "criu failed: %s: %s (log: %s)", how, said, log_path);
  return rc_err(err, 0, "criu failed: %s (log: %s)", how, log_path);
}

/* criu -V: "Version: 3.17.1" -> 31701. */
static int criu_version(const char *bin, int *version, struct rc_error *err) {
  char *const argv[] = {(char *)bin, (char *)"-V", NULL};
  cleanup_free char *out = NULL;
  int st = 0;
  if (criu_run_captured(bin, argv, &out, &st, err) < 0)
    return rc_err_wrap(err, "CRIU version check failed");
  const char *v = strstr(out, "Version: ");
  long parts[3] = {0, 0, 0};
  int n_parts = 0;
  if (v) {
    const char *p = v + strlen("Version: ");
    for (; n_parts < 3; n_parts++) {
      char *end;
      errno = 0;
      parts[n_parts] = strtol(p, &end, 10);
      if (end == p || errno || parts[n_parts] < 0 || parts[n_parts] > 99) break;
      p = end;
      if (*p != '.') {
        n_parts++;
        break;
      }
      p++;
    }
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || n_parts < 2) {
    char how[64];
    describe_status(st, how, sizeof(how));
    const char *said = last_line(out);
    return rc_err(err, 0, "CRIU version check failed: %s -V: %s%s%s", bin, how, *said ? ": " : "",
                  said);
  }
  *version = (int)(parts[0] * 10000 + parts[1] * 100 + parts[2]);
  if (*version < CRIU_MIN_VERSION)
    return rc_err(err, 0, "CRIU version %d must be %d or higher", *version, CRIU_MIN_VERSION);
  rc_debug("using criu %d at %s", *version, bin);
  return 0;
}

/* `criu check --feature NAME`, for what runc asks criu's feature check about. */
static int criu_feature(const char *bin, const char *feature, const char *why,
                        struct rc_error *err) {
  char *const argv[] = {(char *)bin, (char *)"check", (char *)"--feature", (char *)feature, NULL};
  cleanup_free char *out = NULL;
  int st = 0;
  if (criu_run_captured(bin, argv, &out, &st, err) < 0)
    return rc_err_wrap(err, "CRIU feature check failed");
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
  /* criu check prints its reasons as "Error (file:line): message" lines */
  char reasons[MAX_REASON_LEN] = "";
  size_t count = 0;
  char *save = NULL;
  for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    const char *e = strstr(l, "Error (");
    const char *msg = e ? strstr(e, "): ") : NULL;
    add_reason(reasons, sizeof(reasons), &count, msg ? msg + 3 : l);
  }
  return rc_err(err, 0, "CRIU feature check failed: %s (needed by %s): %s", feature, why,
                count ? reasons : "criu check failed");
}

/* ---------------------------------------------------------------------------------------
 * Options shared by dump and restore
 * ------------------------------------------------------------------------------------- */

static bool valid_cgroups_mode(const char *m) {
  return !m || !strcmp(m, "soft") || !strcmp(m, "full") || !strcmp(m, "strict") ||
         !strcmp(m, "ignore");
}

static void add_common_args(struct argv_buf *a, const struct rc_criu_opts *c, const char *images,
                            const char *work, const char *log) {
  av_add(a, "--images-dir");
  av_add(a, images);
  av_add(a, "--work-dir");
  av_add(a, work);
  av_add(a, "--log-file");
  av_add(a, log);
  av_add(a, "-v4");
  av_addf(a, "--manage-cgroups=%s", c->manage_cgroups_mode ? c->manage_cgroups_mode : "soft");
  /* runc does not manage network devices: the network namespace's contents are left to
   * whoever set it up, on both sides */
  av_add(a, "--empty-ns");
  av_add(a, "net");
  if (c->shell_job) av_add(a, "--shell-job");
  if (c->tcp_established) av_add(a, "--tcp-established");
  if (c->ext_unix_sk) av_add(a, "--ext-unix-sk");
  if (c->file_locks) av_add(a, "--file-locks");
  if (c->auto_dedup) av_add(a, "--auto-dedup");
}

/* runc's criu configuration file: the org.criu.config annotation names one ("" for
 * none), else /etc/criu/runc.conf. Like criu over RPC, a file that does not exist is
 * ignored. */
static void add_config_file(struct argv_buf *a, const struct oci_config *cfg) {
  const char *file = oci_config_annotation(cfg, "org.criu.config");
  if (!file) file = "/etc/criu/runc.conf";
  struct stat st;
  if (!*file || stat(file, &st) < 0) return;
  av_add(a, "--config");
  av_add(a, file);
}

/* Makes dir (mkdir -p, 0700) and returns its canonical path. */
static int prepare_dir(const char *dir, const char *what, char **out, struct rc_error *err) {
  if (rc_mkdir_p(dir, 0700, err) < 0) return rc_err_wrap(err, "%s", what);
  char real[PATH_MAX];
  if (!realpath(dir, real)) return rc_err(err, errno, "%s %s", what, dir);
  *out = rc_xstrdup(real);
  return 0;
}

/* The host hierarchies the container's cgroup mount shows (v1 and hybrid hosts, no cgroup
 * namespace): runcell binds the container's cgroup of each hierarchy mounted directly
 * under /sys/fs/cgroup at <destination>/<name>. */
static void add_cgroup_bind_mounts(struct argv_buf *a, const struct oci_mount *m,
                                   const char *cgpath, bool restore) {
  const struct rc_cg_layout *l = rc_cg_layout();
  char dest[PATH_MAX];
  rc_clean_path(m->destination, dest, sizeof(dest));
  for (size_t i = 0; i < l->n; i++) {
    const struct rc_cg_hier *h = &l->hiers[i];
    if (h->v2) continue;
    const char *base = strrchr(h->mount, '/');
    if (!base || strncmp(h->mount, "/sys/fs/cgroup/", strlen("/sys/fs/cgroup/")) != 0 ||
        base != h->mount + strlen("/sys/fs/cgroup"))
      continue;
    cleanup_free char *key = rc_xasprintf("%s%s", strcmp(dest, "/") ? dest : "", base);
    if (!restore) {
      add_ext_mount(a, key, key);
      continue;
    }
    /* the mount shows the hierarchy from its root field down */
    const char *rel = cgpath;
    size_t rl = strlen(h->root);
    if (strcmp(h->root, "/") != 0 && strncmp(cgpath, h->root, rl) == 0 &&
        (cgpath[rl] == '/' || cgpath[rl] == '\0'))
      rel = cgpath + rl;
    cleanup_free char *src = rc_xasprintf("%s%s", h->mount, strcmp(rel, "/") ? rel : "");
    add_ext_mount(a, key, src);
  }
}

static const char *const default_device_paths[] = {"/dev/null",   "/dev/zero",    "/dev/full",
                                                   "/dev/random", "/dev/urandom", "/dev/tty"};

/* The mounts criu takes from outside, as runc declares them. */
static int add_external_mounts(struct argv_buf *a, const struct oci_config *cfg, const char *bundle,
                               const char *cgpath, pid_t pid, bool restore, struct rc_error *err) {
  bool has_cgroupns = oci_config_namespace(cfg, OCI_NS_CGROUP) != NULL;
  for (size_t i = 0; i < cfg->n_mounts; i++) {
    const struct oci_mount *m = &cfg->mounts[i];
    char dest[PATH_MAX];
    rc_clean_path(m->destination, dest, sizeof(dest));
    if (rc_mount_is_bind(m)) {
      if (!restore) {
        add_ext_mount(a, dest, dest);
      } else {
        const char *src = m->source ? m->source : "";
        cleanup_free char *abs =
            src[0] == '/' ? rc_xstrdup(src) : rc_xasprintf("%s/%s", bundle, src);
        add_ext_mount(a, dest, abs);
      }
    } else if (m->type && strcmp(m->type, "cgroup") == 0 && !has_cgroupns &&
               rc_cgroup_mode() != RC_CGROUP_UNIFIED) {
      add_cgroup_bind_mounts(a, m, cgpath, restore);
    }
  }
  if (cfg->has_linux && cfg->linux_.n_masked_paths > 0) {
    if (restore) {
      add_ext_mount(a, "/dev/null", "/dev/null");
    } else {
      /* masked files are bound over with /dev/null; masked directories get a tmpfs,
       * which criu dumps itself */
      for (size_t i = 0; i < cfg->linux_.n_masked_paths; i++) {
        const char *p = cfg->linux_.masked_paths[i];
        cleanup_free char *in_root = rc_xasprintf("/proc/%d/root%s", (int)pid, p);
        struct stat st;
        if (stat(in_root, &st) < 0) {
          if (errno == ENOENT) continue;
          return rc_err(err, errno, "masked path %s", p);
        }
        if (S_ISDIR(st.st_mode)) continue;
        add_ext_mount(a, p, "/dev/null");
      }
    }
  }
  /* device nodes are bound from the host where mknod is not allowed (user namespaces) */
  for (size_t i = 0; i < RC_ARRAY_SIZE(default_device_paths); i++)
    add_ext_mount(a, default_device_paths[i], default_device_paths[i]);
  for (size_t i = 0; cfg->has_linux && i < cfg->linux_.n_devices; i++)
    add_ext_mount(a, cfg->linux_.devices[i].path, cfg->linux_.devices[i].path);
  return 0;
}

/* criu's namespace names: those of /proc/<pid>/ns. */
static const char *criu_ns_name(enum oci_ns_type t) {
  const char *name = oci_ns_proc_name(t);
  return name ? name : "?";
}

/* The cgroup criu freezes the container with: v1's freezer, else the v2 cgroup itself. */
static char *freezer_dir(const char *cgpath) {
  const struct rc_cg_layout *l = rc_cg_layout();
  const struct rc_cg_hier *h = NULL;
  for (size_t i = 0; i < l->n && !h; i++)
    if (!l->hiers[i].v2 && rc_cg_list_has(l->hiers[i].controllers, "freezer")) h = &l->hiers[i];
  for (size_t i = 0; i < l->n && !h; i++)
    if (l->hiers[i].v2) h = &l->hiers[i];
  if (!h) return NULL;
  const char *rel = cgpath;
  size_t rl = strlen(h->root);
  if (strcmp(h->root, "/") != 0 && strncmp(cgpath, h->root, rl) == 0 &&
      (cgpath[rl] == '/' || cgpath[rl] == '\0'))
    rel = cgpath + rl;
  return rc_xasprintf("%s%s", h->mount, strcmp(rel, "/") ? rel : "");
}

/* ---------------------------------------------------------------------------------------
 * Checkpoint
 * ------------------------------------------------------------------------------------- */

/* The init's stdio as /proc shows it ("pipe:[123]", "/dev/null", ...): a restore hands
 * new pipes in for the ones that were pipes. */
static int write_descriptors(const char *images, pid_t pid, struct rc_error *err) {
  json_t *arr = json_array();
  for (int fd = 0; fd < 3; fd++) {
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)pid, fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    target[n > 0 ? n : 0] = '\0';
    json_array_append_new(arr, json_string(target));
  }
  char *text = json_dumps(arr, JSON_COMPACT);
  json_decref(arr);
  if (!text) return rc_err(err, ENOMEM, "serialize %s", DESCRIPTORS_FILE);
  cleanup_close int dfd = open(images, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int r = dfd < 0 ? rc_err(err, errno, "open %s", images)
                  : rc_write_file_atomic(dfd, DESCRIPTORS_FILE, text, strlen(text), 0600, err);
  free(text);
  return r;
}

/* runc's checks of --parent-path: relative, and a directory under the image path. */
static int check_parent_path(const char *images, const char *parent, struct rc_error *err) {
  if (parent[0] == '/') return rc_err(err, 0, "--parent-path must be relative");
  cleanup_free char *real = rc_xasprintf("%s/%s", images, parent);
  struct stat st;
  if (stat(real, &st) < 0) return rc_err(err, errno, "invalid --parent-path: stat %s", real);
  if (!S_ISDIR(st.st_mode)) return rc_err(err, ENOTDIR, "invalid --parent-path: %s", real);
  return 0;
}

/* ADDRESS:PORT ([v6]:PORT too) into its parts, with runc's messages. */
static int parse_page_server(const char *s, char **addr, int *port, struct rc_error *err) {
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s || !colon[1])
    return rc_err(err, 0, "Use --page-server ADDRESS:PORT to specify page server");
  const char *a = s, *a_end = colon;
  if (*a == '[' && a_end[-1] == ']') {
    a++;
    a_end--;
  }
  if (a_end <= a) return rc_err(err, 0, "Use --page-server ADDRESS:PORT to specify page server");
  char *end;
  errno = 0;
  long p = strtol(colon + 1, &end, 10);
  if (errno || *end || p <= 0 || p > 65535) return rc_err(err, 0, "Invalid port number");
  *addr = rc_xasprintf("%.*s", (int)(a_end - a), a);
  *port = (int)p;
  return 0;
}

static int build_dump_args(const struct rc_checkpoint_opts *o, const struct oci_state *st,
                           const struct oci_config *cfg, const char *images, const char *work,
                           int version, struct argv_buf *a, struct rc_error *err) {
  const char *bin = criu_bin(&o->criu);
  av_add(a, bin);
  av_add(a, o->pre_dump ? "pre-dump" : "dump");
  av_add(a, "--tree");
  av_addf(a, "%d", (int)st->pid);
  add_common_args(a, &o->criu, images, work, DUMP_LOG);
  av_add(a, "--root");
  av_add(a, st->rootfs);
  if (o->leave_running) av_add(a, "--leave-running");
  if (st->cgroup_path) {
    cleanup_free char *fz = freezer_dir(st->cgroup_path);
    if (fz) {
      av_add(a, "--freeze-cgroup");
      av_add(a, fz);
    }
  }
  if (o->page_server) {
    cleanup_free char *addr = NULL;
    int port = 0;
    if (parse_page_server(o->page_server, &addr, &port, err) < 0) return -1;
    av_add(a, "--page-server");
    av_add(a, "--address");
    av_add(a, addr);
    av_add(a, "--port");
    av_addf(a, "%d", port);
  }
  if (o->parent_path) {
    av_add(a, "--prev-images-dir");
    av_add(a, o->parent_path);
    av_add(a, "--track-mem");
  }
  /* namespaces the config joins by path exist outside the container: criu records them
   * as external, and a restore must be handed them again */
  static const struct {
    enum oci_ns_type type;
    const char *key;
    int min_version;
  } ext[] = {{OCI_NS_NETWORK, EXT_NETNS_KEY, CRIU_EXT_NETNS_VERSION},
             {OCI_NS_PID, EXT_PIDNS_KEY, CRIU_EXT_PIDNS_VERSION}};
  for (size_t i = 0; i < RC_ARRAY_SIZE(ext); i++) {
    const struct oci_namespace *ns = oci_config_namespace(cfg, ext[i].type);
    if (!ns || !ns->path || version < ext[i].min_version) continue;
    struct stat sb;
    if (stat(ns->path, &sb) < 0)
      return rc_err(err, errno, "%s namespace %s", oci_ns_type_name(ext[i].type), ns->path);
    av_add(a, "--external");
    av_addf(a, "%s[%llu]:%s", criu_ns_name(ext[i].type), (unsigned long long)sb.st_ino, ext[i].key);
  }
  add_config_file(a, cfg);
  /* a pre-dump only copies memory: no mounts or descriptors to describe */
  if (!o->pre_dump &&
      add_external_mounts(a, cfg, st->bundle, st->cgroup_path, st->pid, false, err) < 0)
    return -1;
  return 0;
}

int rc_container_checkpoint(const struct rc_checkpoint_opts *o, struct rc_error *err) {
  struct rc_container_dir dir;
  struct oci_state *st = NULL;
  if (rc_state_dir_open(o->root, o->id, &dir, err) < 0) return -1;
  if (rc_state_load(&dir, &st, err) < 0) {
    rc_state_dir_close(&dir);
    return -1;
  }
  rc_state_refresh(st);
  int rc = -1;
  struct oci_config *cfg = NULL;
  struct argv_buf a = {0};
  char *images = NULL, *work = NULL, *out = NULL, *log = NULL;
  const char *bin = criu_bin(&o->criu);

  if (st->status != OCI_STATUS_RUNNING && st->status != OCI_STATUS_PAUSED) {
    rc_err(err, 0, "Container cannot be checkpointed in %s state", oci_status_name(st->status));
    goto out;
  }
  /* A gated cell's syscall filter notifies the cell kernel, a listener outside the
   * container that criu can neither dump nor give back: say so instead of letting criu
   * fail obscurely (or restore a cell without its gate). */
  if (rc_state_is_microvm(st)) {
    rc_err(err, 0, "checkpoint: container %s is a microVM, which cannot be checkpointed yet",
           o->id);
    goto out;
  }
  if (rc_state_gate_on(st)) {
    rc_err(err, 0,
           "checkpoint: container %s is a cell with its syscall gate on, which cannot be "
           "checkpointed yet; run it with the annotation " RC_ANNOTATION_GATE
           "=off (or the runcell-native handler) to checkpoint it",
           o->id);
    goto out;
  }
  if (rc_container_load_config(o->root, o->id, &cfg, err) < 0) goto out;
  if (cfg->process.terminal) {
    rc_err(err, 0,
           "checkpoint: container %s has a terminal (process.terminal): its pty master can "
           "only be handed back through criu's RPC mode, which runcell does not use; "
           "not supported",
           o->id);
    goto out;
  }
  if (!valid_cgroups_mode(o->criu.manage_cgroups_mode)) {
    rc_err(err, 0, "Invalid manage cgroups mode");
    goto out;
  }
  if (o->page_server) {
    cleanup_free char *addr = NULL;
    int port;
    if (parse_page_server(o->page_server, &addr, &port, err) < 0) goto out;
  }
  if (prepare_dir(o->criu.image_path, "image path", &images, err) < 0) goto out;
  if (o->parent_path && check_parent_path(images, o->parent_path, err) < 0) goto out;
  int version = 0;
  if (criu_version(bin, &version, err) < 0) goto out;
  if (o->pre_dump && criu_feature(bin, "mem_dirty_track", "--pre-dump", err) < 0) goto out;
  if (prepare_dir(o->criu.work_path ? o->criu.work_path : images, "work path", &work, err) < 0)
    goto out;

  if (build_dump_args(o, st, cfg, images, work, version, &a, err) < 0) goto out;
  if (!o->pre_dump && write_descriptors(images, st->pid, err) < 0) goto out;
  {
    cleanup_free char *line = av_join(&a);
    rc_debug("checkpoint %s: %s", o->id, line);
  }
  int wstatus = 0;
  log = rc_xasprintf("%s/%s", work, DUMP_LOG);
  /* a log left by an earlier run must not pass for this run's reasons */
  (void)unlink(log);
  if (criu_run_captured(bin, a.v, &out, &wstatus, err) < 0) goto out;
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    criu_failed(log, out, wstatus, err);
    goto out;
  }
  rc = 0;
out:
  /* the lock goes before delete takes it again */
  rc_state_dir_close(&dir);
  if (rc == 0 && !o->leave_running && !o->pre_dump) {
    /* criu ended the container's processes: what is left is runc's destroy */
    struct rc_error derr;
    if (rc_container_delete(o->root, o->id, true, &derr) < 0)
      rc_warn("checkpoint %s: delete the checkpointed container: %s", o->id, derr.msg);
  }
  free(out);
  free(log);
  free(images);
  free(work);
  av_free(&a);
  oci_config_free(cfg);
  oci_state_free(st);
  return rc;
}

/* ---------------------------------------------------------------------------------------
 * Restore
 * ------------------------------------------------------------------------------------- */

/* descriptors.json: the init's stdio at checkpoint time. */
static int read_descriptors(const char *images, char ***out, struct rc_error *err) {
  cleanup_free char *path = rc_xasprintf("%s/%s", images, DESCRIPTORS_FILE);
  cleanup_free char *text = NULL;
  size_t len = 0;
  if (rc_read_file(path, 1 << 20, &text, &len, err) < 0) {
    if (err->code == ENOENT)
      return rc_err(err, ENOENT, "restore: %s is not a checkpoint: open %s", images, path);
    return -1;
  }
  json_error_t je;
  json_t *arr = json_loadb(text, len, 0, &je);
  if (!arr || !json_is_array(arr)) {
    if (arr) json_decref(arr);
    return rc_err(err, 0, "restore: %s: not a JSON array of strings", path);
  }
  size_t n = json_array_size(arr);
  char **fds = rc_xcalloc(n + 1, sizeof(char *));
  for (size_t i = 0; i < n; i++) {
    const char *s = json_string_value(json_array_get(arr, i));
    fds[i] = rc_xstrdup(s ? s : "");
  }
  json_decref(arr);
  *out = fds;
  return 0;
}

static void free_strv(char **v) {
  for (size_t i = 0; v && v[i]; i++) free(v[i]);
  free(v);
}

static bool under_tmpfs(const char *dest, const struct oci_config *cfg) {
  for (size_t i = 0; i < cfg->n_mounts; i++) {
    const struct oci_mount *m = &cfg->mounts[i];
    if (!m->type || strcmp(m->type, "tmpfs") != 0 || rc_mount_is_bind(m)) continue;
    char t[PATH_MAX];
    rc_clean_path(m->destination, t, sizeof(t));
    size_t n = strlen(t);
    if (strncmp(dest, t, n) == 0 && dest[n] == '/') return true;
  }
  return false;
}

/* The mount points criu mounts on must exist in the rootfs, as create would have made
 * them; those on a tmpfs come back with the tmpfs's contents. */
static int prepare_mount_points(const struct oci_config *cfg, const char *rootfs,
                                const char *bundle, struct rc_error *err) {
  cleanup_close int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) return rc_err(err, errno, "open rootfs %s", rootfs);
  for (size_t i = 0; i < cfg->n_mounts; i++) {
    const struct oci_mount *m = &cfg->mounts[i];
    char dest[PATH_MAX];
    rc_clean_path(m->destination, dest, sizeof(dest));
    if (under_tmpfs(dest, cfg) || (m->type && strcmp(m->type, "cgroup") == 0 && !m->bind)) continue;
    int fd;
    if (rc_mount_is_bind(m)) {
      const char *src = m->source ? m->source : "";
      cleanup_free char *abs = src[0] == '/' ? rc_xstrdup(src) : rc_xasprintf("%s/%s", bundle, src);
      struct stat sb;
      if (stat(abs, &sb) < 0) return rc_err(err, errno, "restore: bind mount source %s", abs);
      fd = rc_mount_target(rootfd, dest, S_ISDIR(sb.st_mode), err);
    } else {
      fd = rc_mkdir_in_root(rootfd, dest, 0755, err);
    }
    if (fd < 0) return rc_err_wrap(err, "restore: mount point %s", dest);
    close(fd);
  }
  return 0;
}

/* Quotes s for sh inside single quotes. */
static char *sh_quote(const char *s) {
  size_t n = 3;
  for (const char *p = s; *p; p++) n += *p == '\'' ? 4 : 1;
  char *q = rc_xmalloc(n);
  char *o = q;
  *o++ = '\'';
  for (const char *p = s; *p; p++) {
    if (*p == '\'') {
      memcpy(o, "'\\''", 4);
      o += 4;
    } else {
      *o++ = *p;
    }
  }
  *o++ = '\'';
  *o = '\0';
  return q;
}

/* The action script criu runs at each step of a restore: runcell itself, to run the
 * prestart and createRuntime hooks once the namespaces exist.
 *
 * criu runs it as root by path, after runcell wrote it: whoever can write the directory it
 * lies in can swap it in between. So it goes in the container's state directory (dirfd,
 * real path state_dir), which this restore has just made, root's and 0700 under the state
 * root, and not in the work path, which may be any directory the caller names (even one
 * another user owns); criu's log and images are criu's to open there. */
static int write_hook_script(int dirfd, const char *state_dir, const char *root, const char *id,
                             char **path, struct rc_error *err) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n < 0) return rc_err(err, errno, "readlink /proc/self/exe");
  exe[n] = '\0';
  char real_root[PATH_MAX];
  if (!realpath(root, real_root)) return rc_err(err, errno, "state root %s", root);
  cleanup_free char *q_exe = sh_quote(exe);
  cleanup_free char *q_root = sh_quote(real_root);
  cleanup_free char *q_id = sh_quote(id);
  cleanup_free char *text = rc_xasprintf("#!/bin/sh\nexec %s --root %s restore %s %s\n", q_exe,
                                         q_root, RC_CRIU_HOOK_FLAG, q_id);
  if (rc_write_file_atomic(dirfd, HOOK_SCRIPT, text, strlen(text), 0700, err) < 0)
    return rc_err_wrap(err, "restore: criu's action script");
  *path = rc_xasprintf("%s/%s", state_dir, HOOK_SCRIPT);
  return 0;
}

int rc_criu_action_hook(const char *root, const char *id, struct rc_error *err) {
  const char *action = getenv("CRTOOLS_SCRIPT_ACTION");
  if (!action || strcmp(action, "setup-namespaces") != 0) return 0;
  const char *pid_s = getenv("CRTOOLS_INIT_PID");
  struct oci_state *st = NULL;
  struct oci_config *cfg = NULL;
  /* no lock: the restore that runs criu holds it */
  if (rc_state_read(root, id, &st, err) < 0) return -1;
  int rc = -1;
  if (rc_container_load_config(root, id, &cfg, err) < 0) goto out;
  st->status = OCI_STATUS_CREATING;
  long pid = pid_s ? strtol(pid_s, NULL, 10) : 0;
  st->pid = pid > 0 && pid <= INT_MAX ? (pid_t)pid : 0;
  {
    cleanup_free char *state_json = oci_state_to_hook_json(st);
    if (rc_hooks_run("prestart", cfg->hooks.prestart, cfg->hooks.n_prestart, state_json, err) < 0 ||
        rc_hooks_run("createRuntime", cfg->hooks.create_runtime, cfg->hooks.n_create_runtime,
                     state_json, err) < 0)
      goto out;
  }
  rc = 0;
out:
  oci_config_free(cfg);
  oci_state_free(st);
  return rc;
}

/* Everything a restore makes, so a failure can take it all back. */
struct restore_ctx {
  struct rc_container_dir dir;
  char *criu_root; /* mounted while set */
  char *cgpath;
  bool cgroup_made;
  pid_t pid; /* the restored init, once known */
  struct criu_child criu;
  int ns_fds[2];
};

static int unmount_criu_root(struct restore_ctx *r, struct rc_error *err) {
  if (!r->criu_root) return 0;
  if (umount2(r->criu_root, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
    return rc_err(err, errno, "unmount %s", r->criu_root);
  (void)rmdir(r->criu_root);
  free(r->criu_root);
  r->criu_root = NULL;
  return 0;
}

/* Waits (bounded) until the container's cgroup has no process left. */
static void empty_cgroup(const char *cgpath) {
  for (int tries = 0; tries < 500; tries++) {
    pid_t *pids = NULL;
    size_t n = 0;
    struct rc_error e;
    if (rc_cgroup_pids(cgpath, &pids, &n, &e) < 0) return;
    free(pids);
    if (n == 0) return;
    (void)rc_cgroup_kill_all(cgpath, SIGKILL, &e);
    usleep(10000);
  }
}

static void restore_undo(struct restore_ctx *r) {
  struct rc_error e;
  if (r->pid > 0) {
    kill(r->pid, SIGKILL);
    while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR) {
    }
  }
  criu_abort(&r->criu);
  if (r->cgroup_made) {
    empty_cgroup(r->cgpath);
    if (rc_cgroup_destroy(r->cgpath, &e) < 0) rc_warn("cleanup after failed restore: %s", e.msg);
  }
  if (unmount_criu_root(r, &e) < 0) {
    /* the state directory holds the rootfs's bind mount: removing it would empty the
     * rootfs, so it stays */
    rc_warn("cleanup after failed restore: %s; %s left in place", e.msg, r->dir.path);
    rc_state_dir_close(&r->dir);
    return;
  }
  if (r->dir.dirfd >= 0 && rc_state_dir_remove(&r->dir, &e) < 0)
    rc_warn("cleanup after failed restore: %s", e.msg);
}

/* A private mount namespace (slave to the host's) for the rootfs bind criu restores
 * into, so that mount never appears on the host and goes away with this process. */
static int private_mount_ns(struct rc_error *err) {
  if (unshare(CLONE_NEWNS) < 0) return rc_err(err, errno, "restore: unshare mount namespace");
  if (mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0)
    return rc_err(err, errno, "restore: make / a slave mount");
  return 0;
}

static int build_restore_args(const struct rc_restore_opts *o, const struct oci_config *cfg,
                              const char *bundle, const char *images, const char *work,
                              const char *pid_file, char **descriptors, int version,
                              struct restore_ctx *r, struct argv_buf *a, struct fd_map *map,
                              size_t *nmap, struct rc_error *err) {
  av_add(a, criu_bin(&o->criu));
  av_add(a, "restore");
  add_common_args(a, &o->criu, images, work, RESTORE_LOG);
  av_add(a, "--root");
  av_add(a, r->criu_root);
  /* criu returns once the tree runs; the init is created as criu's sibling, our child */
  av_add(a, "--restore-detached");
  av_add(a, "--restore-sibling");
  av_add(a, "--pidfile");
  av_add(a, pid_file);
  av_add(a, "--evasive-devices");
  av_add(a, "--cgroup-root");
  av_add(a, r->cgpath);
  if (o->lsm_profile) {
    av_add(a, "--lsm-profile");
    av_add(a, o->lsm_profile);
  }
  if (o->lsm_mount_context) {
    av_add(a, "--lsm-mount-context");
    av_add(a, o->lsm_mount_context);
  }
  add_config_file(a, cfg);

  int next_fd = 3;
  for (size_t i = 0; cfg->has_linux && i < cfg->linux_.n_namespaces; i++) {
    const struct oci_namespace *ns = &cfg->linux_.namespaces[i];
    if (!ns->path) continue;
    if (ns->type == OCI_NS_NETWORK || ns->type == OCI_NS_PID) {
      int min = ns->type == OCI_NS_NETWORK ? CRIU_EXT_NETNS_VERSION : CRIU_EXT_PIDNS_VERSION;
      if (version < min) continue;
      int fd = open(ns->path, O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        return rc_err(err, errno, "restore: requested %s namespace %s does not exist",
                      oci_ns_type_name(ns->type), ns->path);
      r->ns_fds[ns->type == OCI_NS_NETWORK ? 0 : 1] = fd;
      map[*nmap] = (struct fd_map){.src = fd, .dst = next_fd};
      (*nmap)++;
      av_add(a, "--inherit-fd");
      av_addf(a, "fd[%d]:%s", next_fd, ns->type == OCI_NS_NETWORK ? EXT_NETNS_KEY : EXT_PIDNS_KEY);
      next_fd++;
      continue;
    }
    if (ns->type == OCI_NS_CGROUP)
      return rc_err(err, 0, "restore: criu cannot join a cgroup namespace by path (%s)", ns->path);
    av_add(a, "--join-ns");
    av_addf(a, "%s:%s", criu_ns_name(ns->type), ns->path);
  }
  /* the stdio pipes of the checkpointed init are replaced by ours */
  for (size_t i = 0; descriptors[i]; i++) {
    if (!strstr(descriptors[i], "pipe:")) continue;
    av_add(a, "--inherit-fd");
    av_addf(a, "fd[%zu]:%s", i, descriptors[i]);
  }
  return add_external_mounts(a, cfg, bundle, r->cgpath, 0, true, err);
}

static int read_restored_pid(const char *path, pid_t *pid, struct rc_error *err) {
  cleanup_free char *text = NULL;
  if (rc_read_file(path, 64, &text, NULL, err) < 0)
    return rc_err_wrap(err, "restore: criu's pid file");
  char *end;
  long v = strtol(text, &end, 10);
  if (v <= 0 || (*end && *end != '\n'))
    return rc_err(err, 0, "restore: criu's pid file %s holds \"%s\"", path, text);
  *pid = (pid_t)v;
  return 0;
}

static int resolve_rootfs(const struct oci_config *cfg, const char *bundle, char **out,
                          struct rc_error *err) {
  cleanup_free char *joined = cfg->root_path[0] == '/'
                                  ? rc_xstrdup(cfg->root_path)
                                  : rc_xasprintf("%s/%s", bundle, cfg->root_path);
  char real[PATH_MAX];
  if (!realpath(joined, real)) return rc_err(err, errno, "invalid rootfs: stat %s", joined);
  struct stat sb;
  if (stat(real, &sb) < 0 || !S_ISDIR(sb.st_mode))
    return rc_err(err, ENOTDIR, "invalid rootfs: %s", real);
  *out = rc_xstrdup(real);
  return 0;
}

/* Chooses the mode as create would (handler, annotations, floors) and refuses anything but a
 * cell with its gate off, before anything exists. criu gives back the processes as the
 * image recorded them, seccomp filters included: the gate is not among them (a gated cell
 * cannot be checkpointed, and an image may come from a native container or be crafted), and
 * nothing of runcell's could add it to a restored tree. Restoring what the handler and
 * annotations ask to be a gated cell or a microVM would silently give less isolation. */
static int choose_restored_mode(const char *id, const struct oci_config *cfg,
                                struct rc_mode_choice *mode, struct rc_error *err) {
  if (rc_mode_choose(cfg, mode, err) < 0) return -1;
  if (mode->mode == RC_MODE_MICROVM)
    return rc_err(err, 0,
                  "restore: container %s would be a microVM (chosen by %s): runcell restores "
                  "only native containers (a cell with the gate off), because criu restores "
                  "the checkpointed processes on the host kernel, not in a guest",
                  id, mode->source);
  if (mode->gate)
    return rc_err(err, 0,
                  "restore: container %s would be a cell with its gate on (chosen by %s): "
                  "runcell restores only native containers (gate off), because criu restores "
                  "the checkpointed process's own seccomp state, not the gate; restore it "
                  "with the annotation " RC_ANNOTATION_GATE "=off (or the runcell-native handler)",
                  id, mode->gate_source);
  rc_info("container %s: restore: %s mode (%s), gate off (%s)", id, rc_mode_name(mode->mode),
          mode->source, mode->gate_source);
  return 0;
}

int rc_container_restore(const struct rc_restore_opts *o, struct rc_restored *out,
                         struct rc_error *err) {
  out->pid = -1;
  out->pidfd = -1;
  if (rc_state_validate_id(o->id, err) < 0) return -1;
  const char *bin = criu_bin(&o->criu);
  char bundle[PATH_MAX];
  if (!realpath(o->bundle ? o->bundle : ".", bundle))
    return rc_err(err, errno, "bundle %s", o->bundle ? o->bundle : ".");
  struct oci_config *cfg = NULL;
  if (oci_config_load(bundle, &cfg, err) < 0) return -1;

  int rc = -1;
  struct restore_ctx r = {.dir = {.dirfd = -1},
                          .criu = {.pid = -1, .gate = -1, .status = -1, .output = -1},
                          .ns_fds = {-1, -1}};
  struct argv_buf a = {0};
  char **descriptors = NULL;
  char *images = NULL, *work = NULL, *rootfs = NULL, *hook_script = NULL, *pid_file = NULL,
       *log = NULL;
  struct oci_device_cgroup *owned_rules = NULL;
  struct oci_state st = {0};
  struct oci_key_value *annotations = NULL;
  size_t n_annotations = 0;

  struct rc_mode_choice mode;
  if (choose_restored_mode(o->id, cfg, &mode, err) < 0) goto out;
  if (!cfg->has_process) {
    rc_err(err, 0, "config.json: process: is required to restore");
    goto out;
  }
  if (cfg->process.terminal) {
    rc_err(err, 0,
           "restore: the container has a terminal (process.terminal): its pty master can only "
           "be handed over through criu's RPC mode, which runcell does not use; not supported");
    goto out;
  }
  if (!valid_cgroups_mode(o->criu.manage_cgroups_mode)) {
    rc_err(err, 0, "Invalid manage cgroups mode");
    goto out;
  }
  {
    char real[PATH_MAX];
    struct stat sb;
    if (!realpath(o->criu.image_path, real) || stat(real, &sb) < 0) {
      rc_err(err, errno, "restore: image path %s", o->criu.image_path);
      goto out;
    }
    if (!S_ISDIR(sb.st_mode)) {
      rc_err(err, ENOTDIR, "restore: image path %s", o->criu.image_path);
      goto out;
    }
    images = rc_xstrdup(real);
  }
  if (read_descriptors(images, &descriptors, err) < 0) goto out;
  if (resolve_rootfs(cfg, bundle, &rootfs, err) < 0) goto out;
  if (rc_cgroup_resolve_path(cfg->has_linux ? cfg->linux_.cgroups_path : NULL, o->id, &r.cgpath,
                             err) < 0)
    goto out;
  if (rc_state_dir_create(o->root, o->id, &r.dir, err) < 0) goto out;

  /* a native container (choose_restored_mode): the state says so, and processes exec'd
   * into it are not gated either */
  annotations = rc_state_annotations(cfg, &mode, &n_annotations);
  char created[64];
  rc_rfc3339_now(created, sizeof(created));
  st = (struct oci_state){
      .oci_version = (char *)OCI_VERSION,
      .id = (char *)o->id,
      .status = OCI_STATUS_CREATING,
      .bundle = bundle,
      .rootfs = rootfs,
      .created = created,
      .owner = (char *)"",
      .cgroup_path = r.cgpath,
      .mode = (char *)rc_mode_name(RC_MODE_CELL),
      .annotations = annotations,
      .n_annotations = n_annotations,
  };
  /* saved first, so that `delete --force` can find and undo a restore killed half-way */
  if (rc_state_save(&r.dir, &st, err) < 0) goto out;
  if (rc_write_file_atomic(r.dir.dirfd, "config.json", cfg->raw, strlen(cfg->raw), 0600, err) < 0)
    goto out;

  int version = 0;
  if (criu_version(bin, &version, err) < 0) goto out;
  if (prepare_dir(o->criu.work_path ? o->criu.work_path : images, "work path", &work, err) < 0)
    goto out;
  if (prepare_mount_points(cfg, rootfs, bundle, err) < 0) goto out;

  /* criu's root must be a mount point whose parent is not overmounted */
  if (private_mount_ns(err) < 0) goto out;
  {
    cleanup_free char *dir_path = rc_xasprintf("%s/%s", r.dir.path, CRIU_ROOT_DIR);
    if (mkdir(dir_path, 0755) < 0) {
      rc_err(err, errno, "restore: mkdir %s", dir_path);
      goto out;
    }
    char real[PATH_MAX];
    if (!realpath(dir_path, real)) {
      rc_err(err, errno, "restore: %s", dir_path);
      (void)rmdir(dir_path);
      goto out;
    }
    if (mount(rootfs, real, NULL, MS_BIND | MS_REC, NULL) < 0) {
      rc_err(err, errno, "restore: bind %s to %s", rootfs, real);
      (void)rmdir(real);
      goto out;
    }
    r.criu_root = rc_xstrdup(real);
  }

  char state_dir[PATH_MAX];
  if (!realpath(r.dir.path, state_dir)) {
    rc_err(err, errno, "restore: %s", r.dir.path);
    goto out;
  }
  pid_file = rc_xasprintf("%s/%s", state_dir, CRIU_PID_FILE);
  struct fd_map map[2];
  size_t nmap = 0;
  if (build_restore_args(o, cfg, bundle, images, work, pid_file, descriptors, version, &r, &a, map,
                         &nmap, err) < 0)
    goto out;
  if (cfg->hooks.n_prestart + cfg->hooks.n_create_runtime > 0) {
    if (write_hook_script(r.dir.dirfd, state_dir, o->root, o->id, &hook_script, err) < 0) goto out;
    av_add(&a, "--action-script");
    av_add(&a, hook_script);
  }
  {
    cleanup_free char *line = av_join(&a);
    rc_debug("restore %s: %s", o->id, line);
  }

  log = rc_xasprintf("%s/%s", work, RESTORE_LOG);
  (void)unlink(log);
  /* criu runs in the container's cgroup, which its restored tree then inherits */
  if (criu_fork(bin, a.v, false, map, nmap, &r.criu, err) < 0) goto out;
  {
    struct oci_resources res_copy;
    const struct oci_resources *res = rc_effective_resources(cfg, &res_copy, &owned_rules);
    if (rc_cgroup_create(r.cgpath, res, r.criu.pid, err) < 0) goto out;
    r.cgroup_made = true;
  }
  if (criu_release(&r.criu, bin, err) < 0) goto out;
  int wstatus = 0;
  if (criu_finish(&r.criu, NULL, &wstatus, err) < 0) goto out;
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    criu_failed(log, NULL, wstatus, err);
    goto out;
  }
  if (read_restored_pid(pid_file, &r.pid, err) < 0) goto out;
  (void)unlink(pid_file);

  out->pidfd = (int)syscall(SYS_pidfd_open, r.pid, 0);
  st.pid = r.pid;
  st.pid_start_time = rc_pid_start_time(r.pid);
  if (out->pidfd < 0 || st.pid_start_time == 0) {
    rc_err(err, ESRCH, "restore: the restored init (pid %d) is gone", (int)r.pid);
    goto out;
  }
  /* runc: the restored container's creation time is the restore */
  rc_rfc3339_now(created, sizeof(created));
  st.status = OCI_STATUS_RUNNING;
  if (rc_state_save(&r.dir, &st, err) < 0) goto out;
  if (unmount_criu_root(&r, err) < 0) goto out;
  rc_debug("restored container %s, init pid %d", o->id, (int)r.pid);
  out->pid = r.pid;
  rc = 0;

out:
  if (hook_script) (void)unlinkat(r.dir.dirfd, HOOK_SCRIPT, 0);
  if (rc < 0) {
    if (out->pidfd >= 0) close(out->pidfd);
    out->pidfd = -1;
    if (pid_file) (void)unlink(pid_file);
    restore_undo(&r);
  }
  for (int i = 0; i < 2; i++)
    if (r.ns_fds[i] >= 0) close(r.ns_fds[i]);
  rc_state_dir_close(&r.dir);
  free(owned_rules);
  free(annotations);
  free(r.criu_root);
  free(r.cgpath);
  free(pid_file);
  free(log);
  free(hook_script);
  free(images);
  free(work);
  free(rootfs);
  free_strv(descriptors);
  av_free(&a);
  oci_config_free(cfg);
  return rc;
}
