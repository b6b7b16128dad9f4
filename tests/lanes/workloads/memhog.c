/* A microVM workload for the balloon lane test (tests/lanes/microvm-tests/balloon.sh):
 * waits, touches MiB of anonymous memory page by page, holds it, frees it with munmap
 * (straight back to the guest kernel's buddy allocator, which is what free page
 * reporting hands to the host), then idles so the host can watch its footprint fall.
 *   memhog MIB WAIT_S HOLD_S IDLE_S
 * Each phase is announced on stdout (start, touched, freed, done), flushed at once, so
 * the test can follow it. Static, no libc beyond the basics. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static void say(const char *what, unsigned long mib) {
  printf("memhog: %s %lu MiB\n", what, mib);
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: memhog MIB WAIT_S HOLD_S IDLE_S\n");
    return 2;
  }
  unsigned long mib = strtoul(argv[1], NULL, 10);
  unsigned wait_s = (unsigned)strtoul(argv[2], NULL, 10);
  unsigned hold_s = (unsigned)strtoul(argv[3], NULL, 10);
  unsigned idle_s = (unsigned)strtoul(argv[4], NULL, 10);
  size_t len = (size_t)mib << 20;
  say("start", mib);
  sleep(wait_s);
  unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("memhog: mmap");
    return 1;
  }
  long page = sysconf(_SC_PAGESIZE);
  for (size_t off = 0; off < len; off += (size_t)page) p[off] = (unsigned char)(off >> 12 | 1);
  say("touched", mib);
  sleep(hold_s);
  if (munmap(p, len) != 0) {
    perror("memhog: munmap");
    return 1;
  }
  say("freed", mib);
  sleep(idle_s);
  say("done", mib);
  return 0;
}
