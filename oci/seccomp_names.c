/* The seccomp vocabulary of config.json (actions, architectures, comparison operators,
 * filter flags) mapped to libseccomp values. The spec's names are libseccomp's macro
 * names, so the tables below are the whole contract. */
#include <ctype.h>
#include <seccomp.h>
#include <string.h>

#include "internal.h"
#include "runcell/util.h"

static const struct {
  const char *name;
  uint32_t action;
} actions[] = {
    /* Sorted by name: the features document lists them in table order, as runc does. */
    {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW},
    {"SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0)},
    {"SCMP_ACT_KILL", SCMP_ACT_KILL},
    {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS},
    {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD},
    {"SCMP_ACT_LOG", SCMP_ACT_LOG},
    {"SCMP_ACT_NOTIFY", SCMP_ACT_NOTIFY},
    {"SCMP_ACT_TRACE", SCMP_ACT_TRACE(0)},
    {"SCMP_ACT_TRAP", SCMP_ACT_TRAP},
};

const char *oci_seccomp_action_name_at(size_t i) {
  return i < RC_ARRAY_SIZE(actions) ? actions[i].name : NULL;
}

static const struct {
  const char *name;
  enum scmp_compare op;
} ops[] = {
    {"SCMP_CMP_EQ", SCMP_CMP_EQ}, {"SCMP_CMP_GE", SCMP_CMP_GE},
    {"SCMP_CMP_GT", SCMP_CMP_GT}, {"SCMP_CMP_LE", SCMP_CMP_LE},
    {"SCMP_CMP_LT", SCMP_CMP_LT}, {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
    {"SCMP_CMP_NE", SCMP_CMP_NE},
};

const char *oci_seccomp_op_name_at(size_t i) {
  return i < RC_ARRAY_SIZE(ops) ? ops[i].name : NULL;
}

/* Every architecture the spec names. Whether one is usable is up to the libseccomp this
 * binary runs with, so resolution goes through seccomp_arch_resolve_name rather than
 * compile-time SCMP_ARCH_* constants. */
const char *const oci_seccomp_arch_names[] = {
    "SCMP_ARCH_AARCH64",   "SCMP_ARCH_ARM",      "SCMP_ARCH_MIPS",     "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",   "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PARISC",    "SCMP_ARCH_PARISC64", "SCMP_ARCH_PPC",      "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",   "SCMP_ARCH_RISCV64",  "SCMP_ARCH_S390",     "SCMP_ARCH_S390X",
    "SCMP_ARCH_X32",       "SCMP_ARCH_X86",      "SCMP_ARCH_X86_64",
};
const size_t oci_n_seccomp_arch_names = RC_ARRAY_SIZE(oci_seccomp_arch_names);

const char *const oci_seccomp_flag_names[] = {
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
};
const size_t oci_n_seccomp_flag_names = RC_ARRAY_SIZE(oci_seccomp_flag_names);

int oci_seccomp_action_from_name(const char *name, uint32_t *action) {
  for (size_t i = 0; i < RC_ARRAY_SIZE(actions); i++)
    if (strcmp(actions[i].name, name) == 0) {
      *action = actions[i].action;
      return 0;
    }
  return -1;
}

int oci_seccomp_arch_from_name(const char *name, uint32_t *token) {
  static const char prefix[] = "SCMP_ARCH_";
  bool listed = false;
  for (size_t i = 0; i < oci_n_seccomp_arch_names && !listed; i++)
    listed = strcmp(oci_seccomp_arch_names[i], name) == 0;
  /* The list check keeps libseccomp's own aliases (lowercase names) out of the accepted
   * vocabulary. */
  if (!listed) return -1;
  char lower[32];
  const char *rest = name + sizeof(prefix) - 1;
  size_t n = strlen(rest);
  if (n >= sizeof(lower)) return -1;
  for (size_t i = 0; i <= n; i++) lower[i] = (char)tolower((unsigned char)rest[i]);
  uint32_t t = seccomp_arch_resolve_name(lower);
  if (t == 0) return -1;
  *token = t;
  return 0;
}

int oci_seccomp_op_from_name(const char *name) {
  for (size_t i = 0; i < RC_ARRAY_SIZE(ops); i++)
    if (strcmp(ops[i].name, name) == 0) return (int)ops[i].op;
  return -1;
}

bool oci_seccomp_flag_known(const char *name) {
  for (size_t i = 0; i < oci_n_seccomp_flag_names; i++)
    if (strcmp(oci_seccomp_flag_names[i], name) == 0) return true;
  return false;
}
