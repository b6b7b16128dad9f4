#include "runcell/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

static void oom(void) {
  static const char msg[] = "runcell: out of memory\n";
  (void)!write(2, msg, sizeof(msg) - 1);
  abort();
}

void *rc_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom();
  return p;
}

void *rc_xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) oom();
  return p;
}

void *rc_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) oom();
  return q;
}

char *rc_xstrdup(const char *s) {
  if (!s) return NULL;
  char *p = strdup(s);
  if (!p) oom();
  return p;
}

char *rc_xasprintf(const char *fmt, ...) {
  va_list ap;
  char *out = NULL;
  va_start(ap, fmt);
  int n = vasprintf(&out, fmt, ap);
  va_end(ap);
  if (n < 0) oom();
  return out;
}

ssize_t rc_write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, p + done, len - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    done += (size_t)n;
  }
  return (ssize_t)done;
}

ssize_t rc_read_all(int fd, void *buf, size_t len) {
  char *p = buf;
  size_t done = 0;
  while (done < len) {
    ssize_t n = read(fd, p + done, len - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) break;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

int rc_read_file_at(int dirfd, const char *path, size_t max, char **out, size_t *len,
                    struct rc_error *err) {
  cleanup_close int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return rc_err(err, errno, "open %s", path);
  return rc_read_fd(fd, path, max, out, len, err);
}

int rc_read_fd(int fd, const char *path, size_t max, char **out, size_t *len,
               struct rc_error *err) {
  size_t cap = 4096, used = 0;
  char *buf = rc_xmalloc(cap);
  for (;;) {
    if (used + 1 >= cap) {
      if (cap >= max + 1) {
        free(buf);
        return rc_err(err, EFBIG, "read %s: larger than %zu bytes", path, max);
      }
      cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
      buf = rc_xrealloc(buf, cap);
    }
    ssize_t n = read(fd, buf + used, cap - used - 1);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      free(buf);
      return rc_err(err, e, "read %s", path);
    }
    if (n == 0) break;
    used += (size_t)n;
    if (used > max) {
      free(buf);
      return rc_err(err, EFBIG, "read %s: larger than %zu bytes", path, max);
    }
  }
  buf[used] = '\0';
  *out = buf;
  if (len) *len = used;
  return 0;
}

int rc_read_file(const char *path, size_t max, char **out, size_t *len, struct rc_error *err) {
  return rc_read_file_at(AT_FDCWD, path, max, out, len, err);
}

int rc_write_file_at(int dirfd, const char *path, const char *data, size_t len,
                     struct rc_error *err) {
  cleanup_close int fd = openat(dirfd, path, O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return rc_err(err, errno, "open %s", path);
  if (rc_write_all(fd, data, len) < 0) return rc_err(err, errno, "write %s", path);
  return 0;
}

int rc_write_file(const char *path, const char *data, size_t len, struct rc_error *err) {
  return rc_write_file_at(AT_FDCWD, path, data, len, err);
}

/* The directory a descriptor names, for error messages only (never opened by it). */
static void dir_path_of(int dirfd, char *buf, size_t size) {
  if (dirfd == AT_FDCWD) {
    snprintf(buf, size, ".");
    return;
  }
  char link[64];
  snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
  ssize_t n = readlink(link, buf, size - 1);
  if (n <= 0) {
    snprintf(buf, size, "(directory fd %d)", dirfd);
    return;
  }
  buf[n] = '\0';
}

/* How many unpredictable names to try before deciding that someone is planting them. */
#define ATOMIC_TMP_TRIES 8
/* The part of the final name a temporary name keeps, so it stays within NAME_MAX. */
#define ATOMIC_TMP_NAME_KEEP 200

/* Creates the temporary file that will become dirfd/name; its name goes to tmp.
 *
 * The directory may be writable by someone less privileged than us (a pid file in a
 * directory the caller chose): a temporary name they can guess lets them plant a symlink
 * there that our open would follow, writing through it to any file. So the name is random,
 * and the open never follows a symlink nor reuses anything that exists (O_EXCL, which also
 * refuses a symlink at the name, dangling or not); whatever was planted is left alone and
 * another name tried. (O_TMPFILE would spare the name until the file is written, but a
 * linkat cannot replace an existing name, so a named step before the rename remains.) */
static int create_temp(int dirfd, const char *name, mode_t mode, char tmp[NAME_MAX + 1],
                       struct rc_error *err) {
  char dir[PATH_MAX];
  for (int tries = 0; tries < ATOMIC_TMP_TRIES; tries++) {
    uint64_t r = 0;
    ssize_t got;
    do {
      got = getrandom(&r, sizeof(r), 0);
    } while (got < 0 && errno == EINTR);
    if (got != (ssize_t)sizeof(r))
      return rc_err(err, got < 0 ? errno : EIO, "getrandom for a temporary name");
    snprintf(tmp, NAME_MAX + 1, ".%.*s.tmp.%016llx", ATOMIC_TMP_NAME_KEEP, name,
             (unsigned long long)r);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd >= 0) return fd;
    if (errno != EEXIST) {
      int e = errno;
      dir_path_of(dirfd, dir, sizeof(dir));
      return rc_err(err, e, "create a temporary file for %s/%s", dir, name);
    }
  }
  dir_path_of(dirfd, dir, sizeof(dir));
  return rc_err(err, EEXIST,
                "create a temporary file for %s/%s: %d random names were all taken (is someone "
                "else creating files in %s?)",
                dir, name, ATOMIC_TMP_TRIES, dir);
}

int rc_write_file_atomic(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
                         struct rc_error *err) {
  char tmp[NAME_MAX + 1];
  cleanup_close int fd = create_temp(dirfd, name, mode, tmp, err);
  if (fd < 0) return -1;
  if (rc_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
    int e = errno;
    unlinkat(dirfd, tmp, 0);
    return rc_err(err, e, "write %s", name); /* the random temporary name would tell nothing */
  }
  /* Within the one directory fd: a rename replaces a symlink at name, never its target. */
  if (renameat(dirfd, tmp, dirfd, name) < 0) {
    int e = errno;
    unlinkat(dirfd, tmp, 0);
    return rc_err(err, e, "rename %s to %s", tmp, name);
  }
  /* The rename is durable only once the directory entry is. */
  if (fsync(dirfd) < 0 && errno != EINVAL) return rc_err(err, errno, "fsync directory");
  return 0;
}

int rc_mkdir_p(const char *path, mode_t mode, struct rc_error *err) {
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
    return rc_err(err, ENAMETOOLONG, "mkdir %s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, mode) < 0 && errno != EEXIST) return rc_err(err, errno, "mkdir %s", buf);
    *p = '/';
  }
  if (mkdir(buf, mode) < 0 && errno != EEXIST) return rc_err(err, errno, "mkdir %s", buf);
  return 0;
}

static const struct {
  const char *name;
  int num;
} signal_names[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"ILL", SIGILL},
    {"TRAP", SIGTRAP},     {"ABRT", SIGABRT},   {"IOT", SIGIOT},   {"BUS", SIGBUS},
    {"FPE", SIGFPE},       {"KILL", SIGKILL},   {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2},     {"PIPE", SIGPIPE},   {"ALRM", SIGALRM}, {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD},   {"CLD", SIGCHLD},  {"CONT", SIGCONT},
    {"STOP", SIGSTOP},     {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},
    {"URG", SIGURG},       {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM},
    {"PROF", SIGPROF},     {"WINCH", SIGWINCH}, {"IO", SIGIO},     {"POLL", SIGPOLL},
    {"PWR", SIGPWR},       {"SYS", SIGSYS},
};

int rc_parse_signal(const char *s) {
  if (!s || !*s) return -1;
  if (isdigit((unsigned char)s[0])) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v <= 0 || v > SIGRTMAX) return -1;
    return (int)v;
  }
  const char *name = s;
  if (strncasecmp(name, "SIG", 3) == 0) name += 3;
  for (size_t i = 0; i < RC_ARRAY_SIZE(signal_names); i++)
    if (strcasecmp(name, signal_names[i].name) == 0) return signal_names[i].num;
  /* RTMIN, RTMIN+n, RTMAX, RTMAX-n */
  if (strncasecmp(name, "RTMIN", 5) == 0 || strncasecmp(name, "RTMAX", 5) == 0) {
    bool min = strncasecmp(name, "RTMIN", 5) == 0;
    const char *rest = name + 5;
    long off = 0;
    if (*rest) {
      char *end;
      if ((min && *rest != '+') || (!min && *rest != '-')) return -1;
      off = strtol(rest + 1, &end, 10);
      if (*end || off < 0) return -1;
    }
    int sig = min ? SIGRTMIN + (int)off : SIGRTMAX - (int)off;
    if (sig < SIGRTMIN || sig > SIGRTMAX) return -1;
    return sig;
  }
  return -1;
}

int64_t rc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rc_rfc3339_now(char *buf, size_t len) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  char base[32];
  strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, len, "%s.%09ldZ", base, ts.tv_nsec);
}

void rc_close_fds_from(int from) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, (unsigned)from, ~0U, 0) == 0) return;
#endif
  DIR *d = opendir("/proc/self/fd");
  if (!d) {
    for (int fd = from; fd < 1024; fd++) close(fd);
    return;
  }
  int dfd = dirfd(d);
  struct dirent *de;
  while ((de = readdir(d))) {
    char *end = NULL;
    long fd = strtol(de->d_name, &end, 10);
    if (end == de->d_name || *end != '\0') continue; /* "." and ".." */
    if (fd >= from && fd != dfd && fd <= INT_MAX) close((int)fd);
  }
  closedir(d);
}

int rc_check_preserved_fds(const char *cmd, int n, int own_fd, struct rc_error *err) {
  /* as runc: a descriptor that is not there is the caller's mistake, said now rather than
   * found missing by the container's process (or, where runcell's own descriptor took
   * the free number, handed to it) */
  for (int i = 0; i < n; i++)
    if (3 + i == own_fd || fcntl(3 + i, F_GETFD) < 0)
      return rc_err(err, 3 + i == own_fd ? EBADF : errno,
                    "%s: --preserve-fds %d: descriptor %d is not open", cmd, n, 3 + i);
  return 0;
}

static int compare_fds(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

void rc_close_fds_except(const int *keep, size_t n) {
  cleanup_free int *sorted = rc_xcalloc(n + 1, sizeof(int)); /* every entry kept, however many */
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (keep[i] > 2) sorted[k++] = keep[i];
  qsort(sorted, k, sizeof(int), compare_fds);
  unsigned from = 3;
  for (size_t i = 0; i < k; i++) {
    /* close_range is Linux 5.9: one by one before it */
    if ((unsigned)sorted[i] > from && syscall(SYS_close_range, from, sorted[i] - 1, 0) < 0)
      for (unsigned fd = from; fd < (unsigned)sorted[i]; fd++) close((int)fd);
    from = (unsigned)sorted[i] + 1;
  }
  if (syscall(SYS_close_range, from, ~0U, 0) < 0)
    for (unsigned fd = from; fd < 65536; fd++) close((int)fd);
}

int rc_thread_start_detached(void *(*fn)(void *), void *arg) {
  pthread_t thread;
  pthread_attr_t attr;
  int e = pthread_attr_init(&attr);
  if (e != 0) return e;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  e = pthread_create(&thread, &attr, fn, arg);
  pthread_attr_destroy(&attr);
  return e;
}

int rc_write_pid_file(const char *path, pid_t pid, struct rc_error *err) {
  /* containerd reads the pid file as a bare integer: no trailing newline. Written
   * atomically so a reader never sees a partial number. */
  char real_dir[PATH_MAX];
  if (snprintf(real_dir, sizeof(real_dir), "%s", path) >= (int)sizeof(real_dir))
    return rc_err(err, ENAMETOOLONG, "pid file %s", path);
  const char *slash = strrchr(path, '/');
  const char *name = slash ? slash + 1 : path;
  if (!slash)
    snprintf(real_dir, sizeof(real_dir), ".");
  else if (slash == path)
    snprintf(real_dir, sizeof(real_dir), "/");
  else
    real_dir[slash - path] = '\0';
  cleanup_close int dfd = open(real_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return rc_err(err, errno, "open pid file directory %s", real_dir);
  char buf[32];
  int n = snprintf(buf, sizeof(buf), "%d", (int)pid);
  if (rc_write_file_atomic(dfd, name, buf, (size_t)n, 0644, err) < 0)
    return rc_err_wrap(err, "write pid file %s", path);
  return 0;
}
