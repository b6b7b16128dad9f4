/* The cell's syscall gate: a seccomp allow-list applied to every process of a cell, on top
 * of the bundle's own linux.seccomp. Syscalls it does not list fail with ENOSYS (so
 * programs fall back, as they do on an older kernel); the ones it denies on purpose get the
 * answer a program expects (EPERM as runc's default profile gives, ENOSYS for io_uring,
 * EAFNOSUPPORT for socket families, ENOTTY for unvetted ioctls). docs/cell-gate.md is the
 * policy with the reason for each decision. */
#ifndef RUNCELL_GATE_H
#define RUNCELL_GATE_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>

#include "runcell/error.h"

enum rc_gate_kind {
  RC_GATE_ALLOW,   /* passed to the host kernel */
  RC_GATE_DENY,    /* refused with errnum */
  RC_GATE_CHECKED, /* allowed for some argument values only (see reason) */
  RC_GATE_ROUTE,   /* served by the cell kernel when the cell has one, else allowed */
};

struct rc_gate_rule {
  const char *syscall;
  enum rc_gate_kind kind;
  int errnum; /* DENY: the error returned; CHECKED: the error for refused arguments */
  const char *reason;
};

/* The policy, for the documentation test and for `runcell features`-style listings. */
const struct rc_gate_rule *rc_gate_rules(size_t *n);

/* The ioctl requests a cell may make (low 32 bits of the request number). */
const unsigned long *rc_gate_ioctls(size_t *n);

/* The gate compiled to classic BPF: built by the runtime before it clones or forks a
 * cell's process (libseccomp takes milliseconds to generate the name filter; the process
 * then only has to install two programs). */
struct rc_gate_program {
  bool routed;               /* routed syscalls go to a listener (the cell kernel) */
  struct sock_filter *names; /* the name filter (libseccomp) */
  size_t n_names;
  struct sock_filter *args; /* the argument filter */
  size_t n_args;
  bool xgate; /* the MPK placement: runcell-xgate's filter on top (src/cell/xgate_host.c) */
};

/* routed: RC_GATE_ROUTE syscalls notify a listener instead of going to the host. */
int rc_gate_compile(struct rc_gate_program *out, bool routed, struct rc_error *err);

/* The gate compiled at build time (tools/gate_gen.c), without and with routing; what
 * cells install. */
extern const struct rc_gate_program rc_gate_builtin;
extern const struct rc_gate_program rc_gate_builtin_routed;
void rc_gate_program_free(struct rc_gate_program *p);

/* Compiles and discards: checks the policy builds on this host's libseccomp. */
int rc_gate_check(struct rc_error *err);

/* Installs a compiled gate in the calling process (needs no_new_privs or CAP_SYS_ADMIN).
 * For a routed gate *listener gets the seccomp listener fd the cell kernel must serve;
 * otherwise -1. */
int rc_gate_install(const struct rc_gate_program *p, int *listener, struct rc_error *err);

#endif
