/* Runs inside an xgate cell in the MPK lane (tests/lanes/xgate/xgate.sh) and attacks the
 * cell kernel the way a program could, or checks what it serves. One subcommand per run;
 * prints one result line that the script compares.
 *   views                 "mem_mib=N cpus=N": sysinfo's total memory, sched_getaffinity
 *   threads               8 threads x 2000 sysinfo calls: "threads ok N" (all agree)
 *   write-kernel ADDR     store to the cell kernel's memory: "fault pkuerr" / "fault maperr"
 *   read-kernel ADDR      load from it: same
 *   wrpkru                map "wrpkru; ret" it wrote itself as code, run it with EAX = 0:
 *                         "mprotect errno N" / "sigill" / "ran pkru=0x..."
 *   rwx                   ask for writable + executable memory: "rwx ok" / "rwx errno N"
 *   gate SYSCALLIP        jump to the gate's syscall instruction with denied syscalls:
 *                         "mount=E unshare=E bpf=E packet=E ptrace=E io_uring=E keyctl=E"
 *   pkey                  pkey_alloc: "pkey N" / "pkey errno N"
 *   sigsys                its own SIGSYS handler, then raise(SIGSYS): "own handler ran"
 *   fp                    floating point across calls (lazy binding): "fp 3.141593 2.718282"
 *   exec-self             execve("/proc/self/exe", "views"): the views line again
 *   spawn                 100 posix_spawns of /bin/true (vfork children exec through the
 *                         gate with the parent's memory): "spawned 100"
 *   xrstor                XRSTOR of compacted areas it built itself (SSE requested), the
 *                         area's MXCSR bytes 0xdeadbeef with XSTATE_BV[1] = 0 and 0x1fa0
 *                         with it set: "xrstor init=0x1f80 loaded=0x1fa0" on a CPU (the
 *                         first is the initial value, the bytes ignored), "xrstor
 *                         no-xsavec" where the CPU has no compacted form
 *   xrstor-emulated       the same without asking the CPU: under xgate the emulation runs
 *                         it whatever the CPU (the lane's emulated CPU has no XSAVEC)
 *   neutralized           in the executable mappings of the dynamic loader and libc:
 *                         "xrstor=N wrpkru=N ud2=N" (XRSTOR (%rsp)-relative and WRPKRU
 *                         byte sequences left, and UD2s standing in their place)
 *   nocap-exec PROG ARGS  (outside a cell) runs PROG without CAP_SYS_RESOURCE, as a runtime
 *                         in a nested host without it (an unprivileged LXD container) */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_segv(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)uc;
  printf("fault %s\n", si->si_code == 4 /* SEGV_PKUERR */ ? "pkuerr"
                       : si->si_code == SEGV_MAPERR       ? "maperr"
                                                          : "accerr");
  fflush(stdout);
  _exit(0);
}

static void on_sigill(int sig) {
  (void)sig;
  printf("sigill\n");
  fflush(stdout);
  _exit(0);
}

static void views(void) {
  struct sysinfo si;
  if (sysinfo(&si) < 0) {
    printf("sysinfo errno %d\n", errno);
    return;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) < 0) {
    printf("sched_getaffinity errno %d\n", errno);
    return;
  }
  printf("mem_mib=%llu cpus=%d\n", (unsigned long long)si.totalram * si.mem_unit / (1024 * 1024),
         CPU_COUNT(&set));
}

static unsigned long first_total;
static void *thread_main(void *arg) {
  (void)arg;
  for (int i = 0; i < 2000; i++) {
    struct sysinfo si;
    if (sysinfo(&si) < 0 || si.totalram * si.mem_unit != first_total) return (void *)1;
  }
  return NULL;
}

static long gate_call(uintptr_t insn, long nr, long a, long b, long c) {
  long ret;
  register long r10 __asm__("r10") = 0;
  __asm__ volatile(
      "lea 1f(%%rip), %%rcx\n\t"
      "push %%rcx\n\t"
      "jmp *%[insn]\n"
      "1:"
      : "=a"(ret)
      : [insn] "r"(insn), "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
      : "rcx", "r11", "memory");
  return ret;
}

/* What XRSTOR of a compacted area requesting SSE alone loads into MXCSR, with the SSE
 * state marked absent (XSTATE_BV[1] = 0, as XSAVEC leaves it for SSE in its initial state)
 * and present. Under xgate the XRSTOR is neutralized and emulated; without the gate the CPU
 * runs it, which is what the emulation must match. */
static void xrstor_mxcsr(int ask_cpu) {
  unsigned a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0xd), "c"(1));
  if (ask_cpu && !(a & 2)) {
    printf("xrstor no-xsavec\n");
    return;
  }
  static unsigned char area[4096] __attribute__((aligned(64)));
  unsigned got[2];
  const unsigned init_mxcsr = 0x1f80;
  for (int k = 0; k < 2; k++) {
    memset(area, 0, sizeof(area));
    uint32_t bytes = k ? 0x1fa0 : 0xdeadbeef;
    uint64_t bv = k ? 2 : 0, comp = (1ull << 63) | 2;
    memcpy(area + 24, &bytes, 4);
    memcpy(area + 512, &bv, 8);
    memcpy(area + 520, &comp, 8);
    __asm__ volatile("xrstor64 %0"
                     :
                     : "m"(*(unsigned char(*)[4096])area), "a"(2), "d"(0)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory");
    __asm__ volatile("stmxcsr %0" : "=m"(got[k]));
    __asm__ volatile("ldmxcsr %0" : : "m"(init_mxcsr));
  }
  printf("xrstor init=%#x loaded=%#x\n", got[0], got[1]);
}

static unsigned rdpkru(void) {
  unsigned pkru;
  __asm__ volatile("xor %%ecx, %%ecx\n\trdpkru" : "=a"(pkru) : : "rcx", "rdx");
  return pkru;
}

int main(int argc, char **argv) {
  unsigned pkru_at_entry = rdpkru();
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) return 2;
  const char *cmd = argv[1];
  struct sigaction sa = {0};
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, NULL);
  if (!strcmp(cmd, "views")) {
    views();
  } else if (!strcmp(cmd, "threads")) {
    struct sysinfo si;
    sysinfo(&si);
    first_total = si.totalram * si.mem_unit;
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, thread_main, NULL);
    int bad = 0;
    for (int i = 0; i < 8; i++) {
      void *r;
      pthread_join(t[i], &r);
      bad += r != NULL;
    }
    printf(bad ? "threads disagree %d\n" : "threads ok %d\n", bad ? bad : 8);
  } else if (!strcmp(cmd, "write-kernel") && argc > 2) {
    volatile unsigned char *p = (volatile unsigned char *)strtoull(argv[2], NULL, 0);
    *p = 0x41;
    printf("wrote\n");
  } else if (!strcmp(cmd, "read-kernel") && argc > 2) {
    volatile unsigned char *p = (volatile unsigned char *)strtoull(argv[2], NULL, 0);
    printf("read %d\n", *p);
  } else if (!strcmp(cmd, "wrpkru")) {
    signal(SIGILL, on_sigill);
    unsigned char *code =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* xor ecx,ecx; xor edx,edx; wrpkru; rdpkru; ret  (eax = 0 from the caller: all keys open) */
    static const unsigned char insns[] = {0x31, 0xc9, 0x31, 0xd2, 0x0f, 0x01, 0xef,
                                          0x31, 0xc9, 0x0f, 0x01, 0xee, 0xc3};
    memcpy(code, insns, sizeof(insns));
    if (mprotect(code, 4096, PROT_READ | PROT_EXEC) < 0) {
      printf("mprotect errno %d\n", errno);
      return 0;
    }
    unsigned (*fn)(unsigned) = (unsigned (*)(unsigned))(void *)code;
    unsigned pkru;
    __asm__ volatile("xor %%eax, %%eax\n\tcall *%1"
                     : "=a"(pkru)
                     : "r"(fn)
                     : "rcx", "rdx", "memory");
    printf("ran pkru=0x%x\n", pkru);
  } else if (!strcmp(cmd, "rwx")) {
    void *p =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      printf("rwx errno %d\n", errno);
    else
      printf("rwx ok\n");
  } else if (!strcmp(cmd, "gate") && argc > 2) {
    uintptr_t insn = (uintptr_t)strtoull(argv[2], NULL, 0);
    long r[7];
    r[0] = gate_call(insn, SYS_mount, (long)"none", (long)"/tmp", (long)"tmpfs");
    r[1] = gate_call(insn, SYS_unshare, CLONE_NEWUSER, 0, 0);
    r[2] = gate_call(insn, SYS_bpf, 0, 0, 0);
    r[3] = gate_call(insn, SYS_socket, 17 /* AF_PACKET */, 3 /* SOCK_RAW */, 0);
    r[4] = gate_call(insn, SYS_ptrace, 0 /* TRACEME */, 0, 0);
    r[5] = gate_call(insn, SYS_io_uring_setup, 1, 0, 0);
    r[6] = gate_call(insn, SYS_keyctl, 0, 0, 0);
    printf("mount=%ld unshare=%ld bpf=%ld packet=%ld ptrace=%ld io_uring=%ld keyctl=%ld\n", -r[0],
           -r[1], -r[2], -r[3], -r[4], -r[5], -r[6]);
  } else if (!strcmp(cmd, "pkru") && argc > 2) {
    printf("pkru at entry=0x%x now=0x%x\n", pkru_at_entry, rdpkru());
    struct sysinfo si;
    sysinfo(&si);
    printf("pkru after sysinfo=0x%x\n", rdpkru());
    char cmdline[200];
    snprintf(cmdline, sizeof(cmdline),
             "grep -A30 '^%llx' /proc/%d/smaps | grep -m3 -E '^[0-9a-f]|ProtectionKey|VmFlags'",
             strtoull(argv[2], NULL, 0) & ~0xfffull, getpid());
    system(cmdline);
    system("cat /proc/self/status | grep -i seccomp");
  } else if (!strcmp(cmd, "pkey")) {
    long k = syscall(SYS_pkey_alloc, 0, 0);
    if (k < 0)
      printf("pkey errno %d\n", errno);
    else
      printf("pkey %ld\n", k);
  } else if (!strcmp(cmd, "sigsys")) {
    signal(SIGSYS, on_sigill); /* prints "sigill": the name is the handler's, not the signal's */
    raise(SIGSYS);
    printf("own handler did not run\n");
  } else if (!strcmp(cmd, "xrstor") || !strcmp(cmd, "xrstor-emulated")) {
    xrstor_mxcsr(!strcmp(cmd, "xrstor"));
  } else if (!strcmp(cmd, "fp")) {
    volatile double a = 3.14159265, b = 2.71828183;
    char buf[64];
    snprintf(buf, sizeof(buf), "fp %f %f", a, b);
    puts(buf);
  } else if (!strcmp(cmd, "spawn")) {
    int ok = 0;
    for (int i = 0; i < 100; i++) {
      pid_t pid;
      char *args[] = {"/bin/true", NULL};
      if (posix_spawn(&pid, "/bin/true", NULL, NULL, args, NULL) != 0) break;
      int st;
      if (waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0) ok++;
    }
    printf("spawned %d\n", ok);
  } else if (!strcmp(cmd, "neutralized")) {
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    long xrstor = 0, wrpkru = 0, ud2 = 0;
    while (maps && fgets(line, sizeof(line), maps)) {
      unsigned long lo, hi;
      char perms[5];
      if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) != 3 || perms[2] != 'x' || perms[0] != 'r')
        continue;
      if (!strstr(line, "ld-linux") && !strstr(line, "libc.so")) continue;
      const unsigned char *p = (const unsigned char *)lo;
      for (unsigned long i = 0; i + 3 < hi - lo; i++) {
        if (p[i] != 0x0f) continue;
        if (p[i + 1] == 0xae && p[i + 2] == 0x6c && p[i + 3] == 0x24) xrstor++;
        if (p[i + 1] == 0x01 && p[i + 2] == 0xef) wrpkru++;
        if (p[i + 1] == 0x0b && (p[i + 2] == 0xef || (p[i + 2] == 0x6c && p[i + 3] == 0x24))) ud2++;
      }
    }
    printf("xrstor=%ld wrpkru=%ld ud2=%ld\n", xrstor, wrpkru, ud2);
  } else if (!strcmp(cmd, "nocap-exec") && argc > 2) {
    /* out of the bounding set: root's exec then gets every capability but this one */
    if (prctl(PR_CAPBSET_DROP, 24 /* CAP_SYS_RESOURCE */, 0, 0, 0) < 0) {
      printf("capbset errno %d\n", errno);
      return 1;
    }
    execvp(argv[2], argv + 2);
    printf("execvp errno %d\n", errno);
    return 1;
  } else if (!strcmp(cmd, "exec-self")) {
    char *args[] = {argv[0], "views", NULL};
    execv("/proc/self/exe", args);
    printf("execv errno %d\n", errno);
  } else {
    return 2;
  }
  return 0;
}
