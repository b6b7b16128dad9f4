/* Executable memory in an xgate cell: nothing becomes executable before it is scanned
 * for the two instructions that can open the cell kernel's protection key from user mode,
 * WRPKRU (0f 01 ef) and XRSTOR (0f ae /5, memory operand). Each one found is neutralized:
 * its 0f xx becomes UD2 (0f 0b) and its address is remembered, so that executing it traps
 * to the cell kernel, which emulates it without letting it touch the key (xgate_kernel.c).
 * XRSTORS and XSAVES are privileged and fault in user mode by themselves.
 *
 * The scan must see exactly the bytes that will execute, so:
 *  - the memory is made inaccessible to the program's other threads while it is scanned
 *    (tagged with the cell kernel's key), and only then given its final protection;
 *  - every page is written once first, so a private file mapping holds its own copy: a
 *    later write to the file (through write(2) or another mapping) cannot reach it;
 *  - writable + executable (W^X) and shared executable mappings are refused (EACCES): they
 *    could change after the scan;
 *  - an instruction across the edge with an executable neighbour is looked for too. */
#include <asm/unistd.h>
#include <fcntl.h>
#include <linux/mman.h>
#include <sys/stat.h>

#include "xgate_priv.h"

#define PAGE 4096ull
#define PAGE_UP(x) (((x) + PAGE - 1) & ~(PAGE - 1))
#define ERR(r) ((unsigned long)(r) > -4096ul)

/* The key the scan window is tagged with: 0 in the loader (it runs alone, before the
 * program, with the key closed), the cell kernel's once the program runs. */
int xg_scan_key;

/* --- the neutralized instructions ------------------------------------------------------ */

#define TABLE_SLOTS 16384
static uint64_t table[TABLE_SLOTS]; /* address | kind << 56 */

static uint64_t slot_of(uint64_t addr) {
  return (addr * 0x9E3779B97F4A7C15ull) >> 50;
}

static int remember(uint64_t addr, int kind) {
  uint64_t v = addr | ((uint64_t)kind << 56);
  for (uint64_t i = 0, s = slot_of(addr); i < TABLE_SLOTS; i++, s = (s + 1) % TABLE_SLOTS) {
    uint64_t cur = __atomic_load_n(&table[s], __ATOMIC_ACQUIRE);
    if ((cur & ((1ull << 56) - 1)) == addr) {
      __atomic_store_n(&table[s], v, __ATOMIC_RELEASE);
      return 0;
    }
    uint64_t zero = 0;
    if (cur == 0 &&
        __atomic_compare_exchange_n(&table[s], &zero, v, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
      return 0;
  }
  return -1;
}

int xg_neutralized_at(uint64_t addr) {
  for (uint64_t i = 0, s = slot_of(addr); i < TABLE_SLOTS; i++, s = (s + 1) % TABLE_SLOTS) {
    uint64_t cur = __atomic_load_n(&table[s], __ATOMIC_ACQUIRE);
    if (cur == 0) return 0;
    if ((cur & ((1ull << 56) - 1)) == addr) return (int)(cur >> 56);
  }
  return 0;
}

static int is_xrstor_modrm(unsigned char m) {
  return ((m >> 3) & 7) == 5 && (m >> 6) != 3;
}

/* Neutralizes every occurrence in [p, p+n); -1 when the table is full. */
static int neutralize(unsigned char *p, uint64_t n) {
  for (uint64_t i = 0; i + 2 < n; i++) {
    if (p[i] != 0x0f) continue;
    if (p[i + 1] == 0x01 && p[i + 2] == 0xef) {
      if (remember((uint64_t)(p + i), 1) < 0) return -1;
      p[i + 1] = 0x0b;
    } else if (p[i + 1] == 0xae && is_xrstor_modrm(p[i + 2])) {
      if (remember((uint64_t)(p + i), 2) < 0) return -1;
      p[i + 1] = 0x0b;
    }
  }
  return 0;
}

/* Does a 3-byte window hold either instruction? */
static int dangerous3(const unsigned char *w) {
  return w[0] == 0x0f &&
         ((w[1] == 0x01 && w[2] == 0xef) || (w[1] == 0xae && is_xrstor_modrm(w[2])));
}

/* --- /proc/self/maps ---------------------------------------------------------------------- */

/* The permissions ("rwxp") of the mapping holding addr; 0 when none. */
static int maps_perms(uint64_t addr, char perms[5]) {
  long fd = XG_SYS4(__NR_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return 0;
  char buf[4096];
  size_t have = 0;
  int found = 0;
  for (;;) {
    long n = XG_SYS3(__NR_read, fd, buf + have, sizeof(buf) - 1 - have);
    if (n <= 0) break;
    have += (size_t)n;
    buf[have] = 0;
    char *line = buf;
    for (;;) {
      char *nl = line;
      while (*nl && *nl != '\n') nl++;
      if (!*nl) break;
      const char *q = line;
      uint64_t lo = 0, hi = 0;
      for (; *q && *q != '-'; q++) lo = lo * 16 + (uint64_t)(*q <= '9' ? *q - '0' : *q - 'a' + 10);
      for (q++; *q && *q != ' '; q++)
        hi = hi * 16 + (uint64_t)(*q <= '9' ? *q - '0' : *q - 'a' + 10);
      if (addr >= lo && addr < hi) {
        memcpy(perms, q + 1, 4);
        perms[4] = 0;
        found = 1;
        break;
      }
      line = nl + 1;
    }
    if (found) break;
    size_t rest = (size_t)(buf + have - line);
    memmove(buf, line, rest);
    have = rest;
    if (have >= sizeof(buf) - 1) have = 0; /* an absurdly long line: skip it */
  }
  (void)XG_SYS1(__NR_close, fd);
  return found;
}

/* Reads up to 2 bytes of an executable, readable neighbour; the count read. */
static int neighbour_bytes(uint64_t addr, unsigned char out[2]) {
  char perms[5];
  if (!maps_perms(addr, perms) || perms[0] != 'r' || perms[2] != 'x') return 0;
  out[0] = *(volatile unsigned char *)addr;
  if (maps_perms(addr + 1, perms) && perms[0] == 'r') {
    out[1] = *(volatile unsigned char *)(addr + 1);
    return 2;
  }
  return 1;
}

/* Looks across both edges of [start, start+len) (already neutralized). */
static int edges_clean(unsigned char *start, uint64_t len) {
  unsigned char w[6];
  unsigned char before[2];
  uint64_t s = (uint64_t)start;
  if (s >= 2 && (start[0] == 0x01 || start[0] == 0xef || start[0] == 0xae || start[1] == 0xef ||
                 start[1] == 0xae || is_xrstor_modrm(start[0]) || is_xrstor_modrm(start[1]))) {
    int n = neighbour_bytes(s - 2, before);
    if (n == 2) {
      w[0] = before[0], w[1] = before[1], w[2] = start[0], w[3] = start[1];
      if (dangerous3(w) || dangerous3(w + 1)) return 0;
    } else if (neighbour_bytes(s - 1, before) >= 1) {
      w[0] = before[0], w[1] = start[0], w[2] = start[1];
      if (dangerous3(w)) return 0;
    }
  }
  unsigned char *end = start + len;
  if (end[-1] == 0x0f || end[-2] == 0x0f) {
    unsigned char after[2];
    int n = neighbour_bytes((uint64_t)end, after);
    if (n >= 1) {
      w[0] = end[-2], w[1] = end[-1], w[2] = after[0], w[3] = n == 2 ? after[1] : 0;
      if (dangerous3(w) || (n == 2 && dangerous3(w + 1))) return 0;
    }
  }
  return 1;
}

/* Is the page readable without a fault (mapped, and backed by the file for a file page)?
 * A FUTEX_WAIT with a zero timeout reads one aligned word: EFAULT when it cannot, never a
 * signal, and no other effect. */
static int page_readable(uint64_t addr) {
  struct {
    long s, ns;
  } zero = {0, 0};
  long r = XG_SYS6(__NR_futex, addr, 128 /* FUTEX_WAIT_PRIVATE */, 0x7fffffff, &zero, 0, 0);
  return r != -14 /* EFAULT */;
}

/* Copies, scans and neutralizes [addr, addr+len) in place; the window is tagged with
 * xg_scan_key and writable while this runs. -EACCES when an edge is dangerous, -ENOMEM
 * when the table is full. */
static long scan_window(uint64_t addr, uint64_t len, int probe_pages) {
  for (uint64_t p = addr; p < addr + len; p += PAGE) {
    if (probe_pages && !page_readable(p)) return -14;
    /* a private copy of every page: later writes to the file cannot reach it */
    volatile unsigned char *b = (volatile unsigned char *)p;
    unsigned char v = *b;
    *b = v;
  }
  if (neutralize((unsigned char *)addr, len) < 0) return -12;
  if (len >= 2 && !edges_clean((unsigned char *)addr, len)) return -13;
  return 0;
}

long xg_mmap_exec(uint64_t addr, uint64_t len, long prot, long flags, long fd, long off) {
  if (prot & PROT_WRITE) return -13;
  if ((flags & MAP_TYPE) != MAP_PRIVATE) return -13;
  if (len == 0) return -22;
  uint64_t len_pg = PAGE_UP(len);
  if ((flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) && !xg_user_range_ok(addr, len_pg)) return -13;
  long r = XG_SYS6(__NR_mmap, addr, len, PROT_NONE, flags, fd, off);
  if (ERR(r)) return r;
  uint64_t base = (uint64_t)r;
  if (!xg_user_range_ok(base, len_pg)) {
    (void)XG_SYS2(__NR_munmap, base, len);
    return -12;
  }
  uint64_t touch = len_pg;
  if (!(flags & MAP_ANONYMOUS)) {
    struct stat st;
    if (XG_SYS2(__NR_fstat, fd, &st) < 0) st.st_size = 0;
    uint64_t size = (uint64_t)st.st_size;
    touch = (uint64_t)off >= size ? 0 : PAGE_UP(size - (uint64_t)off);
    if (touch > len_pg) touch = len_pg;
  }
  long e = 0;
  if (touch) {
    e = XG_SYS4(__NR_pkey_mprotect, base, touch, PROT_READ | PROT_WRITE, xg_scan_key);
    if (!e) e = scan_window(base, touch, 0);
    if (!e) e = XG_SYS4(__NR_pkey_mprotect, base, touch, prot | PROT_READ, 0);
  }
  /* pages past the end of the file: nothing there may run (they fault on access anyway) */
  if (!e && touch < len_pg)
    e = XG_SYS4(__NR_pkey_mprotect, base + touch, len_pg - touch, prot & ~PROT_EXEC, 0);
  if (e) {
    (void)XG_SYS2(__NR_munmap, base, len);
    return e;
  }
  return r;
}

long xg_mprotect_exec(uint64_t addr, uint64_t len, long prot) {
  if (prot & PROT_WRITE) return -13;
  if (addr & (PAGE - 1)) return -22;
  if (len == 0) return 0;
  uint64_t len_pg = PAGE_UP(len);
  if (!xg_user_range_ok(addr, len_pg)) return -13;
  /* every page must be a private mapping: shared ones could change after the scan */
  for (uint64_t p = addr; p < addr + len_pg; p += PAGE) {
    char perms[5];
    if (!maps_perms(p, perms)) return -12; /* as mprotect: ENOMEM for unmapped pages */
    if (perms[3] == 's') return -13;
  }
  long e = XG_SYS4(__NR_pkey_mprotect, addr, len_pg, PROT_READ | PROT_WRITE, xg_scan_key);
  if (e) return e;
  e = scan_window(addr, len_pg, 1);
  if (e) {
    /* leave it as inaccessible to the program as it was to be made runnable */
    (void)XG_SYS4(__NR_pkey_mprotect, addr, len_pg, PROT_NONE, 0);
    return e == -14 ? -12 : e;
  }
  return XG_SYS4(__NR_pkey_mprotect, addr, len_pg, prot | PROT_READ, 0);
}
