/* The cell kernel in the MPK placement: what the gate runs, on its own stack, with its key
 * open, for each SIGSYS the gate's seccomp filter raises and each SIGILL of an instruction
 * the scan neutralized. Everything it reads from the signal frame or from pointers the
 * program passed is the program's to change at any moment, so each value is read once,
 * and nothing is written on the program's behalf into the cell kernel's own memory. */
#include <asm/unistd.h>
#include <fcntl.h>
#include <linux/mman.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/ucontext.h>

#include "xgate_priv.h"

#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif
#define SIGSYS_NR 31
#define SIGILL_NR 4
#define E(x) (-(long)(x))

char xg_program_path[4096];

/* The cell kernel's stacks, one per thread inside the gate (xgate_entry.S claims them). */
__attribute__((aligned(4096))) unsigned char xgate_stacks[XG_NSTACKS << XG_STACK_SHIFT];
int xgate_stack_busy[XG_NSTACKS];

/* --- the program's own handlers for SIGSYS and SIGILL ------------------------------------ */

struct xg_kaction {
  uint64_t handler, flags, restorer, mask;
};
static struct xg_kaction program_action[2]; /* [0] SIGSYS, [1] SIGILL: SIG_DFL at exec */

static int action_index(long sig) {
  return sig == SIGSYS_NR ? 0 : sig == SIGILL_NR ? 1 : -1;
}

/* SIGSYS and SIGILL must never be blocked: the kernel kills a thread whose trapped syscall
 * raises a blocked SIGSYS. The cell kernel takes them out of every mask the program sets
 * (sigprocmask, sigaction's sa_mask), and its own handler runs with SA_NODEFER so that a
 * program handler it calls can make routed syscalls too. */
#define GATE_SIGNALS ((1ull << (SIGSYS_NR - 1)) | (1ull << (SIGILL_NR - 1)))

void xg_install_gate_handlers(void) {
  struct xg_kaction a = {(uint64_t)xgate_signal_entry,
                         SA_SIGINFO | SA_ONSTACK | SA_RESTORER | SA_NODEFER,
                         (uint64_t)xgate_restorer, 0};
  (void)XG_SYS4(__NR_rt_sigaction, SIGSYS_NR, &a, 0, 8);
  (void)XG_SYS4(__NR_rt_sigaction, SIGILL_NR, &a, 0, 8);
}

static long sys_rt_sigaction(long sig, uint64_t act, uint64_t oact, long size) {
  int i = action_index(sig);
  if (size != 8) return E(22);
  if (i < 0) {
    /* another signal: the kernel's, with the gate's signals out of its handler's mask */
    if (act && !xg_user_range_ok(act, sizeof(struct xg_kaction))) return E(14);
    if (oact && !xg_user_range_ok(oact, sizeof(struct xg_kaction))) return E(14);
    struct xg_kaction next;
    if (act) {
      memcpy(&next, (const void *)act, sizeof(next));
      next.mask &= ~GATE_SIGNALS;
    }
    return XG_SYS4(__NR_rt_sigaction, sig, act ? &next : 0, oact, size);
  }
  if (act && !xg_user_range_ok(act, sizeof(struct xg_kaction))) return E(14);
  if (oact && !xg_user_range_ok(oact, sizeof(struct xg_kaction))) return E(14);
  struct xg_kaction old = program_action[i], next;
  if (act) memcpy(&next, (const void *)act, sizeof(next));
  if (oact) memcpy((void *)oact, &old, sizeof(old));
  if (act) program_action[i] = next;
  return 0;
}

/* What to do with a signal that is the program's, not the gate's: its handler's address
 * for the gate to jump to, or 0 after taking the default or ignoring it. */
static uint64_t forward(int sig) {
  int i = action_index(sig);
  struct xg_kaction a = program_action[i];
  if (a.handler == (uint64_t)SIG_IGN) return 0;
  if (a.handler == (uint64_t)SIG_DFL) {
    /* the default action (a core dump) as the kernel would take it: restore the default
     * and send the signal again; it is blocked while this handler runs, so it arrives on
     * the way out */
    struct xg_kaction dfl = {0, 0, 0, 0};
    (void)XG_SYS4(__NR_rt_sigaction, sig, &dfl, 0, 8);
    long pid = XG_SYS0(__NR_getpid), tid = XG_SYS0(__NR_gettid);
    (void)XG_SYS3(__NR_tgkill, pid, tid, sig);
    return 0;
  }
  if (a.flags & SA_RESETHAND) program_action[i].handler = (uint64_t)SIG_DFL;
  return a.handler;
}

/* --- resource views -------------------------------------------------------------------- */

/* A "Key:   N kB" line of /proc/meminfo (the cell's view of it), in bytes. */
static uint64_t meminfo_value(const char *text, const char *key) {
  size_t k = strlen(key);
  for (const char *line = text; *line;) {
    if (!xg_strncmp(line, key, k) && line[k] == ':') {
      const char *p = line + k + 1;
      return xg_parse_u64(&p) * 1024;
    }
    while (*line && *line != '\n') line++;
    if (*line) line++;
  }
  return 0;
}

/* The cell's /proc and /sys views (served by the cell's FUSE filesystem, from its cgroup
 * limits) read at most every 100 ms: a routed syscall then costs the gate's round trip. */
struct view_cache {
  uint64_t read_at_ns;
  uint64_t total, free, buffers, shared, swap_total, swap_free;
  uint64_t loads[3];
  uint64_t procs;
  uint64_t cpus_online; /* CPUs in /sys/devices/system/cpu/online, 0 if unknown */
  int lock;
};
static struct view_cache cache;

static uint64_t now_ns(int clock) {
  struct {
    long s, ns;
  } ts = {0, 0};
  (void)XG_SYS2(__NR_clock_gettime, clock, &ts);
  return (uint64_t)ts.s * 1000000000ull + (uint64_t)ts.ns;
}

static uint64_t count_cpu_list(const char *s) {
  uint64_t n = 0;
  while (*s >= '0' && *s <= '9') {
    uint64_t a = xg_parse_u64(&s), b = a;
    if (*s == '-') {
      s++;
      b = xg_parse_u64(&s);
    }
    if (b >= a) n += b - a + 1;
    if (*s != ',') break;
    s++;
  }
  return n;
}

static void refresh_views(void) {
  uint64_t now = now_ns(1 /* CLOCK_MONOTONIC */);
  if (cache.read_at_ns && now - cache.read_at_ns < 100000000ull) return;
  /* one reader at a time; the others use what is there */
  if (__atomic_exchange_n(&cache.lock, 1, __ATOMIC_ACQUIRE)) return;
  char buf[8192];
  if (xg_read_small_file("/proc/meminfo", buf, sizeof(buf)) > 0) {
    cache.total = meminfo_value(buf, "MemTotal");
    cache.free = meminfo_value(buf, "MemFree");
    cache.buffers = meminfo_value(buf, "Buffers");
    cache.shared = meminfo_value(buf, "Shmem");
    cache.swap_total = meminfo_value(buf, "SwapTotal");
    cache.swap_free = meminfo_value(buf, "SwapFree");
  }
  if (xg_read_small_file("/proc/loadavg", buf, sizeof(buf)) > 0) {
    /* "0.52 0.58 0.59 2/1303 4242": sysinfo's loads are fixed point, 1 << 16 per unit */
    const char *p = buf;
    for (int i = 0; i < 3; i++) {
      uint64_t whole = xg_parse_u64(&p), frac = 0;
      if (*p == '.') {
        p++;
        const char *f = p;
        frac = xg_parse_u64(&p);
        for (long d = p - f; d < 2; d++) frac *= 10;
      }
      cache.loads[i] = (whole << 16) + (frac << 16) / 100;
    }
    while (*p == ' ') p++;
    xg_parse_u64(&p);
    if (*p == '/') {
      p++;
      cache.procs = xg_parse_u64(&p);
    }
  }
  if (xg_read_small_file("/sys/devices/system/cpu/online", buf, sizeof(buf)) > 0)
    cache.cpus_online = count_cpu_list(buf);
  cache.read_at_ns = now;
  __atomic_store_n(&cache.lock, 0, __ATOMIC_RELEASE);
}

static long sys_sysinfo(uint64_t buf) {
  if (!buf || !xg_user_range_ok(buf, sizeof(struct sysinfo))) return E(14);
  refresh_views();
  struct sysinfo si;
  memset(&si, 0, sizeof(si));
  si.uptime = (long)(now_ns(7 /* CLOCK_BOOTTIME */) / 1000000000ull);
  for (int i = 0; i < 3; i++) si.loads[i] = cache.loads[i];
  si.totalram = cache.total;
  si.freeram = cache.free;
  si.sharedram = cache.shared;
  si.bufferram = cache.buffers;
  si.totalswap = cache.swap_total;
  si.freeswap = cache.swap_free;
  si.procs = (unsigned short)(cache.procs > 65535 ? 65535 : cache.procs);
  si.mem_unit = 1;
  memcpy((void *)buf, &si, sizeof(si));
  return 0;
}

/* sched_getaffinity of the caller: the CPUs it may run on, as many as the cell's view of
 * /sys/devices/system/cpu/online counts (its cpu quota). Other pids: the host's answer. */
static long sys_sched_getaffinity(long pid, uint64_t len, uint64_t mask) {
  if (mask && !xg_user_range_ok(mask, len)) return E(14);
  if (pid != 0 && pid != XG_SYS0(__NR_gettid))
    return XG_SYS3(__NR_sched_getaffinity, pid, len, mask);
  unsigned char set[1024];
  uint64_t ask = len < sizeof(set) ? len : sizeof(set);
  long got = XG_SYS3(__NR_sched_getaffinity, 0, ask, set);
  if (got < 0) return got;
  if (len < (uint64_t)got && got > 0) return E(22);
  refresh_views();
  uint64_t keep = cache.cpus_online, kept = 0;
  for (long byte = 0; byte < got; byte++)
    for (int bit = 0; bit < 8; bit++) {
      if (!(set[byte] & (1u << bit))) continue;
      if (keep && kept >= keep)
        set[byte] &= (unsigned char)~(1u << bit);
      else
        kept++;
    }
  memcpy((void *)mask, set, (size_t)got);
  return got;
}

/* xgate_exec_and_leave writes a failed exec's error here */
_Static_assert(__builtin_offsetof(ucontext_t, uc_mcontext.gregs) + REG_RAX * 8 == 144,
               "the signal frame's RAX is not where xgate_entry.S writes it");

/* --- execve: through the cell loader ------------------------------------------------------ */

static int same_file(long fd_a, long fd_b) {
  struct stat a, b;
  if (XG_SYS2(__NR_fstat, fd_a, &a) < 0 || XG_SYS2(__NR_fstat, fd_b, &b) < 0) return 0;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* execve(path, argv, envp) and execveat(dirfd, path, argv, envp, flags): checked as the
 * kernel would check them where an error must reach the caller (the file opens, is
 * executable, has a format the loader knows), then execveat of runcell-xgate with the
 * program's path and argv after its own argv[0]. */
static long sys_execve(ucontext_t *exec_uc, long dirfd, uint64_t path, uint64_t argv, uint64_t envp,
                       long flags) {
  if (!xg_user_range_ok(path, 1) || !xg_user_range_ok(argv, 8)) return E(14);
  const char *p = (const char *)path;
  char target[4096 + 32];
  int empty = p[0] == 0;
  if (empty && !(flags & 0x1000 /* AT_EMPTY_PATH */)) return E(2);
  long fd;
  if (empty) {
    fd = XG_SYS3(__NR_fcntl, dirfd, F_DUPFD_CLOEXEC, 3);
  } else {
    int nofollow = (flags & 0x100 /* AT_SYMLINK_NOFOLLOW */) ? O_NOFOLLOW : 0;
    fd = XG_SYS4(__NR_openat, dirfd, p, O_RDONLY | O_CLOEXEC | nofollow, 0);
  }
  if (fd < 0) return fd;
  long r = XG_SYS5(__NR_faccessat2, fd, "", X_OK, 0x1000 /* AT_EMPTY_PATH */ | 0x200, 0);
  /* no faccessat2, or one without AT_EMPTY_PATH: the loader's open decides */
  if (r == E(38) || r == E(22)) r = 0;
  struct stat st;
  if (!r && XG_SYS2(__NR_fstat, fd, &st) < 0) r = E(13);
  if (!r && (st.st_mode & S_IFMT) != S_IFREG) r = E(13);
  unsigned char head[20] = {0};
  if (!r && XG_SYS4(__NR_pread64, fd, head, sizeof(head), 0) < 4) r = E(8);
  int elf = head[0] == 0x7f && head[1] == 'E' && head[2] == 'L' && head[3] == 'F';
  int elf64 = elf && head[4] == 2 && head[18] == 62 /* EM_X86_64 */;
  int script = head[0] == '#' && head[1] == '!';
  int elf_other = elf && !elf64;
  if (!r && !elf && !script) r = E(8); /* ENOEXEC: the shell runs it itself */
  /* the target for the loader: what the program asked for, as a path the loader can open
   * after exec (a descriptor relative path goes through /proc/self/fd, kept open) */
  const char *name = p;
  int keep_fd = 0;
  if (!r && !elf_other && same_file(fd, RC_XGATE_LOADER_FD)) {
    name = xg_program_path; /* /proc/self/exe and friends: the program, not the loader */
  } else if (!r && !elf_other && (empty || (p[0] != '/' && dirfd != AT_FDCWD))) {
    long held = XG_SYS3(__NR_fcntl, fd, F_DUPFD, 3);
    if (held < 0) {
      r = held;
    } else {
      char num[24];
      xg_u64_to_dec((uint64_t)held, num);
      memcpy(target, "/proc/self/fd/", 15);
      memcpy(target + 14, num, strlen(num) + 1);
      name = target;
      keep_fd = (int)held;
    }
  }
  (void)XG_SYS1(__NR_close, fd);
  if (r) {
    if (keep_fd) (void)XG_SYS1(__NR_close, keep_fd);
    return r;
  }
  /* memory for the exec: the request, its stack and the loader's argv, in one mapping the
   * exec discards (a failed exec leaves it: rare, the checks above come first) */
  const uint64_t *av = (const uint64_t *)argv;
  uint64_t n = 0;
  while (n < (1u << 20) && xg_user_range_ok((uint64_t)&av[n], 8) && av[n]) n++;
  uint64_t bytes = (n + 3) * 8 + 64 + sizeof(struct xg_exec_request) + 8192;
  long mem =
      XG_SYS6(__NR_mmap, 0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if ((unsigned long)mem > -4096ul) {
    if (keep_fd) (void)XG_SYS1(__NR_close, keep_fd);
    return mem;
  }
  struct xg_exec_request *req = (struct xg_exec_request *)mem;
  uint64_t *nargv = (uint64_t *)(req + 1);
  char *argv0 = (char *)(nargv + n + 3);
  memcpy(argv0, RC_XGATE_LOADER_ARGV0, sizeof(RC_XGATE_LOADER_ARGV0));
  if (keep_fd) {
    size_t l = strlen(argv0);
    argv0[l] = ':';
    xg_u64_to_dec((uint64_t)keep_fd, argv0 + l + 1);
  }
  nargv[0] = (uint64_t)argv0;
  nargv[1] = (uint64_t)name;
  for (uint64_t i = 0; i < n; i++) nargv[2 + i] = av[i];
  nargv[2 + n] = 0;
  static const char empty_path[1] = "";
  if (elf_other) {
    /* a 32-bit or foreign program: the cell loader loads x86-64 ELF only; the host kernel
     * runs it, still behind the gate's filters (docs/xgate.md) */
    *req = (struct xg_exec_request){.dirfd = dirfd,
                                    .path = (const char *)path,
                                    .argv = (const void *)argv,
                                    .envp = (const void *)envp,
                                    .flags = flags,
                                    .uc = exec_uc};
  } else {
    *req = (struct xg_exec_request){.dirfd = RC_XGATE_LOADER_FD,
                                    .path = empty_path,
                                    .argv = nargv,
                                    .envp = (const void *)envp,
                                    .flags = 0x1000 /* AT_EMPTY_PATH */,
                                    .uc = exec_uc};
  }
  req->slot = ((uint64_t)__builtin_frame_address(0) - (uint64_t)xgate_stacks) >> XG_STACK_SHIFT;
  req->stack_top = ((uint64_t)mem + bytes) & ~15ull;
  /* the new program inherits the thread's mask as the program had it, not this
   * handler's (sigreturn would have restored it) */
  uint64_t mask;
  memcpy(&mask, &exec_uc->uc_sigmask, 8);
  mask &= ~GATE_SIGNALS;
  (void)XG_SYS4(__NR_rt_sigprocmask, SIG_SETMASK, &mask, 0, 8);
  xgate_exec_and_leave(req);
}

/* sigprocmask, done on the mask the signal frame holds: sigreturn makes it the thread's. */
static long sys_rt_sigprocmask(ucontext_t *uc, long how, uint64_t set, uint64_t oset, long size) {
  if (size != 8) return E(22);
  if (set && !xg_user_range_ok(set, 8)) return E(14);
  if (oset && !xg_user_range_ok(oset, 8)) return E(14);
  uint64_t cur, next = 0;
  memcpy(&cur, &uc->uc_sigmask, 8);
  if (set) {
    memcpy(&next, (const void *)set, 8);
    if (how == SIG_BLOCK)
      next = cur | next;
    else if (how == SIG_UNBLOCK)
      next = cur & ~next;
    else if (how != SIG_SETMASK)
      return E(22);
    /* SIGKILL and SIGSTOP cannot be blocked; nor, in a cell, the gate's signals */
    next &= ~((1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1)) | GATE_SIGNALS);
  }
  if (oset) memcpy((void *)oset, &cur, 8);
  if (set) memcpy(&uc->uc_sigmask, &next, 8);
  return 0;
}

/* close_range over the loader's descriptor: everything else in the range */
static long sys_close_range(uint64_t first, uint64_t last, long flags) {
  long r = 0;
  if (first < RC_XGATE_LOADER_FD)
    r = XG_SYS3(__NR_close_range, first, RC_XGATE_LOADER_FD - 1, flags);
  if (!r && last > RC_XGATE_LOADER_FD)
    r = XG_SYS3(__NR_close_range, RC_XGATE_LOADER_FD + 1, last, flags);
  return r;
}

/* --- SIGSYS: the routed syscalls ------------------------------------------------------- */

static void serve_syscall(ucontext_t *uc, long nr) {
  greg_t *g = uc->uc_mcontext.gregs;
  long a0 = g[REG_RDI], a1 = g[REG_RSI], a2 = g[REG_RDX], a3 = g[REG_R10], a4 = g[REG_R8],
       a5 = g[REG_R9];
  long r;
  switch (nr) {
    case __NR_sysinfo:
      r = sys_sysinfo((uint64_t)a0);
      break;
    case __NR_sched_getaffinity:
      r = sys_sched_getaffinity(a0, (uint64_t)a1, (uint64_t)a2);
      break;
    case __NR_execve:
      r = sys_execve(uc, AT_FDCWD, (uint64_t)a0, (uint64_t)a1, (uint64_t)a2, 0);
      break;
    case __NR_execveat:
      r = sys_execve(uc, a0, (uint64_t)a1, (uint64_t)a2, (uint64_t)a3, a4);
      break;
    case __NR_mmap:
      r = xg_mmap_exec((uint64_t)a0, (uint64_t)a1, a2, a3, a4, a5);
      break;
    case __NR_mprotect:
      r = xg_mprotect_exec((uint64_t)a0, (uint64_t)a1, a2);
      break;
    case __NR_rt_sigaction:
      r = sys_rt_sigaction(a0, (uint64_t)a1, (uint64_t)a2, a3);
      break;
    case __NR_rt_sigprocmask:
      r = sys_rt_sigprocmask(uc, a0, (uint64_t)a1, (uint64_t)a2, a3);
      break;
    case __NR_close_range:
      r = sys_close_range((uint64_t)a0, (uint64_t)a1, a2);
      break;
    default:
      r = E(38);
  }
  g[REG_RAX] = r;
}

/* --- SIGILL: a neutralized WRPKRU or XRSTOR ------------------------------------------- */

#ifndef FP_XSTATE_MAGIC1
#define FP_XSTATE_MAGIC1 0x46505853u
#endif
#define PKRU_BIT 9

struct sw_bytes {
  uint32_t magic1, extended_size;
  uint64_t xfeatures;
  uint32_t xstate_size;
};

/* The frame's XSAVE area (what sigreturn restores) if it has one. */
static unsigned char *frame_xsave(ucontext_t *uc, struct sw_bytes *sw) {
  uint64_t fp = (uint64_t)uc->uc_mcontext.fpregs;
  if (!fp || !xg_user_range_ok(fp, 576)) return 0;
  memcpy(sw, (void *)(fp + 464), sizeof(*sw));
  if (sw->magic1 != FP_XSTATE_MAGIC1 || sw->xstate_size < 576 ||
      !xg_user_range_ok(fp, sw->xstate_size))
    return 0;
  return (unsigned char *)fp;
}

static uint32_t compacted_offset(uint64_t xcomp_bv, int comp) {
  uint32_t off = 576;
  for (int j = 2; j <= comp; j++) {
    if (!(xcomp_bv & (1ull << j))) continue;
    if (xg_xsave.align64[j]) off = (off + 63) & ~63u;
    if (j == comp) return off;
    off += xg_xsave.size[j];
  }
  return off;
}

/* WRPKRU: allowed as long as the cell kernel's key stays access-disabled. */
static int emulate_wrpkru(ucontext_t *uc, uint64_t rip) {
  greg_t *g = uc->uc_mcontext.gregs;
  if ((uint32_t)g[REG_RCX] != 0 || (uint32_t)g[REG_RDX] != 0) return -1;
  uint32_t value = (uint32_t)g[REG_RAX];
  if (!(value & (1u << (2 * RC_XGATE_PKEY)))) return -1; /* would open the key: refused */
  struct sw_bytes sw;
  unsigned char *x = frame_xsave(uc, &sw);
  if (!x || !(sw.xfeatures & (1ull << PKRU_BIT))) return -1;
  uint32_t off = xg_xsave.offset[PKRU_BIT];
  memcpy(x + off, &value, 4);
  uint64_t bv;
  memcpy(&bv, x + 512, 8);
  bv |= 1ull << PKRU_BIT;
  memcpy(x + 512, &bv, 8);
  g[REG_RIP] = (greg_t)rip + 3;
  return 0;
}

/* The register a ModRM/SIB field names, with its REX extension bit. */
static uint64_t reg_value(const greg_t *g, int r) {
  static const int map[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP,
                              REG_RSI, REG_RDI, REG_R8,  REG_R9,  REG_R10, REG_R11,
                              REG_R12, REG_R13, REG_R14, REG_R15};
  return (uint64_t)g[map[r & 15]];
}

/* XRSTOR: done on the signal frame's XSAVE area (which sigreturn loads into the CPU), from
 * the program's buffer, for the requested components except PKRU unless the PKRU it would
 * load keeps the key closed. */
static int emulate_xrstor(ucontext_t *uc, uint64_t start, uint64_t op) {
  greg_t *g = uc->uc_mcontext.gregs;
  unsigned char rex = 0;
  for (uint64_t p = start; p < op; p++) {
    unsigned char b = *(volatile unsigned char *)p;
    if ((b & 0xf0) == 0x40)
      rex = b;
    else
      return -1; /* other prefixes (segments, sizes): not what compilers emit */
  }
  const unsigned char *ip = (const unsigned char *)op;
  unsigned char modrm = ip[2];
  int mod = modrm >> 6, rm = (modrm & 7) | ((rex & 1) << 3);
  uint64_t len = 3, ea;
  if ((modrm & 7) == 4) {
    unsigned char sib = ip[3];
    len++;
    int scale = sib >> 6, index = ((sib >> 3) & 7) | ((rex & 2) << 2),
        base = (sib & 7) | ((rex & 1) << 3);
    ea = index == 4 ? 0 : reg_value(g, index) << scale;
    if ((sib & 7) == 5 && mod == 0) {
      int32_t d;
      memcpy(&d, ip + len, 4);
      len += 4;
      ea += (uint64_t)(int64_t)d;
    } else {
      ea += reg_value(g, base);
    }
  } else if (mod == 0 && (modrm & 7) == 5) {
    int32_t d;
    memcpy(&d, ip + len, 4);
    len += 4;
    ea = op + len + (uint64_t)(int64_t)d; /* rip-relative */
  } else {
    ea = reg_value(g, rm);
  }
  if (mod == 1) {
    ea += (uint64_t)(int64_t)(int8_t)ip[len];
    len += 1;
  } else if (mod == 2) {
    int32_t d;
    memcpy(&d, ip + len, 4);
    len += 4;
    ea += (uint64_t)(int64_t)d;
  }
  if ((ea & 63) || !xg_user_range_ok(ea, 576)) return -1;
  uint64_t rfbm = ((((uint64_t)(uint32_t)g[REG_RDX]) << 32) | (uint32_t)g[REG_RAX]) & xg_xsave.xcr0;
  struct sw_bytes sw;
  unsigned char *x = frame_xsave(uc, &sw);
  if (!x) return -1;
  const unsigned char *src = (const unsigned char *)ea;
  uint64_t src_bv, src_comp, bv;
  memcpy(&src_bv, src + 512, 8);
  memcpy(&src_comp, src + 520, 8);
  memcpy(&bv, x + 512, 8);
  int compacted = (int)(src_comp >> 63);
  if (rfbm & (1ull << PKRU_BIT)) {
    uint32_t pkru = 0; /* a component not in XSTATE_BV loads its initial value: 0 */
    if (src_bv & (1ull << PKRU_BIT)) {
      uint32_t off = compacted ? compacted_offset(src_comp, PKRU_BIT) : xg_xsave.offset[PKRU_BIT];
      if (!xg_user_range_ok(ea + off, 4)) return -1;
      memcpy(&pkru, src + off, 4);
    }
    if (!(pkru & (1u << (2 * RC_XGATE_PKEY)))) return -1; /* would open the key: refused */
  }
  if (rfbm & 1) { /* x87 state, without MXCSR */
    if (src_bv & 1) {
      memcpy(x, src, 24);
      memcpy(x + 32, src + 32, 128);
      bv |= 1;
    } else {
      bv &= ~1ull;
    }
  }
  if (rfbm & 2) { /* SSE registers */
    if (src_bv & 2) {
      memcpy(x + 160, src + 160, 256);
      bv |= 2;
    } else {
      bv &= ~2ull;
    }
  }
  if (rfbm & 6) {
    /* MXCSR. The standard form loads it whenever SSE or AVX is requested; the compacted
     * form only with the SSE state (XSTATE_BV[1]), and sets 0x1f80 otherwise. That case is
     * common: in a signal handler the SSE state is initial, so the dynamic loader's XSAVEC
     * saves no SSE and leaves MXCSR's bytes unwritten (whatever was on its stack; QEMU's
     * emulation writes them anyway, real CPUs do not). Copying them put reserved bits in
     * the frame, and the kernel's XRSTOR of the frame failed the sigreturn. */
    uint32_t mxcsr = 0x1f80, mask;
    if (!compacted || (src_bv & 2)) memcpy(&mxcsr, src + 24, 4);
    memcpy(&mask, x + 28, 4); /* MXCSR_MASK, as the kernel's XSAVE wrote it */
    if (!mask) mask = 0xffbf;
    /* reserved bits: the CPU's XRSTOR would fault (#GP); refused, so the program gets the
     * SIGILL (its handler, or death) rather than a frame sigreturn cannot load */
    if (mxcsr & ~mask) return -1;
    memcpy(x + 24, &mxcsr, 4);
  }
  for (int i = 2; i < 63; i++) {
    if (!(rfbm & (1ull << i))) continue;
    if (!(sw.xfeatures & (1ull << i))) {
      if (src_bv & (1ull << i)) return -1; /* the frame cannot carry it */
      continue;
    }
    if (src_bv & (1ull << i)) {
      uint32_t so = compacted ? compacted_offset(src_comp, i) : xg_xsave.offset[i];
      uint32_t size = xg_xsave.size[i], doff = xg_xsave.offset[i];
      if (!xg_user_range_ok(ea + so, size) || doff + size > sw.xstate_size) return -1;
      memcpy(x + doff, src + so, size);
      bv |= 1ull << i;
    } else {
      bv &= ~(1ull << i);
    }
  }
  memcpy(x + 512, &bv, 8);
  g[REG_RIP] = (greg_t)op + (greg_t)len;
  return 0;
}

/* 0 when the SIGILL was a neutralized instruction and has been emulated. */
static int serve_sigill(ucontext_t *uc) {
  uint64_t rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
  /* the UD2 may follow prefixes (REX.W for xrstor64) */
  for (uint64_t op = rip; op < rip + 5; op++) {
    if (!xg_user_range_ok(op, 3)) return -1;
    int kind = xg_neutralized_at(op);
    if (!kind) continue;
    const unsigned char *b = (const unsigned char *)op;
    if (b[0] != 0x0f || b[1] != 0x0b) return -1;
    if (kind == 1 && op == rip && b[2] == 0xef) return emulate_wrpkru(uc, rip);
    if (kind == 2) return emulate_xrstor(uc, rip, op);
    return -1;
  }
  return -1;
}

/* --- the entry from the gate ---------------------------------------------------------- */

uint64_t xgate_dispatch(int sig, siginfo_t *info, ucontext_t *uc);
uint64_t xgate_dispatch(int sig, siginfo_t *info, ucontext_t *uc) {
  if (sig != SIGSYS_NR && sig != SIGILL_NR) return 0;
  if (!xg_user_range_ok((uint64_t)info, sizeof(*info)) ||
      !xg_user_range_ok((uint64_t)uc, sizeof(*uc)))
    return 0;
  if (sig == SIGSYS_NR) {
    if (info->si_code == 1 /* SYS_SECCOMP */ && info->si_errno == RC_XGATE_TRAP_DATA) {
      serve_syscall(uc, info->si_syscall);
      return 0;
    }
    return forward(sig);
  }
  if (serve_sigill(uc) == 0) return 0;
  return forward(sig);
}
