/* The runtime's side of the xgate placement: the PKU probe, runcell-xgate's memfd in each
 * cell process, the seccomp filter that routes into the gate, and the exec through the
 * cell loader. The design is docs/xgate.md. */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runcell/gate.h"
#include "runcell/util.h"
#include "runcell/xgate.h"
#include "xgate_layout.h"

extern const unsigned char rc_xgate_blob[];
extern const unsigned char rc_xgate_blob_end[];

bool rc_xgate_active;

const struct rc_gate_program *rc_xgate_gate(void) {
  static struct rc_gate_program p;
  p = rc_gate_builtin;
  p.xgate = true;
  return &p;
}

bool rc_xgate_supported(void) {
  long key = syscall(SYS_pkey_alloc, 0, 0);
  if (key < 0) return false;
  syscall(SYS_pkey_free, key);
  return true;
}

int rc_xgate_prepare_loader(struct rc_error *err) {
  cleanup_close int mem = memfd_create("runcell-xgate", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mem < 0) return rc_err(err, errno, "xgate: memfd for the cell loader");
  /* the two symbols bound one object (xgate_blob.S) */
  size_t size = (size_t)((uintptr_t)rc_xgate_blob_end - (uintptr_t)rc_xgate_blob);
  for (size_t done = 0; done < size;) {
    ssize_t n = write(mem, rc_xgate_blob + done, size - done);
    if (n <= 0) return rc_err(err, n < 0 ? errno : EIO, "xgate: write the cell loader");
    done += (size_t)n;
  }
  /* sealed: no process of the cell can change the loader the others exec */
  if (fcntl(mem, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
    return rc_err(err, errno, "xgate: seal the cell loader");
  if (fchmod(mem, 0555) < 0) return rc_err(err, errno, "xgate: chmod the cell loader");
  /* not close-on-exec: every exec of the cell goes through it (rc_prepare_exec_fds and the
   * filter leave it alone) */
  if (dup2(mem, RC_XGATE_LOADER_FD) < 0)
    return rc_err(err, errno, "xgate: place the cell loader at descriptor %d", RC_XGATE_LOADER_FD);
  return 0;
}

/* --- the filter ----------------------------------------------------------------------- */

#define ARG_LO(i) ((uint32_t)(offsetof(struct seccomp_data, args) + 8 * (i)))
#define NR_OFF ((uint32_t)offsetof(struct seccomp_data, nr))
#define TRAP (SECCOMP_RET_TRAP | RC_XGATE_TRAP_DATA)
#define ALLOW SECCOMP_RET_ALLOW
#define ERRNO(e) (SECCOMP_RET_ERRNO | ((uint32_t)(e)&SECCOMP_RET_DATA))
#define FD ((uint32_t)RC_XGATE_LOADER_FD)

struct builder {
  struct sock_filter insn[256];
  unsigned n;
  bool overflow;
};

static unsigned emit(struct builder *b, struct sock_filter f) {
  if (b->n >= RC_ARRAY_SIZE(b->insn)) {
    b->overflow = true;
    return b->n;
  }
  b->insn[b->n] = f;
  return b->n++;
}
static void ld(struct builder *b, uint32_t off) {
  emit(b, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, off));
}
static void ret(struct builder *b, uint32_t v) {
  emit(b, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, v));
}
static void eq_ret(struct builder *b, uint32_t k, uint32_t v) {
  emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, k, 0, 1));
  ret(b, v);
}
static void set_ret(struct builder *b, uint32_t k, uint32_t v) {
  emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, k, 0, 1));
  ret(b, v);
}
/* "if (nr == k) { block }": returns the jump to point past the block with end_block */
static unsigned block(struct builder *b, uint32_t nr) {
  ld(b, NR_OFF);
  return emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 0));
}
static void end_block(struct builder *b, unsigned at) {
  if (at < b->n && b->n - at - 1 <= 255)
    b->insn[at].jf = (uint8_t)(b->n - at - 1);
  else
    b->overflow = true;
}

/* PROT_EXEC in argument 2: trapped (x86-64) or refused (i386) */
/* "if the syscall comes from this instruction, let it through" (the other filters still
 * decide); falls through with A clobbered otherwise */
static void allow_from(struct builder *b, uint64_t ip) {
  ld(b, offsetof(struct seccomp_data, instruction_pointer) + 4);
  /* not this instruction: jump over the low half's load, compare and ALLOW */
  emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(ip >> 32), 0, 3));
  ld(b, offsetof(struct seccomp_data, instruction_pointer));
  eq_ret(b, (uint32_t)(ip & 0xffffffffu), ALLOW);
}

/* PROT_EXEC in mmap/mprotect's third argument: action, unless the call comes from ip (0:
 * from anywhere) */
static void exec_prot(struct builder *b, uint32_t nr, uint64_t ip, uint32_t action) {
  unsigned at = block(b, nr);
  if (ip) allow_from(b, ip);
  ld(b, ARG_LO(2));
  set_ret(b, PROT_EXEC, action);
  ret(b, ALLOW);
  end_block(b, at);
}

/* the gate's own syscall instruction may make the call; anywhere else: action */
static void gate_or(struct builder *b, uint32_t nr, uint32_t action) {
  unsigned at = block(b, nr);
  allow_from(b, RC_XGATE_GATE_IP);
  ret(b, action);
  end_block(b, at);
}

/* Each syscall the filter cares about has a block of its own, which looks at the
 * instruction pointer or the arguments; every other syscall falls through to ALLOW on its
 * number alone, so the kernel's per-syscall action cache still spares them the filters. */
static int build_filter(struct builder *b, struct rc_error *err) {
  memset(b, 0, sizeof(*b));
  ld(b, offsetof(struct seccomp_data, arch));
  unsigned to_i386 =
      emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 0));
  /* routed, and the calls by which the program could escape the cell kernel */
  gate_or(b, __NR_sysinfo, TRAP);
  gate_or(b, __NR_sched_getaffinity, TRAP);
  gate_or(b, __NR_execve, TRAP);
  gate_or(b, __NR_rt_sigaction, TRAP);
  gate_or(b, __NR_rt_sigprocmask, TRAP);
  gate_or(b, __NR_pkey_mprotect, ERRNO(EPERM));
  gate_or(b, __NR_pkey_alloc, ERRNO(ENOSPC));
  gate_or(b, __NR_pkey_free, ERRNO(EINVAL));
  /* every exec ends as execveat of the loader (or, for a program the loader does not
   * load, from the gate's exec instruction); anything else is trapped */
  unsigned at = block(b, __NR_execveat);
  allow_from(b, RC_XGATE_EXEC_IP);
  ld(b, ARG_LO(0));
  eq_ret(b, FD, ALLOW);
  ret(b, TRAP);
  end_block(b, at);
  exec_prot(b, __NR_mmap, RC_XGATE_GATE_IP, TRAP);
  exec_prot(b, __NR_mprotect, RC_XGATE_GATE_IP, TRAP);
  /* the loader's descriptor stays: close pretends, close_range goes around it, dup2/dup3
   * onto it and making it close-on-exec are refused */
  at = block(b, __NR_close);
  ld(b, ARG_LO(0));
  eq_ret(b, FD, ERRNO(0));
  ret(b, ALLOW);
  end_block(b, at);
  at = block(b, __NR_close_range);
  ld(b, ARG_LO(0));
  emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, FD, 2, 0));
  ld(b, ARG_LO(1));
  emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, FD, 1, 0));
  ret(b, ALLOW);
  ret(b, TRAP);
  end_block(b, at);
  at = block(b, __NR_dup2);
  ld(b, ARG_LO(1));
  eq_ret(b, FD, ERRNO(EBADF));
  ret(b, ALLOW);
  end_block(b, at);
  at = block(b, __NR_dup3);
  ld(b, ARG_LO(1));
  eq_ret(b, FD, ERRNO(EBADF));
  ret(b, ALLOW);
  end_block(b, at);
  at = block(b, __NR_fcntl);
  ld(b, ARG_LO(0));
  unsigned other_fd = emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, FD, 0, 0));
  ld(b, ARG_LO(1));
  eq_ret(b, F_SETFD, ERRNO(0));
  end_block(b, other_fd);
  ret(b, ALLOW);
  end_block(b, at);
  /* shmat(SHM_EXEC) would map executable memory the scan never saw */
  at = block(b, __NR_shmat);
  ld(b, ARG_LO(2));
  set_ret(b, 0100000 /* SHM_EXEC */, ERRNO(EACCES));
  ret(b, ALLOW);
  end_block(b, at);
  ret(b, ALLOW);

  /* i386 syscalls (int 0x80, from 32-bit programs or 64-bit ones): no executable memory,
   * protection keys or handlers for the gate's signals that way */
  end_block(b, to_i386);
  ld(b, NR_OFF);
  eq_ret(b, 90 /* old mmap, arguments in memory */, ERRNO(ENOSYS));
  eq_ret(b, 380 /* pkey_mprotect */, ERRNO(EPERM));
  eq_ret(b, 381 /* pkey_alloc */, ERRNO(ENOSPC));
  eq_ret(b, 382 /* pkey_free */, ERRNO(EINVAL));
  exec_prot(b, 192 /* mmap2 */, 0, ERRNO(EACCES));
  exec_prot(b, 125 /* mprotect */, 0, ERRNO(EACCES));
  for (uint32_t nr = 67 /* sigaction */; nr; nr = nr == 67 ? 174 /* rt_sigaction */ : 0) {
    at = block(b, nr);
    ld(b, ARG_LO(0));
    eq_ret(b, SIGSYS, ERRNO(EINVAL));
    eq_ret(b, SIGILL, ERRNO(EINVAL));
    ret(b, ALLOW);
    end_block(b, at);
  }
  ret(b, ALLOW);
  if (b->overflow) return rc_err(err, E2BIG, "xgate: the filter does not fit");
  return 0;
}

int rc_xgate_install_filter(struct rc_error *err) {
  struct builder b;
  if (build_filter(&b, err) < 0) return -1;
  struct sock_fprog prog = {.len = (unsigned short)b.n, .filter = b.insn};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
    return rc_err(err, errno, "xgate: load the filter");
  rc_xgate_active = true;
  return 0;
}

void rc_xgate_exec(const char *exe, char *const argv[], char *const envp[]) {
  /* no allocation: hooks call this in a forked child */
  size_t n = 0;
  while (argv[n]) n++;
  if (n > 65536) {
    errno = E2BIG;
    return;
  }
  char *av[n + 3];
  av[0] = (char *)RC_XGATE_LOADER_ARGV0;
  av[1] = (char *)exe;
  for (size_t i = 0; i < n; i++) av[2 + i] = argv[i];
  av[n + 2] = NULL;
  syscall(SYS_execveat, RC_XGATE_LOADER_FD, "", av, envp, AT_EMPTY_PATH);
}
