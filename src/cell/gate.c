/* The gate as two stacked seccomp filters.
 *
 * The name filter (libseccomp, from gate_policy.c) allows, denies or lets through each
 * syscall by name on x86-64 and i386; anything it does not name fails with ENOSYS.
 *
 * The argument filter (classic BPF assembled here) decides the argument-checked calls:
 * ioctl, socket, socketpair, clone and personality. libseccomp cannot express "allow these
 * values, answer everything else with this errno" (an unconditional rule for a syscall
 * overrides its conditional ones), so the name filter allows those five outright and this
 * one refuses what it must. The kernel runs every filter and keeps the most restrictive
 * verdict, so an ERRNO from either wins over the other's ALLOW. */
#include "runcell/gate.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runcell/util.h"

static void release_filter(scmp_filter_ctx *ctx) {
  if (*ctx) seccomp_release(*ctx);
}
#define cleanup_filter __attribute__((cleanup(release_filter)))

/* Syscalls of the policy that Debian 12's libseccomp (2.5.4) cannot name. Since Linux 5.1
 * (424 on) a new syscall has one number on x86-64 and i386 alike, so the number stands
 * for both of the filter's architectures. Without this the policy's allowed mseal
 * answered ENOSYS. */
static int newer_than_libseccomp(const char *name) {
  static const struct {
    const char *name;
    int nr;
  } known[] = {{"mseal", 462}};
  for (size_t i = 0; i < RC_ARRAY_SIZE(known); i++)
    if (strcmp(known[i].name, name) == 0) return known[i].nr;
  return __NR_SCMP_ERROR;
}

/* The five argument-checked syscalls are allowed by the name filter (see above). */
static int name_filter(scmp_filter_ctx *out, bool routed, struct rc_error *err) {
  cleanup_filter scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(ENOSYS));
  if (!ctx) return rc_err(err, ENOMEM, "gate: seccomp_init");
  int r = seccomp_arch_add(ctx, SCMP_ARCH_X86);
  if (r < 0 && r != -EEXIST) return rc_err(err, -r, "gate: add the i386 architecture");
  /* x32 programs (syscall numbers with bit 30 set) get ENOSYS rather than a kill: the ABI
   * is off in most distribution kernels anyway. */
  if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(ENOSYS))) < 0)
    return rc_err(err, -r, "gate: set the bad-architecture action");
  /* no_new_privs is the process's own setting (process.noNewPrivileges), not the gate's */
  if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0)
    return rc_err(err, -r, "gate: clear the no_new_privs attribute");
  (void)seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
  /* A binary tree over syscall numbers instead of a linear list: each syscall, and the
   * kernel's per-syscall action cache built at load time, walks a few dozen instructions
   * instead of hundreds. */
  (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);

  size_t n = 0;
  const struct rc_gate_rule *rules = rc_gate_rules(&n);
  for (size_t i = 0; i < n; i++) {
    int nr = seccomp_syscall_resolve_name(rules[i].syscall);
    /* newer than this libseccomp: allowed ones go in front (prepend_newer_allowed), the
     * rest get the default ENOSYS */
    if (nr == __NR_SCMP_ERROR) continue;
    uint32_t action = SCMP_ACT_ALLOW;
    if (rules[i].kind == RC_GATE_DENY) action = SCMP_ACT_ERRNO((uint32_t)rules[i].errnum);
    if (rules[i].kind == RC_GATE_ROUTE && routed) action = SCMP_ACT_NOTIFY;
    /* Denials with ENOSYS are the default action already (libseccomp refuses such rules). */
    if (action == SCMP_ACT_ERRNO(ENOSYS)) continue;
    r = seccomp_rule_add(ctx, action, nr, 0);
    /* -EDOM: no such syscall on one of the filter's architectures; fine. */
    if (r < 0 && r != -EDOM && r != -EEXIST)
      return rc_err(err, -r, "gate: rule for %s", rules[i].syscall);
  }
  *out = ctx;
  ctx = NULL;
  return 0;
}

/* --- the argument filter ------------------------------------------------------------- */

#define ARG_LO(i) ((uint32_t)(offsetof(struct seccomp_data, args) + 8 * (i)))
#define RET_ALLOW SECCOMP_RET_ALLOW
#define RET_ERRNO(e) (SECCOMP_RET_ERRNO | ((uint32_t)(e)&SECCOMP_RET_DATA))

/* The namespace flags clone(2) takes in its low 32 bits: CLONE_NEWNS, NEWCGROUP, NEWUTS,
 * NEWIPC, NEWUSER, NEWPID, NEWNET (CLONE_NEWTIME only exists for clone3 and unshare; in
 * clone's flags 0x80 is part of the exit signal). Bit 31 is CLONE_IO, not a namespace. */
#define CLONE_NS_FLAGS 0x7e020000u

enum {
  LBL_X86_64,
  LBL_I386,
  LBL_SOCKETCALL,
  LBL_IOCTL,
  LBL_SOCKET,
  LBL_SOCKET_INET,
  LBL_SOCKET_NETLINK,
  LBL_SOCKETPAIR,
  LBL_CLONE,
  LBL_PERSONALITY,
  LBL_COUNT
};

struct prog {
  struct sock_filter insn[512];
  size_t len;
  size_t label[LBL_COUNT];
  size_t fixup[32]; /* ja instructions to point at a label: index into insn */
  int fixup_label[32];
  size_t n_fixups;
  bool overflow;
};

static void emit(struct prog *p, struct sock_filter f) {
  if (p->len >= RC_ARRAY_SIZE(p->insn)) {
    p->overflow = true;
    return;
  }
  p->insn[p->len++] = f;
}

static void ret(struct prog *p, uint32_t action) {
  emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, action));
}

static void load(struct prog *p, uint32_t offset) {
  emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offset));
}

/* if (A == k) return action; */
static void if_eq_ret(struct prog *p, uint32_t k, uint32_t action) {
  emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, k, 0, 1));
  ret(p, action);
}

/* if (A == k) goto label; (ja carries a 32-bit offset, resolved at the end) */
static void if_eq_goto(struct prog *p, uint32_t k, int label) {
  emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, k, 0, 1));
  if (p->n_fixups >= RC_ARRAY_SIZE(p->fixup)) {
    p->overflow = true;
    return;
  }
  p->fixup[p->n_fixups] = p->len;
  p->fixup_label[p->n_fixups++] = label;
  emit(p, (struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, 0));
}

static void dispatch(struct prog *p, uint32_t ioctl_nr, uint32_t socket_nr, uint32_t socketpair_nr,
                     uint32_t clone_nr, uint32_t personality_nr) {
  load(p, offsetof(struct seccomp_data, nr));
  if_eq_goto(p, ioctl_nr, LBL_IOCTL);
  if_eq_goto(p, socket_nr, LBL_SOCKET);
  if_eq_goto(p, socketpair_nr, LBL_SOCKETPAIR);
  if_eq_goto(p, clone_nr, LBL_CLONE);
  if_eq_goto(p, personality_nr, LBL_PERSONALITY);
  ret(p, RET_ALLOW);
}

static int build_argument_filter(struct prog *p, struct rc_error *err) {
  memset(p, 0, sizeof(*p));
  /* Syscall numbers of the checked calls: x86-64, then i386. */
  load(p, offsetof(struct seccomp_data, arch));
  if_eq_goto(p, AUDIT_ARCH_X86_64, LBL_X86_64);
  if_eq_goto(p, AUDIT_ARCH_I386, LBL_I386);
  /* other architectures: the name filter's bad-architecture action decides */
  ret(p, RET_ALLOW);
  /* x86-64 (x32 numbers do not match these and go to the name filter, which refuses) */
  p->label[LBL_X86_64] = p->len;
  dispatch(p, 16, 41, 53, 56, 135);
  p->label[LBL_I386] = p->len;
  /* socketcall: libseccomp turns the name filter's socket rules into socketcall rules on
   * the sub-call number, so allowing socket(2) would allow socketcall(SYS_SOCKET) with
   * whatever family, type and protocol sit in its argument block, in memory where no
   * filter can read them. Nothing is made through it: SYS_SOCKET and SYS_SOCKETPAIR are
   * refused here (as if the multiplexer were not built); the other sub-calls act on
   * sockets that exist and go on to the name filter. */
  load(p, offsetof(struct seccomp_data, nr));
  if_eq_goto(p, 102, LBL_SOCKETCALL);
  dispatch(p, 54, 359, 360, 120, 136);

  p->label[LBL_SOCKETCALL] = p->len;
  load(p, ARG_LO(0));
  if_eq_ret(p, 1 /* SYS_SOCKET */, RET_ERRNO(ENOSYS));
  if_eq_ret(p, 8 /* SYS_SOCKETPAIR */, RET_ERRNO(ENOSYS));
  ret(p, RET_ALLOW);

  p->label[LBL_IOCTL] = p->len;
  load(p, ARG_LO(1));
  size_t n = 0;
  const unsigned long *ok = rc_gate_ioctls(&n);
  for (size_t i = 0; i < n; i++) if_eq_ret(p, (uint32_t)ok[i], RET_ALLOW);
  /* TIOCSTI (type into a terminal), TIOCLINUX, TIOCCONS, TIOCSETD, TIOCVHANGUP */
  static const uint32_t refused[] = {0x5412, 0x541C, 0x541D, 0x5423, 0x5437};
  for (size_t i = 0; i < RC_ARRAY_SIZE(refused); i++) if_eq_ret(p, refused[i], RET_ERRNO(EPERM));
  ret(p, RET_ERRNO(ENOTTY));

  p->label[LBL_SOCKET] = p->len;
  load(p, ARG_LO(0));
  if_eq_ret(p, 1 /* AF_UNIX */, RET_ALLOW);
  if_eq_ret(p, 10 /* AF_INET6 */, RET_ALLOW);
  if_eq_goto(p, 2 /* AF_INET */, LBL_SOCKET_INET);
  if_eq_goto(p, 16 /* AF_NETLINK */, LBL_SOCKET_NETLINK);
  ret(p, RET_ERRNO(EAFNOSUPPORT));
  /* AF_INET with the old SOCK_PACKET type: the kernel still makes an AF_PACKET socket of
   * it (__sock_create), raw frames in and out; refused as the packet family is */
  p->label[LBL_SOCKET_INET] = p->len;
  load(p, ARG_LO(1));
  emit(p, (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf /* SOCK_TYPE_MASK */));
  if_eq_ret(p, 10 /* SOCK_PACKET */, RET_ERRNO(EAFNOSUPPORT));
  ret(p, RET_ALLOW);
  p->label[LBL_SOCKET_NETLINK] = p->len;
  load(p, ARG_LO(2));
  if_eq_ret(p, 0 /* NETLINK_ROUTE */, RET_ALLOW);
  ret(p, RET_ERRNO(EPROTONOSUPPORT));

  p->label[LBL_SOCKETPAIR] = p->len;
  load(p, ARG_LO(0));
  if_eq_ret(p, 1 /* AF_UNIX */, RET_ALLOW);
  ret(p, RET_ERRNO(EAFNOSUPPORT));

  p->label[LBL_CLONE] = p->len;
  load(p, ARG_LO(0));
  emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_NS_FLAGS, 0, 1));
  ret(p, RET_ERRNO(EPERM));
  ret(p, RET_ALLOW);

  p->label[LBL_PERSONALITY] = p->len;
  load(p, ARG_LO(0));
  static const uint32_t personas[] = {0x0 /* PER_LINUX */, 0x8 /* PER_LINUX32 */,
                                      0x20000 /* UNAME26 */, 0x20008, 0xffffffff /* query */};
  for (size_t i = 0; i < RC_ARRAY_SIZE(personas); i++) if_eq_ret(p, personas[i], RET_ALLOW);
  ret(p, RET_ERRNO(EPERM));

  if (p->overflow) return rc_err(err, E2BIG, "gate: the argument filter is too long");
  for (size_t i = 0; i < p->n_fixups; i++) {
    size_t at = p->fixup[i];
    p->insn[at].k = (uint32_t)(p->label[p->fixup_label[i]] - (at + 1));
  }
  return 0;
}

/* libseccomp 2.5 exports a filter only to a file descriptor: a memfd, read back. */
static int export_names(scmp_filter_ctx ctx, struct rc_gate_program *out, struct rc_error *err) {
  cleanup_close int fd = memfd_create("runcell-gate", MFD_CLOEXEC);
  if (fd < 0) return rc_err(err, errno, "gate: memfd for the filter");
  int r = seccomp_export_bpf(ctx, fd);
  if (r < 0) return rc_err(err, -r, "gate: export the syscall filter");
  off_t size = lseek(fd, 0, SEEK_END);
  if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 ||
      size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS)
    return rc_err(err, EINVAL, "gate: exported filter has an odd size (%lld bytes)",
                  (long long)size);
  out->names = rc_xcalloc(1, (size_t)size);
  if (pread(fd, out->names, (size_t)size, 0) != size) {
    int e = errno;
    free(out->names);
    out->names = NULL;
    return rc_err(err, e, "gate: read back the syscall filter");
  }
  out->n_names = (size_t)size / sizeof(struct sock_filter);
  return 0;
}

/* libseccomp will not take a syscall it cannot name, not even by number: the allowed ones
 * newer than it (newer_than_libseccomp) are put in front of its exported program, for
 * both architectures, before anything of it runs. Its jumps are relative, so the program
 * is unchanged by what comes before it. */
static int prepend_newer_allowed(struct rc_gate_program *out, struct rc_error *err) {
  uint32_t nrs[8];
  size_t n = 0, count = 0;
  const struct rc_gate_rule *rules = rc_gate_rules(&count);
  for (size_t i = 0; i < count && n < RC_ARRAY_SIZE(nrs); i++)
    if (rules[i].kind == RC_GATE_ALLOW &&
        seccomp_syscall_resolve_name(rules[i].syscall) == __NR_SCMP_ERROR &&
        newer_than_libseccomp(rules[i].syscall) != __NR_SCMP_ERROR)
      nrs[n++] = (uint32_t)newer_than_libseccomp(rules[i].syscall);
  if (n == 0 || !out->names) return 0;
  size_t head = 6 + n;
  if (out->n_names + head > BPF_MAXINSNS)
    return rc_err(err, E2BIG, "gate: the syscall filter is too long");
  struct sock_filter *f = rc_xcalloc(out->n_names + head, sizeof(*f));
  size_t k = 0;
  f[k++] =
      (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  f[k++] =
      (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_I386, 0, (uint8_t)(3 + n));
  f[k++] =
      (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
  for (size_t i = 0; i < n; i++)
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nrs[i], (uint8_t)(n - i), 0);
  f[k++] = (struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, 1);
  f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  memcpy(f + k, out->names, out->n_names * sizeof(*f));
  free(out->names);
  out->names = f;
  out->n_names += head;
  return 0;
}

int rc_gate_compile(struct rc_gate_program *out, bool routed, struct rc_error *err) {
  *out = (struct rc_gate_program){.routed = routed};
  cleanup_filter scmp_filter_ctx ctx = NULL;
  if (name_filter(&ctx, routed, err) < 0) return -1;
  struct prog *p = rc_xcalloc(1, sizeof(*p));
  if (build_argument_filter(p, err) < 0) {
    free(p);
    return -1;
  }
  out->args = rc_xcalloc(p->len, sizeof(struct sock_filter));
  memcpy(out->args, p->insn, p->len * sizeof(struct sock_filter));
  out->n_args = p->len;
  free(p);
  if (export_names(ctx, out, err) < 0 || prepend_newer_allowed(out, err) < 0) {
    rc_gate_program_free(out);
    return -1;
  }
  return 0;
}

void rc_gate_program_free(struct rc_gate_program *p) {
  free(p->names);
  free(p->args);
  *p = (struct rc_gate_program){0};
}

/* Returns the filter's listener fd when flags ask for one, else 0; -1 on failure. */
static int install(struct sock_filter *insn, size_t n, unsigned flags, const char *what,
                   struct rc_error *err) {
  struct sock_fprog fprog = {.len = (unsigned short)n, .filter = insn};
  long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
  if (r < 0) return rc_err(err, errno, "gate: load the %s filter", what);
  return (int)r;
}

int rc_gate_install(const struct rc_gate_program *p, int *listener, struct rc_error *err) {
  *listener = -1;
  if (!p->names || !p->args) return rc_err(err, EINVAL, "gate: not compiled");
  if (install(p->args, p->n_args, 0, "argument", err) < 0) return -1;
  int r = install(p->names, p->n_names, p->routed ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0, "syscall",
                  err);
  if (r < 0) return -1;
  if (p->routed) *listener = r;
  return 0;
}

int rc_gate_check(struct rc_error *err) {
  struct rc_gate_program p;
  if (rc_gate_compile(&p, true, err) < 0) return -1;
  rc_gate_program_free(&p);
  return 0;
}
