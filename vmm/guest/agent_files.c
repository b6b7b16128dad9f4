/* Writing a short text to a kernel file (/proc/sys, /proc/self, cgroupfs) in one write:
 * these files take a value per write, so a short write is a failure, not a reason to go on.
 * Reading one back the same way. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

int agent_write_text(const char *path, const char *text, int flags) {
  int fd = open(path, O_WRONLY | O_CLOEXEC | flags);
  if (fd < 0) return -1;
  size_t n = strlen(text);
  ssize_t w = write(fd, text, n);
  int e = errno;
  close(fd);
  if (w == (ssize_t)n) return 0;
  errno = w < 0 ? e : EIO;
  return -1;
}

int agent_read_text(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, size - 1);
  int e = errno;
  close(fd);
  if (n < 0) {
    errno = e;
    return -1;
  }
  buf[n] = '\0';
  return 0;
}
