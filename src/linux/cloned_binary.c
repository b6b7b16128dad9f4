/* CVE-2019-5736: a container process that can reach /proc/<pid>/exe of a runtime process
 * inside the container (the init before it execs, or a later exec'd process) could
 * reopen the host's runcell binary for writing once that process is gone, and replace it.
 * Like runc, runcell re-executes itself from a sealed memfd copy before it enters any
 * container, so what such a process finds is an immutable anonymous copy. */
#include "runcell/cloned_binary.h"

#include <elf.h>
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

size_t rc_elf_exec_extent(const unsigned char *head, size_t head_len, size_t file_size) {
  Elf64_Ehdr eh;
  if (head_len < sizeof(eh)) return file_size;
  memcpy(&eh, head, sizeof(eh));
  if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum == PN_XNUM)
    return file_size;
  if (eh.e_phoff < sizeof(eh) || eh.e_phoff > head_len ||
      (head_len - eh.e_phoff) / sizeof(Elf64_Phdr) < eh.e_phnum)
    return file_size; /* (written so that no sum can wrap) */
  uint64_t extent = eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr);
  for (size_t i = 0; i < eh.e_phnum; i++) {
    Elf64_Phdr ph;
    memcpy(&ph, head + eh.e_phoff + i * sizeof(ph), sizeof(ph));
    if (ph.p_filesz > file_size || ph.p_offset > file_size - ph.p_filesz) return file_size;
    if (ph.p_offset + ph.p_filesz > extent) extent = ph.p_offset + ph.p_filesz;
  }
  return (size_t)extent;
}

/* The part of runcell its copy needs (rc_elf_exec_extent), with the section header table
 * dropped from the ELF header when it is cut off, so that a tool reading the copy finds
 * none rather than one past its end. */
static size_t copy_extent(int exe, size_t size, unsigned char *head, size_t head_cap,
                          size_t *head_len) {
  ssize_t n;
  do n = pread(exe, head, head_cap, 0);
  while (n < 0 && errno == EINTR);
  *head_len = n > 0 ? (size_t)n : 0;
  size_t extent = rc_elf_exec_extent(head, *head_len, size);
  if (extent < size) {
    Elf64_Ehdr eh;
    memcpy(&eh, head, sizeof(eh));
    eh.e_shoff = 0;
    eh.e_shnum = 0;
    eh.e_shstrndx = SHN_UNDEF;
    memcpy(head, &eh, sizeof(eh));
  }
  if (*head_len > extent) *head_len = extent;
  return extent;
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
  static unsigned char buf[1 << 16];
  size_t head_len = 0;
  size_t size = copy_extent(exe, (size_t)st.st_size, buf, sizeof(buf), &head_len);
  if (rc_write_all(mem, buf, head_len) != (ssize_t)head_len)
    return rc_err(err, errno, "write runcell's sealed copy");
  if (lseek(exe, (off_t)head_len, SEEK_SET) < 0)
    return rc_err(err, errno, "read runcell for its sealed copy");
  for (size_t done = head_len; done < size;) {
    size_t want = size - done < sizeof(buf) ? size - done : sizeof(buf);
    ssize_t n = read(exe, buf, want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return rc_err(err, errno, "read runcell for its sealed copy");
    if (n == 0) return rc_err(err, EIO, "read runcell for its sealed copy: shorter than its size");
    if (rc_write_all(mem, buf, (size_t)n) != n)
      return rc_err(err, errno, "write runcell's sealed copy");
    done += (size_t)n;
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
