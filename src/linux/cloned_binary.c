/* CVE-2019-5736: a container process that can reach /proc/<pid>/exe of a runtime process
 * inside the container (the init before it execs, or a later exec'd process) could
 * reopen the host's runcell binary for writing once that process is gone, and replace it.
 * Like runc, runcell re-executes itself from a sealed memfd copy before it enters any
 * container, so what such a process finds is an immutable anonymous copy. */
#include "runcell/cloned_binary.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runcell/util.h"

#define CLONE_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

bool rc_running_from_sealed_copy(void) {
  cleanup_close int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  int seals = fcntl(fd, F_GET_SEALS);
  return seals >= 0 && (seals & CLONE_SEALS) == CLONE_SEALS;
}

int rc_reexec_from_sealed_copy(char **argv, struct rc_error *err) {
  if (rc_running_from_sealed_copy()) return 0;
  cleanup_close int exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (exe < 0) return rc_err(err, errno, "open /proc/self/exe");
  struct stat st;
  if (fstat(exe, &st) < 0) return rc_err(err, errno, "stat /proc/self/exe");
  cleanup_close int mem = memfd_create("runcell", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mem < 0) return rc_err(err, errno, "memfd_create for a sealed copy of runcell");
  /* read and write, not sendfile: sendfile moves the pages through a pipe whose buffers
   * can still reference them when the seals are added, and F_SEAL_WRITE then fails with
   * EBUSY (seen in CI) */
  static char buf[1 << 16];
  for (off_t done = 0; done < st.st_size;) {
    ssize_t n = read(exe, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return rc_err(err, errno, "read runcell for its sealed copy");
    if (n == 0) return rc_err(err, EIO, "read runcell for its sealed copy: shorter than its size");
    if (rc_write_all(mem, buf, (size_t)n) != n)
      return rc_err(err, errno, "write runcell's sealed copy");
    done += n;
  }
  /* F_SEAL_WRITE fails with EBUSY while any page of the copy holds a reference besides the
   * page cache's, and the kernel itself waits only ~150 ms for those to go (after draining
   * the per-CPU LRU batches). Some transient reference outlived that now and then in CI
   * under load (the lane's emulator beside it), with read/write as well as with sendfile;
   * the cause was not pinned down, so the seal is retried for up to ~3 s before create
   * fails with the error. */
  for (int attempt = 0;; attempt++) {
    if (fcntl(mem, F_ADD_SEALS, CLONE_SEALS) == 0) break;
    if (errno != EBUSY || attempt == 6) return rc_err(err, errno, "seal runcell's copy");
    long ms = attempt < 5 ? 50L << attempt : 999L; /* 50, 100, ... 800, 999 ms */
    struct timespec pause = {.tv_nsec = ms * 1000000L};
    nanosleep(&pause, NULL);
  }
  /* An ELF binary can be executed from a close-on-exec fd: the kernel has it open before
   * the fd table is cleaned. */
  fexecve(mem, argv, environ);
  return rc_err(err, errno, "re-execute runcell from its sealed copy");
}
