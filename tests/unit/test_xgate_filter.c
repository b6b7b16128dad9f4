/* The xgate placement's seccomp filter (src/cell/xgate_host.c), loaded for real in a forked
 * child (no protection keys needed): what it traps into the gate, what it refuses, what it
 * lets through, and that the gate's own syscall instruction gets through where the same
 * syscall elsewhere is trapped. A SIGSYS handler installed before the filter records each
 * trap and makes the trapped syscall return TRAPPED. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/ucontext.h>
#include <unistd.h>

#include "runcell/xgate.h"
#include "unit.h"
#include "xgate_layout.h"

#define TRAPPED (-12345L)

static volatile int traps, last_nr, last_data;

static void on_sigsys(int sig, siginfo_t *si, void *ctx) {
  (void)sig;
  ucontext_t *uc = ctx;
  traps++;
  last_nr = si->si_syscall;
  last_data = si->si_errno;
  uc->uc_mcontext.gregs[REG_RAX] = TRAPPED;
}

/* raw syscalls only after the filter: glibc wrappers may make others (sigprocmask...) */
static long sys6(long nr, long a, long b, long c, long d, long e, long f) {
  long r;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(r)
                   : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return r;
}
#define SYS(nr, ...) sys6_((nr), __VA_ARGS__, 0, 0, 0, 0, 0, 0)
#define sys6_(nr, a, b, c, d, e, f, ...) \
  sys6((nr), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

static int trapped(long r, int nr) {
  int ok = r == TRAPPED && last_nr == nr && last_data == RC_XGATE_TRAP_DATA;
  last_nr = -1;
  return ok;
}

static void child_filter(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_sigsys;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  CHECK(sigaction(SIGSYS, &sa, NULL) == 0);
  /* a stand-in for the gate's syscall instruction, where runcell-xgate has it */
  void *page = (void *)(RC_XGATE_GATE_IP & ~0xfffull);  // NOLINT(performance-no-int-to-ptr)
  unsigned char *stub = mmap(page, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  CHECK(stub == page);
  if (stub != page) return;
  unsigned char *insn = stub + ((RC_XGATE_GATE_IP - 2) & 0xfff);
  insn[0] = 0x0f, insn[1] = 0x05, insn[2] = 0xc3; /* syscall; ret */
  int devnull = open("/dev/null", O_RDONLY);
  CHECK(dup2(devnull, RC_XGATE_LOADER_FD) == RC_XGATE_LOADER_FD);
  CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
  struct rc_error err = {0};
  CHECK(rc_xgate_install_filter(&err) == 0);

  struct sysinfo si;
  CHECK(trapped(SYS(SYS_sysinfo, &si), SYS_sysinfo));
  CHECK(trapped(SYS(SYS_sched_getaffinity, 0, 128, &si), SYS_sched_getaffinity));
  CHECK(SYS(SYS_getppid, 0) > 0);
  CHECK(last_nr == -1);
  /* through the gate's instruction: the host answers */
  long r;
  __asm__ volatile("call *%1"
                   : "=a"(r)
                   : "r"(insn), "a"((long)SYS_sysinfo), "D"(&si)
                   : "rcx", "r11", "memory");
  CHECK(r == 0 && last_nr == -1);

  long m = SYS(SYS_mmap, 0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m > 0 && last_nr == -1);
  CHECK(trapped(SYS(SYS_mmap, 0, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                SYS_mmap));
  CHECK(SYS(SYS_mprotect, m, 4096, PROT_READ | PROT_WRITE) == 0 && last_nr == -1);
  CHECK(trapped(SYS(SYS_mprotect, m, 4096, PROT_READ | PROT_EXEC), SYS_mprotect));
  CHECK(trapped(SYS(SYS_execve, "/nonexistent", 0, 0), SYS_execve));
  CHECK(trapped(SYS(SYS_execveat, AT_FDCWD, "/nonexistent", 0, 0, 0), SYS_execveat));
  /* execveat of the loader goes to the host (here /dev/null: not executable) */
  const char *argv[] = {"x", NULL};
  CHECK(SYS(SYS_execveat, RC_XGATE_LOADER_FD, "", argv, argv + 1, AT_EMPTY_PATH) == -EACCES);
  CHECK(trapped(SYS(SYS_rt_sigaction, SIGUSR1, 0, 0, 8), SYS_rt_sigaction));
  CHECK(trapped(SYS(SYS_rt_sigprocmask, SIG_BLOCK, 0, 0, 8), SYS_rt_sigprocmask));
  CHECK(SYS(SYS_pkey_alloc, 0, 0) == -ENOSPC);
  CHECK(SYS(SYS_pkey_free, 1) == -EINVAL);
  CHECK(SYS(SYS_pkey_mprotect, m, 4096, PROT_READ, 0) == -EPERM);
  CHECK(SYS(SYS_shmat, 0, 0, 0100000 /* SHM_EXEC */) == -EACCES);
  /* the loader's descriptor stays open */
  CHECK(SYS(SYS_close, RC_XGATE_LOADER_FD) == 0);
  CHECK(SYS(SYS_dup2, 0, RC_XGATE_LOADER_FD) == -EBADF);
  CHECK(SYS(SYS_dup3, 0, RC_XGATE_LOADER_FD, 0) == -EBADF);
  CHECK(SYS(SYS_fcntl, RC_XGATE_LOADER_FD, F_SETFD, FD_CLOEXEC) == 0);
  CHECK(SYS(SYS_fcntl, RC_XGATE_LOADER_FD, F_GETFD) == 0);
  CHECK(trapped(SYS(SYS_close_range, 3, ~0U, 0), SYS_close_range));
  CHECK(trapped(SYS(SYS_close_range, RC_XGATE_LOADER_FD, RC_XGATE_LOADER_FD, 0), SYS_close_range));
  CHECK(SYS(SYS_close_range, RC_XGATE_LOADER_FD + 1, ~0U, 0) == 0 && last_nr == -1);
  CHECK(SYS(SYS_close_range, RC_XGATE_LOADER_FD - 2, RC_XGATE_LOADER_FD - 1, 0) == 0);
  CHECK(SYS(SYS_fcntl, RC_XGATE_LOADER_FD, F_GETFD) == 0); /* still open */
}

static void test_filter(void) {
  unit_in_child("xgate filter", child_filter);
}

UNIT_MAIN("xgate_filter", UNIT_CASE(test_filter))
