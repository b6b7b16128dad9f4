/* The runtime's own handle on procfs (see the header for why it exists). */
#include "runcell/procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runcell/util.h"

/* The inode number of every procfs instance's root directory. */
#define PROC_ROOT_INO 1
/* openat2 answers EAGAIN when a concurrent rename makes its checks unsure; retried. */
#define OPENAT2_RETRIES 32

static int procfs_root = -1;

static bool on_procfs(int fd) {
  struct statfs fs;
  return fstatfs(fd, &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC;
}

static bool is_procfs_root(int fd) {
  struct stat st;
  return on_procfs(fd) && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_ino == PROC_ROOT_INO;
}

/* A procfs instance of the caller's pid namespace, mounted nowhere. subset=pid (Linux
 * 5.8) leaves out everything that is not a process's (sysrq-trigger, sys/, kcore): the
 * runtime needs only self/ and thread-self/ here, so nothing else can be reached by
 * mistake. -1 where the kernel lacks the new mount API or the caller may not mount. */
static int fresh_procfs(void) {
  cleanup_close int fs = fsopen("proc", FSOPEN_CLOEXEC);
  if (fs < 0) return -1;
  (void)fsconfig(fs, FSCONFIG_SET_STRING, "subset", "pid", 0);
  if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) return -1;
  return fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
}

int rc_procfs_prepare(struct rc_error *err) {
  if (procfs_root >= 0) return 0;
  /* Else a detached copy of the runtime's /proc mount (its submounts left behind); else,
   * unprivileged or on an old kernel, /proc itself: lookups below still refuse to cross
   * any mount on their way, so a file mounted over is never opened. */
  int fd = fresh_procfs();
  if (fd < 0) fd = open_tree(AT_FDCWD, "/proc", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (fd < 0) fd = open("/proc", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return rc_err(err, errno, "open /proc");
  if (!is_procfs_root(fd)) {
    close(fd);
    return rc_err(err, 0, "/proc is not the root of a procfs mount");
  }
  procfs_root = fd;
  return 0;
}

void rc_procfs_release(void) {
  /* closed only if the fd is still the handle: a process that closed its fds wholesale
   * (and reused the number) must not lose whatever now has it */
  if (procfs_root >= 0 && is_procfs_root(procfs_root)) close(procfs_root);
  procfs_root = -1;
}

/* openat2 from root, beneath it, crossing no mount and following no magic link ("self"
 * and "thread-self" are ordinary symlinks within procfs). -1 with errno; ENOSYS where
 * openat2 is missing (Linux < 5.6) or refused by an outer seccomp filter (EPERM). */
static int open_beneath(int root, const char *rel, int flags) {
  struct open_how how = {
      .flags = (unsigned long long)flags,
      .resolve = RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS,
  };
  for (int i = 0; i < OPENAT2_RETRIES; i++) {
    long fd = syscall(SYS_openat2, root, rel, &how, sizeof(how));
    if (fd >= 0) return (int)fd;
    if (errno == EAGAIN || errno == EINTR) continue;
    if (errno == EPERM) errno = ENOSYS;
    return -1;
  }
  return -1;
}

int rc_procfs_open(const char *path, int flags, struct rc_error *err) {
  const char *rel = path;
  if (strncmp(rel, "/proc/", 6) == 0) rel += 6;
  if (*rel == '/' || *rel == '\0') return rc_err(err, EINVAL, "%s is not a file of /proc", path);
  cleanup_close int own = -1;
  /* a handle whose fd something closed and reused is no handle */
  if (procfs_root >= 0 && !is_procfs_root(procfs_root)) procfs_root = -1;
  int root = procfs_root;
  if (root < 0) {
    own = open("/proc", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (own < 0) return rc_err(err, errno, "open /proc");
    if (!is_procfs_root(own)) return rc_err(err, 0, "/proc is not the root of a procfs mount");
    root = own;
  }
  /* O_NONBLOCK: should anything but the kernel's file answer, a FIFO must not block */
  flags |= O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  int fd = open_beneath(root, rel, flags);
  if (fd < 0 && errno == ENOSYS) fd = openat(root, rel, flags);
  if (fd < 0) {
    if (errno == EXDEV)
      return rc_err(err, EXDEV, "open %s: something is mounted over it or on its way", path);
    return rc_err(err, errno, "open %s", path);
  }
  if (!on_procfs(fd)) {
    close(fd);
    return rc_err(err, 0, "%s is not on procfs", path);
  }
  return fd;
}
