/* linux.seccomp: validates the profile and turns it into a BPF filter with libseccomp.
 * rc_seccomp_check builds the whole filter without loading it, so that every error a
 * load could report (bad architecture, a rule libseccomp refuses) shows up at create
 * time, before the container process exists. */
#include <errno.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runcell/process_attrs.h"
#include "runcell/util.h"

/* The kernel passes six syscall arguments; libseccomp numbers them 0-5. */
#define SECCOMP_MAX_ARGS 6

static void release_filter(scmp_filter_ctx *ctx) {
  if (*ctx) seccomp_release(*ctx);
}
#define cleanup_filter __attribute__((cleanup(release_filter)))

static const struct {
  uint32_t action;
  const char *name;
} action_names[] = {
    {SCMP_ACT_KILL_PROCESS, "SCMP_ACT_KILL_PROCESS"},
    {SCMP_ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD"},
    {SCMP_ACT_TRAP, "SCMP_ACT_TRAP"},
    {SCMP_ACT_ERRNO(0), "SCMP_ACT_ERRNO"},
    {SCMP_ACT_TRACE(0), "SCMP_ACT_TRACE"},
    {SCMP_ACT_LOG, "SCMP_ACT_LOG"},
    {SCMP_ACT_ALLOW, "SCMP_ACT_ALLOW"},
    {SCMP_ACT_NOTIFY, "SCMP_ACT_NOTIFY"},
};

static const char *action_label(uint32_t action, const char *given) {
  if (given) return given;
  for (size_t i = 0; i < RC_ARRAY_SIZE(action_names); i++)
    if (action_names[i].action == action) return action_names[i].name;
  return "unknown action";
}

static bool action_known(uint32_t action) {
  for (size_t i = 0; i < RC_ARRAY_SIZE(action_names); i++)
    if (action_names[i].action == action) return true;
  return false;
}

/* The action as libseccomp wants it: errno and trace actions carry their return value in
 * the low 16 bits. Without errnoRet both default to EPERM, as runc does. */
static uint32_t full_action(uint32_t action, bool has_ret, uint32_t ret) {
  if (action == SCMP_ACT_ERRNO(0)) return SCMP_ACT_ERRNO(has_ret ? ret : EPERM);
  if (action == SCMP_ACT_TRACE(0)) return SCMP_ACT_TRACE(has_ret ? ret : EPERM);
  return action;
}

static const struct {
  uint32_t token;
  const char *name;
} arch_names[] = {
    {SCMP_ARCH_X86, "SCMP_ARCH_X86"},
    {SCMP_ARCH_X86_64, "SCMP_ARCH_X86_64"},
    {SCMP_ARCH_X32, "SCMP_ARCH_X32"},
    {SCMP_ARCH_ARM, "SCMP_ARCH_ARM"},
    {SCMP_ARCH_AARCH64, "SCMP_ARCH_AARCH64"},
    {SCMP_ARCH_MIPS, "SCMP_ARCH_MIPS"},
    {SCMP_ARCH_MIPS64, "SCMP_ARCH_MIPS64"},
    {SCMP_ARCH_MIPS64N32, "SCMP_ARCH_MIPS64N32"},
    {SCMP_ARCH_MIPSEL, "SCMP_ARCH_MIPSEL"},
    {SCMP_ARCH_MIPSEL64, "SCMP_ARCH_MIPSEL64"},
    {SCMP_ARCH_MIPSEL64N32, "SCMP_ARCH_MIPSEL64N32"},
    {SCMP_ARCH_PPC, "SCMP_ARCH_PPC"},
    {SCMP_ARCH_PPC64, "SCMP_ARCH_PPC64"},
    {SCMP_ARCH_PPC64LE, "SCMP_ARCH_PPC64LE"},
    {SCMP_ARCH_S390, "SCMP_ARCH_S390"},
    {SCMP_ARCH_S390X, "SCMP_ARCH_S390X"},
    {SCMP_ARCH_PARISC, "SCMP_ARCH_PARISC"},
    {SCMP_ARCH_PARISC64, "SCMP_ARCH_PARISC64"},
    {SCMP_ARCH_RISCV64, "SCMP_ARCH_RISCV64"},
};

static const char *arch_label(uint32_t token, char *buf, size_t len) {
  for (size_t i = 0; i < RC_ARRAY_SIZE(arch_names); i++)
    if (arch_names[i].token == token) return arch_names[i].name;
  snprintf(buf, len, "architecture 0x%x", token);
  return buf;
}

/* Filter flags, the libseccomp attribute that sets each, and the flag a process loading
 * the exported program itself passes to seccomp(2) (0: not that process's business). */
static const struct {
  const char *name;
  enum scmp_filter_attr attr; /* _SCMP_FLTATR_MIN: nothing to set */
  unsigned raw_flag;
} flag_attrs[] = {
    /* one thread loads it: nothing to synchronize */
    {"SECCOMP_FILTER_FLAG_TSYNC", SCMP_FLTATR_CTL_TSYNC, 0},
    {"SECCOMP_FILTER_FLAG_LOG", SCMP_FLTATR_CTL_LOG, SECCOMP_FILTER_FLAG_LOG},
    {"SECCOMP_FILTER_FLAG_SPEC_ALLOW", SCMP_FLTATR_CTL_SSB, SECCOMP_FILTER_FLAG_SPEC_ALLOW},
    /* Only changes how a notification listener waits, and the kernel refuses it without
     * one; listeners are refused below, so it has nothing to act on. */
    {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", _SCMP_FLTATR_MIN, 0},
};

static int flag_index(const char *name) {
  for (size_t i = 0; i < RC_ARRAY_SIZE(flag_attrs); i++)
    if (strcmp(flag_attrs[i].name, name) == 0) return (int)i;
  return -1;
}

static const char *first_name(const struct oci_seccomp_syscall *sc) {
  return sc->n_names > 0 && sc->names[0] ? sc->names[0] : "(no name)";
}

/* What the filter builder cannot report clearly by itself. */
static int validate(const struct oci_seccomp *s, struct rc_error *err) {
  if (s->listener_path)
    return rc_err(err, 0, "seccomp: listenerPath (SCMP_ACT_NOTIFY) is not supported yet");
  if (!action_known(s->default_action))
    return rc_err(err, EINVAL, "seccomp: defaultAction %s (0x%x)",
                  action_label(s->default_action, s->default_action_name), s->default_action);
  if (s->default_action == SCMP_ACT_NOTIFY)
    return rc_err(err, 0, "seccomp: SCMP_ACT_NOTIFY cannot be the defaultAction");
  if (s->has_default_errno_ret && s->default_errno_ret > 0xffff)
    return rc_err(err, ERANGE, "seccomp: defaultErrnoRet %u", s->default_errno_ret);
  for (size_t i = 0; i < s->n_flags; i++)
    if (flag_index(s->flags[i]) < 0)
      return rc_err(err, EINVAL, "seccomp: flags[%zu]: unknown flag \"%s\"", i, s->flags[i]);

  for (size_t i = 0; i < s->n_syscalls; i++) {
    const struct oci_seccomp_syscall *sc = &s->syscalls[i];
    const char *name = first_name(sc);
    if (sc->n_names == 0) return rc_err(err, EINVAL, "seccomp: syscalls[%zu]: names is empty", i);
    if (!action_known(sc->action))
      return rc_err(err, EINVAL, "seccomp: syscalls[%zu] (\"%s\"): action %s (0x%x)", i, name,
                    action_label(sc->action, sc->action_name), sc->action);
    if (sc->action == SCMP_ACT_NOTIFY)
      return rc_err(err, 0,
                    "seccomp: syscalls[%zu] (\"%s\"): SCMP_ACT_NOTIFY needs a listenerPath, "
                    "which is not supported yet",
                    i, name);
    if (sc->has_errno_ret && sc->errno_ret > 0xffff)
      return rc_err(err, ERANGE, "seccomp: syscalls[%zu] (\"%s\"): errnoRet %u", i, name,
                    sc->errno_ret);
    for (size_t j = 0; j < sc->n_args; j++) {
      const struct oci_seccomp_arg *a = &sc->args[j];
      if (a->index >= SECCOMP_MAX_ARGS)
        return rc_err(err, EINVAL,
                      "seccomp: syscalls[%zu] (\"%s\"): args[%zu]: index %u is out of range "
                      "(0-%d)",
                      i, name, j, a->index, SECCOMP_MAX_ARGS - 1);
      if (a->op < SCMP_CMP_NE || a->op > SCMP_CMP_MASKED_EQ)
        return rc_err(err, EINVAL, "seccomp: syscalls[%zu] (\"%s\"): args[%zu]: unknown op %d", i,
                      name, j, a->op);
    }
  }
  return 0;
}

static struct scmp_arg_cmp make_cmp(const struct oci_seccomp_arg *a) {
  /* For SCMP_CMP_MASKED_EQ, value is the mask and valueTwo the value compared after
   * masking; the other operators ignore datum_b. */
  return (struct scmp_arg_cmp){.arg = a->index,
                               .op = (enum scmp_compare)a->op,
                               .datum_a = a->value,
                               .datum_b = a->value_two};
}

static int add_rule(scmp_filter_ctx ctx, uint32_t action, int nr, const char *name,
                    const struct oci_seccomp_syscall *sc, struct rc_error *err) {
  struct scmp_arg_cmp cmps[SECCOMP_MAX_ARGS];
  bool seen[SECCOMP_MAX_ARGS] = {false};
  bool distinct = true;
  for (size_t j = 0; j < sc->n_args; j++) {
    if (seen[sc->args[j].index]) distinct = false;
    seen[sc->args[j].index] = true;
  }
  int r;
  if (distinct) {
    /* Distinct indices (hence at most six): one rule whose conditions all must hold. */
    for (size_t j = 0; j < sc->n_args; j++) cmps[j] = make_cmp(&sc->args[j]);
    r = seccomp_rule_add_array(ctx, action, nr, (unsigned)sc->n_args, cmps);
  } else {
    /* Several conditions on one argument cannot be ANDed by libseccomp; runc adds one
     * rule per condition instead (any of them matching triggers the action), and
     * profiles written for runc expect that. */
    r = 0;
    for (size_t j = 0; j < sc->n_args && r == 0; j++) {
      cmps[0] = make_cmp(&sc->args[j]);
      r = seccomp_rule_add_array(ctx, action, nr, 1, cmps);
    }
  }
  if (r < 0) return rc_err(err, -r, "seccomp: add rule for syscall \"%s\"", name);
  return 0;
}

/* Builds the filter from a validated profile. *n_unknown counts syscall names this
 * libseccomp cannot resolve; they are skipped, as runc does, because profiles list
 * syscalls newer than the host's libseccomp. */
static int build_filter(const struct oci_seccomp *s, scmp_filter_ctx *out, size_t *n_unknown,
                        struct rc_error *err) {
  uint32_t def = full_action(s->default_action, s->has_default_errno_ret, s->default_errno_ret);
  cleanup_filter scmp_filter_ctx ctx = seccomp_init(def);
  if (!ctx)
    return rc_err(err, 0, "seccomp: cannot create a filter with defaultAction %s",
                  action_label(s->default_action, s->default_action_name));

  for (size_t i = 0; i < s->n_architectures; i++) {
    int r = seccomp_arch_add(ctx, s->architectures[i]);
    /* The native architecture is already there, and a profile may list one twice. */
    if (r < 0 && r != -EEXIST) {
      char buf[40];
      return rc_err(err, -r, "seccomp: add %s", arch_label(s->architectures[i], buf, sizeof(buf)));
    }
  }

  /* The caller sets no_new_privs itself when the config asks for it; libseccomp would set
   * it unconditionally. */
  int r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
  if (r < 0) return rc_err(err, -r, "seccomp: clear the no_new_privs attribute");
#if SCMP_VER_MAJOR > 2 || (SCMP_VER_MAJOR == 2 && SCMP_VER_MINOR >= 5)
  /* Without it seccomp_load reports every kernel error as ECANCELED. Best effort: an
   * older library only loses the detail. */
  (void)seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
#endif
  for (size_t i = 0; i < s->n_flags; i++) {
    enum scmp_filter_attr attr = flag_attrs[flag_index(s->flags[i])].attr;
    if (attr == _SCMP_FLTATR_MIN) continue;
    r = seccomp_attr_set(ctx, attr, 1);
    if (r < 0) return rc_err(err, -r, "seccomp: flag %s", s->flags[i]);
  }

  *n_unknown = 0;
  for (size_t i = 0; i < s->n_syscalls; i++) {
    const struct oci_seccomp_syscall *sc = &s->syscalls[i];
    uint32_t action = full_action(sc->action, sc->has_errno_ret, sc->errno_ret);
    /* libseccomp refuses rules whose action is the default one; they change nothing. */
    if (action == def) continue;
    for (size_t n = 0; n < sc->n_names; n++) {
      int nr = seccomp_syscall_resolve_name(sc->names[n]);
      if (nr == __NR_SCMP_ERROR) {
        (*n_unknown)++;
        continue;
      }
      if (add_rule(ctx, action, nr, sc->names[n], sc, err) < 0) return -1;
    }
  }

  *out = ctx;
  ctx = NULL;
  return 0;
}

int rc_seccomp_check(const struct oci_seccomp *s, struct rc_error *err) {
  if (!s) return 0;
  if (validate(s, err) < 0) return -1;
  cleanup_filter scmp_filter_ctx ctx = NULL;
  size_t n_unknown;
  return build_filter(s, &ctx, &n_unknown, err);
}

int rc_seccomp_load(const struct oci_seccomp *s, struct rc_error *err) {
  if (!s) return 0;
  if (validate(s, err) < 0) return -1;
  cleanup_filter scmp_filter_ctx ctx = NULL;
  size_t n_unknown; /* nothing to report it to here: no logger in the container process */
  if (build_filter(s, &ctx, &n_unknown, err) < 0) return -1;
  int r = seccomp_load(ctx);
  if (r < 0) {
    if (r == -EACCES)
      return rc_err(err, -r,
                    "seccomp: load filter (needs CAP_SYS_ADMIN or noNewPrivileges set first)");
    return rc_err(err, -r, "seccomp: load filter");
  }
  return 0;
}

int rc_seccomp_export(const struct oci_seccomp *s, uint8_t **bpf, uint32_t *len, uint32_t *flags,
                      struct rc_error *err) {
  *bpf = NULL;
  *len = 0;
  *flags = 0;
  if (!s) return 0;
  if (validate(s, err) < 0) return -1;
  cleanup_filter scmp_filter_ctx ctx = NULL;
  size_t n_unknown;
  if (build_filter(s, &ctx, &n_unknown, err) < 0) return -1;
  for (size_t i = 0; i < s->n_flags; i++) *flags |= flag_attrs[flag_index(s->flags[i])].raw_flag;
  /* libseccomp 2.5 exports to a file descriptor only (seccomp_export_bpf_mem is 2.6) */
  int fd = memfd_create("runcell-seccomp", MFD_CLOEXEC);
  if (fd < 0) return rc_err(err, errno, "seccomp: memfd for the exported filter");
  int r = seccomp_export_bpf(ctx, fd);
  if (r < 0) {
    close(fd);
    return rc_err(err, -r, "seccomp: export the filter");
  }
  off_t size = lseek(fd, 0, SEEK_END);
  if (size <= 0 || size % 8 != 0 || size > 4096 * 8) {
    close(fd);
    return rc_err(err, E2BIG, "seccomp: the filter has %lld bytes, not 1..4096 instructions",
                  (long long)size);
  }
  uint8_t *buf = rc_xcalloc(1, (size_t)size);
  ssize_t got = pread(fd, buf, (size_t)size, 0);
  int saved = errno;
  close(fd);
  if (got != size) {
    free(buf);
    return rc_err(err, got < 0 ? saved : EIO, "seccomp: read the exported filter back");
  }
  *bpf = buf;
  *len = (uint32_t)size;
  return 0;
}
