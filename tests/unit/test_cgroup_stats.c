/* cgroup statistics for `events`: the v1 and v2 readers on made-up control files in a
 * temporary directory (so both versions are covered on any host), runc's JSON shape with
 * its omitempty rules, Go duration parsing, and the v2 OOM watch on files that stand in
 * for memory.events and cgroup.events. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../src/linux/cgroups_internal.h"
#include "runcell/cgroups.h"
#include "runcell/events.h"
#include "runcell/util.h"
#include "unit.h"

static char *make_dir(void) {
  char tmpl[] = "/tmp/rc-unit-cgstats-XXXXXX";
  char *d = mkdtemp(tmpl);
  return d ? rc_xstrdup(d) : NULL;
}

static void put(const char *dir, const char *file, const char *text) {
  cleanup_free char *path = rc_xasprintf("%s/%s", dir, file);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

/* The test directories are flat: their files, then themselves. */
static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  CHECK(d != NULL);
  if (!d) return;
  struct dirent *de;
  while ((de = readdir(d)))
    if (de->d_type == DT_REG) CHECK(unlinkat(dirfd(d), de->d_name, 0) == 0);
  closedir(d);
  CHECK(rmdir(dir) == 0);
}

static struct rc_cgroup_stat_source all_in(const char *dir, bool v2) {
  struct rc_cgroup_stat_source src = {0};
  for (int g = 0; g < RC_CGS_GROUPS; g++) {
    src.dir[g] = dir;
    src.v2[g] = v2;
  }
  return src;
}

static const char *raw(const struct rc_cgroup_stats *s, const char *key, uint64_t *v) {
  for (size_t i = 0; i < s->memory.n_raw; i++)
    if (strcmp(s->memory.raw[i].key, key) == 0) {
      *v = s->memory.raw[i].value;
      return key;
    }
  return NULL;
}

static void write_v1_files(const char *d) {
  put(d, "cpu.stat", "nr_periods 10\nnr_throttled 3\nthrottled_time 7000\nnr_bursts 0\n");
  put(d, "cpuacct.stat", "user 12\nsystem 5\n");
  put(d, "cpuacct.usage", "170000000\n");
  put(d, "cpuacct.usage_percpu", "100000000 70000000 \n");
  put(d, "cpuacct.usage_all", "cpu user system\n0 90000000 10000000\n1 60000000 10000000\n");
  put(d, "cpuset.cpus", "0-2,5\n");
  put(d, "cpuset.mems", "0\n");
  put(d, "cpuset.cpu_exclusive", "0\n");
  put(d, "cpuset.sched_load_balance", "1\n");
  put(d, "cpuset.sched_relax_domain_level", "-1\n");
  put(d, "memory.stat", "cache 4096\nrss 8192\ntotal_rss 8192\n");
  put(d, "memory.usage_in_bytes", "12288\n");
  put(d, "memory.max_usage_in_bytes", "65536\n");
  put(d, "memory.failcnt", "2\n");
  put(d, "memory.limit_in_bytes", "67108864\n");
  put(d, "memory.memsw.usage_in_bytes", "12288\n");
  put(d, "memory.memsw.max_usage_in_bytes", "65536\n");
  put(d, "memory.memsw.failcnt", "0\n");
  put(d, "memory.memsw.limit_in_bytes", "9223372036854771712\n");
  /* no memory.kmem.*: optional, as on kernels without kmem accounting */
  put(d, "pids.current", "3\n");
  put(d, "pids.max", "max\n");
  /* bfq in use but without entries: runc moves on to the throttle files */
  put(d, "blkio.bfq.io_serviced_recursive", "Total 0\n");
  put(d, "blkio.throttle.io_serviced_recursive", "8:0 Read 4\n8:0 Write 2\nTotal 6\n");
  put(d, "blkio.throttle.io_service_bytes_recursive", "8:0 Read 16384\n8:0 Write 0\nTotal 16384\n");
  put(d, "hugetlb.2MB.usage_in_bytes", "2097152\n");
  put(d, "hugetlb.2MB.max_usage_in_bytes", "4194304\n");
  put(d, "hugetlb.2MB.failcnt", "1\n");
  put(d, "hugetlb.2MB.rsvd.usage_in_bytes", "0\n");
  put(d, "hugetlb.1GB.usage_in_bytes", "0\n");
  put(d, "hugetlb.1GB.max_usage_in_bytes", "0\n");
  put(d, "hugetlb.1GB.failcnt", "0\n");
}

static void v1_files_are_read_like_runc(void) {
  cleanup_free char *d = make_dir();
  CHECK(d != NULL);
  if (!d) return;
  write_v1_files(d);
  struct rc_cgroup_stat_source src = all_in(d, false);
  struct rc_cgroup_stats s;
  struct rc_error e = {0};
  CHECK(rc_cgroup_stats_read(&src, &s, &e) == 0);
  if (e.msg[0]) fprintf(stderr, "error: %s\n", e.msg);
  long hz = sysconf(_SC_CLK_TCK);
  uint64_t tick = 1000000000ull / (uint64_t)hz;
  CHECK(s.cpu.total == 170000000);
  CHECK(s.cpu.user == 12 * tick && s.cpu.kernel == 5 * tick);
  CHECK(s.cpu.percpu.n == 2 && s.cpu.percpu.v[0] == 100000000 && s.cpu.percpu.v[1] == 70000000);
  CHECK(s.cpu.percpu_user.n == 2 && s.cpu.percpu_user.v[1] == 60000000);
  CHECK(s.cpu.percpu_kernel.n == 2 && s.cpu.percpu_kernel.v[0] == 10000000);
  CHECK(s.cpu.periods == 10 && s.cpu.throttled_periods == 3 && s.cpu.throttled_time == 7000);
  CHECK(s.cpuset.cpus.n == 4 && s.cpuset.cpus.v[2] == 2 && s.cpuset.cpus.v[3] == 5);
  CHECK(s.cpuset.mems.n == 1 && s.cpuset.mems.v[0] == 0);
  CHECK(s.cpuset.sched_load_balance == 1 && s.cpuset.sched_relax_domain_level == -1);
  CHECK(s.memory.cache == 4096);
  CHECK(s.memory.usage.usage == 12288 && s.memory.usage.max == 65536);
  CHECK(s.memory.usage.failcnt == 2 && s.memory.usage.limit == 67108864);
  CHECK(s.memory.swap.limit == 9223372036854771712ull);
  CHECK(s.memory.kernel.limit == 0 && s.memory.kernel.usage == 0);
  CHECK(s.memory.n_raw == 3 && strcmp(s.memory.raw[0].key, "cache") == 0); /* sorted */
  uint64_t v = 0;
  CHECK(raw(&s, "total_rss", &v) && v == 8192);
  CHECK(s.pids.current == 3 && s.pids.limit == 0); /* "max" is runc's 0 */
  CHECK(s.blkio[RC_BLKIO_SERVICED].n == 2);
  CHECK(s.blkio[RC_BLKIO_SERVICED].n == 2 &&
        strcmp(s.blkio[RC_BLKIO_SERVICED].v[1].op, "Write") == 0);
  CHECK(s.blkio[RC_BLKIO_SERVICE_BYTES].n == 2 &&
        s.blkio[RC_BLKIO_SERVICE_BYTES].v[0].value == 16384 &&
        s.blkio[RC_BLKIO_SERVICE_BYTES].v[0].major == 8);
  CHECK(s.blkio[RC_BLKIO_QUEUED].n == 0);
  CHECK(s.n_hugetlb == 2); /* the rsvd files are not a page size */
  CHECK(s.n_hugetlb == 2 && strcmp(s.hugetlb[0].page_size, "1GB") == 0 &&
        strcmp(s.hugetlb[1].page_size, "2MB") == 0 && s.hugetlb[1].usage == 2097152 &&
        s.hugetlb[1].max == 4194304 && s.hugetlb[1].failcnt == 1);

  /* A malformed file is an error that names it. */
  put(d, "memory.stat", "cache 4096\nrss lots\n");
  rc_cgroup_stats_free(&s);
  CHECK(rc_cgroup_stats_read(&src, &s, &e) < 0);
  CHECK_CONTAINS(e.msg, "memory.stat");
  CHECK_CONTAINS(e.msg, "rss lots");
  put(d, "memory.stat", "cache 4096\n");
  put(d, "cpuset.cpus", "3-1\n");
  CHECK(rc_cgroup_stats_read(&src, &s, &e) < 0);
  CHECK_CONTAINS(e.msg, "cpuset.cpus");
  remove_dir(d);
}

static void v2_files_are_read_like_runc(void) {
  cleanup_free char *d = make_dir();
  CHECK(d != NULL);
  if (!d) return;
  put(d, "cpu.stat",
      "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\n"
      "throttled_usec 20\n");
  put(d, "memory.stat", "anon 8192\nfile 4096\n");
  put(d, "memory.current", "12288\n");
  put(d, "memory.max", "max\n");
  put(d, "memory.swap.current", "100\n");
  put(d, "memory.swap.max", "1000\n");
  put(d, "cgroup.procs", "10\n11\n12\n"); /* no pids.current: counted */
  put(d, "io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n");
  put(d, "hugetlb.2MB.current", "0\n");
  put(d, "hugetlb.2MB.events", "max 3\n");
  put(d, "hugetlb.2MB.rsvd.current", "0\n");
  put(d, "cpuset.cpus", "this is not read on v2\n");
  struct rc_cgroup_stat_source src = all_in(d, true);
  struct rc_cgroup_stats s;
  struct rc_error e = {0};
  CHECK(rc_cgroup_stats_read(&src, &s, &e) == 0);
  if (e.msg[0]) fprintf(stderr, "error: %s\n", e.msg);
  CHECK(s.cpu.total == 1500000 && s.cpu.user == 1000000 && s.cpu.kernel == 500000);
  CHECK(s.cpu.percpu.n == 0);
  CHECK(s.cpu.periods == 4 && s.cpu.throttled_periods == 1 && s.cpu.throttled_time == 20000);
  CHECK(s.cpuset.cpus.n == 0);
  CHECK(s.memory.cache == 4096);
  CHECK(s.memory.usage.usage == 12288 && s.memory.usage.limit == UINT64_MAX);
  /* swap is reported as memory+swap, like v1; swap.max + an unlimited memory.max wraps
   * in runc's uint64 arithmetic */
  CHECK(s.memory.swap.usage == 12388);
  CHECK(s.memory.swap.limit == 999);
  CHECK(s.pids.current == 3 && s.pids.limit == 0);
  CHECK(s.blkio[RC_BLKIO_SERVICE_BYTES].n == 2 && s.blkio[RC_BLKIO_SERVICED].n == 2);
  CHECK(s.blkio[RC_BLKIO_SERVICE_BYTES].n == 2 &&
        strcmp(s.blkio[RC_BLKIO_SERVICE_BYTES].v[0].op, "Read") == 0 &&
        s.blkio[RC_BLKIO_SERVICE_BYTES].v[1].value == 8192);
  CHECK(s.n_hugetlb == 1 && s.hugetlb[0].failcnt == 3 && s.hugetlb[0].max == 0);
  rc_cgroup_stats_free(&s);

  /* With the pids controller: its files; "max" is no limit. */
  put(d, "pids.current", "2\n");
  put(d, "pids.max", "50\n");
  put(d, "memory.swap.max", "max\n");
  CHECK(rc_cgroup_stats_read(&src, &s, &e) == 0);
  CHECK(s.pids.current == 2 && s.pids.limit == 50);
  CHECK(s.memory.swap.limit == UINT64_MAX);
  rc_cgroup_stats_free(&s);
  remove_dir(d);
}

static void missing_directories_are_skipped(void) {
  struct rc_cgroup_stat_source src = all_in("/nonexistent/rc-unit-cgroup", false);
  struct rc_cgroup_stats s;
  struct rc_error e = {0};
  CHECK(rc_cgroup_stats_read(&src, &s, &e) == 0);
  CHECK(s.cpu.total == 0 && s.memory.n_raw == 0 && s.n_hugetlb == 0);
  rc_cgroup_stats_free(&s);
}

static void zero_stats_json_has_runcs_shape(void) {
  struct rc_cgroup_stats s;
  memset(&s, 0, sizeof(s));
  cleanup_free char *json = rc_events_stats_json("c1", &s);
  CHECK_STR_EQ(json,
               "{\"type\":\"stats\",\"id\":\"c1\",\"data\":{"
               "\"cpu\":{\"usage\":{\"kernel\":0,\"user\":0},\"throttling\":{}},"
               "\"cpuset\":{\"cpu_exclusive\":0,\"mem_hardwall\":0,\"mem_exclusive\":0,"
               "\"memory_migrate\":0,\"memory_spread_page\":0,\"memory_spread_slab\":0,"
               "\"memory_pressure\":0,\"sched_load_balance\":0,\"sched_relax_domain_level\":0},"
               "\"memory\":{\"usage\":{\"limit\":0,\"failcnt\":0},"
               "\"swap\":{\"limit\":0,\"failcnt\":0},\"kernel\":{\"limit\":0,\"failcnt\":0},"
               "\"kernelTCP\":{\"limit\":0,\"failcnt\":0}},"
               "\"pids\":{},\"blkio\":{},\"hugetlb\":{},\"intel_rdt\":{},"
               "\"network_interfaces\":null}}");
  cleanup_free char *oom = rc_events_oom_json("c1");
  CHECK_STR_EQ(oom, "{\"type\":\"oom\",\"id\":\"c1\"}");
}

static void full_stats_json(void) {
  cleanup_free char *d = make_dir();
  CHECK(d != NULL);
  if (!d) return;
  write_v1_files(d);
  struct rc_cgroup_stat_source src = all_in(d, false);
  struct rc_cgroup_stats s;
  struct rc_error e = {0};
  CHECK(rc_cgroup_stats_read(&src, &s, &e) == 0);
  s.memory.swap.limit = UINT64_MAX; /* beyond a signed 64-bit integer */
  cleanup_free char *json = rc_events_stats_json("c2", &s);
  CHECK_CONTAINS(json,
                 "\"usage\":{\"total\":170000000,\"percpu\":[100000000,70000000],"
                 "\"percpu_kernel\":[10000000,10000000],\"percpu_user\":[90000000,60000000],");
  CHECK_CONTAINS(json,
                 "\"throttling\":{\"periods\":10,\"throttledPeriods\":3,\"throttledTime\":7000}");
  CHECK_CONTAINS(json, "\"cpus\":[0,1,2,5],\"cpu_exclusive\":0,\"mems\":[0]");
  CHECK_CONTAINS(json, "\"sched_relax_domain_level\":-1}");
  CHECK_CONTAINS(json,
                 "\"memory\":{\"cache\":4096,\"usage\":{\"limit\":67108864,\"usage\":12288,"
                 "\"max\":65536,\"failcnt\":2}");
  CHECK_CONTAINS(json, "\"swap\":{\"limit\":18446744073709551615,");
  CHECK_CONTAINS(json, "\"raw\":{\"cache\":4096,\"rss\":8192,\"total_rss\":8192}");
  CHECK_CONTAINS(json, "\"pids\":{\"current\":3}");
  /* a zero value is left out of a blkio entry, as Go's omitempty does */
  CHECK_CONTAINS(json,
                 "\"ioServiceBytesRecursive\":[{\"major\":8,\"op\":\"Read\",\"value\":16384},"
                 "{\"major\":8,\"op\":\"Write\"}]");
  CHECK_CONTAINS(json,
                 "\"hugetlb\":{\"1GB\":{\"failcnt\":0},\"2MB\":{\"usage\":2097152,"
                 "\"max\":4194304,\"failcnt\":1}}");
  rc_cgroup_stats_free(&s);
  remove_dir(d);
}

static void go_durations(void) {
  int64_t ns = 0;
  CHECK(rc_parse_go_duration("5s", &ns) == 0 && ns == 5000000000);
  CHECK(rc_parse_go_duration("500ms", &ns) == 0 && ns == 500000000);
  CHECK(rc_parse_go_duration("2m", &ns) == 0 && ns == 120000000000);
  CHECK(rc_parse_go_duration("1h2m3s", &ns) == 0 && ns == 3723000000000);
  CHECK(rc_parse_go_duration("1.5s", &ns) == 0 && ns == 1500000000);
  CHECK(rc_parse_go_duration(".5s", &ns) == 0 && ns == 500000000);
  CHECK(rc_parse_go_duration("10us", &ns) == 0 && ns == 10000);
  CHECK(rc_parse_go_duration("10\xc2\xb5s", &ns) == 0 && ns == 10000);
  CHECK(rc_parse_go_duration("7ns", &ns) == 0 && ns == 7);
  CHECK(rc_parse_go_duration("0", &ns) == 0 && ns == 0);
  CHECK(rc_parse_go_duration("0s", &ns) == 0 && ns == 0);
  CHECK(rc_parse_go_duration("-1s", &ns) == 0 && ns == -1000000000);
  CHECK(rc_parse_go_duration("+3s", &ns) == 0 && ns == 3000000000);
  CHECK(rc_parse_go_duration("2562047h", &ns) == 0);
  CHECK(rc_parse_go_duration("2562048h", &ns) < 0); /* overflows int64 nanoseconds */
  CHECK(rc_parse_go_duration("1", &ns) < 0);        /* a unit is required */
  CHECK(rc_parse_go_duration("", &ns) < 0);
  CHECK(rc_parse_go_duration("abc", &ns) < 0);
  CHECK(rc_parse_go_duration("1x", &ns) < 0);
  CHECK(rc_parse_go_duration(".s", &ns) < 0);
  CHECK(rc_parse_go_duration("1s ", &ns) < 0);
  CHECK(rc_parse_go_duration("-", &ns) < 0);
}

static bool wait_readable(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, ms) == 1;
}

static void v2_oom_watch_counts_new_kills_and_ends(void) {
  cleanup_free char *d = make_dir();
  CHECK(d != NULL);
  if (!d) return;
  put(d, "memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n");
  put(d, "cgroup.events", "populated 1\nfrozen 0\n");
  struct rc_cgroup_oom_watch w;
  struct rc_error e = {0};
  CHECK(rc_cgroup_oom_watch_open_dir(d, true, &w, &e) == 0);
  if (w.fd < 0) {
    fprintf(stderr, "error: %s\n", e.msg);
    remove_dir(d);
    return;
  }
  CHECK(!w.ended);
  unsigned ooms = 0;
  /* a kill from before the watch is not reported; a change without a new kill neither */
  put(d, "memory.events", "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n");
  CHECK(wait_readable(w.fd, 2000));
  CHECK(rc_cgroup_oom_watch_read(&w, &ooms, &e) == 0);
  CHECK(ooms == 0 && !w.ended);
  put(d, "memory.events", "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\n");
  CHECK(wait_readable(w.fd, 2000));
  CHECK(rc_cgroup_oom_watch_read(&w, &ooms, &e) == 0);
  CHECK(ooms == 1 && !w.ended);
  put(d, "cgroup.events", "populated 0\nfrozen 0\n");
  CHECK(wait_readable(w.fd, 2000));
  CHECK(rc_cgroup_oom_watch_read(&w, &ooms, &e) == 0);
  CHECK(ooms == 0 && w.ended);
  rc_cgroup_oom_watch_close(&w);

  /* Nothing left in the cgroup when the watch starts: over at once. */
  CHECK(rc_cgroup_oom_watch_open_dir(d, true, &w, &e) == 0);
  CHECK(w.ended);
  rc_cgroup_oom_watch_close(&w);
  /* No memory.events (no memory controller): an error naming it. */
  cleanup_free char *events = rc_xasprintf("%s/memory.events", d);
  unlink(events);
  CHECK(rc_cgroup_oom_watch_open_dir(d, true, &w, &e) < 0);
  CHECK_CONTAINS(e.msg, "memory.events");
  CHECK(w.fd < 0);
  remove_dir(d);
}

/* A child that burns 50 ms of cpu time once released through the pipe, says so, and waits. */
static pid_t spawn_spinner(int go[2], int done[2]) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  char c;
  if (read(go[0], &c, 1) != 1) _exit(1);
  struct timespec start, now;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &start);
  do {
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  } while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 50000000L);
  if (write(done[1], "x", 1) != 1) _exit(1);
  for (;;) pause();
}

/* The host's real control files: a cgroup made with rc_cgroup_create holding one process
 * that used 50 ms of cpu; and, where there is a v2 hierarchy, the v2 readers on its
 * directory there (cpu.stat and the process count need no enabled controller). */
static void real_cgroup_stats(void) {
  if (geteuid() != 0 || rc_cg_layout()->n == 0) {
    printf("SKIP: real_cgroup_stats: needs root and a mounted cgroup hierarchy\n");
    return;
  }
  int go[2] = {-1, -1}, done[2] = {-1, -1};
  if (pipe(go) < 0) {
    CHECK(!"pipe");
    return;
  }
  if (pipe(done) < 0) {
    CHECK(!"pipe");
    close(go[0]);
    close(go[1]);
    return;
  }
  pid_t child = spawn_spinner(go, done);
  /* The child's ends: a child that dies makes the read below see EOF, not hang. */
  close(go[0]);
  close(done[1]);
  if (child < 0) {
    CHECK(child > 0);
    close(go[1]);
    close(done[0]);
    return;
  }
  cleanup_free char *path = rc_xasprintf("/runcell-unit-stats-%d", (int)getpid());
  struct rc_error e = {0};
  int made = rc_cgroup_create(path, NULL, child, &e);
  CHECK(made == 0);
  if (made < 0) fprintf(stderr, "create: %s\n", e.msg);
  char c;
  CHECK(write(go[1], "x", 1) == 1 && read(done[0], &c, 1) == 1);
  struct rc_cgroup_stats s;
  if (made == 0) {
    CHECK(rc_cgroup_stats(path, &s, &e) == 0);
    if (rc_cg_find(rc_cg_layout(), "pids")) CHECK(s.pids.current == 1);
    if (rc_cg_find(rc_cg_layout(), "cpuacct") || rc_cgroup_mode() == RC_CGROUP_UNIFIED)
      CHECK(s.cpu.total >= 40000000);
    if (s.cpu.total < 40000000) fprintf(stderr, "cpu total %" PRIu64 "\n", s.cpu.total);
    if (rc_cg_find(rc_cg_layout(), "memory")) CHECK(s.memory.n_raw > 0);
    rc_cgroup_stats_free(&s);
    const struct rc_cg_layout *l = rc_cg_layout();
    for (size_t i = 0; i < l->n; i++) {
      if (!l->hiers[i].v2) continue;
      cleanup_free char *dir = rc_xasprintf("%s%s", l->hiers[i].mount, path);
      struct rc_cgroup_stat_source src = {0};
      src.dir[RC_CGS_CPU] = src.dir[RC_CGS_PIDS] = dir;
      src.v2[RC_CGS_CPU] = src.v2[RC_CGS_PIDS] = true;
      CHECK(rc_cgroup_stats_read(&src, &s, &e) == 0);
      CHECK(s.pids.current == 1);
      CHECK(s.cpu.total >= 40000000 && s.cpu.user + s.cpu.kernel > 0);
      if (s.cpu.total < 40000000) fprintf(stderr, "v2 cpu total %" PRIu64 "\n", s.cpu.total);
      rc_cgroup_stats_free(&s);
    }
  }
  kill(child, SIGKILL);
  while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
  }
  if (made == 0) CHECK(rc_cgroup_destroy(path, &e) == 0);
  close(go[1]);
  close(done[0]);
}

UNIT_MAIN("cgroup_stats", UNIT_CASE(v1_files_are_read_like_runc),
          UNIT_CASE(v2_files_are_read_like_runc), UNIT_CASE(missing_directories_are_skipped),
          UNIT_CASE(zero_stats_json_has_runcs_shape), UNIT_CASE(full_stats_json),
          UNIT_CASE(go_durations), UNIT_CASE(v2_oom_watch_counts_new_kills_and_ends),
          UNIT_CASE(real_cgroup_stats))
