/* The few library routines runcell-xgate needs, written out: it links no C library. */
#include <asm/unistd.h>
#include <fcntl.h>

#include "xgate_priv.h"

/* gcc turns a byte loop into a call to memcpy or memset, which here would be the function
 * itself */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_LOOP_CALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NO_LOOP_CALLS
#endif

NO_LOOP_CALLS void *memcpy(void *d, const void *s, size_t n) {
  unsigned char *dd = d;
  const unsigned char *ss = s;
  while (n--) *dd++ = *ss++;
  return d;
}

NO_LOOP_CALLS void *memmove(void *d, const void *s, size_t n) {
  unsigned char *dd = d;
  const unsigned char *ss = s;
  if (dd < ss) {
    while (n--) *dd++ = *ss++;
  } else {
    while (n--) dd[n] = ss[n];
  }
  return d;
}

NO_LOOP_CALLS void *memset(void *d, int c, size_t n) {
  unsigned char *dd = d;
  while (n--) *dd++ = (unsigned char)c;
  return d;
}

NO_LOOP_CALLS int memcmp(const void *a, const void *b, size_t n) {
  const unsigned char *x = a, *y = b;
  for (; n; n--, x++, y++)
    if (*x != *y) return *x - *y;
  return 0;
}

NO_LOOP_CALLS size_t strlen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

int xg_strncmp(const char *a, const char *b, size_t n) {
  for (; n; n--, a++, b++) {
    if (*a != *b) return (unsigned char)*a - (unsigned char)*b;
    if (!*a) return 0;
  }
  return 0;
}

void xg_write_str(int fd, const char *s) {
  (void)XG_SYS3(__NR_write, fd, s, strlen(s));
}

void xg_u64_to_dec(uint64_t v, char *out) {
  char tmp[21];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  out[n] = 0;
}

uint64_t xg_parse_u64(const char **p) {
  const char *s = *p;
  while (*s == ' ' || *s == '\t') s++;
  uint64_t v = 0;
  while (*s >= '0' && *s <= '9') v = v * 10 + (uint64_t)(*s++ - '0');
  *p = s;
  return v;
}

int xg_read_small_file(const char *path, char *buf, size_t size) {
  long fd = XG_SYS4(__NR_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return (int)fd;
  size_t got = 0;
  while (got + 1 < size) {
    long n = XG_SYS3(__NR_read, fd, buf + got, size - 1 - got);
    if (n <= 0) break;
    got += (size_t)n;
  }
  buf[got] = 0;
  (void)XG_SYS1(__NR_close, fd);
  return (int)got;
}

int xg_user_range_ok(uint64_t addr, uint64_t len) {
  uint64_t lo = (uint64_t)__executable_start, hi = (uint64_t)_end;
  if (addr + len < addr) return 0;
  return addr + len <= lo || addr >= hi;
}

struct xg_xsave_layout xg_xsave;

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

void xg_read_xsave_layout(void) {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  xg_xsave.xcr0 = ((uint64_t)hi << 32) | lo;
  for (uint32_t i = 2; i < 63; i++) {
    if (!(xg_xsave.xcr0 & (1ull << i))) continue;
    uint32_t r[4];
    cpuid(0xd, i, r);
    xg_xsave.size[i] = r[0];
    xg_xsave.offset[i] = r[1];
    xg_xsave.align64[i] = (r[2] >> 1) & 1;
  }
}
