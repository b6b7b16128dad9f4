/* /dev/console: the container's pty bound over a regular file runcell creates in the
 * container's /dev (see console.h for why, and for CVE-2025-52565). Every step goes through
 * a descriptor: the container's /dev is opened from its root without following a symlink,
 * what is at /dev/console is looked at and removed relative to that directory without
 * being followed, the new file is created with O_EXCL|O_NOFOLLOW and checked by fstat, and
 * the pty is cloned from the slave's descriptor (open_tree) and moved onto the new file's
 * descriptor (move_mount). */
#include "runcell/console.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "rootfs_internal.h"
#include "runcell/log.h"
#include "runcell/util.h"

#define CONSOLE "console"

/* Bounds the removals and creations: something in the container's mount namespace (a
 * createContainer hook's leftover process) may keep putting entries back; runcell gives up
 * with an error rather than loop for ever. */
#define CONSOLE_TRIES 8

/* Unix98 pty slaves have majors 136 to 143 (UNIX98_PTY_SLAVE_MAJOR and the 7 after it). */
#define PTY_SLAVE_MAJOR_FIRST 136
#define PTY_SLAVE_MAJOR_LAST 143

/* The mount's source must be what runcell believes it is: a pty slave on devpts. */
static int check_slave(int slave, struct stat *st, struct rc_error *err) {
  struct statfs fs;
  if (fstat(slave, st) < 0 || fstatfs(slave, &fs) < 0)
    return rc_err(err, errno, "/dev/console: stat the pty");
  unsigned int major = major(st->st_rdev);
  if (!S_ISCHR(st->st_mode) || fs.f_type != DEVPTS_SUPER_MAGIC || major < PTY_SLAVE_MAJOR_FIRST ||
      major > PTY_SLAVE_MAJOR_LAST)
    return rc_err(err, ENOTTY, "/dev/console: the terminal runcell opened is not a pty slave");
  return 0;
}

/* Detaches the mount on top of /dev/console (something bound there by the config or a
 * hook, maybe a host file) from this mount namespace only: / is rslave (or the config's
 * rootfsPropagation), so nothing is unmounted on the host. umount2 takes no descriptor, so
 * the name is looked up from the cwd set to /dev, with UMOUNT_NOFOLLOW: no path outside
 * the /dev already opened is resolved, and a symlink swapped in is not followed. */
static int detach_console(int devfd, int rootfd, struct rc_error *err) {
  if (fchdir(devfd) < 0) return rc_err(err, errno, "/dev/console: enter /dev");
  int r = umount2(CONSOLE, MNT_DETACH | UMOUNT_NOFOLLOW);
  int e = errno;
  /* back to the root: rc_rootfs_finalize and the init go on from there */
  if (fchdir(rootfd) < 0) return rc_err(err, errno, "/dev/console: return to /");
  /* EINVAL: no longer a mount point (a concurrent change); the caller looks again */
  if (r < 0 && e != EINVAL && e != ENOENT)
    return rc_err(err, e, "/dev/console: detach what is mounted there");
  return 0;
}

/* Removes whatever is at /dev/console without following it: a symlink goes, not its
 * target; a node or file goes (a hard link to a file elsewhere only loses this name); an
 * empty directory goes; a mount point is detached first, then what was under it goes in
 * turn. A directory with entries is refused rather than emptied: runcell does not walk a
 * tree the container prepared. */
static int clear_console(int devfd, int rootfd, struct rc_error *err) {
  for (int i = 0; i < CONSOLE_TRIES; i++) {
    struct stat st;
    if (fstatat(devfd, CONSOLE, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT) return 0;
      return rc_err(err, errno, "/dev/console: stat what is there");
    }
    if (unlinkat(devfd, CONSOLE, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) == 0) {
      rc_debug("/dev/console: removed what was there (mode %o)", (unsigned)st.st_mode);
      continue;
    }
    switch (errno) {
      case ENOENT:  /* gone meanwhile */
      case EISDIR:  /* replaced by a directory meanwhile */
      case ENOTDIR: /* replaced by something else meanwhile */
        continue;
      case EBUSY:
        if (detach_console(devfd, rootfd, err) < 0) return -1;
        continue;
      case ENOTEMPTY:
      case EEXIST:
        return rc_err(err, ENOTEMPTY,
                      "/dev/console is a directory with entries in the container's /dev; "
                      "runcell makes /dev/console for a terminal and does not remove a tree");
      default:
        return rc_err(err, errno, "/dev/console: remove what is there");
    }
  }
  return rc_err(err, EBUSY, "/dev/console: something kept coming back after %d removals",
                CONSOLE_TRIES);
}

/* A new, empty regular file at /dev/console, created here (O_EXCL: never one that was
 * there; O_NOFOLLOW: never through a symlink) and checked by fstat to be that: the mount
 * goes onto this descriptor. */
static int create_console(int devfd, int rootfd, struct rc_error *err) {
  struct stat dst;
  if (fstat(devfd, &dst) < 0) return rc_err(err, errno, "/dev/console: stat /dev");
  for (int i = 0; i < CONSOLE_TRIES; i++) {
    if (clear_console(devfd, rootfd, err) < 0) return -1;
    int fd = openat(devfd, CONSOLE, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC,
                    0666);
    if (fd < 0 && errno == EEXIST) continue; /* something came back: clear it again */
    if (fd < 0) return rc_err(err, errno, "/dev/console: create it in the container's /dev");
    struct stat st;
    if (fstat(fd, &st) < 0) {
      int e = errno;
      close(fd);
      return rc_err(err, e, "/dev/console: stat the file created");
    }
    if (!S_ISREG(st.st_mode) || st.st_size != 0 || st.st_nlink != 1 || st.st_dev != dst.st_dev) {
      close(fd);
      return rc_err(err, EEXIST, "/dev/console: the file created is not a new empty file in /dev");
    }
    return fd;
  }
  return rc_err(err, EEXIST, "/dev/console: something kept taking its place after %d attempts",
                CONSOLE_TRIES);
}

/* Binds the slave onto target by descriptor (rc_bind_by_fd). Kernels before 5.2 have
 * not got the calls: there, as for the masks, the bind goes through /proc/self/fd/N once
 * the container's /proc is known to be procfs (CVE-2025-52881 is why it is only the
 * fallback). */
static int bind_slave(int slave, int target, struct rc_error *err) {
  int r = rc_bind_by_fd(slave, target, false, false);
  if (r == 0) return 0;
  if (r < 0) return rc_err(err, errno, "/dev/console: bind the pty there");
  if (rc_check_container_proc(err) < 0)
    return rc_err_wrap(err, "/dev/console: without open_tree the bind needs /proc/self/fd");
  char src[RC_FD_PATH_MAX], dst[RC_FD_PATH_MAX];
  rc_fd_path(src, slave);
  rc_fd_path(dst, target);
  if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
    return rc_err(err, errno, "/dev/console: bind the pty there");
  return 0;
}

int rc_console_mount(const struct oci_config *cfg, int slave, struct rc_error *err) {
  if (rc_dev_is_bound(cfg)) {
    rc_debug("no /dev/console: the config binds /dev, whose entries are not runcell's to change");
    return 0;
  }
  struct stat pty;
  if (check_slave(slave, &pty, err) < 0) return -1;
  cleanup_close int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) return rc_err(err, errno, "/dev/console: open /");
  /* /dev as the container will see it (the mount there, if any), and only a directory
   * right under the root: never a symlink leading elsewhere in the container, perhaps
   * onto a volume whose "console" entry is a host file */
  cleanup_close int devfd = openat(rootfd, "dev", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (devfd < 0)
    return rc_err(err, errno == ELOOP ? ENOTDIR : errno,
                  "/dev/console: open the container's /dev (it must be a directory, not a "
                  "symlink)");
  /* The new file may be removed before the bind lands (by a process a hook left in the
   * container's mount namespace), which the bind answers with ENOENT: make it again. A file
   * renamed or replaced meanwhile is caught by the check below. */
  for (int i = 0;; i++) {
    cleanup_close int target = create_console(devfd, rootfd, err);
    if (target < 0) return -1;
    if (bind_slave(slave, target, err) == 0) break;
    if (err->code != ENOENT || i + 1 == CONSOLE_TRIES) return -1;
  }
  /* What the container now finds at /dev/console must be this very pty. */
  cleanup_close int check = openat(devfd, CONSOLE, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (check < 0 || fstat(check, &st) < 0)
    return rc_err(err, errno, "/dev/console: look at it after the bind");
  if (!S_ISCHR(st.st_mode) || st.st_rdev != pty.st_rdev || st.st_dev != pty.st_dev ||
      st.st_ino != pty.st_ino)
    return rc_err(err, EEXIST, "/dev/console: after the bind it is not the container's pty");
  return 0;
}
