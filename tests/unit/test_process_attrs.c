/* Capabilities, user switch, rlimits, oom_score_adj, personality and no_new_privs, applied
 * for real in forked children (none of it can be undone) and read back from the kernel
 * (/proc/self/status, getrlimit, personality). Cases that change uid or the bounding set
 * need root with full capabilities and are skipped, saying so, otherwise. */
#include <errno.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/process_attrs.h"
#include "runcell/util.h"
#include "unit.h"

#define BIT(cap) (UINT64_C(1) << (cap))

/* The value of a /proc/self/status field, without the trailing whitespace. */
static bool status_field(const char *key, char *out, size_t len) {
  FILE *f = fopen("/proc/self/status", "re");
  if (!f) return false;
  char line[512];
  size_t klen = strlen(key);
  bool found = false;
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, key, klen) != 0 || line[klen] != ':') continue;
    const char *v = line + klen + 1;
    while (*v == ' ' || *v == '\t') v++;
    snprintf(out, len, "%s", v);
    size_t n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ' || out[n - 1] == '\t')) out[--n] = 0;
    found = true;
    break;
  }
  fclose(f);
  return found;
}

#define CHECK_STATUS(key, expected)                        \
  do {                                                     \
    char status_buf_[256] = "(missing)";                   \
    status_field((key), status_buf_, sizeof(status_buf_)); \
    CHECK_STR_EQ(status_buf_, (expected));                 \
  } while (0)

/* Root with the capabilities the user/capability cases need, in the initial user
 * namespace (elsewhere uid 1000 may be unmapped and setgroups denied). */
static bool privileged(const char *test) {
  char eff[64];
  bool ok = false;
  if (geteuid() == 0 && status_field("CapEff", eff, sizeof(eff))) {
    uint64_t caps = strtoull(eff, NULL, 16);
    uint64_t need = BIT(CAP_SETUID) | BIT(CAP_SETGID) | BIT(CAP_SETPCAP);
    ok = (caps & need) == need;
  }
  if (ok) {
    unsigned long inside = 1, outside = 1, count = 0;
    FILE *f = fopen("/proc/self/uid_map", "re");
    /* NOLINTNEXTLINE(cert-err34-c): a malformed map only makes the test skip */
    ok = f && fscanf(f, "%lu %lu %lu", &inside, &outside, &count) == 3 && inside == 0 &&
         outside == 0 && count == 4294967295UL;
    if (f) fclose(f);
  }
  if (!ok)
    printf(
        "SKIP %s: needs root with CAP_SETUID, CAP_SETGID and CAP_SETPCAP in the initial "
        "user namespace\n",
        test);
  return ok;
}

static void child_user_and_caps(void) {
  gid_t groups[] = {1001};
  struct oci_process p = {
      .user = {.uid = 1000, .gid = 1000, .additional_gids = groups, .n_additional_gids = 1},
      .has_capabilities = true,
      .capabilities = {.bounding = BIT(CAP_KILL) | BIT(CAP_CHOWN),
                       .effective = BIT(CAP_KILL),
                       .permitted = BIT(CAP_KILL),
                       .has_bounding = true,
                       .has_effective = true,
                       .has_permitted = true,
                       .has_inheritable = true,
                       .has_ambient = true},
  };
  struct rc_error err = {0};
  int r = rc_caps_drop_bounding(&p, &err);
  if (r < 0) fprintf(stderr, "rc_caps_drop_bounding: %s\n", err.msg);
  CHECK(r == 0);
  r = rc_apply_user_and_caps(&p, true, &err);
  if (r < 0) fprintf(stderr, "rc_apply_user_and_caps: %s\n", err.msg);
  CHECK(r == 0);
  CHECK_STATUS("CapBnd", "0000000000000021");
  CHECK_STATUS("CapEff", "0000000000000020");
  CHECK_STATUS("CapPrm", "0000000000000020");
  CHECK_STATUS("CapInh", "0000000000000000");
  CHECK_STATUS("CapAmb", "0000000000000000");
  CHECK_STATUS("Uid", "1000\t1000\t1000\t1000");
  CHECK_STATUS("Gid", "1000\t1000\t1000\t1000");
  CHECK_STATUS("Groups", "1001");
}

static void test_user_and_caps(void) {
  if (!privileged(__func__)) return;
  unit_in_child("user and capabilities", child_user_and_caps);
}

static void child_ambient(void) {
  uint64_t nbs = BIT(CAP_NET_BIND_SERVICE);
  struct oci_process p = {
      .user = {.uid = 1000, .gid = 1000},
      .has_capabilities = true,
      .capabilities = {.bounding = nbs,
                       .permitted = nbs,
                       .inheritable = nbs,
                       .ambient = nbs,
                       .has_bounding = true,
                       .has_permitted = true,
                       .has_inheritable = true,
                       .has_ambient = true},
  };
  struct rc_error err = {0};
  int r = rc_caps_drop_bounding(&p, &err);
  if (r == 0) r = rc_apply_user_and_caps(&p, true, &err);
  if (r < 0) fprintf(stderr, "ambient: %s\n", err.msg);
  CHECK(r == 0);
  CHECK_STATUS("CapAmb", "0000000000000400");
  CHECK_STATUS("CapInh", "0000000000000400");
  CHECK_STATUS("CapPrm", "0000000000000400");
  CHECK_STATUS("CapEff", "0000000000000000");
  CHECK_STATUS("Groups", ""); /* the runtime's groups do not leak */
  if (r < 0) return;
  /* What ambient is for: a non-root program started by exec holds the capability. */
  fflush(NULL);
  execl("/bin/sh", "sh", "-c",
        "while read k v; do [ \"$k\" = CapEff: ] && [ \"$v\" = 0000000000000400 ] && exit 0; "
        "done < /proc/self/status; echo 'CapEff after exec is wrong' >&2; exit 1",
        (char *)NULL);
  fprintf(stderr, "exec /bin/sh: %s\n", strerror(errno));
  _exit(127);
}

static void test_ambient(void) {
  if (!privileged(__func__)) return;
  unit_in_child("ambient capabilities", child_ambient);
}

static void child_ambient_not_inheritable(void) {
  struct oci_process p = {
      .user = {.uid = 1000, .gid = 1000},
      .has_capabilities = true,
      .capabilities = {.permitted = BIT(CAP_KILL),
                       .ambient = BIT(CAP_KILL),
                       .has_permitted = true,
                       .has_ambient = true},
  };
  struct rc_error err = {0};
  /* Like runc: the capability is left out of the ambient set (with a warning) instead of
   * failing, because runc's default spec asks for exactly this. */
  CHECK(rc_apply_user_and_caps(&p, true, &err) == 0);
  CHECK(getuid() == 1000);
  char *status = NULL;
  size_t len = 0;
  CHECK(rc_read_file("/proc/self/status", 1 << 16, &status, &len, &err) == 0);
  CHECK_CONTAINS(status, "CapAmb:\t0000000000000000");
  CHECK_CONTAINS(status, "CapPrm:\t0000000000000020");
  free(status);
}

static void test_ambient_not_inheritable(void) {
  unit_in_child("ambient outside inheritable", child_ambient_not_inheritable);
}

static void child_effective_not_permitted(void) {
  struct oci_process p = {
      .user = {.uid = 1000, .gid = 1000},
      .has_capabilities = true,
      .capabilities = {.effective = BIT(CAP_CHOWN) | BIT(CAP_KILL),
                       .permitted = BIT(CAP_CHOWN),
                       .has_effective = true,
                       .has_permitted = true},
  };
  struct rc_error err = {0};
  CHECK(rc_apply_user_and_caps(&p, true, &err) < 0);
  CHECK_CONTAINS(err.msg, "CAP_KILL is in the effective set but not in the permitted set");
}

static void test_effective_not_permitted(void) {
  unit_in_child("effective outside permitted", child_effective_not_permitted);
}

static void child_setgroups_denied(void) {
  gid_t groups[] = {1001, 1002};
  struct oci_process p = {
      .user = {.uid = 1000, .gid = 1000, .additional_gids = groups, .n_additional_gids = 2}};
  struct rc_error err = {0};
  CHECK(rc_apply_user_and_caps(&p, false, &err) < 0);
  CHECK_CONTAINS(err.msg, "additionalGids");
  CHECK_CONTAINS(err.msg, "setgroups is denied");
}

static void test_setgroups_denied(void) {
  unit_in_child("additionalGids with setgroups denied", child_setgroups_denied);
}

static void child_setgroups_denied_no_gids(void) {
  /* Without additionalGids, a denied setgroups is simply skipped: the groups stay. */
  char groups_before[256] = "";
  status_field("Groups", groups_before, sizeof(groups_before));
  struct oci_process p = {.user = {.uid = 1000, .gid = 1000}};
  struct rc_error err = {0};
  int r = rc_apply_user_and_caps(&p, false, &err);
  if (r < 0) fprintf(stderr, "rc_apply_user_and_caps: %s\n", err.msg);
  CHECK(r == 0);
  CHECK_STATUS("Groups", groups_before);
  CHECK_STATUS("Uid", "1000\t1000\t1000\t1000");
  /* No capabilities object: every set is empty. */
  CHECK_STATUS("CapEff", "0000000000000000");
  CHECK_STATUS("CapPrm", "0000000000000000");
}

static void test_setgroups_denied_no_gids(void) {
  if (!privileged(__func__)) return;
  unit_in_child("setgroups denied, no additionalGids", child_setgroups_denied_no_gids);
}

static void child_drop_all_bounding(void) {
  struct oci_process p = {0}; /* no capabilities object: the bounding set is empty */
  struct rc_error err = {0};
  int r = rc_caps_drop_bounding(&p, &err);
  if (r < 0) fprintf(stderr, "rc_caps_drop_bounding: %s\n", err.msg);
  CHECK(r == 0);
  CHECK_STATUS("CapBnd", "0000000000000000");
}

static void test_drop_all_bounding(void) {
  if (!privileged(__func__)) return;
  unit_in_child("drop the whole bounding set", child_drop_all_bounding);
}

static void child_rlimits(void) {
  struct oci_rlimit ok[] = {
      {.type = RLIMIT_NOFILE, .name = "RLIMIT_NOFILE", .soft = 123, .hard = 456}};
  struct oci_process p = {.rlimits = ok, .n_rlimits = 1};
  struct rc_error err = {0};
  int r = rc_apply_rlimits(&p, &err);
  if (r < 0) fprintf(stderr, "rc_apply_rlimits: %s\n", err.msg);
  CHECK(r == 0);
  struct rlimit got;
  CHECK(getrlimit(RLIMIT_NOFILE, &got) == 0);
  CHECK(got.rlim_cur == 123 && got.rlim_max == 456);

  /* soft above hard: the kernel says EINVAL, the message says which limit and values. */
  struct oci_rlimit bad[] = {{.type = RLIMIT_NOFILE, .soft = 500, .hard = 400}};
  p.rlimits = bad;
  CHECK(rc_apply_rlimits(&p, &err) < 0);
  CHECK_STR_EQ(err.msg, "setrlimit RLIMIT_NOFILE soft=500 hard=400: Invalid argument");
  CHECK(err.code == EINVAL);

  struct oci_rlimit core[] = {
      {.type = RLIMIT_CORE, .name = "RLIMIT_CORE", .soft = 0, .hard = RLIM_INFINITY}};
  p.rlimits = core;
  bool unlimited_allowed = getrlimit(RLIMIT_CORE, &got) == 0 && got.rlim_max == RLIM_INFINITY;
  if (unlimited_allowed) {
    r = rc_apply_rlimits(&p, &err);
    if (r < 0) fprintf(stderr, "rc_apply_rlimits: %s\n", err.msg);
    CHECK(r == 0);
    CHECK(getrlimit(RLIMIT_CORE, &got) == 0 && got.rlim_cur == 0 && got.rlim_max == RLIM_INFINITY);
  }
}

static void test_rlimits(void) {
  unit_in_child("rlimits", child_rlimits);
}

static void child_no_new_privs(void) {
  struct oci_process p = {.no_new_privileges = false};
  struct rc_error err = {0};
  CHECK(rc_apply_no_new_privs(&p, &err) == 0);
  CHECK_STATUS("NoNewPrivs", "0");
  p.no_new_privileges = true;
  CHECK(rc_apply_no_new_privs(&p, &err) == 0);
  CHECK_STATUS("NoNewPrivs", "1");
}

static void test_no_new_privs(void) {
  unit_in_child("no_new_privs", child_no_new_privs);
}

static void child_oom_score_adj(void) {
  struct oci_process p = {.has_oom_score_adj = true, .oom_score_adj = 500};
  struct rc_error err = {0};
  int r = rc_apply_oom_score_adj(&p, &err);
  if (r < 0) fprintf(stderr, "rc_apply_oom_score_adj: %s\n", err.msg);
  CHECK(r == 0);
  char *text = NULL;
  CHECK(rc_read_file("/proc/self/oom_score_adj", 64, &text, NULL, &err) == 0);
  CHECK_STR_EQ(text, "500\n");
  free(text);

  p.oom_score_adj = 5000; /* out of range: the kernel refuses it */
  CHECK(rc_apply_oom_score_adj(&p, &err) < 0);
  CHECK_CONTAINS(err.msg, "set oomScoreAdj to 5000");
}

static void test_oom_score_adj(void) {
  unit_in_child("oom_score_adj", child_oom_score_adj);
}

static void child_personality(void) {
  struct rc_error err = {0};
  struct oci_linux none = {0};
  CHECK(rc_apply_personality(&none, &err) == 0);
  CHECK(rc_apply_personality(NULL, &err) == 0);
  CHECK((personality(0xffffffff) & PER_MASK) == PER_LINUX);
  struct oci_linux l = {.has_personality = true, .personality_domain = PER_LINUX32};
  int r = rc_apply_personality(&l, &err);
  if (r < 0) fprintf(stderr, "rc_apply_personality: %s\n", err.msg);
  CHECK(r == 0);
  CHECK((personality(0xffffffff) & PER_MASK) == PER_LINUX32);
  l.personality_domain = PER_LINUX;
  CHECK(rc_apply_personality(&l, &err) == 0);
  CHECK((personality(0xffffffff) & PER_MASK) == PER_LINUX);
}

static void test_personality(void) {
  unit_in_child("personality", child_personality);
}

UNIT_MAIN("process_attrs", UNIT_CASE(test_user_and_caps), UNIT_CASE(test_ambient),
          UNIT_CASE(test_ambient_not_inheritable), UNIT_CASE(test_effective_not_permitted),
          UNIT_CASE(test_setgroups_denied), UNIT_CASE(test_setgroups_denied_no_gids),
          UNIT_CASE(test_drop_all_bounding), UNIT_CASE(test_rlimits), UNIT_CASE(test_no_new_privs),
          UNIT_CASE(test_oom_score_adj), UNIT_CASE(test_personality))
