/* Statistics of a container's cgroup for `events`, read the way runc 1.1's libcontainer
 * reads them (cgroups/fs for v1 controllers, cgroups/fs2 for the unified hierarchy), so
 * that both runtimes report the same numbers from the same files. As in runc, a group
 * whose directory or main file is missing is skipped (the host lacks the controller, or
 * the container is being deleted), while a file that is there but does not parse is an
 * error naming the directory and file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroups_internal.h"
#include "runcell/util.h"

/* memory.stat and io.stat are a few KiB; this only guards against a runaway file. */
#define STAT_FILE_MAX (4u << 20)

/* A group's directory, open. */
struct sdir {
  int fd;
  const char *dir; /* for messages */
};

/* ---------------------------------------------------------------------------------------
 * Values */

/* runc's fscommon.ParseUint: decimal digits; a negative number (v1 shows -1 for "none"
 * in some files) reads as 0. With allow_max, "max" (a v2 limit) reads as UINT64_MAX, as
 * GetCgroupParamUint does. Surrounding whitespace is ignored. */
static bool parse_u64(const char *s, bool allow_max, uint64_t *out) {
  while (*s == ' ' || *s == '\t' || *s == '\n') s++;
  size_t len = strlen(s);
  while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n')) len--;
  if (allow_max && len == 3 && strncmp(s, "max", 3) == 0) {
    *out = UINT64_MAX;
    return true;
  }
  bool negative = len > 0 && s[0] == '-';
  size_t i = negative ? 1 : 0;
  if (i == len) return false;
  uint64_t v = 0;
  bool overflow = false;
  for (; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) overflow = true;
    v = v * 10 + d;
  }
  if (negative) {
    *out = 0;
    return v != 0 || overflow; /* Go's ParseInt("-0") is 0, not negative: ParseUint fails */
  }
  if (overflow) return false;
  *out = v;
  return true;
}

/* GetCgroupParamInt: a signed decimal, "max" as INT64_MAX. */
static bool parse_i64(const char *s, int64_t *out) {
  while (*s == ' ' || *s == '\t' || *s == '\n') s++;
  if (strncmp(s, "max", 3) == 0 && (s[3] == '\0' || s[3] == '\n')) {
    *out = INT64_MAX;
    return true;
  }
  errno = 0;
  char *end = NULL;
  long long v = strtoll(s, &end, 10);
  if (end == s || errno != 0) return false;
  while (*end == ' ' || *end == '\t' || *end == '\n') end++;
  if (*end != '\0') return false;
  *out = v;
  return true;
}

static int bad_value(const struct sdir *d, const char *file, const char *what,
                     struct rc_error *err) {
  return rc_err(err, EINVAL, "cgroup %s: %s: cannot parse \"%.64s\"", d->dir, file, what);
}

/* Reads a whole file. Returns 1, or 0 when it does not exist (nothing set), or -1. */
static int read_opt(const struct sdir *d, const char *file, char **out, struct rc_error *err) {
  *out = NULL;
  if (rc_read_file_at(d->fd, file, STAT_FILE_MAX, out, NULL, err) == 0) return 1;
  if (err->code == ENOENT) {
    rc_err_clear(err);
    return 0;
  }
  return rc_err_wrap(err, "cgroup %s", d->dir);
}

/* Reads a file that must exist when its group is there. */
static int read_req(const struct sdir *d, const char *file, char **out, struct rc_error *err) {
  *out = NULL;
  if (rc_read_file_at(d->fd, file, STAT_FILE_MAX, out, NULL, err) == 0) return 0;
  return rc_err_wrap(err, "cgroup %s", d->dir);
}

/* A one-number file (GetCgroupParamUint). Returns 1, 0 if missing, -1 on error. */
static int read_u64_opt(const struct sdir *d, const char *file, uint64_t *out,
                        struct rc_error *err) {
  cleanup_free char *text = NULL;
  int r = read_opt(d, file, &text, err);
  if (r <= 0) return r;
  if (!parse_u64(text, true, out)) return bad_value(d, file, text, err);
  return 1;
}

static int read_u64(const struct sdir *d, const char *file, uint64_t *out, struct rc_error *err) {
  int r = read_u64_opt(d, file, out, err);
  if (r == 0) return rc_err(err, ENOENT, "cgroup %s: %s is missing", d->dir, file);
  return r < 0 ? -1 : 0;
}

/* The next line of *cursor (without its newline), or NULL at the end; modifies the text. */
static char *next_line(char **cursor) {
  char *s = *cursor;
  if (!s || !*s) return NULL;
  char *nl = strchr(s, '\n');
  if (nl) {
    *nl = '\0';
    *cursor = nl + 1;
  } else {
    *cursor = s + strlen(s);
  }
  return s;
}

/* "key value" (fscommon.ParseKeyValue: exactly one space). */
static bool parse_key_value(char *line, char **key, uint64_t *value) {
  char *sp = strchr(line, ' ');
  if (!sp || strchr(sp + 1, ' ')) return false;
  *sp = '\0';
  *key = line;
  return parse_u64(sp + 1, false, value);
}

/* Calls fn for every "key value" line of file; 0 if the file is missing (and
 * *missing set), -1 on a malformed line. */
typedef void (*kv_fn)(void *ctx, const char *key, uint64_t value);
static int for_each_key_value(const struct sdir *d, const char *file, kv_fn fn, void *ctx,
                              bool *missing, struct rc_error *err) {
  cleanup_free char *text = NULL;
  int r = read_opt(d, file, &text, err);
  if (r < 0) return -1;
  *missing = r == 0;
  char *cursor = text, *line;
  while ((line = next_line(&cursor))) {
    if (!*line) continue;
    char copy[256];
    snprintf(copy, sizeof(copy), "%s", line);
    char *key = NULL;
    uint64_t value = 0;
    if (!parse_key_value(line, &key, &value)) return bad_value(d, file, copy, err);
    fn(ctx, key, value);
  }
  return 0;
}

/* The value of "key N" in a flat-keyed file (fscommon.GetValueByKey); 0 if absent. */
static int value_by_key(const struct sdir *d, const char *file, const char *key, uint64_t *out,
                        struct rc_error *err) {
  cleanup_free char *text = NULL;
  if (read_req(d, file, &text, err) < 0) return -1;
  *out = 0;
  size_t kl = strlen(key);
  char *cursor = text, *line;
  while ((line = next_line(&cursor)))
    if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
      if (!parse_u64(line + kl + 1, false, out)) return bad_value(d, file, line, err);
      return 0;
    }
  return 0;
}

static void list_push(struct rc_cgroup_u64_list *l, uint64_t v) {
  l->v = rc_xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
  l->v[l->n++] = v;
}

static void list_free(struct rc_cgroup_u64_list *l) {
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

/* ---------------------------------------------------------------------------------------
 * cpu and cpuacct */

static void cpu_v1_kv(void *ctx, const char *key, uint64_t v) {
  struct rc_cgroup_stats *st = ctx;
  if (strcmp(key, "nr_periods") == 0) st->cpu.periods = v;
  if (strcmp(key, "nr_throttled") == 0) st->cpu.throttled_periods = v;
  if (strcmp(key, "throttled_time") == 0) st->cpu.throttled_time = v;
}

static void cpu_v2_kv(void *ctx, const char *key, uint64_t v) {
  struct rc_cgroup_stats *st = ctx;
  if (strcmp(key, "usage_usec") == 0) st->cpu.total = v * 1000;
  if (strcmp(key, "user_usec") == 0) st->cpu.user = v * 1000;
  if (strcmp(key, "system_usec") == 0) st->cpu.kernel = v * 1000;
  if (strcmp(key, "nr_periods") == 0) st->cpu.periods = v;
  if (strcmp(key, "nr_throttled") == 0) st->cpu.throttled_periods = v;
  if (strcmp(key, "throttled_usec") == 0) st->cpu.throttled_time = v * 1000;
}

static int stat_cpu(const struct sdir *d, bool v2, struct rc_cgroup_stats *st,
                    struct rc_error *err) {
  bool missing = false;
  return for_each_key_value(d, "cpu.stat", v2 ? cpu_v2_kv : cpu_v1_kv, st, &missing, err);
}

/* cpuacct.stat counts clock ticks: "user N\nsystem N". */
static int cpuacct_breakdown(const struct sdir *d, struct rc_cgroup_stats *st,
                             struct rc_error *err) {
  cleanup_free char *text = NULL;
  if (read_req(d, "cpuacct.stat", &text, err) < 0) return -1;
  cleanup_free char *copy = rc_xstrdup(text);
  char *f[4] = {NULL};
  int n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(copy, " \t\n", &save); tok && n < 4;
       tok = strtok_r(NULL, " \t\n", &save))
    f[n++] = tok;
  uint64_t user = 0, system = 0;
  if (n < 4 || strcmp(f[0], "user") != 0 || strcmp(f[2], "system") != 0 ||
      !parse_u64(f[1], false, &user) || !parse_u64(f[3], false, &system))
    return bad_value(d, "cpuacct.stat", text, err);
  long hz = sysconf(_SC_CLK_TCK);
  uint64_t ticks_per_second = (uint64_t)(hz > 0 ? hz : 100);
  st->cpu.user = user * 1000000000ull / ticks_per_second;
  st->cpu.kernel = system * 1000000000ull / ticks_per_second;
  return 0;
}

/* cpuacct.usage_all: a "cpu user system" header, then one line per cpu. */
static int cpuacct_usage_all(const struct sdir *d, struct rc_cgroup_stats *st,
                             struct rc_error *err) {
  cleanup_free char *text = NULL;
  int r = read_opt(d, "cpuacct.usage_all", &text, err);
  if (r <= 0) return r;
  char *cursor = text, *line;
  (void)next_line(&cursor); /* the header */
  while ((line = next_line(&cursor))) {
    char *f[4] = {NULL};
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " ", &save); tok && n < 4; tok = strtok_r(NULL, " ", &save))
      f[n++] = tok;
    if (n != 3) continue;
    uint64_t user = 0, kernel = 0;
    if (!parse_u64(f[1], false, &user) || !parse_u64(f[2], false, &kernel))
      return bad_value(d, "cpuacct.usage_all", f[1], err);
    list_push(&st->cpu.percpu_user, user);
    list_push(&st->cpu.percpu_kernel, kernel);
  }
  return 0;
}

static int stat_cpuacct(const struct sdir *d, struct rc_cgroup_stats *st, struct rc_error *err) {
  if (cpuacct_breakdown(d, st, err) < 0) return -1;
  if (read_u64(d, "cpuacct.usage", &st->cpu.total, err) < 0) return -1;
  cleanup_free char *text = NULL;
  if (read_req(d, "cpuacct.usage_percpu", &text, err) < 0) return -1;
  char *save = NULL;
  for (char *tok = strtok_r(text, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
    uint64_t v = 0;
    if (!parse_u64(tok, false, &v)) return bad_value(d, "cpuacct.usage_percpu", tok, err);
    list_push(&st->cpu.percpu, v);
  }
  return cpuacct_usage_all(d, st, err);
}

/* ---------------------------------------------------------------------------------------
 * cpuset */

/* A cpu or memory-node list, "0-3,8,10-11". */
static int parse_cpu_list(const struct sdir *d, const char *file, const char *text,
                          struct rc_cgroup_u64_list *out, struct rc_error *err) {
  cleanup_free char *copy = rc_xstrdup(text);
  char *nl = strchr(copy, '\n');
  if (nl) *nl = '\0';
  if (!*copy) return rc_err(err, EINVAL, "cgroup %s: %s: empty file", d->dir, file);
  char *save = NULL;
  for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
    char *dash = strchr(item, '-');
    uint64_t lo = 0, hi = 0;
    if (dash) {
      *dash = '\0';
      if (strchr(dash + 1, '-') || !parse_u64(item, false, &lo) ||
          !parse_u64(dash + 1, false, &hi) || lo > hi || hi > UINT16_MAX)
        return bad_value(d, file, text, err);
    } else {
      if (!parse_u64(item, false, &lo) || lo > UINT16_MAX) return bad_value(d, file, text, err);
      hi = lo;
    }
    for (uint64_t i = lo; i <= hi; i++) list_push(out, i);
  }
  return 0;
}

static int stat_cpuset(const struct sdir *d, struct rc_cgroup_stats *st, struct rc_error *err) {
  static const char *const lists[] = {"cpuset.cpus", "cpuset.mems"};
  struct rc_cgroup_u64_list *list_out[] = {&st->cpuset.cpus, &st->cpuset.mems};
  for (size_t i = 0; i < RC_ARRAY_SIZE(lists); i++) {
    cleanup_free char *text = NULL;
    int r = read_opt(d, lists[i], &text, err);
    if (r < 0) return -1;
    if (r > 0 && parse_cpu_list(d, lists[i], text, list_out[i], err) < 0) return -1;
  }
  const struct {
    const char *file;
    uint64_t *out;
  } flags[] = {
      {"cpuset.cpu_exclusive", &st->cpuset.cpu_exclusive},
      {"cpuset.mem_hardwall", &st->cpuset.mem_hardwall},
      {"cpuset.mem_exclusive", &st->cpuset.mem_exclusive},
      {"cpuset.memory_migrate", &st->cpuset.memory_migrate},
      {"cpuset.memory_spread_page", &st->cpuset.memory_spread_page},
      {"cpuset.memory_spread_slab", &st->cpuset.memory_spread_slab},
      {"cpuset.memory_pressure", &st->cpuset.memory_pressure},
      {"cpuset.sched_load_balance", &st->cpuset.sched_load_balance},
  };
  for (size_t i = 0; i < RC_ARRAY_SIZE(flags); i++)
    if (read_u64_opt(d, flags[i].file, flags[i].out, err) < 0) return -1;
  cleanup_free char *text = NULL;
  int r = read_opt(d, "cpuset.sched_relax_domain_level", &text, err);
  if (r < 0) return -1;
  if (r > 0 && !parse_i64(text, &st->cpuset.sched_relax_domain_level))
    return bad_value(d, "cpuset.sched_relax_domain_level", text, err);
  return 0;
}

/* ---------------------------------------------------------------------------------------
 * memory */

struct raw_ctx {
  struct rc_cgroup_stats *st;
  size_t cap;
};

static void memory_raw_kv(void *ctx, const char *key, uint64_t v) {
  struct raw_ctx *c = ctx;
  struct rc_cgroup_stats *st = c->st;
  for (size_t i = 0; i < st->memory.n_raw; i++)
    if (strcmp(st->memory.raw[i].key, key) == 0) {
      st->memory.raw[i].value = v; /* a map in runc: the last line wins */
      return;
    }
  if (st->memory.n_raw == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 64;
    st->memory.raw = rc_xrealloc(st->memory.raw, c->cap * sizeof(*st->memory.raw));
  }
  st->memory.raw[st->memory.n_raw++] = (struct rc_cgroup_stat_value){rc_xstrdup(key), v};
}

static int cmp_raw(const void *a, const void *b) {
  return strcmp(((const struct rc_cgroup_stat_value *)a)->key,
                ((const struct rc_cgroup_stat_value *)b)->key);
}

static uint64_t raw_value(const struct rc_cgroup_stats *st, const char *key) {
  for (size_t i = 0; i < st->memory.n_raw; i++)
    if (strcmp(st->memory.raw[i].key, key) == 0) return st->memory.raw[i].value;
  return 0;
}

/* v1 getMemoryData: memory[.name].{usage_in_bytes,max_usage_in_bytes,failcnt,
 * limit_in_bytes}. The optional parts (memsw, kmem, kmem.tcp) may be missing whole. */
static int memory_v1_entry(const struct sdir *d, const char *name, struct rc_cgroup_memory_entry *e,
                           struct rc_error *err) {
  char prefix[32], file[64];
  snprintf(prefix, sizeof(prefix), "memory%s%s", *name ? "." : "", name);
  snprintf(file, sizeof(file), "%s.usage_in_bytes", prefix);
  int r = read_u64_opt(d, file, &e->usage, err);
  if (r < 0) return -1;
  if (r == 0) {
    if (*name) return 0;
    return rc_err(err, ENOENT, "cgroup %s: %s is missing", d->dir, file);
  }
  snprintf(file, sizeof(file), "%s.max_usage_in_bytes", prefix);
  if (read_u64(d, file, &e->max, err) < 0) return -1;
  snprintf(file, sizeof(file), "%s.failcnt", prefix);
  if (read_u64(d, file, &e->failcnt, err) < 0) return -1;
  snprintf(file, sizeof(file), "%s.limit_in_bytes", prefix);
  return read_u64(d, file, &e->limit, err);
}

/* v2 getMemoryDataV2: memory[.name].{current,max}; swap may be missing (no swap
 * accounting). */
static int memory_v2_entry(const struct sdir *d, const char *name, struct rc_cgroup_memory_entry *e,
                           struct rc_error *err) {
  char prefix[32], file[64];
  snprintf(prefix, sizeof(prefix), "memory%s%s", *name ? "." : "", name);
  snprintf(file, sizeof(file), "%s.current", prefix);
  int r = read_u64_opt(d, file, &e->usage, err);
  if (r < 0) return -1;
  if (r == 0) {
    if (*name) return 0;
    return rc_err(err, ENOENT, "cgroup %s: %s is missing", d->dir, file);
  }
  snprintf(file, sizeof(file), "%s.max", prefix);
  return read_u64(d, file, &e->limit, err);
}

static int stat_memory(const struct sdir *d, bool v2, struct rc_cgroup_stats *st,
                       struct rc_error *err) {
  struct raw_ctx ctx = {st, 0};
  bool missing = false;
  if (for_each_key_value(d, "memory.stat", memory_raw_kv, &ctx, &missing, err) < 0) return -1;
  if (missing) return 0; /* no memory controller here */
  qsort(st->memory.raw, st->memory.n_raw, sizeof(*st->memory.raw), cmp_raw);
  if (!v2) {
    st->memory.cache = raw_value(st, "cache");
    if (memory_v1_entry(d, "", &st->memory.usage, err) < 0 ||
        memory_v1_entry(d, "memsw", &st->memory.swap, err) < 0 ||
        memory_v1_entry(d, "kmem", &st->memory.kernel, err) < 0 ||
        memory_v1_entry(d, "kmem.tcp", &st->memory.kernel_tcp, err) < 0)
      return -1;
    return 0;
  }
  st->memory.cache = raw_value(st, "file");
  if (memory_v2_entry(d, "", &st->memory.usage, err) < 0 ||
      memory_v2_entry(d, "swap", &st->memory.swap, err) < 0)
    return -1;
  /* v1 reports swap as memory+swap; runc adds memory to v2's swap-only figures to match
   * (an unlimited swap stays unlimited). */
  st->memory.swap.usage += st->memory.usage.usage;
  if (st->memory.swap.limit != UINT64_MAX) st->memory.swap.limit += st->memory.usage.limit;
  return 0;
}

/* ---------------------------------------------------------------------------------------
 * pids */

static int stat_pids(const struct sdir *d, bool v2, struct rc_cgroup_stats *st,
                     struct rc_error *err) {
  int r = read_u64_opt(d, "pids.current", &st->pids.current, err);
  if (r < 0) return -1;
  if (r == 0) {
    if (!v2) return 0;
    /* No pids controller on this v2 cgroup: count the processes, as runc does. */
    cleanup_free char *procs = NULL;
    r = read_opt(d, "cgroup.procs", &procs, err);
    if (r <= 0) return r;
    for (const char *p = procs; (p = strchr(p, '\n')); p++) st->pids.current++;
    st->pids.limit = 0;
    return 0;
  }
  cleanup_free char *max = NULL;
  if (read_req(d, "pids.max", &max, err) < 0) return -1;
  uint64_t limit = 0;
  if (!parse_u64(max, true, &limit)) return bad_value(d, "pids.max", max, err);
  st->pids.limit = limit == UINT64_MAX ? 0 : limit; /* 0 is runc's "no limit" */
  return 0;
}

/* ---------------------------------------------------------------------------------------
 * blkio (v1) and io (v2) */

static void blkio_push(struct rc_cgroup_blkio_list *l, uint64_t major, uint64_t minor,
                       const char *op, uint64_t value) {
  l->v = rc_xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
  struct rc_cgroup_blkio_entry *e = &l->v[l->n++];
  e->major = major;
  e->minor = minor;
  snprintf(e->op, sizeof(e->op), "%s", op);
  e->value = value;
}

static void blkio_clear(struct rc_cgroup_blkio_list *l) {
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

/* A v1 blkio file: "major:minor [op] value" lines and a "Total N" line. Returns 1 with
 * entries, 0 when missing or empty, -1 on a malformed line. */
static int blkio_file(const struct sdir *d, const char *file, struct rc_cgroup_blkio_list *out,
                      struct rc_error *err) {
  cleanup_free char *text = NULL;
  int r = read_opt(d, file, &text, err);
  if (r <= 0) return r;
  char *cursor = text, *line;
  struct rc_cgroup_blkio_list list = {0};
  while ((line = next_line(&cursor))) {
    char copy[256];
    snprintf(copy, sizeof(copy), "%s", line);
    char *f[5] = {NULL};
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " :", &save); tok && n < 5; tok = strtok_r(NULL, " :", &save))
      f[n++] = tok;
    if (n == 0) continue;
    if (n == 2 && strcmp(f[0], "Total") == 0) continue;
    uint64_t major = 0, minor = 0, value = 0;
    if (n < 3 || n > 4 || !parse_u64(f[0], false, &major) || !parse_u64(f[1], false, &minor) ||
        !parse_u64(f[n - 1], false, &value)) {
      blkio_clear(&list);
      return bad_value(d, file, copy, err);
    }
    blkio_push(&list, major, minor, n == 4 ? f[2] : "", value);
  }
  if (list.n == 0) return 0;
  *out = list;
  return 1;
}

struct blkio_file_table {
  const char *file;
  enum rc_cgroup_blkio_table table;
};

/* runc tries these groups of files in order and takes the first whose first file has
 * entries: bfq with its debug files, bfq, cfq, the throttle policy's recursive files,
 * then its per-cgroup ones. */
static int stat_blkio_v1(const struct sdir *d, struct rc_cgroup_stats *st, struct rc_error *err) {
  static const struct blkio_file_table bfq_debug[] = {
      {"blkio.bfq.sectors_recursive", RC_BLKIO_SECTORS},
      {"blkio.bfq.io_service_time_recursive", RC_BLKIO_SERVICE_TIME},
      {"blkio.bfq.io_wait_time_recursive", RC_BLKIO_WAIT_TIME},
      {"blkio.bfq.io_merged_recursive", RC_BLKIO_MERGED},
      {"blkio.bfq.io_queued_recursive", RC_BLKIO_QUEUED},
      {"blkio.bfq.time_recursive", RC_BLKIO_TIME},
      {"blkio.bfq.io_serviced_recursive", RC_BLKIO_SERVICED},
      {"blkio.bfq.io_service_bytes_recursive", RC_BLKIO_SERVICE_BYTES},
  };
  static const struct blkio_file_table bfq[] = {
      {"blkio.bfq.io_serviced_recursive", RC_BLKIO_SERVICED},
      {"blkio.bfq.io_service_bytes_recursive", RC_BLKIO_SERVICE_BYTES},
  };
  static const struct blkio_file_table cfq[] = {
      {"blkio.sectors_recursive", RC_BLKIO_SECTORS},
      {"blkio.io_service_time_recursive", RC_BLKIO_SERVICE_TIME},
      {"blkio.io_wait_time_recursive", RC_BLKIO_WAIT_TIME},
      {"blkio.io_merged_recursive", RC_BLKIO_MERGED},
      {"blkio.io_queued_recursive", RC_BLKIO_QUEUED},
      {"blkio.time_recursive", RC_BLKIO_TIME},
      {"blkio.io_serviced_recursive", RC_BLKIO_SERVICED},
      {"blkio.io_service_bytes_recursive", RC_BLKIO_SERVICE_BYTES},
  };
  static const struct blkio_file_table throttle_recursive[] = {
      {"blkio.throttle.io_serviced_recursive", RC_BLKIO_SERVICED},
      {"blkio.throttle.io_service_bytes_recursive", RC_BLKIO_SERVICE_BYTES},
  };
  static const struct blkio_file_table throttle[] = {
      {"blkio.throttle.io_serviced", RC_BLKIO_SERVICED},
      {"blkio.throttle.io_service_bytes", RC_BLKIO_SERVICE_BYTES},
  };
  static const struct {
    const struct blkio_file_table *files;
    size_t n;
  } groups[] = {
      {bfq_debug, RC_ARRAY_SIZE(bfq_debug)},
      {bfq, RC_ARRAY_SIZE(bfq)},
      {cfq, RC_ARRAY_SIZE(cfq)},
      {throttle_recursive, RC_ARRAY_SIZE(throttle_recursive)},
      {throttle, RC_ARRAY_SIZE(throttle)},
  };
  for (size_t g = 0; g < RC_ARRAY_SIZE(groups); g++) {
    for (size_t i = 0; i < groups[g].n; i++) {
      const struct blkio_file_table *t = &groups[g].files[i];
      struct rc_cgroup_blkio_list list = {0};
      int r = blkio_file(d, t->file, &list, err);
      if (r < 0) return -1;
      if (r == 0) {
        if (i == 0) break; /* this policy is not in use: try the next group */
        return 0;          /* runc keeps what it has read so far */
      }
      blkio_clear(&st->blkio[t->table]);
      st->blkio[t->table] = list;
      if (i == groups[g].n - 1) return 0;
    }
  }
  return 0;
}

/* io.stat: "major:minor rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N"; runc maps the
 * byte and io counts onto v1's service_bytes and serviced tables. */
static int stat_io_v2(const struct sdir *d, struct rc_cgroup_stats *st, struct rc_error *err) {
  cleanup_free char *text = NULL;
  int r = read_opt(d, "io.stat", &text, err);
  if (r <= 0) return r;
  char *cursor = text, *line;
  while ((line = next_line(&cursor))) {
    char *save = NULL;
    char *dev = strtok_r(line, " \t", &save);
    if (!dev) continue;
    char *colon = strchr(dev, ':');
    uint64_t major = 0, minor = 0;
    if (!colon) continue;
    *colon = '\0';
    if (!parse_u64(dev, false, &major) || !parse_u64(colon + 1, false, &minor))
      return bad_value(d, "io.stat", dev, err);
    for (char *item = strtok_r(NULL, " \t", &save); item; item = strtok_r(NULL, " \t", &save)) {
      char *eq = strchr(item, '=');
      if (!eq) continue;
      *eq = '\0';
      const char *op = NULL;
      enum rc_cgroup_blkio_table table = RC_BLKIO_SERVICE_BYTES;
      if (strcmp(item, "rbytes") == 0 || strcmp(item, "wbytes") == 0) {
        table = RC_BLKIO_SERVICE_BYTES;
        op = item[0] == 'r' ? "Read" : "Write";
      } else if (strcmp(item, "rios") == 0 || strcmp(item, "wios") == 0) {
        table = RC_BLKIO_SERVICED;
        op = item[0] == 'r' ? "Read" : "Write";
      } else {
        continue; /* no v1 table for discards and the like */
      }
      uint64_t value = 0;
      if (!parse_u64(eq + 1, false, &value)) return bad_value(d, "io.stat", eq + 1, err);
      blkio_push(&st->blkio[table], major, minor, op, value);
    }
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------
 * hugetlb */

static int cmp_hugetlb(const void *a, const void *b) {
  return strcmp(((const struct rc_cgroup_hugetlb_stats *)a)->page_size,
                ((const struct rc_cgroup_hugetlb_stats *)b)->page_size);
}

/* The page sizes are those with a hugetlb.<size>.<suffix> file: the kernel makes one set
 * per size the host supports (runc lists /sys/kernel/mm/hugepages, the same sizes). */
static int hugetlb_sizes(const struct sdir *d, const char *suffix, struct rc_cgroup_stats *st,
                         struct rc_error *err) {
  int fd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return rc_err(err, errno, "cgroup %s: list files", d->dir);
  DIR *dir = fdopendir(fd);
  if (!dir) {
    int e = errno;
    close(fd);
    return rc_err(err, e, "cgroup %s: list files", d->dir);
  }
  struct dirent *de;
  size_t sl = strlen(suffix);
  while ((de = readdir(dir))) {
    const char *name = de->d_name;
    if (strncmp(name, "hugetlb.", 8) != 0) continue;
    const char *size = name + 8, *dot = strchr(size, '.');
    /* hugetlb.2MB.rsvd.current and the like have a second dot: skip them */
    if (!dot || dot == size || strcmp(dot + 1, suffix) != 0 || strlen(dot + 1) != sl) continue;
    size_t len = (size_t)(dot - size);
    if (len >= sizeof(st->hugetlb[0].page_size)) continue;
    st->hugetlb = rc_xrealloc(st->hugetlb, (st->n_hugetlb + 1) * sizeof(*st->hugetlb));
    struct rc_cgroup_hugetlb_stats *h = &st->hugetlb[st->n_hugetlb++];
    memset(h, 0, sizeof(*h));
    memcpy(h->page_size, size, len);
  }
  closedir(dir);
  qsort(st->hugetlb, st->n_hugetlb, sizeof(*st->hugetlb), cmp_hugetlb);
  return 0;
}

static int stat_hugetlb(const struct sdir *d, bool v2, struct rc_cgroup_stats *st,
                        struct rc_error *err) {
  if (hugetlb_sizes(d, v2 ? "current" : "usage_in_bytes", st, err) < 0) return -1;
  for (size_t i = 0; i < st->n_hugetlb; i++) {
    struct rc_cgroup_hugetlb_stats *h = &st->hugetlb[i];
    char file[64];
    if (v2) {
      snprintf(file, sizeof(file), "hugetlb.%s.current", h->page_size);
      if (read_u64(d, file, &h->usage, err) < 0) return -1;
      snprintf(file, sizeof(file), "hugetlb.%s.events", h->page_size);
      if (value_by_key(d, file, "max", &h->failcnt, err) < 0) return -1;
      continue;
    }
    snprintf(file, sizeof(file), "hugetlb.%s.usage_in_bytes", h->page_size);
    if (read_u64(d, file, &h->usage, err) < 0) return -1;
    snprintf(file, sizeof(file), "hugetlb.%s.max_usage_in_bytes", h->page_size);
    if (read_u64(d, file, &h->max, err) < 0) return -1;
    snprintf(file, sizeof(file), "hugetlb.%s.failcnt", h->page_size);
    if (read_u64(d, file, &h->failcnt, err) < 0) return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------
 * Putting it together */

void rc_cgroup_stats_free(struct rc_cgroup_stats *st) {
  list_free(&st->cpu.percpu);
  list_free(&st->cpu.percpu_kernel);
  list_free(&st->cpu.percpu_user);
  list_free(&st->cpuset.cpus);
  list_free(&st->cpuset.mems);
  for (size_t i = 0; i < st->memory.n_raw; i++) free(st->memory.raw[i].key);
  free(st->memory.raw);
  for (size_t i = 0; i < RC_BLKIO_TABLES; i++) blkio_clear(&st->blkio[i]);
  free(st->hugetlb);
  memset(st, 0, sizeof(*st));
}

static int read_group(enum rc_cgroup_stat_group g, const struct sdir *d, bool v2,
                      struct rc_cgroup_stats *st, struct rc_error *err) {
  switch (g) {
    case RC_CGS_CPU:
      return stat_cpu(d, v2, st, err);
    case RC_CGS_CPUACCT:
      return v2 ? 0 : stat_cpuacct(d, st, err);
    case RC_CGS_CPUSET:
      return v2 ? 0 : stat_cpuset(d, st, err);
    case RC_CGS_MEMORY:
      return stat_memory(d, v2, st, err);
    case RC_CGS_PIDS:
      return stat_pids(d, v2, st, err);
    case RC_CGS_BLKIO:
      return v2 ? stat_io_v2(d, st, err) : stat_blkio_v1(d, st, err);
    case RC_CGS_HUGETLB:
      return stat_hugetlb(d, v2, st, err);
    case RC_CGS_GROUPS:
      break;
  }
  return 0;
}

int rc_cgroup_stats_read(const struct rc_cgroup_stat_source *src, struct rc_cgroup_stats *st,
                         struct rc_error *err) {
  memset(st, 0, sizeof(*st));
  for (int g = 0; g < RC_CGS_GROUPS; g++) {
    if (!src->dir[g]) continue;
    struct sdir d = {open(src->dir[g], O_RDONLY | O_DIRECTORY | O_CLOEXEC), src->dir[g]};
    if (d.fd < 0) {
      if (errno == ENOENT) continue; /* not created on this hierarchy, or already removed */
      rc_err(err, errno, "cgroup %s: open", src->dir[g]);
      rc_cgroup_stats_free(st);
      return -1;
    }
    int r = read_group((enum rc_cgroup_stat_group)g, &d, src->v2[g], st, err);
    close(d.fd);
    if (r < 0) {
      rc_cgroup_stats_free(st);
      return -1;
    }
  }
  return 0;
}

int rc_cgroup_stats(const char *path, struct rc_cgroup_stats *st, struct rc_error *err) {
  /* The controller each group belongs to; blkio is "io" on v2. */
  static const char *const controller[RC_CGS_GROUPS] = {"cpu",  "cpuacct", "cpuset", "memory",
                                                        "pids", "blkio",   "hugetlb"};
  const struct rc_cg_layout *l = rc_cg_layout();
  const char *rel = strcmp(path, "/") == 0 ? "" : path;
  struct rc_cgroup_stat_source src = {0};
  char *dirs[RC_CGS_GROUPS] = {NULL};
  const struct rc_cg_hier *v2 = NULL;
  for (size_t i = 0; i < l->n; i++)
    if (l->hiers[i].v2) v2 = &l->hiers[i];
  for (int g = 0; g < RC_CGS_GROUPS; g++) {
    const struct rc_cg_hier *h = rc_cg_find(l, controller[g]);
    if (!h && g == RC_CGS_BLKIO) h = rc_cg_find(l, "io");
    /* On a unified host cpu.stat and the process count are there without their
     * controllers, and runc reads them regardless. */
    if (!h && l->mode == RC_CGROUP_UNIFIED && v2 && (g == RC_CGS_CPU || g == RC_CGS_PIDS)) h = v2;
    if (!h) continue;
    dirs[g] = rc_xasprintf("%s%s", h->mount, rel);
    src.dir[g] = dirs[g];
    src.v2[g] = h->v2;
  }
  int r = rc_cgroup_stats_read(&src, st, err);
  for (int g = 0; g < RC_CGS_GROUPS; g++) free(dirs[g]);
  return r;
}
