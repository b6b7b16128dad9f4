/* The VMM's own syscall allow-list, installed (on every thread at once) when the
 * workload starts, after the capabilities are gone: what a guest that took over the VMM
 * could ask the host kernel for is what a running VMM needs — KVM and device ioctls, I/O
 * on the descriptors it already holds, memory and thread housekeeping, signals to itself —
 * and nothing else (no new sockets, no exec, no mounts, no namespaces, no ptrace).
 * Anything else kills the VMM, as Firecracker's filter does. */
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stddef.h>

#include "runcell/microvm.h"
#include "runcell/util.h"

static const char *const allowed[] = {
    /* the vCPUs, the irq lines, the terminal's window size */
    "ioctl",
    /* I/O on held descriptors: the agent channel, stdio, disks, eventfds, signalfd */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "sendmsg", "recvmsg", "sendto", "recvfrom", "poll", "ppoll", "fsync", "fdatasync",
    "lseek", "fcntl", "close", "fstat", "newfstatat", "statx",
    /* the control socket (src/microvm_control.c): callers of exec and ps, whose stdio
     * descriptors arrive by SCM_RIGHTS (recvmsg) */
    "accept4", "accept",
    /* the guest console's tail for an error message (by /proc/self/fd) */
    "openat",
    /* memory and threads */
    "mmap", "munmap", "mprotect", "madvise", "brk", "mremap", "futex", "set_robust_list", "rseq",
    "sched_yield", "getrandom",
    /* time */
    "clock_gettime", "clock_nanosleep", "nanosleep", "gettimeofday",
    /* signals: the vCPU kick, forwarding through the signalfd, exiting as the workload */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "tgkill", "tkill", "getpid", "gettid",
    "restart_syscall",
    /* the end */
    "exit", "exit_group"};

int rc_microvm_jail_syscalls(struct rc_error *err) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
  if (!ctx) return rc_err(err, ENOMEM, "microVM: VMM syscall filter");
  int rc = -1;
  for (size_t i = 0; i < RC_ARRAY_SIZE(allowed); i++) {
    int nr = seccomp_syscall_resolve_name(allowed[i]);
    if (nr == __NR_SCMP_ERROR) continue; /* not on this architecture */
    int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    if (r < 0) {
      rc_err(err, -r, "microVM: VMM syscall filter: allow %s", allowed[i]);
      goto out;
    }
  }
  /* fallocate only to punch holes (the balloon handing guest memory back to the host),
   * never to allocate or grow a file */
  const struct scmp_arg_cmp punch = {.arg = 1,
                                     .op = SCMP_CMP_EQ,
                                     .datum_a = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                     .datum_b = 0};
  int r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fallocate), 1, &punch);
  if (r < 0) {
    rc_err(err, -r, "microVM: VMM syscall filter: allow fallocate");
    goto out;
  }
  /* every thread: the vCPUs and the console's I/O thread already run */
  r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
  if (r == 0) r = seccomp_load(ctx);
  if (r < 0) {
    rc_err(err, -r, "microVM: install the VMM syscall filter");
    goto out;
  }
  rc = 0;
out:
  seccomp_release(ctx);
  return rc;
}
