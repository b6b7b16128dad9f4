/* Resolving container paths inside the rootfs. A rootfs comes from an image and may hold
 * symlinks such as etc/evil -> /tmp/host-target or ../../.. meant to point a mount or a
 * device node at the host. Every lookup here treats the rootfs as "/": absolute symlinks
 * restart at the rootfs and ".." never climbs above it. openat2(RESOLVE_IN_ROOT) does this
 * in the kernel; where it is missing, rc_walk_in_root does it one component at a time. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rootfs_internal.h"
#include "runcell/rootfs.h"
#include "runcell/util.h"

/* The kernel's own limit on symlinks followed in one lookup. */
#define RC_MAX_SYMLINKS 40
/* openat2 answers EAGAIN when a concurrent rename makes a ".." unsafe to judge; the
 * lookup is simply retried a few times. */
#define RC_OPENAT2_RETRIES 32

void rc_fd_path(char buf[RC_FD_PATH_MAX], int fd) {
  snprintf(buf, RC_FD_PATH_MAX, "/proc/self/fd/%d", fd);
}

/* Cached after the first ENOSYS so the fallback is not re-probed on every lookup. */
static bool openat2_missing;

void rc_path_in_root_force_fallback(bool on) {
  openat2_missing = on;
}

/* Returns the fd, or -1 with errno; errno ENOSYS means "use the walker". */
static int openat2_in_root(int rootfd, const char *path, int flags, mode_t mode) {
  if (openat2_missing) {
    errno = ENOSYS;
    return -1;
  }
  struct open_how how = {
      .flags = (unsigned long long)(flags | O_CLOEXEC),
      /* the kernel rejects a mode without O_CREAT/O_TMPFILE (O_TMPFILE includes the
       * O_DIRECTORY bit, hence the full comparison) */
      .mode = ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) ? mode : 0,
      /* magic links (/proc/self/fd/N, /proc/N/root) jump anywhere; refuse them */
      .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
  };
  /* "" would need AT_EMPTY_PATH; the root itself is "." */
  const char *p = path;
  while (*p == '/') p++;
  if (!*p) p = ".";
  for (int i = 0; i < RC_OPENAT2_RETRIES; i++) {
    long fd = syscall(SYS_openat2, rootfd, p, &how, sizeof(how));
    if (fd >= 0) return (int)fd;
    if (errno == EAGAIN || errno == EINTR) continue;
    /* EPERM: a seccomp filter of an outer runtime that predates openat2 */
    if (errno == ENOSYS || errno == EPERM) {
      openat2_missing = true;
      errno = ENOSYS;
    }
    return -1;
  }
  return -1;
}

/* Directories walked through, from just below the root to the current one. ".." pops
 * this stack instead of asking the kernel for the parent, so a directory renamed outside
 * the root while we stand in it cannot lead the walk out. */
struct dirstack {
  int *fd;
  size_t n, cap;
};

static void dirstack_pop(struct dirstack *s) {
  if (s->n) close(s->fd[--s->n]);
}

static void dirstack_clear(struct dirstack *s) {
  while (s->n) dirstack_pop(s);
}

static void dirstack_push(struct dirstack *s, int fd) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 16;
    s->fd = rc_xrealloc(s->fd, s->cap * sizeof(*s->fd));
  }
  s->fd[s->n++] = fd;
}

static bool only_slashes(const char *p) {
  while (*p == '/') p++;
  return *p == '\0';
}

int rc_walk_in_root(int rootfd, const char *path, int flags, mode_t mode, bool mkdirs) {
  struct dirstack st = {0};
  char *todo = rc_xstrdup(path);
  const char *p = todo;
  int links = 0, result = -1, saved = 0;

  for (;;) {
    int cur = st.n ? st.fd[st.n - 1] : rootfd;
    while (*p == '/') p++;
    if (!*p) {
      /* path ended on a directory we already hold ("/", "a/..", "a/.") */
      result =
          openat(cur, ".", mkdirs ? O_PATH | O_DIRECTORY | O_CLOEXEC : flags | O_CLOEXEC, mode);
      saved = errno;
      break;
    }
    const char *end = strchrnul(p, '/');
    size_t len = (size_t)(end - p);
    if (len > NAME_MAX) {
      saved = ENAMETOOLONG;
      break;
    }
    char comp[NAME_MAX + 1];
    memcpy(comp, p, len);
    comp[len] = '\0';
    p = end;
    bool last = only_slashes(p);

    if (strcmp(comp, ".") == 0) continue;
    if (strcmp(comp, "..") == 0) {
      dirstack_pop(&st); /* at the root ".." is the root, as in chroot */
      continue;
    }

    /* O_PATH|O_NOFOLLOW opens a symlink itself, so what we inspect below is exactly what
     * we hold, with no window for a swap between a stat and an open. */
    int fd = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
      if (mkdirs) {
        if (mkdirat(cur, comp, mode) < 0 && errno != EEXIST) {
          saved = errno;
          break;
        }
        fd = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      } else if (last && (flags & O_CREAT)) {
        /* O_NOFOLLOW: a symlink planted here meanwhile makes this fail, not escape */
        result = openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
        saved = errno;
        break;
      }
    }
    if (fd < 0) {
      saved = errno;
      break;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
      saved = errno;
      close(fd);
      break;
    }

    if (S_ISLNK(sb.st_mode) && (!last || mkdirs || !(flags & O_NOFOLLOW))) {
      if (++links > RC_MAX_SYMLINKS) {
        close(fd);
        saved = ELOOP;
        break;
      }
      char target[PATH_MAX];
      ssize_t n = readlinkat(fd, "", target, sizeof(target));
      int e = errno;
      close(fd);
      if (n < 0 || n >= (ssize_t)sizeof(target)) {
        saved = n < 0 ? e : ENAMETOOLONG;
        break;
      }
      target[n] = '\0';
      /* an absolute target restarts at the rootfs, never at the host's / */
      if (target[0] == '/') dirstack_clear(&st);
      char *next = rc_xasprintf("%s/%s", target, p);
      free(todo);
      todo = next;
      p = todo;
      continue;
    }

    if (!last) {
      if (!S_ISDIR(sb.st_mode)) {
        close(fd);
        saved = ENOTDIR;
        break;
      }
      dirstack_push(&st, fd);
      continue;
    }

    if (mkdirs) {
      if (!S_ISDIR(sb.st_mode)) {
        close(fd);
        saved = ENOTDIR;
        break;
      }
      result = fd;
      break;
    }
    /* Reopen with the caller's flags; O_NOFOLLOW again so a symlink swapped in since the
     * O_PATH open fails with ELOOP (or is returned as itself for O_PATH) instead of being
     * followed by the kernel out of the root. */
    close(fd);
    result = openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
    saved = errno;
    break;
  }

  dirstack_clear(&st);
  free(st.fd);
  free(todo);
  if (result < 0) errno = saved ? saved : EINVAL;
  return result;
}

int rc_open_in_root(int rootfd, const char *path, int flags, mode_t mode, struct rc_error *err) {
  int fd = openat2_in_root(rootfd, path, flags, mode);
  if (fd < 0 && errno == ENOSYS) fd = rc_walk_in_root(rootfd, path, flags, mode, false);
  if (fd < 0) return rc_err(err, errno, "open %s inside rootfs", path);
  return fd;
}

int rc_mkdir_in_root(int rootfd, const char *path, mode_t mode, struct rc_error *err) {
  /* Most mount points already exist; one openat2 answers that cheaply. */
  int fd = openat2_in_root(rootfd, path, O_PATH | O_DIRECTORY, 0);
  if (fd >= 0) return fd;
  if (errno != ENOENT && errno != ENOSYS) return rc_err(err, errno, "mkdir %s inside rootfs", path);
  fd = rc_walk_in_root(rootfd, path, 0, mode, true);
  if (fd < 0) return rc_err(err, errno, "mkdir %s inside rootfs", path);
  return fd;
}
