/* /dev/console in the guest, for the container's process when it has a terminal: as runc
 * (and runcell's cells, src/linux/console.c) give it, the pty bound over a regular file in
 * the container's /dev. Both ends by descriptor (CVE-2025-52565): the pty is cloned from the
 * slave the agent opened (open_tree) and moved onto a file the agent has just created
 * (move_mount), in a /dev opened without following a symlink; what the image left at
 * /dev/console is removed without being followed. Nothing of the container runs yet, so
 * the only entry that can be there is the image's (when the bundle does not mount /dev)
 * or the config's: where it cannot be replaced (a mount point, a directory with entries,
 * a read-only /dev), the process keeps its terminal and goes without /dev/console, said in
 * the agent's log. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

static int skip(const char *why, int e) {
  agent_log("no /dev/console for the terminal: %s: %s", why, strerror(e));
  return 0;
}

int agent_make_console(int rootfd, int slave, struct rc_error *err) {
  int dev = openat(rootfd, "dev", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dev < 0) return skip("the container's /dev is not a directory", errno);
  int r = 0, fd = -1;
  struct stat st;
  if (fstatat(dev, "console", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      unlinkat(dev, "console", S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0) {
    r = skip("what is at /dev/console cannot be removed", errno);
    goto out;
  }
  fd =
      openat(dev, "console", O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0666);
  if (fd < 0) {
    r = skip("create it", errno);
    goto out;
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    r = rc_err(err, EEXIST, "/dev/console: the file created is not a regular file");
    goto out;
  }
  int tree = open_tree(slave, "", AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (tree < 0) {
    r = rc_err(err, errno, "/dev/console: clone the pty's mount");
    goto out;
  }
  if (move_mount(tree, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    r = rc_err(err, errno, "/dev/console: bind the pty there");
  close(tree);
out:
  if (fd >= 0) close(fd);
  close(dev);
  return r;
}
