/* cgroup tests. Path resolution and value conversions run anywhere; the lifecycle cases
 * create real cgroups (named /runcell-unit-<pid>...) and so need root and a mounted
 * cgroupfs, else they print SKIP. Every case removes what it made even when checks fail. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/linux/cgroups_internal.h"
#include "runcell/cgroups.h"
#include "runcell/util.h"
#include "unit.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

static bool can_run_for_real(const char *test) {
  if (geteuid() != 0) {
    printf("SKIP: %s: needs root\n", test);
    return false;
  }
  if (rc_cg_layout()->n == 0) {
    printf("SKIP: %s: no cgroup hierarchy is mounted\n", test);
    return false;
  }
  return true;
}

static char *unit_path(const char *suffix) {
  return rc_xasprintf("/runcell-unit-%d%s", (int)getpid(), suffix);
}

/* A child that only waits to be killed. */
static pid_t spawn_sleeper(void) {
  pid_t pid = fork();
  if (pid == 0) {
    for (;;) pause();
  }
  return pid;
}

static void reap(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
}

/* Reads <hierarchy of controller>/<path>/<file>; NULL when unreadable. */
static char *read_ctrl(const char *controller, const char *path, const char *file) {
  const struct rc_cg_hier *h = rc_cg_find(rc_cg_layout(), controller);
  if (!h) return NULL;
  cleanup_free char *full = rc_xasprintf("%s%s/%s", h->mount, path, file);
  char *out = NULL;
  struct rc_error err;
  if (rc_read_file(full, 1 << 16, &out, NULL, &err) < 0) return NULL;
  size_t n = strlen(out);
  while (n && out[n - 1] == '\n') out[--n] = '\0';
  return out;
}

static bool ctrl_is_v2(const char *controller) {
  const struct rc_cg_hier *h = rc_cg_find(rc_cg_layout(), controller);
  return h && h->v2;
}

/* How many hierarchies list pid in exactly path. */
static size_t hierarchies_holding(pid_t pid, const char *path) {
  char file[64];
  snprintf(file, sizeof(file), "/proc/%d/cgroup", (int)pid);
  cleanup_free char *content = NULL;
  struct rc_error err;
  if (rc_read_file(file, 1 << 16, &content, NULL, &err) < 0) return 0;
  size_t n = 0;
  for (char *save = NULL, *line = strtok_r(content, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c2 && strcmp(c2 + 1, path) == 0) n++;
  }
  return n;
}

static bool gone_everywhere(const char *path) {
  const struct rc_cg_layout *l = rc_cg_layout();
  for (size_t i = 0; i < l->n; i++) {
    cleanup_free char *dir = rc_xasprintf("%s%s", l->hiers[i].mount, path);
    struct stat st;
    if (stat(dir, &st) == 0 || errno != ENOENT) {
      fprintf(stderr, "still there: %s\n", dir);
      return false;
    }
  }
  return true;
}

/* The cgroup relative paths start from, computed independently of the code under test:
 * the v2 line on unified hosts, else the memory (or pids) line. */
static char *own_base(void) {
  cleanup_free char *content = NULL;
  struct rc_error err;
  if (rc_read_file("/proc/self/cgroup", 1 << 16, &content, NULL, &err) < 0) return NULL;
  bool unified = rc_cgroup_mode() == RC_CGROUP_UNIFIED;
  const char *wanted[] = {unified ? "" : "memory", unified ? "" : "pids"};
  for (size_t w = 0; w < 2; w++) {
    cleanup_free char *copy = rc_xstrdup(content);
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
      char *c1 = strchr(line, ':');
      char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
      if (!c2) continue;
      *c1 = '\0';
      *c2 = '\0';
      if (unified ? strcmp(line, "0") == 0 && c1[1] == '\0' : rc_cg_list_has(c1 + 1, wanted[w]))
        return rc_xstrdup(strcmp(c2 + 1, "/") == 0 ? "" : c2 + 1);
    }
  }
  return NULL;
}

static void test_resolve_path(void) {
  struct rc_error err;
  char *p = NULL;

  CHECK(rc_cgroup_resolve_path("/foo/bar", "id", &p, &err) == 0);
  CHECK_STR_EQ(p, "/foo/bar");
  free(p);
  CHECK(rc_cgroup_resolve_path("//foo//./bar/", "id", &p, &err) == 0);
  CHECK_STR_EQ(p, "/foo/bar");
  free(p);

  CHECK(rc_cgroup_resolve_path(NULL, "abc", &p, &err) == 0);
  CHECK_STR_EQ(p, "/runcell/abc");
  free(p);
  CHECK(rc_cgroup_resolve_path("", "abc", &p, &err) == 0);
  CHECK_STR_EQ(p, "/runcell/abc");
  free(p);

  p = NULL;
  CHECK(rc_cgroup_resolve_path("system.slice:runcell:abc", "abc", &p, &err) < 0);
  CHECK(p == NULL);
  CHECK_CONTAINS(err.msg, "cgroupsPath \"system.slice:runcell:abc\" is in systemd format");
  CHECK_CONTAINS(err.msg, "give --systemd-cgroup");

  CHECK(rc_cgroup_resolve_path("/a/../b", "id", &p, &err) < 0);
  CHECK_CONTAINS(err.msg, "\"..\"");
  CHECK(rc_cgroup_resolve_path("..", "id", &p, &err) < 0);
  CHECK(rc_cgroup_resolve_path("a/..", "id", &p, &err) < 0);
  CHECK(rc_cgroup_resolve_path("/", "id", &p, &err) < 0);
  CHECK_CONTAINS(err.msg, "root cgroup");
  CHECK(rc_cgroup_resolve_path(NULL, "../x", &p, &err) < 0);

  /* ':' alone is a legal cgroup name character; only the 3-part form is systemd's. */
  CHECK(rc_cgroup_resolve_path("/a:b:c", "id", &p, &err) == 0);
  CHECK_STR_EQ(p, "/a:b:c");
  free(p);
  /* "..." is a name, not a parent reference */
  CHECK(rc_cgroup_resolve_path("/a/.../b", "id", &p, &err) == 0);
  CHECK_STR_EQ(p, "/a/.../b");
  free(p);

  if (rc_cg_layout()->n == 0) {
    printf("SKIP: relative cgroupsPath: no cgroup hierarchy is mounted\n");
    return;
  }
  cleanup_free char *base = own_base();
  CHECK(base != NULL);
  if (!base) return;
  cleanup_free char *want = rc_xasprintf("%s/rel/child", base);
  CHECK(rc_cgroup_resolve_path("rel/child", "id", &p, &err) == 0);
  CHECK_STR_EQ(p, want);
  free(p);
  cleanup_free char *want2 = rc_xasprintf("%s/a:b", base);
  CHECK(rc_cgroup_resolve_path("a:b", "id", &p, &err) == 0);
  CHECK_STR_EQ(p, want2);
  free(p);
}

static void test_mode(void) {
  enum rc_cgroup_mode m = rc_cgroup_mode();
  CHECK(rc_cgroup_mode() == m); /* cached, stable */
  CHECK_STR_EQ(rc_cgroup_mode_name(RC_CGROUP_LEGACY), "legacy");
  CHECK_STR_EQ(rc_cgroup_mode_name(RC_CGROUP_HYBRID), "hybrid");
  CHECK_STR_EQ(rc_cgroup_mode_name(RC_CGROUP_UNIFIED), "unified");
  struct statfs sfs;
  if (statfs("/sys/fs/cgroup", &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC)
    CHECK(m == RC_CGROUP_UNIFIED);
  const struct rc_cg_layout *l = rc_cg_layout();
  size_t v1 = 0, v2 = 0;
  for (size_t i = 0; i < l->n; i++) {
    if (l->hiers[i].v2)
      v2++;
    else
      v1++;
    CHECK(l->hiers[i].mount[0] == '/');
  }
  CHECK(v2 <= 1);
  if (m == RC_CGROUP_UNIFIED) CHECK(v1 == 0 && v2 == 1);
  if (m == RC_CGROUP_HYBRID) CHECK(v1 > 0 && v2 == 1);
  if (m == RC_CGROUP_LEGACY) CHECK(v2 == 0);
  printf("cgroup mode: %s (%zu v1 hierarchies, %zu v2)\n", rc_cgroup_mode_name(m), v1, v2);
  for (size_t i = 0; i < l->n; i++)
    printf("  %s %s [%s]\n", l->hiers[i].v2 ? "v2" : "v1", l->hiers[i].mount,
           l->hiers[i].controllers);
}

static struct rc_cg_layout parse(const char *text, const char *known) {
  struct rc_cg_layout l;
  FILE *f = fmemopen((void *)text, strlen(text), "r");
  rc_cg_parse_mountinfo(f, known, &l);
  fclose(f);
  return l;
}

static const char kernel_known[] =
    "cpuset,cpu,cpuacct,blkio,memory,devices,freezer,net_cls,perf_event,net_prio,hugetlb,pids,"
    "rdma,misc";

/* Layouts this host does not have: co-mounted controllers, pure v2, legacy. */
static void test_parse_mountinfo(void) {
  static const char hybrid[] =
      "25 18 0:22 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n"
      "26 25 0:23 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 "
      "rw,nsdelegate\n"
      "27 25 0:24 / /sys/fs/cgroup/systemd rw,relatime shared:11 - cgroup cgroup "
      "rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd\n"
      "30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:14 - cgroup cgroup "
      "rw,cpu,cpuacct\n"
      "31 25 0:28 / /sys/fs/cgroup/net_cls,net_prio rw,relatime shared:15 - cgroup cgroup "
      "rw,net_cls,net_prio\n"
      "32 25 0:29 / /sys/fs/cgroup/memory rw,relatime shared:16 - cgroup cgroup rw,memory\n"
      "33 25 0:29 /docker /mnt/mem\\040copy rw - cgroup cgroup rw,memory\n"
      "34 25 0:30 / /sys/fs/cgroup/pids rw,relatime shared:17 - cgroup cgroup rw,pids\n"
      "40 1 8:1 / /data rw - ext4 /dev/sda1 rw\n";
  for (int guess = 0; guess < 2; guess++) {
    struct rc_cg_layout l = parse(hybrid, guess ? NULL : kernel_known);
    CHECK(l.mode == RC_CGROUP_HYBRID);
    CHECK(l.n == 6);
    const struct rc_cg_hier *h = rc_cg_find(&l, "cpuacct");
    CHECK(h && strcmp(h->mount, "/sys/fs/cgroup/cpu,cpuacct") == 0);
    CHECK(h == rc_cg_find(&l, "cpu"));
    h = rc_cg_find(&l, "net_prio");
    CHECK(h && strcmp(h->mount, "/sys/fs/cgroup/net_cls,net_prio") == 0);
    CHECK(h && !h->v2);
    h = rc_cg_find(&l, "name=systemd");
    CHECK(h && strcmp(h->mount, "/sys/fs/cgroup/systemd") == 0);
    CHECK(h && strcmp(h->controllers, "name=systemd") == 0);
    h = rc_cg_find(&l, "memory");
    CHECK(h && strcmp(h->mount, "/sys/fs/cgroup/memory") == 0); /* the first mount serves */
    CHECK(rc_cg_find(&l, "freezer") == NULL);
    CHECK(l.n && l.hiers[l.n - 1].v2);
    CHECK(l.n && strcmp(l.hiers[l.n - 1].mount, "/sys/fs/cgroup/unified") == 0);
    rc_cg_layout_free(&l);
  }

  static const char unified[] =
      "25 18 0:22 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 "
      "rw,nsdelegate,memory_recursiveprot\n"
      "41 25 0:41 / /run/vpn\\040cls rw - cgroup cgroup rw,net_cls\n";
  struct rc_cg_layout l = parse(unified, kernel_known);
  CHECK(l.mode == RC_CGROUP_UNIFIED);
  CHECK(l.n == 1);
  CHECK(l.n == 1 && l.hiers[0].v2 && strcmp(l.hiers[0].mount, "/sys/fs/cgroup") == 0);
  rc_cg_layout_free(&l);

  static const char legacy[] =
      "25 18 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
      "26 25 0:23 / /sys/fs/cgroup/cpu\\040x rw - cgroup cgroup rw,cpu\n"
      "27 25 0:24 /lxc/c1 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory,clone_children\n";
  l = parse(legacy, NULL);
  CHECK(l.mode == RC_CGROUP_LEGACY);
  CHECK(l.n == 2);
  const struct rc_cg_hier *h = rc_cg_find(&l, "cpu");
  CHECK(h && strcmp(h->mount, "/sys/fs/cgroup/cpu x") == 0);
  h = rc_cg_find(&l, "memory");
  CHECK(h && strcmp(h->root, "/lxc/c1") == 0 && strcmp(h->controllers, "memory") == 0);
  rc_cg_layout_free(&l);

  /* v2 somewhere else and only a named v1 hierarchy: still a unified host */
  static const char named_only[] =
      "26 25 0:23 / /run/cg2 rw - cgroup2 cgroup2 rw\n"
      "27 25 0:24 / /run/systemd-cg rw - cgroup cgroup rw,name=systemd\n";
  l = parse(named_only, kernel_known);
  CHECK(l.mode == RC_CGROUP_UNIFIED);
  CHECK(l.n == 1 && l.hiers[0].v2);
  rc_cg_layout_free(&l);
}

static void test_conversions(void) {
  CHECK(rc_cg_v2_shares_to_weight(2) == 1);
  CHECK(rc_cg_v2_shares_to_weight(1024) == 39);
  CHECK(rc_cg_v2_shares_to_weight(262144) == 10000);
  CHECK(rc_cg_v2_shares_to_weight(0) == 0);
  CHECK(rc_cg_v2_blkio_weight_to_io(10) == 1);
  CHECK(rc_cg_v2_blkio_weight_to_io(500) == 4950);
  CHECK(rc_cg_v2_blkio_weight_to_io(1000) == 10000);

  struct rc_error err;
  char out[32];
  struct oci_memory m = {.has_limit = true, .limit = 100, .has_swap = true, .swap = 300};
  CHECK(rc_cg_v2_swap_value(&m, out, sizeof(out), &err) == 0);
  CHECK_STR_EQ(out, "200");
  m.swap = 100;
  CHECK(rc_cg_v2_swap_value(&m, out, sizeof(out), &err) == 0);
  CHECK_STR_EQ(out, "0");
  m.swap = -1;
  CHECK(rc_cg_v2_swap_value(&m, out, sizeof(out), &err) == 0);
  CHECK_STR_EQ(out, "max");
  m.swap = 50;
  CHECK(rc_cg_v2_swap_value(&m, out, sizeof(out), &err) < 0);
  CHECK_CONTAINS(err.msg, "at least memory.limit");
  m = (struct oci_memory){.has_limit = true, .limit = -1};
  CHECK(rc_cg_v2_swap_value(&m, out, sizeof(out), &err) == 0);
  CHECK_STR_EQ(out, "max");
  m.has_swap = true;
  m.swap = 200;
  CHECK(rc_cg_v2_swap_value(&m, out, sizeof(out), &err) < 0);
  CHECK_CONTAINS(err.msg, "unlimited");
  m = (struct oci_memory){.has_swap = true, .swap = 200};
  CHECK(rc_cg_v2_swap_value(&m, out, sizeof(out), &err) < 0);
  CHECK_CONTAINS(err.msg, "without memory.limit");
  m = (struct oci_memory){.has_limit = true, .limit = 100};
  CHECK(rc_cg_v2_swap_value(&m, out, sizeof(out), &err) == 0);
  CHECK_STR_EQ(out, "");

  CHECK(rc_cg_list_has("cpu,cpuacct", "cpu"));
  CHECK(rc_cg_list_has("cpu,cpuacct", "cpuacct"));
  CHECK(!rc_cg_list_has("cpuacct", "cpu"));
  CHECK(rc_cg_list_has("cpuset cpu io", "io"));
  CHECK(rc_cg_list_has("name=systemd", "name=systemd"));
}

static void check_file(const char *controller, const char *path, const char *file,
                       const char *want) {
  cleanup_free char *got = read_ctrl(controller, path, file);
  if (!got || strcmp(got, want) != 0)
    fprintf(stderr, "%s %s/%s: got \"%s\", want \"%s\"\n", controller, path, file,
            got ? got : "(unreadable)", want);
  CHECK_STR_EQ(got, want);
}

static void test_lifecycle(void) {
  if (!can_run_for_real("lifecycle")) return;
  const struct rc_cg_layout *l = rc_cg_layout();
  cleanup_free char *path = unit_path("");
  struct rc_error err;
  struct oci_resources res = {
      .has_memory = true,
      .memory = {.has_limit = true, .limit = 64 << 20},
      .has_cpu = true,
      .cpu = {.has_shares = true,
              .shares = 512,
              .has_quota = true,
              .quota = 50000,
              .has_period = true,
              .period = 100000},
      .has_pids_limit = true,
      .pids_limit = 32,
  };
  /* Ask only for what the host has: a missing controller is the error case's business. */
  res.has_memory = rc_cg_find(l, "memory") != NULL;
  res.has_cpu = rc_cg_find(l, "cpu") != NULL;
  res.has_pids_limit = rc_cg_find(l, "pids") != NULL;
  struct oci_hugepage_limit huge = {.page_size = (char *)"2MB", .limit = 4 << 20};
  cleanup_free char *huge_file = NULL;
  struct stat st;
  if (rc_cg_find(l, "hugetlb") && stat("/sys/kernel/mm/hugepages/hugepages-2048kB", &st) == 0) {
    res.hugepage_limits = &huge;
    res.n_hugepage_limits = 1;
    huge_file =
        rc_xstrdup(ctrl_is_v2("hugetlb") ? "hugetlb.2MB.max" : "hugetlb.2MB.limit_in_bytes");
  }
  pid_t child = spawn_sleeper();
  CHECK(child > 0);
  if (child <= 0) return;

  int r = rc_cgroup_create(path, &res, child, &err);
  if (r < 0) fprintf(stderr, "create: %s\n", err.msg);
  CHECK(r == 0);
  CHECK(rc_cgroup_exists(path));
  CHECK(hierarchies_holding(child, path) == l->n);

  if (rc_cg_find(l, "memory"))
    check_file("memory", path, ctrl_is_v2("memory") ? "memory.max" : "memory.limit_in_bytes",
               "67108864");
  if (rc_cg_find(l, "cpu")) {
    if (ctrl_is_v2("cpu")) {
      check_file("cpu", path, "cpu.weight", "20");
      check_file("cpu", path, "cpu.max", "50000 100000");
    } else {
      check_file("cpu", path, "cpu.shares", "512");
      check_file("cpu", path, "cpu.cfs_quota_us", "50000");
      check_file("cpu", path, "cpu.cfs_period_us", "100000");
    }
  }
  if (rc_cg_find(l, "pids")) check_file("pids", path, "pids.max", "32");
  if (huge_file) check_file("hugetlb", path, huge_file, "4194304");

  pid_t *pids = NULL;
  size_t n = 0;
  CHECK(rc_cgroup_pids(path, &pids, &n, &err) == 0);
  bool found = false;
  for (size_t i = 0; i < n; i++)
    if (pids[i] == child) found = true;
  CHECK(found);
  CHECK(n == 1);
  free(pids);

  /* pause and resume */
  r = rc_cgroup_freeze(path, true, &err);
  if (r < 0) fprintf(stderr, "freeze: %s\n", err.msg);
  CHECK(r == 0);
  if (rc_cg_find(l, "freezer") && !ctrl_is_v2("freezer")) {
    check_file("freezer", path, "freezer.state", "FROZEN");
  } else if (l->n && l->hiers[l->n - 1].v2) {
    cleanup_free char *ev = NULL;
    cleanup_free char *f = rc_xasprintf("%s%s/cgroup.events", l->hiers[l->n - 1].mount, path);
    CHECK(rc_read_file(f, 4096, &ev, NULL, &err) == 0);
    CHECK_CONTAINS(ev, "frozen 1");
  }
  r = rc_cgroup_freeze(path, false, &err);
  CHECK(r == 0);
  if (rc_cg_find(l, "freezer") && !ctrl_is_v2("freezer"))
    check_file("freezer", path, "freezer.state", "THAWED");

  /* a live process keeps its cgroup: destroy must fail, not pretend */
  CHECK(rc_cgroup_destroy(path, &err) < 0);
  CHECK_CONTAINS(err.msg, "remove");

  r = rc_cgroup_kill_all(path, SIGKILL, &err);
  if (r < 0) fprintf(stderr, "kill_all: %s\n", err.msg);
  CHECK(r == 0);
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

  r = rc_cgroup_destroy(path, &err);
  if (r < 0) fprintf(stderr, "destroy: %s\n", err.msg);
  CHECK(r == 0);
  CHECK(!rc_cgroup_exists(path));
  CHECK(gone_everywhere(path));
  /* idempotent */
  CHECK(rc_cgroup_destroy(path, &err) == 0);
  CHECK(rc_cgroup_kill_all(path, SIGKILL, &err) == 0);

  /* cleanup whatever the checks above left */
  reap(child);
  struct rc_error ignore;
  rc_cgroup_destroy(path, &ignore);
}

/* mkdir -p of several levels (v1 cpuset levels must inherit cpus/mems, v2 parents must
 * delegate controllers), exec-style enter, and destroy leaving parents alone. */
static void test_nested_and_enter(void) {
  if (!can_run_for_real("nested")) return;
  const struct rc_cg_layout *l = rc_cg_layout();
  cleanup_free char *top = unit_path("-nested");
  cleanup_free char *leaf = rc_xasprintf("%s/mid/leaf", top);
  struct rc_error err;
  struct oci_resources res = {.has_pids_limit = true, .pids_limit = 0};
  pid_t a = spawn_sleeper(), b = spawn_sleeper();
  CHECK(a > 0 && b > 0);

  int r = rc_cgroup_create(leaf, rc_cg_find(l, "pids") ? &res : NULL, a, &err);
  if (r < 0) fprintf(stderr, "create nested: %s\n", err.msg);
  CHECK(r == 0);
  CHECK(hierarchies_holding(a, leaf) == l->n);
  if (rc_cg_find(l, "pids")) check_file("pids", leaf, "pids.max", "max");
  if (rc_cg_find(l, "cpuset") && !ctrl_is_v2("cpuset")) {
    cleanup_free char *root_cpus = read_ctrl("cpuset", "", "cpuset.cpus");
    cleanup_free char *leaf_cpus = read_ctrl("cpuset", leaf, "cpuset.cpus");
    CHECK(leaf_cpus && *leaf_cpus);
    CHECK_STR_EQ(leaf_cpus, root_cpus);
  }

  r = rc_cgroup_enter(leaf, b, &err);
  if (r < 0) fprintf(stderr, "enter: %s\n", err.msg);
  CHECK(r == 0);
  CHECK(hierarchies_holding(b, leaf) == l->n);
  pid_t *pids = NULL;
  size_t n = 0;
  /* listed from the top too: the walk is recursive */
  CHECK(rc_cgroup_pids(top, &pids, &n, &err) == 0);
  CHECK(n == 2);
  free(pids);

  CHECK(rc_cgroup_kill_all(leaf, SIGKILL, &err) == 0);
  CHECK(waitpid(a, NULL, 0) == a);
  CHECK(waitpid(b, NULL, 0) == b);
  a = b = -1;
  CHECK(rc_cgroup_destroy(leaf, &err) == 0);
  CHECK(gone_everywhere(leaf));
  CHECK(rc_cgroup_exists(top)); /* parents were not the container's */
  /* destroying the top removes everything below it, deepest first */
  CHECK(rc_cgroup_destroy(top, &err) == 0);
  CHECK(gone_everywhere(top));

  reap(a);
  reap(b);
  struct rc_error ignore;
  rc_cgroup_destroy(top, &ignore);
}

/* Limits changed on a running cgroup, in the order the kernel demands (v1 keeps
 * limit <= memory+swap at every write). */
static void test_update_memory_swap(void) {
  if (!can_run_for_real("update")) return;
  const struct rc_cg_layout *l = rc_cg_layout();
  if (!rc_cg_find(l, "memory")) {
    printf("SKIP: update: no memory controller\n");
    return;
  }
  bool v2 = ctrl_is_v2("memory");
  cleanup_free char *path = unit_path("-update");
  struct rc_error err;
  struct oci_resources res = {.has_memory = true, .memory = {.has_limit = true, .limit = 64 << 20}};
  CHECK(rc_cgroup_create(path, &res, 0, &err) == 0);

  cleanup_free char *swap_file =
      read_ctrl("memory", path, v2 ? "memory.swap.max" : "memory.memsw.limit_in_bytes");
  bool swap_accounting = swap_file != NULL;
  res.memory = (struct oci_memory){
      .has_limit = true, .limit = 256 << 20, .has_swap = true, .swap = 512 << 20};
  int r = rc_cgroup_apply(path, &res, &err);
  if (swap_accounting) {
    if (r < 0) fprintf(stderr, "raise: %s\n", err.msg);
    CHECK(r == 0);
    check_file("memory", path, v2 ? "memory.max" : "memory.limit_in_bytes", "268435456");
    check_file("memory", path, v2 ? "memory.swap.max" : "memory.memsw.limit_in_bytes",
               v2 ? "268435456" : "536870912");
    /* lower both below the old limit: the limit must go first */
    res.memory.limit = 32 << 20;
    res.memory.swap = 48 << 20;
    r = rc_cgroup_apply(path, &res, &err);
    if (r < 0) fprintf(stderr, "lower: %s\n", err.msg);
    CHECK(r == 0);
    check_file("memory", path, v2 ? "memory.max" : "memory.limit_in_bytes", "33554432");
    /* unlimited memory lifts swap too */
    res.memory = (struct oci_memory){.has_limit = true, .limit = -1};
    r = rc_cgroup_apply(path, &res, &err);
    if (r < 0) fprintf(stderr, "unlimit: %s\n", err.msg);
    CHECK(r == 0);
  } else {
    /* the host cannot enforce swap: an error naming the file, never silence */
    CHECK(r < 0);
    CHECK_CONTAINS(err.msg, v2 ? "memory.swap.max" : "memory.memsw.limit_in_bytes");
  }
  res.memory =
      (struct oci_memory){.has_swap = true, .swap = 1 << 20, .has_limit = true, .limit = 2 << 20};
  CHECK(rc_cgroup_apply(path, &res, &err) < 0);
  CHECK_CONTAINS(err.msg, "memory.swap");

  struct rc_error ignore;
  CHECK(rc_cgroup_destroy(path, &ignore) == 0);
}

static void test_devices_v1(void) {
  if (!can_run_for_real("devices")) return;
  const struct rc_cg_hier *h = rc_cg_find(rc_cg_layout(), "devices");
  if (!h || h->v2) {
    printf("SKIP: devices: no v1 devices controller (v2: see test_device_filter)\n");
    return;
  }
  cleanup_free char *path = unit_path("-devices");
  struct rc_error err;
  struct oci_device_cgroup rules[] = {
      {.allow = false, .access = "rwm"},
      {.allow = true,
       .type = 'c',
       .has_major = true,
       .major = 4,
       .has_minor = true,
       .minor = 64,
       .access = "rw"},
      {.allow = true,
       .type = 'b',
       .has_major = true,
       .major = 8,
       .has_minor = true,
       .minor = -1,
       .access = "r"},
  };
  struct oci_resources res = {.devices = rules, .n_devices = RC_ARRAY_SIZE(rules)};
  int r = rc_cgroup_create(path, &res, 0, &err);
  if (r < 0) fprintf(stderr, "devices: %s\n", err.msg);
  CHECK(r == 0);
  cleanup_free char *list = read_ctrl("devices", path, "devices.list");
  CHECK(list != NULL);
  if (list) {
    CHECK(!strstr(list, "a *:* rwm"));
    CHECK_CONTAINS(list, "c 4:64 rw");
    CHECK_CONTAINS(list, "b 8:* r");
    CHECK_CONTAINS(list, "c 1:3 rwm"); /* the defaults every container gets */
    CHECK_CONTAINS(list, "c 136:* rwm");
  }
  struct oci_device_cgroup bad = {.allow = true, .type = 'c', .access = "rwx"};
  res = (struct oci_resources){.devices = &bad, .n_devices = 1};
  CHECK(rc_cgroup_apply(path, &res, &err) < 0);
  CHECK_CONTAINS(err.msg, "rwx");
  struct rc_error ignore;
  CHECK(rc_cgroup_destroy(path, &ignore) == 0);
}

static void test_error_leaves_nothing(void) {
  if (!can_run_for_real("errors")) return;
  const struct rc_cg_layout *l = rc_cg_layout();
  struct rc_error err;
  struct rc_error ignore;

  if (rc_cg_find(l, "cpuset")) {
    /* two levels, so the cleanup must remove a parent it made too */
    cleanup_free char *top = unit_path("-bad");
    cleanup_free char *path = rc_xasprintf("%s/leaf", top);
    struct oci_resources res = {.has_cpu = true, .cpu = {.cpus = (char *)"999-1000"}};
    pid_t child = spawn_sleeper();
    CHECK(rc_cgroup_create(path, &res, child, &err) < 0);
    CHECK_CONTAINS(err.msg, "cpuset.cpus");
    CHECK_CONTAINS(err.msg, "999-1000");
    CHECK_CONTAINS(err.msg, path);
    CHECK(!rc_cgroup_exists(path));
    CHECK(!rc_cgroup_exists(top));
    CHECK(gone_everywhere(top));
    CHECK(hierarchies_holding(child, path) == 0);
    reap(child);
    rc_cgroup_destroy(top, &ignore);
  } else {
    printf("SKIP: errors: no cpuset controller\n");
  }

  if (!rc_cg_find(l, "net_cls")) {
    cleanup_free char *path = unit_path("-netcls");
    struct oci_resources res = {.has_network = true, .has_class_id = true, .class_id = 7};
    CHECK(rc_cgroup_create(path, &res, 0, &err) < 0);
    CHECK_CONTAINS(err.msg, "net_cls");
    CHECK(!rc_cgroup_exists(path));
    rc_cgroup_destroy(path, &ignore);
  }

  if (rc_cg_find(l, "memory") && !ctrl_is_v2("memory")) {
    cleanup_free char *path = unit_path("-swappiness");
    struct oci_resources res = {.has_memory = true,
                                .memory = {.has_swappiness = true, .swappiness = 101}};
    CHECK(rc_cgroup_create(path, &res, 0, &err) < 0);
    CHECK_CONTAINS(err.msg, "swappiness");
    CHECK(!rc_cgroup_exists(path));
    rc_cgroup_destroy(path, &ignore);
  }

  /* unified keys name files in the container's directory only */
  if (l->n && l->hiers[l->n - 1].v2) {
    cleanup_free char *path = unit_path("-unified");
    struct oci_key_value kv = {.key = (char *)"../cgroup.procs", .value = (char *)"1"};
    struct oci_resources res = {.unified = &kv, .n_unified = 1};
    CHECK(rc_cgroup_create(path, &res, 0, &err) < 0);
    CHECK_CONTAINS(err.msg, "not a cgroup file name");
    CHECK(!rc_cgroup_exists(path));
    rc_cgroup_destroy(path, &ignore);
  }

  /* joining fails (the process is gone) after the directories were made */
  {
    cleanup_free char *path = unit_path("-nopid");
    pid_t child = spawn_sleeper();
    reap(child);
    CHECK(rc_cgroup_create(path, NULL, child, &err) < 0);
    CHECK_CONTAINS(err.msg, "cgroup.procs");
    CHECK(!rc_cgroup_exists(path));
    rc_cgroup_destroy(path, &ignore);
  }

  CHECK(rc_cgroup_create("relative", NULL, 0, &err) < 0);
  CHECK(rc_cgroup_destroy("/a/../b", &err) < 0);
  CHECK(rc_cgroup_destroy("/", &err) < 0);
}

UNIT_MAIN("cgroups", UNIT_CASE(test_resolve_path), UNIT_CASE(test_mode),
          UNIT_CASE(test_parse_mountinfo), UNIT_CASE(test_conversions), UNIT_CASE(test_lifecycle),
          UNIT_CASE(test_nested_and_enter), UNIT_CASE(test_update_memory_swap),
          UNIT_CASE(test_devices_v1), UNIT_CASE(test_error_leaves_nothing))
