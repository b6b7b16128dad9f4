/* The cell gate's policy (src/cell/gate_policy.c) against its documentation
 * (docs/cell-gate.md), the policy's own consistency, and the compiled gate installed for
 * real in a forked child (a filter cannot be removed). */
#include <errno.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/gate.h"
#include "runcell/util.h"
#include "unit.h"

/* RUNCELL_TEST_DATA is <repo>/tests/unit/data: the document is three levels up. */
static char *read_doc(void) {
  const char *data = getenv("RUNCELL_TEST_DATA");
  CHECK(data != NULL);
  if (!data) {
    fprintf(stderr, "RUNCELL_TEST_DATA is not set (ctest sets it)\n");
    return NULL;
  }
  char path[4096];
  snprintf(path, sizeof(path), "%s/../../../docs/cell-gate.md", data);
  char *text = NULL;
  struct rc_error err = {0};
  int r = rc_read_file(path, 1 << 20, &text, NULL, &err);
  if (r < 0) fprintf(stderr, "%s\n", err.msg);
  CHECK(r == 0);
  return r == 0 ? text : NULL;
}

static const char *kind_name(enum rc_gate_kind k) {
  switch (k) {
    case RC_GATE_DENY:
      return "denied";
    case RC_GATE_CHECKED:
      return "argument-checked";
    case RC_GATE_ROUTE:
      return "routed";
    default:
      return "allowed";
  }
}

/* Every denied and argument-checked syscall has a table row "| `name` | ERRNO |". */
static void test_doc_lists_every_refusal(void) {
  char *doc = read_doc();
  if (!doc) return;
  size_t n = 0;
  const struct rc_gate_rule *rules = rc_gate_rules(&n);
  size_t listed = 0;
  for (size_t i = 0; i < n; i++) {
    if (rules[i].kind != RC_GATE_DENY && rules[i].kind != RC_GATE_CHECKED) continue;
    const char *e = strerrorname_np(rules[i].errnum);
    char row[160];
    snprintf(row, sizeof(row), "\n| `%s` | %s |", rules[i].syscall, e ? e : "?");
    unit_checks++;
    if (!strstr(doc, row)) {
      unit_failures++;
      fprintf(stderr, "docs/cell-gate.md: no row for %s syscall %s with %s (\"%s\")\n",
              kind_name(rules[i].kind), rules[i].syscall, e ? e : "?", row + 1);
    }
    listed++;
  }
  CHECK(listed > 0);
  free(doc);
}

static void test_no_duplicate_names(void) {
  size_t n = 0;
  const struct rc_gate_rule *rules = rc_gate_rules(&n);
  CHECK(n > 300);
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++) {
      unit_checks++;
      if (!strcmp(rules[i].syscall, rules[j].syscall)) {
        unit_failures++;
        fprintf(stderr, "gate_policy.c: %s is listed twice (%s and %s)\n", rules[i].syscall,
                kind_name(rules[i].kind), kind_name(rules[j].kind));
      }
    }
}

/* A refusal has an errno and a reason; an allowed call has neither. */
static void test_rules_are_complete(void) {
  size_t n = 0;
  const struct rc_gate_rule *rules = rc_gate_rules(&n);
  for (size_t i = 0; i < n; i++) {
    const struct rc_gate_rule *r = &rules[i];
    bool refuses = r->kind == RC_GATE_DENY || r->kind == RC_GATE_CHECKED;
    unit_checks++;
    if (refuses ? (r->errnum <= 0 || !r->reason || !*r->reason) : r->errnum != 0) {
      unit_failures++;
      fprintf(stderr, "gate_policy.c: %s (%s) errno %d reason %s\n", r->syscall, kind_name(r->kind),
              r->errnum, r->reason ? r->reason : "(none)");
    }
    if (r->kind == RC_GATE_ROUTE) CHECK(r->reason && *r->reason);
  }
}

static void test_ioctl_list(void) {
  size_t n = 0;
  const unsigned long *ok = rc_gate_ioctls(&n);
  CHECK(n > 0);
  for (size_t i = 0; i < n; i++) {
    CHECK(ok[i] <= 0xffffffffUL); /* compared as the kernel's 32-bit cmd */
    CHECK(ok[i] != TIOCSTI && ok[i] != TIOCLINUX && ok[i] != TIOCCONS && ok[i] != TIOCSETD &&
          ok[i] != TIOCVHANGUP);
    for (size_t j = i + 1; j < n; j++) {
      unit_checks++;
      if (ok[i] == ok[j]) {
        unit_failures++;
        fprintf(stderr, "gate_policy.c: ioctl 0x%lx is listed twice\n", ok[i]);
      }
    }
  }
}

static void test_gate_check(void) {
  struct rc_error err = {0};
  int r = rc_gate_check(&err);
  if (r < 0) fprintf(stderr, "rc_gate_check: %s\n", err.msg);
  CHECK(r == 0);
}

/* --- the compiled gate, installed ------------------------------------------------------ */

/* errno of a raw syscall, 0 if it succeeded (a returned fd is closed). */
static int answer(long r, bool fd) {
  if (r < 0) return errno;
  if (fd) close((int)r);
  return 0;
}

/* clone as fork with extra flags; the child exits at once. */
static int clone_answer(unsigned long flags) {
  errno = 0;
  long pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
  if (pid == 0) syscall(SYS_exit, 0);
  if (pid < 0) return errno;
  int st = 0;
  while (waitpid((pid_t)pid, &st, 0) < 0 && errno == EINTR) {
  }
  return 0;
}

static void child_installed_gate(void) {
  CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
  int listener = -1;
  struct rc_error err = {0};
  int r = rc_gate_install(&rc_gate_builtin, &listener, &err);
  if (r < 0) fprintf(stderr, "rc_gate_install: %s\n", err.msg);
  CHECK(r == 0);
  if (r < 0) return;
  CHECK(listener == -1);
  CHECK(syscall(SYS_getpid) == getpid());
  /* denied, with the policy's errno */
  CHECK(answer(syscall(SYS_bpf, 0xfffff, NULL, 0), true) == EPERM);
  CHECK(answer(syscall(SYS_unshare, 0), false) == EPERM);
  CHECK(answer(syscall(SYS_clone3, NULL, 0), false) == ENOSYS);
  CHECK(answer(syscall(SYS_io_uring_setup, 1, NULL), true) == ENOSYS);
  CHECK(answer(syscall(SYS_name_to_handle_at, -1, NULL, NULL, NULL, 0), false) == EOPNOTSUPP);
  /* not listed at all: ENOSYS (447 is memfd_secret on x86-64) */
  CHECK(answer(syscall(447, 0), true) == ENOSYS);
  /* clone: namespace flags refused, anything else (CLONE_IO included) allowed */
  CHECK(clone_answer(0) == 0);
  CHECK(clone_answer(CLONE_IO) == 0);
  CHECK(clone_answer(CLONE_NEWUTS) == EPERM);
  CHECK(clone_answer(CLONE_NEWUSER) == EPERM);
  CHECK(clone_answer(CLONE_NEWNET) == EPERM);
  /* sockets: families and netlink protocols */
  CHECK(answer(syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), true) == 0);
  CHECK(answer(syscall(SYS_socket, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), true) == 0);
  CHECK(answer(syscall(SYS_socket, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC), true) ==
        EPROTONOSUPPORT);
  CHECK(answer(syscall(SYS_socket, AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0), true) == EAFNOSUPPORT);
  int sv[2];
  CHECK(answer(syscall(SYS_socketpair, AF_INET, SOCK_STREAM, 0, sv), false) == EAFNOSUPPORT);
  /* ioctl: vetted requests pass (the fd decides then), TIOCSTI is EPERM, others ENOTTY */
  CHECK(answer(syscall(SYS_ioctl, -1, TCGETS, NULL), false) == EBADF);
  CHECK(answer(syscall(SYS_ioctl, -1, TIOCSTI, NULL), false) == EPERM);
  CHECK(answer(syscall(SYS_ioctl, -1, SIOCGIFMAP, NULL), false) == ENOTTY);
  /* the kernel's cmd is 32 bits: high bits of the request do not sneak past */
  CHECK(answer(syscall(SYS_ioctl, -1, 0x100000000UL | TIOCSTI, NULL), false) == EPERM);
  /* personality: the query and PER_LINUX yes, ADDR_NO_RANDOMIZE no */
  CHECK(answer(syscall(SYS_personality, 0xffffffffUL), false) == 0);
  CHECK(answer(syscall(SYS_personality, 0x0040000UL), false) == EPERM);
}

static void test_installed_gate(void) {
  unit_in_child("gate installed", child_installed_gate);
}

UNIT_MAIN("gate_policy", UNIT_CASE(test_doc_lists_every_refusal),
          UNIT_CASE(test_no_duplicate_names), UNIT_CASE(test_rules_are_complete),
          UNIT_CASE(test_ioctl_list), UNIT_CASE(test_gate_check), UNIT_CASE(test_installed_gate))
