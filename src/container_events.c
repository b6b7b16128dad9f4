/* events: runc's event lines for a container. The JSON is written by hand rather than
 * with jansson because runc's numbers are Go uint64s (an unlimited v2 memory.max reads
 * as 18446744073709551615), beyond jansson's signed integers, and because the shape
 * must follow Go's encoding of runc's types exactly: its field order, and omitempty
 * dropping zero numbers and empty lists but never a nested object. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "runcell/cgroups.h"
#include "runcell/events.h"
#include "runcell/log.h"
#include "runcell/microvm_control.h"
#include "runcell/mode.h"
#include "runcell/state_store.h"
#include "runcell/util.h"

/* ---------------------------------------------------------------------------------------
 * --interval */

struct duration_unit {
  const char *name;
  uint64_t ns;
};

static const struct duration_unit duration_units[] = {
    {"ns", 1ull},           {"us", 1000ull},      {"\xc2\xb5s", 1000ull}, /* U+00B5 micro sign */
    {"\xce\xbcs", 1000ull},                                               /* U+03BC Greek mu */
    {"ms", 1000000ull},     {"s", 1000000000ull}, {"m", 60000000000ull},  {"h", 3600000000000ull},
};

static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

int rc_parse_go_duration(const char *s, int64_t *ns) {
  const uint64_t limit = 1ull << 63;
  bool neg = false;
  if (*s == '-' || *s == '+') neg = *s++ == '-';
  if (strcmp(s, "0") == 0) {
    *ns = 0;
    return 0;
  }
  if (!*s) return -1;
  uint64_t total = 0;
  while (*s) {
    if (!(*s == '.' || is_digit(*s))) return -1;
    uint64_t v = 0;
    const char *start = s;
    for (; is_digit(*s); s++) {
      if (v > (limit - 1) / 10) return -1;
      v = v * 10 + (uint64_t)(*s - '0');
      if (v > limit) return -1;
    }
    bool pre = s != start, post = false;
    uint64_t frac = 0;
    double scale = 1;
    if (*s == '.') {
      s++;
      const char *fstart = s;
      bool overflow = false;
      for (; is_digit(*s); s++) {
        /* Digits beyond what 63 bits hold add nothing, as in Go. */
        if (overflow || frac > (limit - 1) / 10) {
          overflow = true;
          continue;
        }
        frac = frac * 10 + (uint64_t)(*s - '0');
        scale *= 10;
      }
      post = s != fstart;
    }
    if (!pre && !post) return -1;
    size_t ulen = 0;
    while (s[ulen] && s[ulen] != '.' && !is_digit(s[ulen])) ulen++;
    if (ulen == 0) return -1; /* a number without a unit */
    const struct duration_unit *unit = NULL;
    for (size_t i = 0; i < RC_ARRAY_SIZE(duration_units); i++)
      if (strlen(duration_units[i].name) == ulen && strncmp(s, duration_units[i].name, ulen) == 0)
        unit = &duration_units[i];
    if (!unit) return -1;
    s += ulen;
    if (v > limit / unit->ns) return -1;
    v *= unit->ns;
    if (frac > 0) {
      v += (uint64_t)((double)frac * ((double)unit->ns / scale));
      if (v > limit) return -1;
    }
    total += v;
    if (total > limit) return -1;
  }
  if (neg) {
    *ns = total == limit ? INT64_MIN : -(int64_t)total;
    return 0;
  }
  if (total > limit - 1) return -1;
  *ns = (int64_t)total;
  return 0;
}

/* ---------------------------------------------------------------------------------------
 * JSON */

/* A compact JSON writer: members and elements get their commas from a per-level flag. */
struct jw {
  FILE *f;
  bool need_comma[16];
  int depth;
};

static void jw_sep(struct jw *w) {
  if (w->need_comma[w->depth]) fputc(',', w->f);
  w->need_comma[w->depth] = true;
}

static void jw_str(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&') /* Go escapes <>& too */
      fprintf(f, "\\u%04x", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

static void jw_key(struct jw *w, const char *key) {
  jw_sep(w);
  jw_str(w->f, key);
  fputc(':', w->f);
}

static void jw_open(struct jw *w, const char *key, char bracket) {
  if (key)
    jw_key(w, key);
  else
    jw_sep(w);
  fputc(bracket, w->f);
  w->depth++;
  w->need_comma[w->depth] = false;
}

static void jw_close(struct jw *w, char bracket) {
  fputc(bracket, w->f);
  w->depth--;
}

static void jw_u64(struct jw *w, const char *key, uint64_t v) {
  jw_key(w, key);
  fprintf(w->f, "%" PRIu64, v);
}

/* omitempty */
static void jw_u64_opt(struct jw *w, const char *key, uint64_t v) {
  if (v) jw_u64(w, key, v);
}

static void jw_u64_list_opt(struct jw *w, const char *key, const struct rc_cgroup_u64_list *l) {
  if (l->n == 0) return;
  jw_open(w, key, '[');
  for (size_t i = 0; i < l->n; i++) {
    jw_sep(w);
    fprintf(w->f, "%" PRIu64, l->v[i]);
  }
  jw_close(w, ']');
}

static void put_cpu(struct jw *w, const struct rc_cgroup_stats *s) {
  jw_open(w, "cpu", '{');
  jw_open(w, "usage", '{');
  jw_u64_opt(w, "total", s->cpu.total);
  jw_u64_list_opt(w, "percpu", &s->cpu.percpu);
  jw_u64_list_opt(w, "percpu_kernel", &s->cpu.percpu_kernel);
  jw_u64_list_opt(w, "percpu_user", &s->cpu.percpu_user);
  jw_u64(w, "kernel", s->cpu.kernel);
  jw_u64(w, "user", s->cpu.user);
  jw_close(w, '}');
  jw_open(w, "throttling", '{');
  jw_u64_opt(w, "periods", s->cpu.periods);
  jw_u64_opt(w, "throttledPeriods", s->cpu.throttled_periods);
  jw_u64_opt(w, "throttledTime", s->cpu.throttled_time);
  jw_close(w, '}');
  jw_close(w, '}');
}

static void put_cpuset(struct jw *w, const struct rc_cgroup_stats *s) {
  jw_open(w, "cpuset", '{');
  jw_u64_list_opt(w, "cpus", &s->cpuset.cpus);
  jw_u64(w, "cpu_exclusive", s->cpuset.cpu_exclusive);
  jw_u64_list_opt(w, "mems", &s->cpuset.mems);
  jw_u64(w, "mem_hardwall", s->cpuset.mem_hardwall);
  jw_u64(w, "mem_exclusive", s->cpuset.mem_exclusive);
  jw_u64(w, "memory_migrate", s->cpuset.memory_migrate);
  jw_u64(w, "memory_spread_page", s->cpuset.memory_spread_page);
  jw_u64(w, "memory_spread_slab", s->cpuset.memory_spread_slab);
  jw_u64(w, "memory_pressure", s->cpuset.memory_pressure);
  jw_u64(w, "sched_load_balance", s->cpuset.sched_load_balance);
  jw_key(w, "sched_relax_domain_level");
  fprintf(w->f, "%" PRId64, s->cpuset.sched_relax_domain_level);
  jw_close(w, '}');
}

static void put_memory_entry(struct jw *w, const char *key,
                             const struct rc_cgroup_memory_entry *e) {
  jw_open(w, key, '{');
  jw_u64(w, "limit", e->limit);
  jw_u64_opt(w, "usage", e->usage);
  jw_u64_opt(w, "max", e->max);
  jw_u64(w, "failcnt", e->failcnt);
  jw_close(w, '}');
}

static void put_memory(struct jw *w, const struct rc_cgroup_stats *s) {
  jw_open(w, "memory", '{');
  jw_u64_opt(w, "cache", s->memory.cache);
  put_memory_entry(w, "usage", &s->memory.usage);
  put_memory_entry(w, "swap", &s->memory.swap);
  put_memory_entry(w, "kernel", &s->memory.kernel);
  put_memory_entry(w, "kernelTCP", &s->memory.kernel_tcp);
  if (s->memory.n_raw) {
    jw_open(w, "raw", '{');
    for (size_t i = 0; i < s->memory.n_raw; i++)
      jw_u64(w, s->memory.raw[i].key, s->memory.raw[i].value);
    jw_close(w, '}');
  }
  jw_close(w, '}');
}

static void put_blkio(struct jw *w, const struct rc_cgroup_stats *s) {
  /* types.Blkio's JSON names, in the order of enum rc_cgroup_blkio_table. */
  static const char *const names[RC_BLKIO_TABLES] = {
      "ioServiceBytesRecursive", "ioServicedRecursive", "ioQueueRecursive",
      "ioServiceTimeRecursive",  "ioWaitTimeRecursive", "ioMergedRecursive",
      "ioTimeRecursive",         "sectorsRecursive",
  };
  jw_open(w, "blkio", '{');
  for (int t = 0; t < RC_BLKIO_TABLES; t++) {
    const struct rc_cgroup_blkio_list *l = &s->blkio[t];
    if (l->n == 0) continue;
    jw_open(w, names[t], '[');
    for (size_t i = 0; i < l->n; i++) {
      jw_open(w, NULL, '{');
      jw_u64_opt(w, "major", l->v[i].major);
      jw_u64_opt(w, "minor", l->v[i].minor);
      if (l->v[i].op[0]) {
        jw_key(w, "op");
        jw_str(w->f, l->v[i].op);
      }
      jw_u64_opt(w, "value", l->v[i].value);
      jw_close(w, '}');
    }
    jw_close(w, ']');
  }
  jw_close(w, '}');
}

static void put_hugetlb(struct jw *w, const struct rc_cgroup_stats *s) {
  jw_open(w, "hugetlb", '{');
  for (size_t i = 0; i < s->n_hugetlb; i++) {
    jw_open(w, s->hugetlb[i].page_size, '{');
    jw_u64_opt(w, "usage", s->hugetlb[i].usage);
    jw_u64_opt(w, "max", s->hugetlb[i].max);
    jw_u64(w, "failcnt", s->hugetlb[i].failcnt);
    jw_close(w, '}');
  }
  jw_close(w, '}');
}

static char *event_json(const char *type, const char *id, const struct rc_cgroup_stats *s) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) abort(); /* out of memory, as rc_xmalloc treats it */
  struct jw w = {.f = f};
  jw_open(&w, NULL, '{');
  jw_key(&w, "type");
  jw_str(f, type);
  jw_key(&w, "id");
  jw_str(f, id);
  if (s) {
    jw_open(&w, "data", '{');
    put_cpu(&w, s);
    put_cpuset(&w, s);
    put_memory(&w, s);
    jw_open(&w, "pids", '{');
    jw_u64_opt(&w, "current", s->pids.current);
    jw_u64_opt(&w, "limit", s->pids.limit);
    jw_close(&w, '}');
    put_blkio(&w, s);
    put_hugetlb(&w, s);
    /* runcell has no Intel RDT support and, like runc for a container without
     * configured veth networks, no interface statistics. */
    jw_key(&w, "intel_rdt");
    fputs("{}", f);
    jw_key(&w, "network_interfaces");
    fputs("null", f);
    jw_close(&w, '}');
  }
  jw_close(&w, '}');
  if (fclose(f) != 0) abort();
  return buf;
}

char *rc_events_stats_json(const char *id, const struct rc_cgroup_stats *s) {
  return event_json("stats", id, s);
}

char *rc_events_oom_json(const char *id) {
  return event_json("oom", id, NULL);
}

/* ---------------------------------------------------------------------------------------
 * The command */

/* One event line, written at once: readers (containerd, a pipe into jq) take it whole. */
static int emit(char *json, struct rc_error *err) {
  size_t n = strlen(json);
  json = rc_xrealloc(json, n + 2);
  json[n] = '\n';
  json[n + 1] = '\0';
  ssize_t r = rc_write_all(STDOUT_FILENO, json, n + 1);
  free(json);
  if (r < 0) return rc_err(err, errno, "write event");
  return 0;
}

/* A running microVM's container is its guest: cpu, memory and pids come from the guest's
 * agent (the host cgroup holds the VMM, whose memory is all of guest RAM). The rest (blkio,
 * hugetlb, throttling) stays the host's view of the VMM. A guest that cannot answer
 * (paused, busy) leaves the host's numbers, said in the log. */
static void microvm_guest_view(const char *root, const struct oci_state *st,
                               struct rc_cgroup_stats *s) {
  struct oci_state *now = NULL;
  struct rc_error err = {0};
  bool running = rc_state_read(root, st->id, &now, &err) == 0 && now->status == OCI_STATUS_RUNNING;
  oci_state_free(now);
  if (!running) return;
  struct agent_stats g;
  if (rc_microvm_stats(root, st->id, &g, &err) < 0) {
    rc_log(RC_LOG_INFO, "container %s: the VMM's cgroup stats stand in for the guest's: %s", st->id,
           err.msg);
    return;
  }
  s->cpu.user = g.cpu_user_ns;
  s->cpu.kernel = g.cpu_system_ns;
  s->cpu.total = g.cpu_user_ns + g.cpu_system_ns;
  /* the host's per-CPU split is the VMM's threads, not the guest's: left out (the lists
   * keep their memory for rc_cgroup_stats_free) */
  s->cpu.percpu.n = s->cpu.percpu_kernel.n = s->cpu.percpu_user.n = 0;
  s->memory.cache = g.mem_cached;
  s->memory.usage.usage = g.mem_total - g.mem_available;
  s->memory.usage.limit = g.mem_total;
  s->memory.usage.max = 0; /* the guest keeps no peak */
  s->pids.current = g.nprocs;
  s->pids.limit = g.pids_limit; /* the guest's pids.max: the host cgroup has none */
}

static int read_stats(const char *root, const struct oci_state *st, struct rc_cgroup_stats *s,
                      struct rc_error *err) {
  if (rc_cgroup_stats(st->cgroup_path, s, err) < 0) return -1;
  if (rc_state_is_microvm(st)) microvm_guest_view(root, st, s);
  return 0;
}

static int emit_stats(const char *root, const struct oci_state *st, struct rc_error *err) {
  struct rc_cgroup_stats s;
  if (read_stats(root, st, &s, err) < 0)
    return rc_err_wrap(err, "unable to get container cgroup stats");
  char *json = rc_events_stats_json(st->id, &s);
  rc_cgroup_stats_free(&s);
  return emit(json, err);
}

/* A tick of the stream. Statistics that cannot be read are reported and the stream goes
 * on, as runc's does (the next tick may well succeed); only a failed write ends it. */
static int tick(const char *root, const struct oci_state *st, struct rc_error *err) {
  struct rc_cgroup_stats s;
  struct rc_error stats_err = {0};
  if (read_stats(root, st, &s, &stats_err) < 0) {
    rc_log(RC_LOG_ERROR, "unable to get container cgroup stats: %s", stats_err.msg);
    fprintf(stderr, "runcell: unable to get container cgroup stats: %s\n", stats_err.msg);
    return 0;
  }
  char *json = rc_events_stats_json(st->id, &s);
  rc_cgroup_stats_free(&s);
  return emit(json, err);
}

static int stream(const char *root, const struct oci_state *st, int64_t interval_ns,
                  struct rc_error *err) {
  const char *id = st->id, *cgroup_path = st->cgroup_path;
  struct rc_cgroup_oom_watch oom;
  if (rc_cgroup_oom_watch_open(cgroup_path, &oom, err) < 0) return -1;
  cleanup_close int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (tfd < 0) {
    rc_cgroup_oom_watch_close(&oom);
    return rc_err(err, errno, "timerfd_create");
  }
  /* Like Go's time.Tick: the first stats come one interval after the start. */
  struct itimerspec its = {
      .it_interval = {(time_t)(interval_ns / 1000000000), (long)(interval_ns % 1000000000)},
      .it_value = {(time_t)(interval_ns / 1000000000), (long)(interval_ns % 1000000000)},
  };
  int rc = 0;
  if (timerfd_settime(tfd, 0, &its, NULL) < 0) rc = rc_err(err, errno, "timerfd_settime");
  while (rc == 0 && !oom.ended) {
    struct pollfd p[2] = {{.fd = oom.fd, .events = POLLIN}, {.fd = tfd, .events = POLLIN}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      rc = rc_err(err, errno, "poll");
      break;
    }
    if (p[0].revents & (POLLIN | POLLERR | POLLHUP)) {
      unsigned ooms = 0;
      rc = rc_cgroup_oom_watch_read(&oom, &ooms, err);
      for (unsigned i = 0; rc == 0 && i < ooms; i++) rc = emit(rc_events_oom_json(id), err);
    }
    if (rc == 0 && !oom.ended && (p[1].revents & POLLIN)) {
      uint64_t expirations = 0;
      if (read(tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN) {
        rc = rc_err(err, errno, "read timerfd");
        break;
      }
      rc = tick(root, st, err);
    }
  }
  rc_cgroup_oom_watch_close(&oom);
  return rc;
}

int rc_container_events(const char *root, const char *id, int64_t interval_ns, bool stats_only,
                        struct rc_error *err) {
  struct oci_state *st = NULL;
  /* Lock-free read: a stream runs for the container's whole life and must never keep
   * delete (or anything else) waiting for the container's lock. */
  if (rc_state_read(root, id, &st, err) < 0) return -1;
  int rc = -1;
  if (interval_ns <= 0) {
    rc_err(err, 0, "duration interval must be greater than 0");
    goto out;
  }
  if (st->status == OCI_STATUS_STOPPED) {
    rc_err(err, 0, "container with id %s is not running", id);
    goto out;
  }
  if (!st->cgroup_path) {
    rc_err(err, 0, "container %s has no cgroup", id);
    goto out;
  }
  rc = stats_only ? emit_stats(root, st, err) : stream(root, st, interval_ns, err);
out:
  oci_state_free(st);
  return rc;
}
