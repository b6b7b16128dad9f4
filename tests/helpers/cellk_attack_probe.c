/* cellk-attack-probe: a hostile program of a cell, aimed at its cell kernel (the notify
 * placement's supervisor that answers the routed syscalls, sysinfo and sched_getaffinity,
 * by writing into the caller's memory). Built static by
 * tests/integration/test_cell_kernel_attacks.py; each mode prints one JSON object, so
 * that the same run in a cell and natively (gate off, the host kernel answers) can be
 * compared.
 *
 *   memory    routed syscalls aimed at memory the caller may not write (read-only,
 *             PROT_NONE, its own code, a read-only file mapping, a buffer running into a
 *             read-only page, unmapped and kernel addresses): [return, errno, whether
 *             the protected bytes changed] per case, and whether sysinfo's padding
 *             bytes came back as the kernel leaves them (zero)
 *   killed N  N rounds of a child whose threads sit in routed syscalls while it is
 *             SIGKILLed; then whether the routed syscalls still get the cell's answers
 *   flood S T T threads call sysinfo without pause for S seconds while the main thread
 *             times its own sysinfo calls: the slowest one, in microseconds
 *   views F   every door to changing view file F (a FUSE file of the cell kernel's) or
 *             reaching past it: each case's errno name, "ok" where it succeeded, or
 *             "same"/"changed" where a later read is compared with what was written */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define FILL 0x5a

static long page;

static void *map(int prot) {
  void *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) abort();
  memset(p, FILL, (size_t)page);
  if (mprotect(p, (size_t)page, prot) < 0) abort();
  return p;
}

/* Whether any byte of [p, p+n) differs from FILL (the page is made readable to look). */
static int changed(unsigned char *p, size_t n) {
  mprotect((void *)((uintptr_t)p & ~(uintptr_t)(page - 1)), (size_t)page, PROT_READ);
  for (size_t i = 0; i < n; i++)
    if (p[i] != FILL) return 1;
  return 0;
}

static int first = 1;
static void result(const char *name, long r, int wrote) {
  printf("%s\"%s\": [%ld, \"%s\", %d]", first ? "" : ", ", name, r < 0 ? -1L : r,
         r < 0 ? strerrorname_np(errno) : "", wrote);
  first = 0;
}

static long si(void *p) {
  return syscall(SYS_sysinfo, p);
}
static long aff(void *p) {
  return syscall(SYS_sched_getaffinity, 0, 8, p);
}

static long i386(long nr, long a, long b, long c) {
  long ret;
  __asm__ volatile("int $0x80"
                   : "=a"(ret)
                   : "a"(nr), "b"(a), "c"(b), "d"(c)
                   : "memory", "r8", "r9", "r10", "r11");
  if (ret < 0 && ret > -4096) {
    errno = (int)-ret;
    return -1;
  }
  return ret;
}

static void memory(const char *self) {
  printf("{");
  /* a writable buffer: the baseline, and the padding the kernel leaves zero (after procs
   * and pad at 80..84, and after mem_unit at 104..108) */
  unsigned char *rw = map(PROT_READ | PROT_WRITE);
  long r = si(rw);
  int padding_zero = 1;
  for (int i = 84; i < 88; i++) padding_zero &= rw[i] == 0;
  for (int i = 108; i < 112; i++) padding_zero &= rw[i] == 0;
  result("sysinfo writable", r, 1);
  printf(", \"sysinfo padding is zero\": %d", padding_zero);

  static const struct {
    const char *name;
    int prot;
  } prots[] = {{"read-only", PROT_READ}, {"PROT_NONE", PROT_NONE}, {"exec-only", PROT_EXEC}};
  for (size_t i = 0; i < sizeof(prots) / sizeof(prots[0]); i++) {
    char name[64];
    unsigned char *p = map(prots[i].prot);
    snprintf(name, sizeof(name), "sysinfo %s", prots[i].name);
    r = si(p);
    result(name, r, changed(p, sizeof(struct sysinfo)));
    p = map(prots[i].prot);
    snprintf(name, sizeof(name), "sched_getaffinity %s", prots[i].name);
    r = aff(p);
    result(name, r, changed(p, 8));
  }

  /* its own code: read-only, executable, a private mapping of its file */
  unsigned char before[sizeof(struct sysinfo)];
  unsigned char *code = (unsigned char *)(uintptr_t)&memory;
  memcpy(before, code, sizeof(before));
  r = si(code);
  result("sysinfo own code", r, memcmp(before, code, sizeof(before)) != 0);

  /* a read-only private mapping of a file */
  int fd = open(self, O_RDONLY | O_CLOEXEC);
  unsigned char *file = fd >= 0 ? mmap(NULL, (size_t)page, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
  if (file && file != MAP_FAILED) {
    memcpy(before, file, sizeof(before));
    r = si(file);
    result("sysinfo read-only file", r, memcmp(before, file, sizeof(before)) != 0);
  }

  /* a buffer whose end runs into a read-only page */
  unsigned char *two =
      mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memset(two, FILL, 2 * (size_t)page);
  mprotect(two + page, (size_t)page, PROT_READ);
  r = si(two + page - 16);
  result("sysinfo into a read-only page", r, changed(two + page, sizeof(struct sysinfo) - 16));

  /* nothing there */
  unsigned char *gone = map(PROT_READ | PROT_WRITE);
  munmap(gone, (size_t)page);
  result("sysinfo unmapped", si(gone), 0);
  result("sysinfo kernel address", si((void *)0xffff888000000000ul), 0);
  result("sysinfo past the end of memory", si((void *)-64l), 0);

  /* i386 (int 0x80): a read-only page below 4 GiB */
  unsigned char *low = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
  if (low != MAP_FAILED && i386(20 /* getpid */, 0, 0, 0) > 0) {
    memset(low, FILL, (size_t)page);
    mprotect(low, (size_t)page, PROT_READ);
    r = i386(116, (long)(uintptr_t)low, 0, 0);
    result("i386 sysinfo read-only", r, changed(low, 64));
  }
  printf("}\n");
}

/* --- killed callers ----------------------------------------------------------------- */

static void *call_forever(void *arg) {
  (void)arg;
  struct sysinfo s;
  cpu_set_t set;
  for (;;) {
    sysinfo(&s);
    sched_getaffinity(0, sizeof(set), &set);
  }
  return NULL;
}

static void killed(int rounds) {
  for (int i = 0; i < rounds; i++) {
    pid_t child = fork();
    if (child == 0) {
      pthread_t t;
      for (int j = 0; j < 8; j++) pthread_create(&t, NULL, call_forever, NULL);
      call_forever(NULL);
    }
    struct timespec ts = {0, 2000000 + (i % 7) * 300000};
    nanosleep(&ts, NULL);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
  struct sysinfo s;
  long r = syscall(SYS_sysinfo, &s);
  printf("{\"sysinfo\": [%ld, \"%s\"], \"totalram\": %llu}\n", r,
         r < 0 ? strerrorname_np(errno) : "", (unsigned long long)s.totalram * s.mem_unit);
}

/* --- a flood of notifications -------------------------------------------------------- */

static volatile int stop;
static void *flood_thread(void *arg) {
  (void)arg;
  struct sysinfo s;
  while (!stop) syscall(SYS_sysinfo, &s);
  return NULL;
}

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void flood(int seconds, int threads) {
  pthread_t t[256];
  if (threads > 256) threads = 256;
  for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, flood_thread, NULL);
  int64_t end = now_us() + (int64_t)seconds * 1000000, worst = 0;
  long calls = 0, failed = 0;
  while (now_us() < end) {
    struct sysinfo s;
    int64_t t0 = now_us();
    if (syscall(SYS_sysinfo, &s) < 0) failed++;
    int64_t d = now_us() - t0;
    if (d > worst) worst = d;
    calls++;
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  stop = 1;
  for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
  printf("{\"calls\": %ld, \"failed\": %ld, \"worst_us\": %lld}\n", calls, failed,
         (long long)worst);
}

/* --- the views ------------------------------------------------------------------------ */

static void say(const char *name, long r) {
  printf("%s\"%s\": \"%s\"", first ? "" : ", ", name, r < 0 ? strerrorname_np(errno) : "ok");
  first = 0;
}

static long open_close(const char *path, int flags) {
  int fd = open(path, flags | O_CLOEXEC);
  if (fd >= 0) close(fd);
  return fd;
}

static void views(const char *f) {
  char proc[64], buf[4096];
  printf("{");
  say("open O_RDWR", open_close(f, O_RDWR));
  say("open O_WRONLY|O_TRUNC", open_close(f, O_WRONLY | O_TRUNC));
  say("open O_WRONLY|O_APPEND", open_close(f, O_WRONLY | O_APPEND));
  say("open O_RDONLY|O_TRUNC", open_close(f, O_RDONLY | O_TRUNC));
  /* an O_PATH descriptor reopened through its magic link, for writing */
  int path = open(f, O_PATH | O_CLOEXEC);
  snprintf(proc, sizeof(proc), "/proc/self/fd/%d", path);
  say("reopen O_PATH as O_RDWR", open_close(proc, O_RDWR));
  say("truncate", truncate(f, 0));
  say("chmod", chmod(f, 0666));
  say("chown", chown(f, 1234, 1234));
  say("utimensat", utimensat(AT_FDCWD, f, NULL, 0));
  say("setxattr", setxattr(f, "user.x", "1", 1, 0));
  say("mknod over it", mknod(f, S_IFREG | 0644, 0));
  say("unlink", unlink(f));
  say("rename away", rename(f, "/tmp/cellk-view"));
  int tmp = open("/tmp/cellk-file", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (tmp >= 0) close(tmp);
  say("rename over it", rename("/tmp/cellk-file", f));
  unlink("/tmp/cellk-file");
  say("link to it", link(f, "/tmp/cellk-link"));
  unlink("/tmp/cellk-link");
  say("directory below it", open_close(strcat(strcpy(buf, f), "/.."), O_RDONLY | O_DIRECTORY));
  say("openat .. of it", openat(path, "..", O_RDONLY | O_CLOEXEC));
  close(path);

  int fd = open(f, O_RDONLY | O_CLOEXEC);
  void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  say("mmap MAP_SHARED writable", m == MAP_FAILED ? -1 : 0);
  /* a private writable mapping is the caller's copy: what it writes is not the file's */
  struct stat st;
  char *p = fstat(fd, &st) == 0 && st.st_size >= 8 /* else the page is past the end */
                ? mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)
                : MAP_FAILED;
  if (p != MAP_FAILED) memcpy(p, "XXXXXXXX", 8);
  int again = open(f, O_RDONLY | O_CLOEXEC);
  ssize_t n = read(again, buf, 8);
  printf(", \"private mapping written, read again\": \"%s\"",
         p == MAP_FAILED                        ? strerrorname_np(errno)
         : n == 8 && memcmp(buf, "XXXXXXXX", 8) ? "same"
                                                : "changed");
  close(again);
  /* reads far past the end, and a seek there */
  errno = 0;
  n = pread(fd, buf, sizeof(buf), 1ll << 62);
  printf(", \"pread at 2^62\": %zd", n);
  off_t end = lseek(fd, 0, SEEK_END);
  printf(", \"SEEK_END is the length\": %d", end > 0 && end < (1 << 20));
  lseek(fd, (1ll << 62) + 5, SEEK_SET);
  printf(", \"read after a seek to 2^62\": %zd", read(fd, buf, sizeof(buf)));
  char dirents[4096];
  say("getdents of it", syscall(SYS_getdents64, fd, dirents, sizeof(dirents)));
  close(fd);
  /* O_DIRECT: the same text as a plain read */
  int direct = open(f, O_RDONLY | O_DIRECT | O_CLOEXEC);
  char plain[64] = "", via_direct[64] = "";
  fd = open(f, O_RDONLY | O_CLOEXEC);
  n = read(fd, plain, 16);
  ssize_t d = direct >= 0 ? read(direct, via_direct, 16) : -1;
  printf(", \"O_DIRECT reads the text\": %d", direct >= 0 && n == d && n > 0);
  close(fd);
  if (direct >= 0) close(direct);
  printf("}\n");
}

int main(int argc, char **argv) {
  page = sysconf(_SC_PAGESIZE);
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *mode = argc > 1 ? argv[1] : "";
  if (!strcmp(mode, "memory")) {
    memory(argv[0]);
  } else if (!strcmp(mode, "killed") && argc > 2) {
    killed(atoi(argv[2]));
  } else if (!strcmp(mode, "views") && argc > 2) {
    views(argv[2]);
  } else if (!strcmp(mode, "flood") && argc > 3) {
    flood(atoi(argv[2]), atoi(argv[3]));
  } else {
    fprintf(stderr, "usage: %s memory | killed N | flood SECONDS THREADS | views FILE\n", argv[0]);
    return 2;
  }
  return 0;
}
