/* The runtime's procfs handle (runcell/procfs.h): what it opens and what it refuses, and
 * that a procfs file mounted over the one meant (CVE-2025-52881) is never written. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/procfs.h"
#include "runcell/util.h"
#include "unit.h"

static int open_errno(const char *path, int flags) {
  struct rc_error err = {0};
  int fd = rc_procfs_open(path, flags, &err);
  if (fd >= 0) {
    close(fd);
    return 0;
  }
  return err.code ? err.code : -1;
}

static void check_lookups(void) {
  CHECK(open_errno("/proc/self/status", O_RDONLY) == 0);
  CHECK(open_errno("thread-self/comm", O_RDONLY) == 0);
  CHECK(open_errno("/etc/passwd", O_RDONLY) == EINVAL); /* not a file of /proc */
  CHECK(open_errno("/proc/", O_RDONLY) == EINVAL);
  CHECK(open_errno("/proc/../etc/passwd", O_RDONLY) == EXDEV); /* nothing above the root */
  /* magic links lead anywhere: refused (ELOOP) */
  CHECK(open_errno("/proc/self/exe", O_RDONLY) == ELOOP);
  CHECK(open_errno("/proc/self/root/etc/passwd", O_RDONLY) == ELOOP);
}

static void test_lookups_without_a_handle(void) {
  rc_procfs_release();
  check_lookups();
}

static void test_lookups_through_the_handle(void) {
  struct rc_error err = {0};
  CHECK(rc_procfs_prepare(&err) == 0);
  CHECK(rc_procfs_prepare(&err) == 0); /* once */
  check_lookups();
  rc_procfs_release();
}

static int read_int(const char *path) {
  char buf[32] = "";
  FILE *f = fopen(path, "re");
  if (!f) return -9999;
  if (!fgets(buf, sizeof(buf), f)) buf[0] = '\0';
  fclose(f);
  return (int)strtol(buf, NULL, 10);
}

/* In a mount namespace of its own: another process's oom_score_adj is bound over this
 * one's, after the handle was made. Through the handle the write reaches this process;
 * without one the open is refused (a mount on the way), not sent to the other file. */
static void overmounted(void) {
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
    CHECK(!"a private mount namespace");
    return;
  }
  pid_t other = fork();
  if (other == 0) {
    pause();
    _exit(0);
  }
  struct rc_error err = {0};
  rc_procfs_release();
  CHECK(rc_procfs_prepare(&err) == 0);
  char theirs[64], ours[64];
  snprintf(theirs, sizeof(theirs), "/proc/%d/oom_score_adj", (int)other);
  snprintf(ours, sizeof(ours), "/proc/%d/oom_score_adj", (int)getpid());
  int before = read_int(theirs);
  CHECK(mount(theirs, ours, NULL, MS_BIND, NULL) == 0);

  int fd = rc_procfs_open("/proc/self/oom_score_adj", O_WRONLY, &err);
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(write(fd, "77", 2) == 2);
    close(fd);
  }
  CHECK(read_int(theirs) == before);
  char buf[32] = "";
  fd = rc_procfs_open("self/oom_score_adj", O_RDONLY, &err);
  CHECK(fd >= 0 && read(fd, buf, sizeof(buf) - 1) > 0);
  if (fd >= 0) close(fd);
  CHECK(strtol(buf, NULL, 10) == 77);

  rc_procfs_release();
  CHECK(open_errno("/proc/self/oom_score_adj", O_WRONLY) == EXDEV);
  CHECK(read_int(theirs) == before);
  kill(other, SIGKILL);
  waitpid(other, NULL, 0);
}

static void test_a_file_mounted_over_is_never_written(void) {
  if (geteuid() != 0) {
    printf("SKIP: %s: needs root (a mount namespace)\n", __func__);
    return;
  }
  unit_in_child("overmounted", overmounted);
}

UNIT_MAIN("procfs", UNIT_CASE(test_lookups_without_a_handle),
          UNIT_CASE(test_lookups_through_the_handle),
          UNIT_CASE(test_a_file_mounted_over_is_never_written))
