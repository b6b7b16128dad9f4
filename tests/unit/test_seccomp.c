/* rc_seccomp_check / rc_seccomp_load. Filters are loaded for real, each in a forked child
 * (a filter cannot be removed), and the child's exit status carries the verdict. The
 * children set no_new_privs first so that loading needs no privilege. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/process_attrs.h"
#include "runcell/util.h"
#include "unit.h"

/* Runs fn in a child and checks that none of its CHECKs failed. */
/* Loads the filter in the child, reporting the error if any; returns <0 on failure. */
static int load(const struct oci_seccomp *s) {
  struct rc_error err = {0};
  CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
  int r = rc_seccomp_load(s, &err);
  if (r < 0) fprintf(stderr, "rc_seccomp_load: %s\n", err.msg);
  CHECK(r == 0);
  return r;
}

static void child_errno_rule(void) {
  struct oci_seccomp_syscall calls[] = {{.names = (char *[]){"getppid", NULL},
                                         .n_names = 1,
                                         .action = SCMP_ACT_ERRNO(0),
                                         .has_errno_ret = true,
                                         .errno_ret = 99}};
  struct oci_seccomp s = {.default_action = SCMP_ACT_ALLOW, .syscalls = calls, .n_syscalls = 1};
  if (load(&s) < 0) return;
  errno = 0;
  long r = syscall(SYS_getppid);
  int e = errno;
  CHECK(r == -1);
  CHECK(e == 99);
  CHECK(syscall(SYS_getpid) == getpid());
}

static void test_errno_rule(void) {
  unit_in_child("errno rule", child_errno_rule);
}

static void child_errno_default_eperm(void) {
  /* Without errnoRet, SCMP_ACT_ERRNO means EPERM. */
  struct oci_seccomp_syscall calls[] = {
      {.names = (char *[]){"getppid", NULL}, .n_names = 1, .action = SCMP_ACT_ERRNO(0)}};
  struct oci_seccomp s = {.default_action = SCMP_ACT_ALLOW, .syscalls = calls, .n_syscalls = 1};
  if (load(&s) < 0) return;
  errno = 0;
  CHECK(syscall(SYS_getppid) == -1 && errno == EPERM);
}

static void test_errno_default_eperm(void) {
  unit_in_child("errno without errnoRet", child_errno_default_eperm);
}

static void child_arg_condition(void) {
  struct oci_seccomp_arg args[] = {{.index = 0, .value = 0xffffffff, .op = SCMP_CMP_EQ}};
  struct oci_seccomp_syscall calls[] = {{.names = (char *[]){"personality", NULL},
                                         .n_names = 1,
                                         .action = SCMP_ACT_ERRNO(0),
                                         .has_errno_ret = true,
                                         .errno_ret = 55,
                                         .args = args,
                                         .n_args = 1}};
  struct oci_seccomp s = {.default_action = SCMP_ACT_ALLOW, .syscalls = calls, .n_syscalls = 1};
  if (load(&s) < 0) return;
  errno = 0;
  int r = personality(0xffffffff);
  CHECK(r == -1 && errno == 55);
  CHECK(personality(PER_LINUX) >= 0);
}

static void test_arg_condition(void) {
  unit_in_child("argument condition", child_arg_condition);
}

static void child_same_index_or(void) {
  /* Two conditions on argument 0: runc semantics make either one trigger the action. */
  struct oci_seccomp_arg args[] = {{.index = 0, .value = 0x0fff0001, .op = SCMP_CMP_EQ},
                                   {.index = 0, .value = 0x0fff0002, .op = SCMP_CMP_EQ}};
  struct oci_seccomp_syscall calls[] = {{.names = (char *[]){"personality", NULL},
                                         .n_names = 1,
                                         .action = SCMP_ACT_ERRNO(0),
                                         .has_errno_ret = true,
                                         .errno_ret = 56,
                                         .args = args,
                                         .n_args = 2}};
  struct oci_seccomp s = {.default_action = SCMP_ACT_ALLOW, .syscalls = calls, .n_syscalls = 1};
  if (load(&s) < 0) return;
  errno = 0;
  CHECK(personality(0x0fff0001) == -1 && errno == 56);
  errno = 0;
  CHECK(personality(0x0fff0002) == -1 && errno == 56);
  CHECK(personality(0xffffffff) >= 0);
}

static void test_same_index_or(void) {
  unit_in_child("same-index conditions", child_same_index_or);
}

static void child_distinct_index_and(void) {
  /* Conditions on different arguments must all hold. kill(0x7ffffff0, 0) with a pid that
   * cannot exist: ESRCH when the filter lets it through. */
  struct oci_seccomp_arg args[] = {{.index = 0, .value = 0x7ffffff0, .op = SCMP_CMP_EQ},
                                   {.index = 1, .value = 0, .op = SCMP_CMP_EQ}};
  struct oci_seccomp_syscall calls[] = {{.names = (char *[]){"kill", NULL},
                                         .n_names = 1,
                                         .action = SCMP_ACT_ERRNO(0),
                                         .has_errno_ret = true,
                                         .errno_ret = 57,
                                         .args = args,
                                         .n_args = 2}};
  struct oci_seccomp s = {.default_action = SCMP_ACT_ALLOW, .syscalls = calls, .n_syscalls = 1};
  if (load(&s) < 0) return;
  errno = 0;
  CHECK(syscall(SYS_kill, 0x7ffffff0, 0) == -1 && errno == 57);
  errno = 0;
  CHECK(syscall(SYS_kill, 0x7ffffff1, 0) == -1 && errno == ESRCH);
}

static void test_distinct_index_and(void) {
  unit_in_child("distinct-index conditions", child_distinct_index_and);
}

static void child_masked_eq(void) {
  /* value is the mask, valueTwo the expected masked value (Docker's clone rule shape). */
  struct oci_seccomp_arg args[] = {
      {.index = 0, .value = 0x0000ff00, .value_two = 0x00001200, .op = SCMP_CMP_MASKED_EQ}};
  struct oci_seccomp_syscall calls[] = {{.names = (char *[]){"personality", NULL},
                                         .n_names = 1,
                                         .action = SCMP_ACT_ERRNO(0),
                                         .has_errno_ret = true,
                                         .errno_ret = 58,
                                         .args = args,
                                         .n_args = 1}};
  struct oci_seccomp s = {.default_action = SCMP_ACT_ALLOW, .syscalls = calls, .n_syscalls = 1};
  if (load(&s) < 0) return;
  errno = 0;
  CHECK(personality(0x0fff1234) == -1 && errno == 58);
  CHECK(personality(PER_LINUX) >= 0);
}

static void test_masked_eq(void) {
  unit_in_child("masked equality", child_masked_eq);
}

static void child_default_errno_allow_list(void) {
  /* Everything the child still needs after loading must be listed: exit_group/exit to
   * leave, write for diagnostics, getpid as a probe. */
  struct oci_seccomp_syscall calls[] = {
      {.names = (char *[]){"exit_group", "exit", "getpid", "write", "writev", "rt_sigreturn", NULL},
       .n_names = 6,
       .action = SCMP_ACT_ALLOW}};
  struct oci_seccomp s = {.default_action = SCMP_ACT_ERRNO(0),
                          .has_default_errno_ret = true,
                          .default_errno_ret = 1,
                          .syscalls = calls,
                          .n_syscalls = 1};
  if (load(&s) < 0) return;
  errno = 0;
  long ppid = syscall(SYS_getppid);
  int ppid_errno = errno;
  errno = 0;
  long uid = syscall(SYS_getuid);
  int uid_errno = errno;
  long pid = syscall(SYS_getpid);
  CHECK(ppid == -1 && ppid_errno == EPERM);
  CHECK(uid == -1 && uid_errno == EPERM);
  CHECK(pid > 0);
}

static void test_default_errno_allow_list(void) {
  unit_in_child("default errno with allow list", child_default_errno_allow_list);
}

static void child_unknown_syscall_skipped(void) {
  struct oci_seccomp_syscall calls[] = {
      {.names = (char *[]){"no_such_syscall_runcell", "getppid", NULL},
       .n_names = 2,
       .action = SCMP_ACT_ERRNO(0),
       .has_errno_ret = true,
       .errno_ret = 77}};
  struct oci_seccomp s = {.default_action = SCMP_ACT_ALLOW, .syscalls = calls, .n_syscalls = 1};
  if (load(&s) < 0) return;
  errno = 0;
  CHECK(syscall(SYS_getppid) == -1 && errno == 77);
}

static void test_unknown_syscall_skipped(void) {
  unit_in_child("unknown syscall name", child_unknown_syscall_skipped);
}

static void child_rule_equal_to_default_skipped(void) {
  /* A rule with the default action would make libseccomp fail; it is dropped. */
  struct oci_seccomp_syscall calls[] = {
      {.names = (char *[]){"getpid", NULL}, .n_names = 1, .action = SCMP_ACT_ALLOW},
      {.names = (char *[]){"getppid", NULL},
       .n_names = 1,
       .action = SCMP_ACT_ERRNO(0),
       .has_errno_ret = true,
       .errno_ret = 1}};
  struct oci_seccomp s = {.default_action = SCMP_ACT_ALLOW, .syscalls = calls, .n_syscalls = 2};
  if (load(&s) < 0) return;
  errno = 0;
  CHECK(syscall(SYS_getppid) == -1 && errno == 1);
}

static void test_rule_equal_to_default_skipped(void) {
  unit_in_child("rule equal to default", child_rule_equal_to_default_skipped);
}

static void child_multi_arch_and_flags(void) {
  /* The native architecture listed explicitly (EEXIST is ignored), plus the usual
   * companions on x86_64, as Docker's profile lists them. */
  uint32_t arches[3];
  size_t n = 0;
  arches[n++] = seccomp_arch_native();
  if (seccomp_arch_native() == SCMP_ARCH_X86_64) {
    arches[n++] = SCMP_ARCH_X86;
    arches[n++] = SCMP_ARCH_X32;
  }
  struct oci_seccomp_syscall calls[] = {{.names = (char *[]){"getppid", NULL},
                                         .n_names = 1,
                                         .action = SCMP_ACT_ERRNO(0),
                                         .has_errno_ret = true,
                                         .errno_ret = 66}};
  struct oci_seccomp s = {.default_action = SCMP_ACT_ALLOW,
                          .architectures = arches,
                          .n_architectures = n,
                          .flags = (char *[]){"SECCOMP_FILTER_FLAG_TSYNC", NULL},
                          .n_flags = 1,
                          .syscalls = calls,
                          .n_syscalls = 1};
  if (load(&s) < 0) return;
  errno = 0;
  CHECK(syscall(SYS_getppid) == -1 && errno == 66);
}

static void test_multi_arch_and_flags(void) {
  unit_in_child("architectures and flags", child_multi_arch_and_flags);
}

static void child_load_needs_privilege(void) {
  /* Without no_new_privs and without CAP_SYS_ADMIN the kernel refuses the filter; the
   * error must say so rather than "Operation canceled". */
  if (geteuid() == 0) {
    /* Give up CAP_SYS_ADMIN by becoming nobody (the child is disposable). */
    if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0) return;
  }
  struct oci_seccomp s = {.default_action = SCMP_ACT_ALLOW};
  struct oci_seccomp_syscall calls[] = {
      {.names = (char *[]){"getppid", NULL}, .n_names = 1, .action = SCMP_ACT_ERRNO(0)}};
  s.syscalls = calls;
  s.n_syscalls = 1;
  struct rc_error err = {0};
  CHECK(rc_seccomp_load(&s, &err) < 0);
  CHECK(err.code == EACCES);
  CHECK_CONTAINS(err.msg, "seccomp: load filter");
}

static void test_load_needs_privilege(void) {
  unit_in_child("load without privilege", child_load_needs_privilege);
}

static void test_check_listener_path(void) {
  struct oci_seccomp s = {.default_action = SCMP_ACT_ALLOW, .listener_path = "/run/listener.sock"};
  struct rc_error err = {0};
  CHECK(rc_seccomp_check(&s, &err) < 0);
  CHECK_STR_EQ(err.msg, "seccomp: listenerPath (SCMP_ACT_NOTIFY) is not supported yet");
  rc_err_clear(&err);
  CHECK(rc_seccomp_load(&s, &err) < 0);
  CHECK_CONTAINS(err.msg, "listenerPath");
}

static void test_check_notify_action(void) {
  struct oci_seccomp_syscall calls[] = {
      {.names = (char *[]){"mount", NULL}, .n_names = 1, .action = SCMP_ACT_NOTIFY}};
  struct oci_seccomp s = {.default_action = SCMP_ACT_ALLOW, .syscalls = calls, .n_syscalls = 1};
  struct rc_error err = {0};
  CHECK(rc_seccomp_check(&s, &err) < 0);
  CHECK_CONTAINS(err.msg, "\"mount\"");
  CHECK_CONTAINS(err.msg, "SCMP_ACT_NOTIFY");
}

static void test_check_bad_arg_index(void) {
  struct oci_seccomp_arg args[] = {{.index = 6, .value = 1, .op = SCMP_CMP_EQ}};
  struct oci_seccomp_syscall calls[] = {{.names = (char *[]){"mount", NULL},
                                         .n_names = 1,
                                         .action = SCMP_ACT_ERRNO(0),
                                         .args = args,
                                         .n_args = 1}};
  struct oci_seccomp s = {.default_action = SCMP_ACT_ALLOW, .syscalls = calls, .n_syscalls = 1};
  struct rc_error err = {0};
  CHECK(rc_seccomp_check(&s, &err) < 0);
  CHECK_CONTAINS(err.msg, "syscalls[0] (\"mount\"): args[0]: index 6 is out of range");
}

static void test_check_bad_op(void) {
  struct oci_seccomp_arg args[] = {{.index = 0, .value = 1, .op = 0}};
  struct oci_seccomp_syscall calls[] = {{.names = (char *[]){"mount", NULL},
                                         .n_names = 1,
                                         .action = SCMP_ACT_ERRNO(0),
                                         .args = args,
                                         .n_args = 1}};
  struct oci_seccomp s = {.default_action = SCMP_ACT_ALLOW, .syscalls = calls, .n_syscalls = 1};
  struct rc_error err = {0};
  CHECK(rc_seccomp_check(&s, &err) < 0);
  CHECK_CONTAINS(err.msg, "unknown op 0");
}

static void test_check_bad_action(void) {
  struct oci_seccomp s = {.default_action = 0x12340000};
  struct rc_error err = {0};
  CHECK(rc_seccomp_check(&s, &err) < 0);
  CHECK_CONTAINS(err.msg, "seccomp: defaultAction");
  struct oci_seccomp_syscall calls[] = {{.names = (char *[]){"mount", NULL},
                                         .n_names = 1,
                                         .action = 0x00010000,
                                         .action_name = "SCMP_ACT_BOGUS"}};
  struct oci_seccomp s2 = {.default_action = SCMP_ACT_ALLOW, .syscalls = calls, .n_syscalls = 1};
  rc_err_clear(&err);
  CHECK(rc_seccomp_check(&s2, &err) < 0);
  CHECK_CONTAINS(err.msg, "syscalls[0] (\"mount\"): action SCMP_ACT_BOGUS");
}

static void test_check_flags(void) {
  struct oci_seccomp s = {
      .default_action = SCMP_ACT_ALLOW,
      .flags = (char *[]){"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                          "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", NULL},
      .n_flags = 3};
  struct rc_error err = {0};
  int r = rc_seccomp_check(&s, &err);
  if (r < 0) fprintf(stderr, "rc_seccomp_check: %s\n", err.msg);
  CHECK(r == 0);
  struct oci_seccomp bad = {.default_action = SCMP_ACT_ALLOW,
                            .flags = (char *[]){"SECCOMP_FILTER_FLAG_BOGUS", NULL},
                            .n_flags = 1};
  CHECK(rc_seccomp_check(&bad, &err) < 0);
  CHECK_CONTAINS(err.msg, "unknown flag \"SECCOMP_FILTER_FLAG_BOGUS\"");
}

static void test_check_bad_arch(void) {
  uint32_t arches[] = {0x12345};
  struct oci_seccomp s = {
      .default_action = SCMP_ACT_ALLOW, .architectures = arches, .n_architectures = 1};
  struct rc_error err = {0};
  CHECK(rc_seccomp_check(&s, &err) < 0);
  CHECK_CONTAINS(err.msg, "seccomp: add architecture 0x12345");
}

static void test_check_ok_profile(void) {
  /* A Docker-like fragment passes the check (which builds the filter) untouched. */
  struct oci_seccomp_arg clone_args[] = {
      {.index = 0, .value = 2114060288, .value_two = 0, .op = SCMP_CMP_MASKED_EQ}};
  struct oci_seccomp_arg pers_args[] = {{.index = 0, .value = 0, .op = SCMP_CMP_EQ},
                                        {.index = 0, .value = 8, .op = SCMP_CMP_EQ}};
  struct oci_seccomp_syscall calls[] = {
      {.names = (char *[]){"read", "write", "close", "futex_waitv_not_real", NULL},
       .n_names = 4,
       .action = SCMP_ACT_ALLOW},
      {.names = (char *[]){"clone", NULL},
       .n_names = 1,
       .action = SCMP_ACT_ALLOW,
       .args = clone_args,
       .n_args = 1},
      {.names = (char *[]){"personality", NULL},
       .n_names = 1,
       .action = SCMP_ACT_ALLOW,
       .args = pers_args,
       .n_args = 2},
      {.names = (char *[]){"ptrace", NULL},
       .n_names = 1,
       .action = SCMP_ACT_TRACE(0),
       .has_errno_ret = true,
       .errno_ret = 3},
      {.names = (char *[]){"socketcall", NULL}, .n_names = 1, .action = SCMP_ACT_LOG},
  };
  struct oci_seccomp s = {
      .default_action = SCMP_ACT_ERRNO(0), .syscalls = calls, .n_syscalls = RC_ARRAY_SIZE(calls)};
  struct rc_error err = {0};
  int r = rc_seccomp_check(&s, &err);
  if (r < 0) fprintf(stderr, "rc_seccomp_check: %s\n", err.msg);
  CHECK(r == 0);
  CHECK(rc_seccomp_check(NULL, &err) == 0);
}

/* The exported program (what a microVM's agent loads with seccomp(2) itself) behaves as
 * the loaded filter: an errno rule with an argument check, the flags carried aside. */
static void child_export_loads_raw(void) {
  struct oci_seccomp_arg args[] = {{.index = 0, .value = 7, .op = SCMP_CMP_EQ}};
  struct oci_seccomp_syscall calls[] = {{.names = (char *[]){"getpgid", NULL},
                                         .n_names = 1,
                                         .action = SCMP_ACT_ERRNO(0),
                                         .has_errno_ret = true,
                                         .errno_ret = 77,
                                         .args = args,
                                         .n_args = 1}};
  char *flags[] = {"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC", NULL};
  struct oci_seccomp s = {.default_action = SCMP_ACT_ALLOW,
                          .syscalls = calls,
                          .n_syscalls = 1,
                          .flags = flags,
                          .n_flags = 2};
  uint8_t *bpf = NULL;
  uint32_t len = 0, fl = 0;
  struct rc_error err = {0};
  int r = rc_seccomp_export(&s, &bpf, &len, &fl, &err);
  if (r < 0) fprintf(stderr, "rc_seccomp_export: %s\n", err.msg);
  CHECK(r == 0);
  CHECK(bpf && len > 0 && len % sizeof(struct sock_filter) == 0);
  CHECK(fl == SECCOMP_FILTER_FLAG_LOG); /* TSYNC is not the agent's: dropped */
  if (r < 0 || !bpf) return;
  struct sock_fprog prog = {.len = (unsigned short)(len / sizeof(struct sock_filter)),
                            .filter = (struct sock_filter *)(void *)bpf};
  CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
  CHECK(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, fl, &prog) == 0);
  errno = 0;
  CHECK(syscall(SYS_getpgid, 7) == -1 && errno == 77);
  CHECK(syscall(SYS_getpgid, 0) == getpgid(0));
  free(bpf);
  CHECK(rc_seccomp_export(NULL, &bpf, &len, &fl, &err) == 0 && bpf == NULL && len == 0);
}

static void test_export_loads_raw(void) {
  unit_in_child("exported filter loaded raw", child_export_loads_raw);
}

UNIT_MAIN("seccomp", UNIT_CASE(test_export_loads_raw), UNIT_CASE(test_errno_rule),
          UNIT_CASE(test_errno_default_eperm), UNIT_CASE(test_arg_condition),
          UNIT_CASE(test_same_index_or), UNIT_CASE(test_distinct_index_and),
          UNIT_CASE(test_masked_eq), UNIT_CASE(test_default_errno_allow_list),
          UNIT_CASE(test_unknown_syscall_skipped), UNIT_CASE(test_rule_equal_to_default_skipped),
          UNIT_CASE(test_multi_arch_and_flags), UNIT_CASE(test_load_needs_privilege),
          UNIT_CASE(test_check_listener_path), UNIT_CASE(test_check_notify_action),
          UNIT_CASE(test_check_bad_arg_index), UNIT_CASE(test_check_bad_op),
          UNIT_CASE(test_check_bad_action), UNIT_CASE(test_check_flags),
          UNIT_CASE(test_check_bad_arch), UNIT_CASE(test_check_ok_profile))
