/* Building a microVM's disk image of a directory with mkfs.erofs, confined to that tree.
 *
 * The tree may be written by someone else while the image is built: a volume a running
 * container shares, a rootfs another container writes. mkfs.erofs lists the tree first
 * and opens each file later by its full path, following links, so a file swapped for a
 * link to /etc/shadow (or a directory for a link to /) between the two would put the
 * host's file into the guest's disk: CVE-2021-30465's race on the image path. So the tool
 * runs in a mount namespace of its own whose root is an empty tmpfs holding only
 *   /src  the tree, read-only, nodev (a device node swapped in cannot be read), nosuid,
 *         noexec, without the mounts below it (the image key does not cross them either);
 *   /out  an empty directory of its own, where the image is written;
 *   /usr  and the top-level links to it or directories (bin, lib, lib64, ...) read-only
 *         all the way down: the tool's own program and libraries, public package files;
 *   /etc/ld.so.cache, read-only.
 * Whatever a link in the tree names resolves there: the host's /etc, /root, /proc, /run,
 * /var and the other containers' images are not in that world. It holds no descriptor of
 * runcell's but its stdio, its capabilities are cut to the two that let it read every file
 * of the tree (rc_caps_reduce_to), with no_new_privs, it dies with
 * runcell, and it has a deadline: a FIFO swapped into the tree blocks its open for good. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/log.h"
#include "runcell/microvm.h"
#include "runcell/process_attrs.h"
#include "runcell/rootfs.h"
#include "runcell/util.h"

#define MKFS "mkfs.erofs"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* How long one image may take before the tool is stopped; a very large tree on slow
 * storage may need RUNCELL_MICROVM_IMAGE_TIMEOUT_S raised. */
#define DEFAULT_TIMEOUT_S 600

/* The first executable regular file named MKFS on $PATH (execvp's search, done here
 * because the tool is started by descriptor from inside the confinement). */
static int find_tool(char out[PATH_MAX]) {
  const char *path = getenv("PATH");
  if (!path || !*path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  while (*path) {
    size_t n = strcspn(path, ":");
    if (n > 0 && n + sizeof(MKFS) + 1 < PATH_MAX) {
      snprintf(out, PATH_MAX, "%.*s/%s", (int)n, path, MKFS);
      struct stat sb;
      if (stat(out, &sb) == 0 && S_ISREG(sb.st_mode) && access(out, X_OK) == 0) return 0;
    }
    path += n;
    if (*path == ':') path++;
  }
  return -1;
}

/* In the child: a failed step is printed to the pipe the parent reads and ends it. */
__attribute__((noreturn)) static void child_fail(const char *what, const char *path) {
  dprintf(2, "confining " MKFS ": %s %s: %s\n", what, path, strerror(errno));
  _exit(126);
}

/* Read-only, nosuid and nodev down the whole tree: a remount would change only the top
 * mount and leave, say, a separate /usr/local writable. */
static void bind_read_only(const char *from, const char *to) {
  if (mount(from, to, NULL, MS_BIND | MS_REC, NULL) < 0) child_fail("bind", from);
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
  if (syscall(SYS_mount_setattr, AT_FDCWD, to, AT_RECURSIVE, &attr, sizeof(attr)) < 0)
    child_fail("make read-only", to);
}

/* The top-level names a merged-/usr or classic system starts programs through: a link is
 * copied as a link, a directory bound read-only; anything else is left out. */
static void add_system_dir(const char *name) {
  char host[32];
  snprintf(host, sizeof(host), "/%s", name);
  struct stat sb;
  if (lstat(host, &sb) < 0) return;
  if (S_ISLNK(sb.st_mode)) {
    char target[PATH_MAX];
    ssize_t n = readlink(host, target, sizeof(target) - 1);
    if (n < 0) child_fail("read link", host);
    target[n] = '\0';
    if (symlink(target, name) < 0) child_fail("link", name);
  } else if (S_ISDIR(sb.st_mode)) {
    if (mkdir(name, 0755) < 0) child_fail("create", name);
    bind_read_only(host, name);
  }
}

/* Runs in the forked child: builds the confinement in staging/root and starts the tool
 * by descriptor with /src and /out/image as its arguments. Never returns. */
__attribute__((noreturn)) static void confine_and_exec(int tool_fd, const char *staging,
                                                       const char *src, pid_t parent) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) child_fail("set", "the parent-death signal");
  if (getppid() != parent) _exit(126); /* runcell died before the signal was armed */
  /* what runcell inherited without close-on-exec (a caller's leaked descriptors) must not
   * reach the tool: one of a host directory would undo the confinement */
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
    child_fail("close", "inherited descriptors");
  if (unshare(CLONE_NEWNS) < 0) child_fail("unshare", "the mount namespace");
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) child_fail("make private", "/");
  char root[PATH_MAX], out[PATH_MAX];
  snprintf(root, sizeof(root), "%s/root", staging);
  snprintf(out, sizeof(out), "%s/out", staging);
  if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") < 0)
    child_fail("mount tmpfs on", root);
  if (chdir(root) < 0) child_fail("enter", root);
  if (mkdir("src", 0755) < 0 || mkdir("out", 0700) < 0 || mkdir("usr", 0755) < 0 ||
      mkdir("etc", 0755) < 0)
    child_fail("create directories in", root);
  /* not MS_REC: what is mounted inside the tree is not part of its image */
  if (mount(src, "src", NULL, MS_BIND, NULL) < 0) child_fail("bind", src);
  if (mount(NULL, "src", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            NULL) < 0)
    child_fail("make read-only", src);
  if (mount(out, "out", NULL, MS_BIND, NULL) < 0) child_fail("bind", out);
  if (mount(NULL, "out", NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    child_fail("restrict", out);
  if (access("/usr", F_OK) == 0) bind_read_only("/usr", "usr");
  static const char *const system_dirs[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32"};
  for (size_t i = 0; i < sizeof(system_dirs) / sizeof(system_dirs[0]); i++)
    add_system_dir(system_dirs[i]);
  if (access("/etc/ld.so.cache", R_OK) == 0) {
    int fd = open("etc/ld.so.cache", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) child_fail("create", "etc/ld.so.cache");
    close(fd);
    bind_read_only("/etc/ld.so.cache", "etc/ld.so.cache");
  }
  /* The tmpfs becomes the root and the host's tree is detached from this namespace (or,
   * on an initramfs, left below a chroot the tool has no capability to climb out of). */
  struct rc_error root_err = {0};
  if (rc_rootfs_enter_cwd(&root_err) < 0) {
    dprintf(2, "confining " MKFS ": %s\n", root_err.msg);
    _exit(126);
  }
  if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    child_fail("make read-only", "the new root");
  /* Reading every file of the tree whatever its mode is all the tool needs; root's exec
   * would otherwise give it the whole bounding set (and any inheritable capabilities
   * runcell was started with) */
  struct rc_error cap_err = {0};
  if (rc_caps_reduce_to(UINT64_C(1) << CAP_DAC_OVERRIDE | UINT64_C(1) << CAP_DAC_READ_SEARCH,
                        &cap_err) < 0) {
    dprintf(2, "confining " MKFS ": %s\n", cap_err.msg);
    _exit(126);
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail("set", "no_new_privs");
  char *const argv[] = {(char *)MKFS, (char *)"--quiet", (char *)"/out/image", (char *)"/src",
                        NULL};
  char *const envp[] = {(char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", (char *)"LC_ALL=C", NULL};
  syscall(SYS_execveat, tool_fd, "", argv, envp, AT_EMPTY_PATH);
  child_fail("start", MKFS);
}

static int timeout_seconds(void) {
  const char *v = getenv("RUNCELL_MICROVM_IMAGE_TIMEOUT_S");
  char *end = NULL;
  long n = v ? strtol(v, &end, 10) : 0;
  return v && *v && end && !*end && n > 0 && n <= 86400 ? (int)n : DEFAULT_TIMEOUT_S;
}

/* Runs the confined tool with its output captured into out (truncated), for the error,
 * and stops it at the deadline. */
static int run_confined(int tool_fd, const char *staging, const char *src, char *out,
                        size_t out_size, struct rc_error *err) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) return rc_err(err, errno, "pipe for %s", MKFS);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(pipefd[0]);
    close(pipefd[1]);
    return rc_err(err, errno, "fork for %s", MKFS);
  }
  if (pid == 0) {
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(pipefd[1], 1) < 0 || dup2(pipefd[1], 2) < 0)
      _exit(126);
    confine_and_exec(tool_fd, staging, src, parent);
  }
  close(pipefd[1]);
  int limit = timeout_seconds();
  int64_t deadline = rc_now_ms() + (int64_t)limit * 1000;
  bool timed_out = false;
  size_t used = 0;
  char sink[512];
  for (;;) {
    int64_t left_ms = deadline - rc_now_ms();
    if (left_ms <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
    int ready = poll(&p, 1, left_ms > 1000000 ? 1000000 : (int)left_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue; /* the deadline is checked above */
    char *dst = used + 1 < out_size ? out + used : sink;
    size_t room = used + 1 < out_size ? out_size - 1 - used : sizeof(sink);
    ssize_t n = read(pipefd[0], dst, room);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break; /* end of output: the tool exited (or closed it) */
    if (dst != sink) used += (size_t)n;
  }
  out[used] = '\0';
  close(pipefd[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return rc_err(err, errno, "wait for %s", MKFS);
  if (timed_out)
    return rc_err(err, ETIMEDOUT,
                  "%s did not finish the image of %s within %d s and was stopped (a FIFO in "
                  "the tree blocks it; a very large tree may need RUNCELL_MICROVM_IMAGE_TIMEOUT_S "
                  "raised)",
                  MKFS, src, limit);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  /* the last line of the tool's output is usually the reason */
  size_t len = strlen(out);
  while (len && (out[len - 1] == '\n' || out[len - 1] == ' ')) out[--len] = '\0';
  return rc_err(err, 0, "%s failed (%s%d): %s", MKFS,
                WIFEXITED(status) ? "exit status " : "signal ",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), out);
}

int rc_microvm_mkfs(const char *src, const char *dest, struct rc_error *err) {
  char tool[PATH_MAX];
  if (find_tool(tool) < 0)
    return rc_err(err, ENOENT,
                  "microVM mode needs %s (Debian package erofs-utils) to make the container's "
                  "disk images",
                  MKFS);
  cleanup_close int tool_fd = open(tool, O_PATH | O_CLOEXEC);
  if (tool_fd < 0) return rc_err(err, errno, "open %s", tool);

  /* next to dest, so the finished image is renamed into place on the same filesystem */
  char staging[PATH_MAX];
  const char *slash = strrchr(dest, '/');
  int dir_len = slash ? (int)(slash - dest) : 1;
  /* the pid lets a later create remove it if this one is killed (microvm_disks.c) */
  snprintf(staging, sizeof(staging), "%.*s/.build.%d.XXXXXX", dir_len, slash ? dest : ".",
           (int)getpid());
  if (!mkdtemp(staging)) return rc_err(err, errno, "staging directory for the image of %s", src);
  char root[PATH_MAX + 8], out[PATH_MAX + 8], image[PATH_MAX + 16];
  snprintf(root, sizeof(root), "%s/root", staging);
  snprintf(out, sizeof(out), "%s/out", staging);
  snprintf(image, sizeof(image), "%s/image", out);
  int r = -1;
  if (mkdir(root, 0700) < 0 || mkdir(out, 0700) < 0) {
    rc_err(err, errno, "staging directory %s", staging);
  } else {
    char output[1024];
    r = run_confined(tool_fd, staging, src, output, sizeof(output), err);
    if (r == 0 && rename(image, dest) < 0) r = rc_err(err, errno, "store disk image %s", dest);
  }
  unlink(image);
  rmdir(out);
  rmdir(root);
  rmdir(staging);
  return r;
}
