/* Device rules: the policy the OCI rules leave (the v1 devices controller's model), the
 * eBPF program generated from it (run here through a small interpreter against the
 * policy's own verdicts), and, as root on a host with a cgroup v2 hierarchy, the program
 * loaded and attached for real: a child moved into the cgroup opens device nodes and gets
 * EPERM exactly where the rules deny. The real case prints SKIP with the reason when the
 * host cannot run it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../../src/linux/cgroups_internal.h"
#include "runcell/util.h"
#include "unit.h"

#define ACC_R RC_DEV_ACC_READ
#define ACC_W RC_DEV_ACC_WRITE
#define ACC_M RC_DEV_ACC_MKNOD

static struct oci_device_cgroup rule(bool allow, char type, int64_t major, int64_t minor,
                                     const char *access) {
  return (struct oci_device_cgroup){.allow = allow,
                                    .type = type,
                                    .has_major = major >= 0,
                                    .has_minor = minor >= 0,
                                    .major = major,
                                    .minor = minor,
                                    .access = (char *)access};
}

/* ---------------------------------------------------------------------------------------
 * The policy
 * ------------------------------------------------------------------------------------- */

static void test_policy_from_rules(void) {
  struct rc_error err;
  struct rc_dev_policy p;
  /* the usual config: deny all, then allow some */
  struct oci_device_cgroup r1[] = {
      rule(false, 'a', -1, -1, "rwm"), rule(true, 'c', 1, 3, "rwm"), rule(true, 'c', 1, 5, "r"),
      rule(true, 'c', 1, 5, "w"), /* merged with the one before, as the kernel does */
      rule(true, 'b', 8, -1, "r"),
  };
  CHECK(rc_cg_dev_policy_build(r1, RC_ARRAY_SIZE(r1), false, &p, &err) == 0);
  CHECK(!p.default_allow);
  CHECK(p.n == 3);
  CHECK(rc_cg_dev_policy_access(&p, 'c', 1, 3) == RC_DEV_ACC_ALL);
  CHECK(rc_cg_dev_policy_access(&p, 'c', 1, 5) == (ACC_R | ACC_W));
  CHECK(rc_cg_dev_policy_access(&p, 'b', 8, -1) == ACC_R);
  CHECK(rc_cg_dev_policy_access(&p, 'b', 8, 0) == 0);
  rc_cg_dev_policy_free(&p);

  /* no rule at all: deny-all (runc's start), and the defaults on top */
  CHECK(rc_cg_dev_policy_build(NULL, 0, true, &p, &err) == 0);
  CHECK(!p.default_allow);
  CHECK(p.n == rc_cg_n_default_device_rules);
  CHECK(rc_cg_dev_policy_access(&p, 'c', -1, -1) == ACC_M);
  CHECK(rc_cg_dev_policy_access(&p, 'c', 136, -1) == RC_DEV_ACC_ALL);
  CHECK(rc_cg_dev_policy_access(&p, 'c', 5, 1) == 0); /* no /dev/console, as runc */
  rc_cg_dev_policy_free(&p);

  /* a later deny takes access back; the last rule naming a device decides */
  struct oci_device_cgroup r2[] = {
      rule(true, 'c', 1, 5, "rw"),
      rule(false, 'c', 1, 5, "w"),
      rule(true, 'c', 1, 9, "rwm"),
      rule(false, 'c', 1, 9, "rwm"),
  };
  CHECK(rc_cg_dev_policy_build(r2, RC_ARRAY_SIZE(r2), false, &p, &err) == 0);
  CHECK(p.n == 1);
  CHECK(rc_cg_dev_policy_access(&p, 'c', 1, 5) == ACC_R);
  CHECK(rc_cg_dev_policy_access(&p, 'c', 1, 9) == 0);
  rc_cg_dev_policy_free(&p);

  /* allow all resets to a deny-list; a later "all" resets again */
  struct oci_device_cgroup r3[] = {
      rule(true, 'c', 1, 3, "rwm"),
      rule(true, 'a', -1, -1, NULL),
      rule(false, 'c', 1, 3, "w"),
  };
  CHECK(rc_cg_dev_policy_build(r3, RC_ARRAY_SIZE(r3), false, &p, &err) == 0);
  CHECK(p.default_allow);
  CHECK(p.n == 1 && rc_cg_dev_policy_access(&p, 'c', 1, 3) == ACC_W);
  rc_cg_dev_policy_free(&p);

  /* an "all types" allow narrower than everything is split, never an allow-all */
  struct oci_device_cgroup r4[] = {rule(true, 'a', -1, -1, "r"), rule(true, 'a', 7, -1, "rwm")};
  CHECK(rc_cg_dev_policy_build(r4, RC_ARRAY_SIZE(r4), false, &p, &err) == 0);
  CHECK(!p.default_allow);
  CHECK(rc_cg_dev_policy_access(&p, 'c', -1, -1) == ACC_R);
  CHECK(rc_cg_dev_policy_access(&p, 'b', -1, -1) == ACC_R);
  CHECK(rc_cg_dev_policy_access(&p, 'c', 7, -1) == RC_DEV_ACC_ALL);
  CHECK(rc_cg_dev_policy_access(&p, 'b', 7, -1) == RC_DEV_ACC_ALL);
  rc_cg_dev_policy_free(&p);
}

static void test_policy_refusals(void) {
  struct rc_error err;
  struct rc_dev_policy p;
  /* punching a hole in a wildcard exception cannot be expressed: an error, not an allow */
  struct oci_device_cgroup hole[] = {rule(true, 'c', -1, -1, "rwm"), rule(false, 'c', 1, 3, "w")};
  CHECK(rc_cg_dev_policy_build(hole, RC_ARRAY_SIZE(hole), false, &p, &err) < 0);
  CHECK_CONTAINS(err.msg, "linux.resources.devices[1]");
  CHECK_CONTAINS(err.msg, "c 1:3 w");
  CHECK_CONTAINS(err.msg, "c *:* rwm");
  CHECK(p.ex == NULL);
  struct oci_device_cgroup hole2[] = {rule(true, 'c', 4, -1, "r"), rule(false, 'c', 4, 1, "r")};
  CHECK(rc_cg_dev_policy_build(hole2, RC_ARRAY_SIZE(hole2), false, &p, &err) < 0);
  CHECK_CONTAINS(err.msg, "c 4:* r");
  /* no overlap in access: nothing to punch */
  struct oci_device_cgroup ok[] = {rule(true, 'c', -1, -1, "m"), rule(false, 'c', 1, 3, "rw")};
  CHECK(rc_cg_dev_policy_build(ok, RC_ARRAY_SIZE(ok), false, &p, &err) == 0);
  rc_cg_dev_policy_free(&p);

  struct oci_device_cgroup bad_access[] = {rule(true, 'c', 1, 3, "rwx")};
  CHECK(rc_cg_dev_policy_build(bad_access, 1, false, &p, &err) < 0);
  CHECK_CONTAINS(err.msg, "rwx");
  struct oci_device_cgroup bad_type[] = {rule(true, 'u', 1, 3, "r")};
  CHECK(rc_cg_dev_policy_build(bad_type, 1, false, &p, &err) < 0);
  CHECK_CONTAINS(err.msg, "'u'");
  struct oci_device_cgroup big[] = {rule(true, 'c', (int64_t)1 << 40, 3, "r")};
  CHECK(rc_cg_dev_policy_build(big, 1, false, &p, &err) < 0);
  CHECK_CONTAINS(err.msg, "out of range");
}

static void test_policy_from_list(void) {
  struct rc_error err;
  struct rc_dev_policy p;
  CHECK(rc_cg_dev_policy_from_list("a *:* rwm\n", &p, &err) == 0);
  CHECK(p.default_allow && p.n == 0);
  rc_cg_dev_policy_free(&p);
  CHECK(rc_cg_dev_policy_from_list("c 1:3 rwm\nb *:* m\nc 136:* rw", &p, &err) == 0);
  CHECK(!p.default_allow && p.n == 3);
  CHECK(rc_cg_dev_policy_access(&p, 'c', 136, -1) == (ACC_R | ACC_W));
  CHECK(rc_cg_dev_policy_access(&p, 'b', -1, -1) == ACC_M);
  rc_cg_dev_policy_free(&p);
  CHECK(rc_cg_dev_policy_from_list("", &p, &err) == 0);
  CHECK(!p.default_allow && p.n == 0);
  rc_cg_dev_policy_free(&p);
  CHECK(rc_cg_dev_policy_from_list("c 1:3 rwx\n", &p, &err) < 0);
  CHECK_CONTAINS(err.msg, "c 1:3 rwx");
  char line[64];
  rc_cg_dev_format('b', 8, -1, ACC_R | ACC_M, line, sizeof(line));
  CHECK_STR_EQ(line, "b 8:* rm");
}

/* ---------------------------------------------------------------------------------------
 * The program, interpreted
 * ------------------------------------------------------------------------------------- */

/* Runs prog on one request the way the kernel would (only the instructions the generator
 * uses); returns r0, or -1 for a program that misbehaves. */
static int interpret(const struct bpf_insn *prog, size_t n, unsigned type, unsigned access,
                     unsigned major, unsigned minor) {
  uint32_t ctx[3] = {type | (access << 16), major, minor};
  uint64_t reg[11] = {0};
  for (size_t pc = 0, steps = 0; pc < n && steps < 100000; pc++, steps++) {
    const struct bpf_insn *i = &prog[pc];
    uint64_t *dst = &reg[i->dst_reg];
    uint64_t src = reg[i->src_reg];
    switch (i->code) {
      case BPF_LDX | BPF_MEM | BPF_W:
        if (i->src_reg != 1 || i->off < 0 || i->off > 8 || i->off % 4) return -1;
        *dst = ctx[i->off / 4];
        break;
      case BPF_ALU | BPF_AND | BPF_K:
        *dst = (uint32_t)(*dst & (uint32_t)i->imm);
        break;
      case BPF_ALU | BPF_RSH | BPF_K:
        *dst = (uint32_t)((uint32_t)*dst >> i->imm);
        break;
      case BPF_ALU | BPF_MOV | BPF_X:
        *dst = (uint32_t)src;
        break;
      case BPF_ALU64 | BPF_MOV | BPF_K:
        *dst = (uint64_t)(int64_t)i->imm;
        break;
      case BPF_JMP | BPF_JNE | BPF_K:
        if (*dst != (uint64_t)(int64_t)i->imm) pc += i->off;
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        if (*dst == (uint64_t)(int64_t)i->imm) pc += i->off;
        break;
      case BPF_JMP | BPF_JNE | BPF_X:
        if (*dst != src) pc += i->off;
        break;
      case BPF_JMP | BPF_EXIT:
        return (int)reg[0];
      default:
        return -1;
    }
  }
  return -1; /* ran off the end */
}

/* The v1 kernel's verdict for the same policy (devcgroup_legacy_check_permission). */
static int reference(const struct rc_dev_policy *p, char type, unsigned access, int64_t major,
                     int64_t minor) {
  for (size_t i = 0; i < p->n; i++) {
    const struct rc_dev_exception *e = &p->ex[i];
    if (e->type != type || (e->major >= 0 && e->major != major) ||
        (e->minor >= 0 && e->minor != minor))
      continue;
    if (p->default_allow ? (access & e->access) != 0 : (access & ~e->access) == 0)
      return p->default_allow ? 0 : 1;
  }
  return p->default_allow ? 1 : 0;
}

static int verdict(const struct rc_dev_policy *p, char type, unsigned access, unsigned major,
                   unsigned minor) {
  struct rc_error err;
  struct bpf_insn *prog = NULL;
  size_t n = 0;
  if (rc_cg_bpf_device_program(p, &prog, &n, &err) < 0) return -2;
  int v = interpret(prog, n, type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR, access, major,
                    minor);
  free(prog);
  return v;
}

static void check_against_reference(const struct rc_dev_policy *p) {
  static const unsigned numbers[] = {0, 1, 3, 5, 7, 8, 136, 200, 4095};
  static const unsigned accesses[] = {ACC_R, ACC_W, ACC_M, ACC_R | ACC_W};
  int mismatches = 0;
  for (const char *t = "cb"; *t; t++)
    for (size_t a = 0; a < RC_ARRAY_SIZE(accesses); a++)
      for (size_t i = 0; i < RC_ARRAY_SIZE(numbers); i++)
        for (size_t j = 0; j < RC_ARRAY_SIZE(numbers); j++)
          if (verdict(p, *t, accesses[a], numbers[i], numbers[j]) !=
              reference(p, *t, accesses[a], numbers[i], numbers[j]))
            mismatches++;
  CHECK(mismatches == 0);
}

static void test_program(void) {
  struct rc_error err;
  struct rc_dev_policy p;
  struct oci_device_cgroup allow_list[] = {
      rule(false, 'a', -1, -1, "rwm"), rule(true, 'c', 1, 3, "rwm"), rule(true, 'c', 1, 5, "r"),
      rule(true, 'c', 4, -1, "rw"),    rule(true, 'b', -1, 0, "m"),
  };
  CHECK(rc_cg_dev_policy_build(allow_list, RC_ARRAY_SIZE(allow_list), false, &p, &err) == 0);
  CHECK(verdict(&p, 'c', ACC_R | ACC_W, 1, 3) == 1);
  CHECK(verdict(&p, 'c', ACC_R, 1, 5) == 1);
  CHECK(verdict(&p, 'c', ACC_W, 1, 5) == 0);
  CHECK(verdict(&p, 'c', ACC_R | ACC_W, 1, 5) == 0);
  CHECK(verdict(&p, 'c', ACC_R, 1, 7) == 0);
  CHECK(verdict(&p, 'b', ACC_R, 1, 3) == 0); /* same numbers, other type */
  CHECK(verdict(&p, 'c', ACC_W, 4, 64) == 1);
  CHECK(verdict(&p, 'c', ACC_M, 4, 64) == 0);
  CHECK(verdict(&p, 'b', ACC_M, 8, 0) == 1);
  CHECK(verdict(&p, 'b', ACC_M, 8, 1) == 0);
  check_against_reference(&p);
  rc_cg_dev_policy_free(&p);

  struct oci_device_cgroup deny_list[] = {
      rule(true, 'a', -1, -1, "rwm"),
      rule(false, 'c', 1, 3, "w"),
      rule(false, 'b', 8, -1, "rwm"),
  };
  CHECK(rc_cg_dev_policy_build(deny_list, RC_ARRAY_SIZE(deny_list), false, &p, &err) == 0);
  CHECK(verdict(&p, 'c', ACC_R, 1, 3) == 1);
  CHECK(verdict(&p, 'c', ACC_W, 1, 3) == 0);
  CHECK(verdict(&p, 'c', ACC_R | ACC_W, 1, 3) == 0); /* any denied part denies */
  CHECK(verdict(&p, 'b', ACC_R, 8, 16) == 0);
  CHECK(verdict(&p, 'b', ACC_R, 9, 16) == 1);
  check_against_reference(&p);
  rc_cg_dev_policy_free(&p);

  CHECK(rc_cg_dev_policy_build(NULL, 0, true, &p, &err) == 0);
  check_against_reference(&p);
  CHECK(verdict(&p, 'c', ACC_R | ACC_W, 136, 4) == 1);
  CHECK(verdict(&p, 'c', ACC_M, 200, 200) == 1);
  CHECK(verdict(&p, 'c', ACC_R, 200, 200) == 0);
  rc_cg_dev_policy_free(&p);
}

/* ---------------------------------------------------------------------------------------
 * For real: a cgroup v2 directory with the program attached, a child inside
 * ------------------------------------------------------------------------------------- */

static char *cg_dir;   /* the test cgroup, in the v2 hierarchy */
static char *node_dir; /* a temporary directory holding a copy of /dev/full */
static int scenario;   /* which expectations the child checks */

static int open_errno(const char *path, int flags) {
  int fd = open(path, flags | O_CLOEXEC);
  if (fd >= 0) {
    close(fd);
    return 0;
  }
  return errno;
}

static int mknod_errno(const char *name, dev_t dev) {
  cleanup_free char *path = rc_xasprintf("%s/%s", node_dir, name);
  if (mknod(path, S_IFCHR | 0666, dev) == 0) {
    unlink(path);
    return 0;
  }
  return errno;
}

static void in_cgroup(void) {
  cleanup_free char *procs = rc_xasprintf("%s/cgroup.procs", cg_dir);
  struct rc_error err;
  char pid[32];
  snprintf(pid, sizeof(pid), "%d", (int)getpid());
  CHECK(rc_write_file(procs, pid, strlen(pid), &err) == 0);
  cleanup_free char *full = rc_xasprintf("%s/full", node_dir);
  switch (scenario) {
    case 0: /* deny all; allow c 1:3 rwm; allow c 1:5 r */
      CHECK(open_errno("/dev/null", O_RDWR) == 0);
      CHECK(open_errno("/dev/zero", O_RDONLY) == 0);
      CHECK(open_errno("/dev/zero", O_WRONLY) == EPERM);
      CHECK(open_errno(full, O_RDONLY) == EPERM);
      CHECK(mknod_errno("null2", makedev(1, 3)) == 0);
      CHECK(mknod_errno("full2", makedev(1, 7)) == EPERM);
      break;
    case 1: /* deny all; allow c 1:* r (a wildcard minor) */
      CHECK(open_errno("/dev/null", O_RDONLY) == 0);
      CHECK(open_errno(full, O_RDONLY) == 0);
      CHECK(open_errno(full, O_WRONLY) == EPERM);
      CHECK(open_errno("/dev/null", O_WRONLY) == EPERM);
      break;
    case 2: /* allow c 1:5 rw; deny c 1:5 w: the later rule takes write back */
      CHECK(open_errno("/dev/zero", O_RDONLY) == 0);
      CHECK(open_errno("/dev/zero", O_WRONLY) == EPERM);
      CHECK(open_errno("/dev/null", O_RDONLY) == EPERM);
      break;
    case 3: /* allow all; deny c 1:3 w: a deny-list */
      CHECK(open_errno("/dev/null", O_RDONLY) == 0);
      CHECK(open_errno("/dev/null", O_WRONLY) == EPERM);
      CHECK(open_errno("/dev/zero", O_RDWR) == 0);
      CHECK(open_errno(full, O_WRONLY) == 0);
      break;
    default:
      CHECK(!"unknown scenario");
  }
}

static uint32_t attached_count(int dirfd) {
  uint32_t ids[64];
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.query.target_fd = (uint32_t)dirfd;
  attr.query.attach_type = BPF_CGROUP_DEVICE;
  attr.query.prog_ids = (uint64_t)(uintptr_t)ids;
  attr.query.prog_cnt = 64;
  if (syscall(SYS_bpf, BPF_PROG_QUERY, &attr, sizeof(attr)) < 0) return UINT32_MAX;
  return attr.query.prog_cnt;
}

static void test_filter_in_the_kernel(void) {
  if (geteuid() != 0) {
    printf("SKIP: kernel device filter: needs root\n");
    return;
  }
  const struct rc_cg_layout *l = rc_cg_layout();
  const struct rc_cg_hier *v2 = NULL;
  for (size_t i = 0; i < l->n; i++)
    if (l->hiers[i].v2) v2 = &l->hiers[i];
  if (!v2) {
    printf("SKIP: kernel device filter: no cgroup v2 hierarchy is mounted\n");
    return;
  }
  cg_dir = rc_xasprintf("%s/runcell-unit-devices-%d", v2->mount, (int)getpid());
  if (mkdir(cg_dir, 0755) < 0) {
    printf("SKIP: kernel device filter: cannot make %s: %s\n", cg_dir, strerror(errno));
    free(cg_dir);
    cg_dir = NULL;
    return;
  }
  char tmpl[] = "/tmp/runcell-unit-devnodes-XXXXXX";
  node_dir = mkdtemp(tmpl);
  CHECK(node_dir != NULL);
  cleanup_free char *full = node_dir ? rc_xasprintf("%s/full", node_dir) : NULL;
  if (full) CHECK(mknod(full, S_IFCHR | 0666, makedev(1, 7)) == 0);
  int dirfd = open(cg_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK(dirfd >= 0);

  struct oci_device_cgroup s0[] = {rule(false, 'a', -1, -1, "rwm"), rule(true, 'c', 1, 3, "rwm"),
                                   rule(true, 'c', 1, 5, "r")};
  struct oci_device_cgroup s1[] = {rule(false, 'a', -1, -1, "rwm"), rule(true, 'c', 1, -1, "r")};
  struct oci_device_cgroup s2[] = {rule(true, 'c', 1, 5, "rw"), rule(false, 'c', 1, 5, "w")};
  struct oci_device_cgroup s3[] = {rule(true, 'a', -1, -1, "rwm"), rule(false, 'c', 1, 3, "w")};
  const struct {
    struct oci_device_cgroup *rules;
    size_t n;
  } scenarios[] = {{s0, RC_ARRAY_SIZE(s0)},
                   {s1, RC_ARRAY_SIZE(s1)},
                   {s2, RC_ARRAY_SIZE(s2)},
                   {s3, RC_ARRAY_SIZE(s3)}};
  bool permitted = true;
  for (size_t i = 0; dirfd >= 0 && node_dir && i < RC_ARRAY_SIZE(scenarios); i++) {
    struct rc_error err;
    struct rc_dev_policy p;
    CHECK(rc_cg_dev_policy_build(scenarios[i].rules, scenarios[i].n, false, &p, &err) == 0);
    int r = rc_cg_bpf_device_attach(dirfd, cg_dir, &p, &err);
    rc_cg_dev_policy_free(&p);
    if (r < 0 && i == 0 && (err.code == EPERM || err.code == EACCES || err.code == ENOSYS)) {
      printf("SKIP: kernel device filter: bpf() is not permitted here: %s\n", err.msg);
      permitted = false;
      break;
    }
    if (r < 0) fprintf(stderr, "attach: %s\n", err.msg);
    CHECK(r == 0);
    /* each attach replaces the one before: one program at a time */
    CHECK(attached_count(dirfd) == 1);
    scenario = (int)i;
    char what[32];
    snprintf(what, sizeof(what), "scenario %zu", i);
    if (r == 0) unit_in_child(what, in_cgroup);
  }

  if (permitted) {
    /* A program the verifier refuses (r0 never set): the error carries its log. */
    struct bpf_insn bad = {.code = BPF_JMP | BPF_EXIT};
    struct rc_error err;
    int fd = rc_cg_bpf_device_load(&bad, 1, "/unit", &err);
    CHECK(fd < 0);
    if (fd >= 0) close(fd);
    CHECK_CONTAINS(err.msg, "verifier log");
    CHECK_CONTAINS(err.msg, "R0");
  }
  if (dirfd >= 0) close(dirfd);
  if (full) unlink(full);
  if (node_dir) rmdir(node_dir);
  CHECK(rmdir(cg_dir) == 0); /* the children exited, so it is empty */
  free(cg_dir);
  cg_dir = NULL;
  node_dir = NULL;
}

UNIT_MAIN("device_filter", UNIT_CASE(test_policy_from_rules), UNIT_CASE(test_policy_refusals),
          UNIT_CASE(test_policy_from_list), UNIT_CASE(test_program),
          UNIT_CASE(test_filter_in_the_kernel))
