/* The VMM's jail, entered as soon as its threads exist — the vCPU threads wait parked
 * until it is in place, so the guest runs not one instruction before it (the guest kernel
 * probes the disks, which hold the container's image, as it boots) — so that a guest
 * that takes over the VMM holds what Firecracker's jailer leaves (startContainer hooks,
 * which need the host, run from a helper forked before it: src/microvm_init.c):
 *  - an empty, read-only root: the VMM's mount namespace (its own since it was one
 *    thread) holds nothing but a tmpfs, so no path leads to the host's files;
 *  - no capability on any thread: capabilities are per thread, so the vCPU and I/O
 *    threads (those that run the device models) start without them
 *    (vmm_thread_start) and the main thread drops its own here; it stays uid 0, which only
 *    root can signal (a shared unprivileged uid would let every host process of that uid
 *    stop or kill it), and the filter keeps it from signalling anyone but itself;
 *  - a syscall allow-list on every thread: KVM and terminal ioctls by request number,
 *    I/O on the descriptors it already holds, memory and thread housekeeping, signals to
 *    itself only, and nothing else (no new sockets or files, no exec, no mounts, no
 *    namespaces, no ptrace). Anything else kills the VMM, as Firecracker's filter does;
 *    an open is answered EACCES instead (there is nothing to open, and a library's lazy
 *    open must not take the container down). */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "runcell/microvm.h"
#include "runcell/process_attrs.h"
#include "runcell/rootfs.h"
#include "runcell/util.h"

int rc_microvm_jail_prepare(struct rc_error *err) {
  /* Always a namespace of its own, even when the container shares the host's: the root
   * change below must move no process but the VMM. */
  if (unshare(CLONE_NEWNS) < 0) return rc_err(err, errno, "microVM: a mount namespace for the VMM");
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return rc_err(err, errno, "microVM: make the VMM's mounts private");
  return 0;
}

int rc_microvm_jail_enter(struct rc_error *err) {
  /* The new root is a tmpfs with nothing in it. It is mounted on /dev — any directory of
   * this private namespace would do, and every host has that one — and the mount it
   * covers goes with the old root. */
  if (mount("runcell-vmm", "/dev", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
            "size=4k,nr_inodes=1,mode=0555") < 0)
    return rc_err(err, errno, "microVM: mount the VMM's empty root");
  if (chdir("/dev") < 0) return rc_err(err, errno, "microVM: enter the VMM's empty root");
  if (rc_rootfs_enter_cwd(err) < 0) return rc_err_wrap(err, "microVM: the VMM's empty root");
  if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    return rc_err(err, errno, "microVM: make the VMM's root read-only");
  /* this thread's capabilities; the vCPU and I/O threads started without theirs
   * (vmm_thread_start) */
  if (rc_caps_drop_this_thread(err) < 0) return rc_err_wrap(err, "microVM: drop capabilities");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return rc_err(err, errno, "microVM: no_new_privs");
  return 0;
}

static const char *const allowed[] = {
    /* I/O on held descriptors: the agent channel, stdio, disks, eventfds, signalfd */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "sendmsg", "recvmsg", "sendto", "recvfrom", "poll", "ppoll", "fsync", "fdatasync",
    "lseek", "close", "fstat", "newfstatat", "statx",
    /* the control socket (src/microvm_control.c): callers of exec and ps, whose stdio
     * descriptors arrive by SCM_RIGHTS (recvmsg) */
    "accept4", "accept",
    /* memory and threads */
    "mmap", "munmap", "mprotect", "madvise", "brk", "mremap", "futex", "set_robust_list", "rseq",
    "sched_yield", "getrandom",
    /* time */
    "clock_gettime", "clock_nanosleep", "nanosleep", "gettimeofday",
    /* signals (sent with tgkill, to this process only: below) */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "getpid", "gettid", "restart_syscall",
    /* the end */
    "exit", "exit_group"};

/* The ioctls a running VMM makes: the vCPUs' KVM_RUN, interrupt lines, the pause's clock
 * notice and its capability check, the terminal's window size; TCGETS is isatty's. A
 * terminal's TIOCSTI, TIOCSETD or TIOCLINUX, a tap's or a disk's own ioctls are not
 * among them. Matched on the low 32 bits, which is what the kernel reads. */
static const unsigned long allowed_ioctls[] = {
    KVM_RUN, KVM_IRQ_LINE, KVM_KVMCLOCK_CTRL, KVM_CHECK_EXTENSION, TIOCGWINSZ, TCGETS};

static int add_rule(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned n,
                    const struct scmp_arg_cmp *args, const char *what, struct rc_error *err) {
  int r = seccomp_rule_add_array(ctx, action, nr, n, args);
  return r < 0 ? rc_err(err, -r, "microVM: VMM syscall filter: %s", what) : 0;
}

int rc_microvm_jail_syscalls(struct rc_error *err) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
  if (!ctx) return rc_err(err, ENOMEM, "microVM: VMM syscall filter");
  int rc = -1;
  for (size_t i = 0; i < RC_ARRAY_SIZE(allowed); i++) {
    int nr = seccomp_syscall_resolve_name(allowed[i]);
    if (nr == __NR_SCMP_ERROR) continue; /* not on this architecture */
    if (add_rule(ctx, SCMP_ACT_ALLOW, nr, 0, NULL, allowed[i], err) < 0) goto out;
  }
  for (size_t i = 0; i < RC_ARRAY_SIZE(allowed_ioctls); i++) {
    const struct scmp_arg_cmp req = {
        .arg = 1, .op = SCMP_CMP_MASKED_EQ, .datum_a = 0xffffffffU, .datum_b = allowed_ioctls[i]};
    if (add_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, &req, "ioctl", err) < 0) goto out;
  }
  /* fcntl for its flags only: F_SETOWN/F_SETSIG with O_ASYNC would have the kernel send
   * any signal to any process the VMM may signal */
  static const int fcntl_cmds[] = {F_GETFL, F_GETFD, F_SETFD};
  for (size_t i = 0; i < RC_ARRAY_SIZE(fcntl_cmds); i++) {
    const struct scmp_arg_cmp cmd = {
        .arg = 1, .op = SCMP_CMP_EQ, .datum_a = (uint64_t)fcntl_cmds[i]};
    if (add_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1, &cmd, "fcntl", err) < 0) goto out;
  }
  const struct scmp_arg_cmp setfl[] = {
      {.arg = 1, .op = SCMP_CMP_EQ, .datum_a = F_SETFL},
      {.arg = 2, .op = SCMP_CMP_MASKED_EQ, .datum_a = O_ASYNC, .datum_b = 0}};
  if (add_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 2, setfl, "fcntl", err) < 0) goto out;
  /* signals only to this process: the vCPU kick, raising the workload's signal at the end */
  const struct scmp_arg_cmp self = {.arg = 0, .op = SCMP_CMP_EQ, .datum_a = (uint64_t)getpid()};
  if (add_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, &self, "tgkill", err) < 0) goto out;
  /* the startContainer hooks' runner, the VMM's only child (no clone is allowed) */
  if (add_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(wait4), 0, NULL, "wait4", err) < 0) goto out;
  /* create's end: the VMM outlives runcell create from then on */
  const struct scmp_arg_cmp pdeathsig = {.arg = 0, .op = SCMP_CMP_EQ, .datum_a = PR_SET_PDEATHSIG};
  if (add_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, &pdeathsig, "prctl", err) < 0) goto out;
  /* fallocate only to punch holes (the balloon handing guest memory back to the host),
   * never to allocate or grow a file */
  const struct scmp_arg_cmp punch = {
      .arg = 1, .op = SCMP_CMP_EQ, .datum_a = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE};
  if (add_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fallocate), 1, &punch, "fallocate", err) < 0) goto out;
  static const char *const opens[] = {"open", "openat", "openat2", "creat"};
  for (size_t i = 0; i < RC_ARRAY_SIZE(opens); i++) {
    int nr = seccomp_syscall_resolve_name(opens[i]);
    if (nr == __NR_SCMP_ERROR) continue;
    if (add_rule(ctx, SCMP_ACT_ERRNO(EACCES), nr, 0, NULL, opens[i], err) < 0) goto out;
  }
  /* every thread: the vCPUs and the console's I/O thread already run */
  int r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
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
