/* runcell-syscall-probe: makes the syscalls named on its command line and prints what the
 * kernel (or the cell gate in front of it) answered, one line each:
 *
 *   NAME ok          the call succeeded
 *   NAME EPERM       it failed with that errno (glibc's name for it)
 *   NAME absent      no such syscall on this architecture (stime, socketcall on x86-64)
 *   NAME skip:WHY    not made, because making it here could do harm
 *   NAME unknown     the probe does not know the name (exit status 2)
 *
 * Each call is made raw (syscall(2)) with arguments that are harmless and deliberately
 * invalid where they can be: bad pointers, fd -1, bad magic numbers, flags no kernel
 * knows, a pid above PID_MAX_LIMIT. So without the gate, and with every capability, the
 * kernel answers with something other than the gate's errno (EFAULT, EINVAL, EBADF,
 * ESRCH, success, or ENOSYS where the host kernel lacks the feature), and nothing happens
 * when a call succeeds natively: children exit at once and are reaped, personality is
 * restored, sockets and fds are closed.
 *
 * Names with a colon are variants of an argument-checked syscall (clone:newuts,
 * socket:packet, ioctl:tiocsti, personality:addr_no_randomize, ...); "threads" runs a
 * few pthreads, "fork" forks through the C library. Static, so it runs in any rootfs. */
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

enum { OK = 0, ABSENT = -1, SKIP = -2 };

/* Above PID_MAX_LIMIT (4 M on 64-bit): a pid no process can have. */
#define NO_PID 0x3ffffff0L
/* The first page is never mapped: the kernel's copy from it fails with EFAULT. */
#define BAD_PTR ((void *)8)
#define NO_FD (-1L)

static const char *skip_reason = "";

/* The probe's verdict on a raw syscall's return value. */
static int verdict(long r) {
  return r < 0 ? errno : OK;
}

/* A verdict for a call that may have returned a new fd: closed at once. */
static int verdict_fd(long r) {
  if (r < 0) return errno;
  close((int)r);
  return OK;
}

/* --- denied by the gate -------------------------------------------------------------- */

#define RAW(label, ...)                   \
  static int p_##label(void) {            \
    errno = 0;                            \
    return verdict(syscall(__VA_ARGS__)); \
  }
#define RAW_FD(label, ...)                   \
  static int p_##label(void) {               \
    errno = 0;                               \
    return verdict_fd(syscall(__VA_ARGS__)); \
  }
#define MISSING(label)         \
  static int p_##label(void) { \
    return ABSENT;             \
  }

#ifdef SYS_io_uring_setup
RAW_FD(io_uring_setup, SYS_io_uring_setup, 1, NULL) /* params NULL: EFAULT */
RAW(io_uring_enter, SYS_io_uring_enter, NO_FD, 0, 0, 0, NULL, 0)
RAW(io_uring_register, SYS_io_uring_register, NO_FD, 0, NULL, 0)
#else
MISSING(io_uring_setup)
MISSING(io_uring_enter)
MISSING(io_uring_register)
#endif
RAW_FD(bpf, SYS_bpf, 0xfffff, NULL, 0) /* no such command: EINVAL */
RAW_FD(userfaultfd, SYS_userfaultfd, 0xffffffff)
RAW_FD(perf_event_open, SYS_perf_event_open, NULL, 0, -1, -1, 0)
RAW(keyctl, SYS_keyctl, 0x7fffffff, 0, 0, 0, 0) /* no such operation: EOPNOTSUPP */
RAW(add_key, SYS_add_key, NULL, NULL, NULL, 0, 0)
RAW(request_key, SYS_request_key, NULL, NULL, NULL, 0)
RAW(ptrace, SYS_ptrace, 2 /* PTRACE_PEEKDATA */, NO_PID, NULL, NULL)
RAW(process_vm_readv, SYS_process_vm_readv, 1, NULL, 0, NULL, 0, 1) /* flags: EINVAL */
RAW(process_vm_writev, SYS_process_vm_writev, 1, NULL, 0, NULL, 0, 1)
RAW_FD(pidfd_getfd, SYS_pidfd_getfd, NO_FD, 0, 1)
RAW(process_madvise, SYS_process_madvise, NO_FD, NULL, 0, 0, 1)
RAW(kcmp, SYS_kcmp, NO_PID, NO_PID, 0, 0, 0)
/* 17 segments (more than KEXEC_SEGMENT_MAX) and an unknown flag: nothing is loaded or
 * unloaded even where kexec is built */
RAW(kexec_load, SYS_kexec_load, 0, 17, NULL, 0x100)
RAW(kexec_file_load, SYS_kexec_file_load, NO_FD, NO_FD, 0, NULL, 0x80000000UL)
RAW(init_module, SYS_init_module, NULL, 0, "") /* zero-length image: ENOEXEC */
RAW(finit_module, SYS_finit_module, NO_FD, "", 0)
RAW(delete_module, SYS_delete_module, "runcell_probe_no_such_module", O_NONBLOCK)
RAW(mount, SYS_mount, NULL, NULL, NULL, 0, NULL) /* target NULL: EFAULT */
RAW(umount2, SYS_umount2, "/runcell-probe-no-such-dir", 0x80000000UL)
RAW(pivot_root, SYS_pivot_root, NULL, NULL)
RAW(move_mount, SYS_move_mount, NO_FD, NULL, NO_FD, NULL, 0xffffffffUL)
RAW_FD(open_tree, SYS_open_tree, NO_FD, NULL, 0xffffffffUL)
RAW_FD(fsopen, SYS_fsopen, NULL, 0xffffffffUL)
RAW(fsconfig, SYS_fsconfig, NO_FD, 0xffff, NULL, NULL, 0)
RAW_FD(fsmount, SYS_fsmount, NO_FD, 0xffffffffUL, 0)
RAW_FD(fspick, SYS_fspick, NO_FD, NULL, 0xffffffffUL)
RAW(mount_setattr, SYS_mount_setattr, NO_FD, NULL, 0xffffffffUL, NULL, 0)
RAW(unshare, SYS_unshare, 0) /* no flags: a successful no-op */
RAW(setns, SYS_setns, NO_FD, 0)
RAW(clone3, SYS_clone3, NULL, 0) /* size 0: EINVAL */
RAW_FD(open_by_handle_at, SYS_open_by_handle_at, NO_FD, NULL, 0)
RAW(name_to_handle_at, SYS_name_to_handle_at, NO_FD, NULL, NULL, NULL, 0xffffffffUL)
RAW(acct, SYS_acct, "/runcell-probe-no-such-dir/acct")
RAW(swapon, SYS_swapon, NULL, 0x80000000UL) /* unknown flag: EINVAL */
RAW(swapoff, SYS_swapoff, NULL)
RAW(reboot, SYS_reboot, 0, 0, 0, NULL)                 /* wrong magic numbers: EINVAL */
RAW(quotactl, SYS_quotactl, 0x7fffffff, NULL, 0, NULL) /* quota type 0xff: EINVAL */
RAW(quotactl_fd, SYS_quotactl_fd, NO_FD, 0x7fffffff, 0, NULL)
RAW(settimeofday, SYS_settimeofday, BAD_PTR, NULL)
RAW(clock_settime, SYS_clock_settime, CLOCK_REALTIME, NULL)
RAW(clock_adjtime, SYS_clock_adjtime, CLOCK_REALTIME, NULL)
RAW(adjtimex, SYS_adjtimex, NULL)
#ifdef SYS_stime
RAW(stime, SYS_stime, NULL)
#else
MISSING(stime)
#endif
RAW(syslog, SYS_syslog, 0x7fff, NULL, 0) /* no such action: EINVAL */
#ifdef SYS_iopl
RAW(iopl, SYS_iopl, 4)                      /* level above 3: EINVAL */
RAW(ioperm, SYS_ioperm, 0, 0, 0)            /* zero ports: EINVAL */
RAW(modify_ldt, SYS_modify_ldt, 0, NULL, 0) /* read zero bytes */
#else
MISSING(iopl)
MISSING(ioperm)
MISSING(modify_ldt)
#endif
RAW(lookup_dcookie, SYS_lookup_dcookie, 0, NULL, 0)
RAW_FD(fanotify_init, SYS_fanotify_init, 0x80000000UL, 0)
RAW(move_pages, SYS_move_pages, NO_PID, 0, NULL, NULL, NULL, 0)
RAW(migrate_pages, SYS_migrate_pages, NO_PID, 0, NULL, NULL)
#ifdef SYS_uselib
RAW(uselib, SYS_uselib, NULL)
#else
MISSING(uselib)
#endif
RAW(ustat, SYS_ustat, 0, NULL)
RAW(sysfs, SYS_sysfs, 99, 0, 0)
#ifdef SYS__sysctl
RAW(_sysctl, SYS__sysctl, NULL)
#else
MISSING(_sysctl)
#endif
#ifdef SYS_socketcall
RAW(socketcall, SYS_socketcall, 0, NULL)
#else
MISSING(socketcall)
#endif

/* vhangup hangs up the controlling terminal for everyone using it: made only where the
 * probe has none (then it is a successful no-op). */
static int p_vhangup(void) {
  int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (tty >= 0) {
    close(tty);
    skip_reason = "has a controlling terminal";
    return SKIP;
  }
  errno = 0;
  return verdict(syscall(SYS_vhangup));
}

/* --- clone ----------------------------------------------------------------------------- */

/* clone(2) as fork with extra flags: the child exits at once and is reaped. */
static int clone_with(unsigned long flags) {
  errno = 0;
  long pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
  if (pid == 0) syscall(SYS_exit, 0);
  if (pid < 0) return errno;
  int status = 0;
  if (waitpid((pid_t)pid, &status, 0) < 0) return errno;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? OK : ECHILD;
}

static int p_clone_fork(void) {
  return clone_with(0);
}
static int p_clone_io(void) {
  return clone_with(CLONE_IO);
}
static int p_clone_newns(void) {
  return clone_with(CLONE_NEWNS);
}
static int p_clone_newcgroup(void) {
  return clone_with(CLONE_NEWCGROUP);
}
static int p_clone_newuts(void) {
  return clone_with(CLONE_NEWUTS);
}
static int p_clone_newipc(void) {
  return clone_with(CLONE_NEWIPC);
}
static int p_clone_newuser(void) {
  return clone_with(CLONE_NEWUSER);
}
static int p_clone_newpid(void) {
  return clone_with(CLONE_NEWPID);
}
static int p_clone_newnet(void) {
  return clone_with(CLONE_NEWNET);
}

static int p_fork(void) {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  if (pid < 0) return errno;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return errno;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? OK : ECHILD;
}

/* --- sockets --------------------------------------------------------------------------- */

static int socket_of(long domain, long type, long protocol) {
  errno = 0;
  return verdict_fd(syscall(SYS_socket, domain, type | SOCK_CLOEXEC, protocol));
}

static int p_socket_unix(void) {
  return socket_of(AF_UNIX, SOCK_STREAM, 0);
}
static int p_socket_inet(void) {
  return socket_of(AF_INET, SOCK_STREAM, 0);
}
static int p_socket_inet6(void) {
  return socket_of(AF_INET6, SOCK_DGRAM, 0);
}
static int p_socket_netlink_route(void) {
  return socket_of(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
}
static int p_socket_netlink_generic(void) {
  return socket_of(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC);
}
/* A packet socket in the container's own network namespace, closed at once. */
static int p_socket_packet(void) {
  return socket_of(AF_PACKET, SOCK_DGRAM, 0);
}

/* AF_INET with the old SOCK_PACKET type is a packet socket (the kernel rewrites the family) */
static int p_socket_inet_packet(void) {
  return socket_of(AF_INET, 10 /* SOCK_PACKET */, 0x0300 /* htons(ETH_P_ALL) */);
}

/* --- i386 calls from this 64-bit program (int $0x80), as a 32-bit program makes them ---- */

/* The i386 ABI's syscall: numbers and arguments of 32 bits, -errno in eax. */
static long i386_call(long nr, long a, long b, long c) {
  long r;
  __asm__ volatile("int $0x80"
                   : "=a"(r)
                   : "a"(nr), "b"(a), "c"(b), "d"(c)
                   : "memory", "r8", "r9", "r10", "r11");
  return r;
}

/* Does this kernel take i386 calls (IA32 emulation)? Without it int $0x80 is SIGSEGV, so
 * asked in a child. */
static int i386_available(void) {
  pid_t pid = fork();
  if (pid == 0) _exit(i386_call(20 /* getpid */, 0, 0, 0) == (long)getpid() ? 0 : 1);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return 0;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* socketcall(call, args): the argument block must be addressable with 32 bits */
static int i386_socketcall(int call, const unsigned int *args, int nargs, long *out) {
  if (!i386_available()) return ABSENT;
  unsigned int *block =
      mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
  if (block == MAP_FAILED) {
    skip_reason = "no memory below 4 GiB";
    return SKIP;
  }
  memcpy(block, args, sizeof(*args) * (size_t)nargs);
  long r = i386_call(102 /* socketcall */, call, (long)(unsigned long)block, 0);
  if (out) *out = r;
  munmap(block, 4096);
  return r < 0 ? (int)-r : OK;
}

static int p_i386_socketcall_socket(void) {
  const unsigned int args[] = {AF_UNIX, SOCK_STREAM, 0};
  long fd = -1;
  int r = i386_socketcall(1 /* SYS_SOCKET */, args, 3, &fd);
  if (r == OK) close((int)fd);
  return r;
}

static int p_i386_socketcall_socketpair(void) {
  if (!i386_available()) return ABSENT;
  int *sv =
      mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
  if (sv == MAP_FAILED) {
    skip_reason = "no memory below 4 GiB";
    return SKIP;
  }
  sv[0] = sv[1] = -1;
  const unsigned int args[] = {AF_UNIX, SOCK_STREAM, 0, (unsigned int)(unsigned long)sv};
  int r = i386_socketcall(8 /* SYS_SOCKETPAIR */, args, 4, NULL);
  if (r == OK) {
    close(sv[0]);
    close(sv[1]);
  }
  munmap(sv, 4096);
  return r;
}

/* A sub-call on a socket that exists (made with the 64-bit call): not refused */
static int p_i386_socketcall_getsockopt(void) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    skip_reason = "no unix socket";
    return SKIP;
  }
  int *out =
      mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
  if (out == MAP_FAILED) {
    close(fd);
    skip_reason = "no memory below 4 GiB";
    return SKIP;
  }
  out[1] = sizeof(int);
  const unsigned int args[] = {(unsigned int)fd, SOL_SOCKET, SO_TYPE,
                               (unsigned int)(unsigned long)&out[0],
                               (unsigned int)(unsigned long)&out[1]};
  int r = i386_socketcall(15 /* SYS_GETSOCKOPT */, args, 5, NULL);
  if (r == OK && out[0] != SOCK_STREAM) r = EINVAL;
  munmap(out, 4096);
  close(fd);
  return r;
}

/* mseal (Linux 6.10) of a page of its own: allowed by the policy, though libseccomp 2.5.4
 * cannot name it. The page stays sealed (and mapped) until the probe exits. */
static int p_mseal(void) {
  void *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) {
    skip_reason = "no memory";
    return SKIP;
  }
  errno = 0;
  return verdict(syscall(462 /* mseal */, page, 4096, 0));
}

static int socketpair_of(long domain) {
  int sv[2] = {-1, -1};
  errno = 0;
  long r = syscall(SYS_socketpair, domain, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
  if (r < 0) return errno;
  close(sv[0]);
  close(sv[1]);
  return OK;
}

static int p_socketpair_unix(void) {
  return socketpair_of(AF_UNIX);
}
/* inet has no socketpair: EOPNOTSUPP from the kernel */
static int p_socketpair_inet(void) {
  return socketpair_of(AF_INET);
}

/* --- ioctl ----------------------------------------------------------------------------- */

/* A fresh pty master of the container's own devpts instance. */
static int open_pty_master(int *fd) {
  *fd = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  return *fd < 0 ? errno : OK;
}

static int ioctl_on_pty(unsigned long request, void *arg) {
  int fd = -1;
  int r = open_pty_master(&fd);
  if (r != OK) {
    skip_reason = "cannot open /dev/ptmx";
    return SKIP;
  }
  errno = 0;
  r = verdict(syscall(SYS_ioctl, fd, request, arg));
  close(fd);
  return r;
}

static int p_ioctl_tcgets(void) {
  struct termios t;
  return ioctl_on_pty(TCGETS, &t);
}

/* Types one character into the probe's own pty: what TIOCSTI would do to a shared one. */
static int p_ioctl_tiocsti(void) {
  char c = 'x';
  return ioctl_on_pty(TIOCSTI, &c);
}

/* SIOCGIFMAP (the interface's hardware map) is not on the gate's list. */
static int p_ioctl_siocgifmap(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    skip_reason = "no inet socket";
    return SKIP;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  strcpy(ifr.ifr_name, "lo");
  errno = 0;
  int r = verdict(syscall(SYS_ioctl, s, SIOCGIFMAP, &ifr));
  close(s);
  return r;
}

static int p_ioctl_fionread(void) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return errno;
  int n = 0;
  errno = 0;
  int r = verdict(syscall(SYS_ioctl, p[0], FIONREAD, &n));
  close(p[0]);
  close(p[1]);
  return r;
}

/* --- personality ----------------------------------------------------------------------- */

/* Sets a persona and puts the old one back. */
static int personality_of(unsigned long persona) {
  errno = 0;
  long old = syscall(SYS_personality, persona);
  if (old < 0) return errno;
  if (persona != 0xffffffffUL) syscall(SYS_personality, (unsigned long)old);
  return OK;
}

static int p_personality_query(void) {
  return personality_of(0xffffffffUL);
}
static int p_personality_linux(void) {
  return personality_of(PER_LINUX);
}
static int p_personality_linux32(void) {
  return personality_of(PER_LINUX32);
}
static int p_personality_addr_no_randomize(void) {
  return personality_of(PER_LINUX | ADDR_NO_RANDOMIZE);
}
static int p_personality_read_implies_exec(void) {
  return personality_of(PER_LINUX | READ_IMPLIES_EXEC);
}

/* --- plain calls a bundle's own filter may refuse -------------------------------------- */

static int p_getcwd(void) {
  char buf[256];
  errno = 0;
  return verdict(syscall(SYS_getcwd, buf, sizeof(buf)));
}

static int p_mkdir(void) {
  static const char dir[] = "/dev/shm/runcell-probe-mkdir"; /* a tmpfs: root may be read-only */
  errno = 0;
  int r = verdict(syscall(SYS_mkdir, dir, 0700));
  if (r == OK) rmdir(dir);
  return r;
}

/* --- threads --------------------------------------------------------------------------- */

#define N_THREADS 4

struct thread_job {
  unsigned long n;
  int ok;
};

static void *thread_main(void *arg) {
  struct thread_job *job = arg;
  /* some work of its own, and a syscall from the thread */
  volatile unsigned long sum = 0;
  for (unsigned long i = 0; i <= 1000 * job->n; i++) sum += i;
  job->ok = syscall(SYS_gettid) > 0 && sum == 1000 * job->n * (1000 * job->n + 1) / 2;
  return NULL;
}

/* pthread_create: glibc tries clone3 first and, given ENOSYS, clone with thread flags. */
static int p_threads(void) {
  pthread_t t[N_THREADS];
  struct thread_job jobs[N_THREADS];
  for (size_t i = 0; i < N_THREADS; i++) {
    jobs[i] = (struct thread_job){.n = i + 1, .ok = 0};
    int r = pthread_create(&t[i], NULL, thread_main, &jobs[i]);
    if (r != 0) {
      for (size_t j = 0; j < i; j++) pthread_join(t[j], NULL);
      return r;
    }
  }
  int result = OK;
  for (size_t i = 0; i < N_THREADS; i++) {
    pthread_join(t[i], NULL);
    if (!jobs[i].ok) result = ECANCELED;
  }
  return result;
}

/* --- the table ------------------------------------------------------------------------- */

struct probe {
  const char *name;
  int (*fn)(void);
};

#define P(label) \
  { #label, p_##label }

static const struct probe probes[] = {
    P(io_uring_setup),
    P(io_uring_enter),
    P(io_uring_register),
    P(bpf),
    P(userfaultfd),
    P(perf_event_open),
    P(keyctl),
    P(add_key),
    P(request_key),
    P(ptrace),
    P(process_vm_readv),
    P(process_vm_writev),
    P(pidfd_getfd),
    P(process_madvise),
    P(kcmp),
    P(kexec_load),
    P(kexec_file_load),
    P(init_module),
    P(finit_module),
    P(delete_module),
    P(mount),
    P(umount2),
    P(pivot_root),
    P(move_mount),
    P(open_tree),
    P(fsopen),
    P(fsconfig),
    P(fsmount),
    P(fspick),
    P(mount_setattr),
    P(unshare),
    P(setns),
    P(clone3),
    P(open_by_handle_at),
    P(name_to_handle_at),
    P(acct),
    P(swapon),
    P(swapoff),
    P(reboot),
    P(quotactl),
    P(quotactl_fd),
    P(settimeofday),
    P(clock_settime),
    P(clock_adjtime),
    P(adjtimex),
    P(stime),
    P(syslog),
    P(vhangup),
    P(iopl),
    P(ioperm),
    P(modify_ldt),
    P(lookup_dcookie),
    P(fanotify_init),
    P(move_pages),
    P(migrate_pages),
    P(uselib),
    P(ustat),
    P(sysfs),
    P(_sysctl),
    P(socketcall),
    {"clone:fork", p_clone_fork},
    {"clone:io", p_clone_io},
    {"clone:newns", p_clone_newns},
    {"clone:newcgroup", p_clone_newcgroup},
    {"clone:newuts", p_clone_newuts},
    {"clone:newipc", p_clone_newipc},
    {"clone:newuser", p_clone_newuser},
    {"clone:newpid", p_clone_newpid},
    {"clone:newnet", p_clone_newnet},
    {"socket:unix", p_socket_unix},
    {"socket:inet", p_socket_inet},
    {"socket:inet6", p_socket_inet6},
    {"socket:netlink_route", p_socket_netlink_route},
    {"socket:netlink_generic", p_socket_netlink_generic},
    {"socket:packet", p_socket_packet},
    {"socket:inet_packet", p_socket_inet_packet},
    {"i386:socketcall_socket", p_i386_socketcall_socket},
    {"i386:socketcall_socketpair", p_i386_socketcall_socketpair},
    {"i386:socketcall_getsockopt", p_i386_socketcall_getsockopt},
    {"socketpair:unix", p_socketpair_unix},
    {"socketpair:inet", p_socketpair_inet},
    {"ioctl:tcgets", p_ioctl_tcgets},
    {"ioctl:tiocsti", p_ioctl_tiocsti},
    {"ioctl:siocgifmap", p_ioctl_siocgifmap},
    {"ioctl:fionread", p_ioctl_fionread},
    {"personality:query", p_personality_query},
    {"personality:linux", p_personality_linux},
    {"personality:linux32", p_personality_linux32},
    {"personality:addr_no_randomize", p_personality_addr_no_randomize},
    {"personality:read_implies_exec", p_personality_read_implies_exec},
    P(mseal),
    P(getcwd),
    P(mkdir),
    P(fork),
    P(threads),
};

static const struct probe *find(const char *name) {
  for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
    if (!strcmp(probes[i].name, name)) return &probes[i];
  return NULL;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--list")) {
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) puts(probes[i].name);
    return 0;
  }
  int status = 0;
  for (int i = 1; i < argc; i++) {
    const struct probe *p = find(argv[i]);
    if (!p) {
      printf("%s unknown\n", argv[i]);
      status = 2;
      continue;
    }
    skip_reason = "";
    int r = p->fn();
    if (r == OK)
      printf("%s ok\n", p->name);
    else if (r == ABSENT)
      printf("%s absent\n", p->name);
    else if (r == SKIP)
      printf("%s skip:%s\n", p->name, skip_reason);
    else {
      const char *e = strerrorname_np(r);
      if (e)
        printf("%s %s\n", p->name, e);
      else
        printf("%s errno%d\n", p->name, r);
    }
    fflush(stdout);
  }
  return status;
}
