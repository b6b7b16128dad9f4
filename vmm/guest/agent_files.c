/* Writing a short text to a kernel file (/proc/sys, /proc/self, cgroupfs) in one write:
 * these files take a value per write, so a short write is a failure, not a reason to go on. */
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
