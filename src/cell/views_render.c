/* Rendering the cell's file views from the host's files and the cell's limits. Pure text
 * transformations, so the unit tests can check them against fixed inputs. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runcell/util.h"
#include "runcell/views.h"

static const struct {
  const char *name;
  const char *target;
} views[RC_VIEW_COUNT] = {
    [RC_VIEW_MEMINFO] = {"meminfo", "/proc/meminfo"},
    [RC_VIEW_CPUINFO] = {"cpuinfo", "/proc/cpuinfo"},
    [RC_VIEW_STAT] = {"stat", "/proc/stat"},
    [RC_VIEW_UPTIME] = {"uptime", "/proc/uptime"},
    [RC_VIEW_CPU_ONLINE] = {"online", "/sys/devices/system/cpu/online"},
    [RC_VIEW_CPU_POSSIBLE] = {"possible", "/sys/devices/system/cpu/possible"},
};

const char *rc_view_name(enum rc_view v) {
  return views[v].name;
}
const char *rc_view_target(enum rc_view v) {
  return views[v].target;
}

/* A growing string. */
struct buf {
  char *s;
  size_t len, cap;
};

static void add(struct buf *b, const char *text, size_t n) {
  if (!b->s || b->len + n + 1 > b->cap) {
    b->cap = (b->len + n + 1) * 2;
    b->s = rc_xrealloc(b->s, b->cap);
  }
  memcpy(b->s + b->len, text, n);
  b->len += n;
  b->s[b->len] = '\0';
}

static void addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(struct buf *b, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n > 0) add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static char *finish(struct buf *b) {
  if (!b->s) add(b, "", 0);
  return b->s;
}

/* A "key value" line of memory.stat, in bytes; 0 when absent. */
static uint64_t stat_value(const char *stat, const char *key) {
  size_t k = strlen(key);
  for (const char *line = stat ? stat : ""; *line;) {
    if (!strncmp(line, key, k) && line[k] == ' ') return strtoull(line + k + 1, NULL, 10);
    const char *end = strchr(line, '\n');
    if (!end) break;
    line = end + 1;
  }
  return 0;
}

/* meminfo lines that describe the cell's memory: from its memory.stat (v1's hierarchical
 * "total_" key, v2's key), or 0 where the cgroup does not track it. */
static const struct {
  const char *meminfo, *v1, *v2;
} cell_lines[] = {
    {"Active(anon)", "total_active_anon", "active_anon"},
    {"Inactive(anon)", "total_inactive_anon", "inactive_anon"},
    {"Active(file)", "total_active_file", "active_file"},
    {"Inactive(file)", "total_inactive_file", "inactive_file"},
    {"Unevictable", "total_unevictable", "unevictable"},
    {"Mlocked", "total_unevictable", "unevictable"},
    {"Dirty", "total_dirty", "file_dirty"},
    {"Writeback", "total_writeback", "file_writeback"},
    {"AnonPages", "total_rss", "anon"},
    {"Mapped", "total_mapped_file", "file_mapped"},
    {"Shmem", "total_shmem", "shmem"},
    {"KReclaimable", NULL, "slab_reclaimable"},
    {"SReclaimable", NULL, "slab_reclaimable"},
    {"SUnreclaim", NULL, "slab_unreclaimable"},
    {"Slab", NULL, "slab"},
    {"AnonHugePages", "total_rss_huge", "anon_thp"},
    {"Buffers", NULL, NULL},
    {"SwapCached", NULL, NULL},
    {"SwapTotal", NULL, NULL},
    {"SwapFree", NULL, NULL},
};

static void kib_line(struct buf *b, const char *key, uint64_t bytes) {
  addf(b, "%s:%*s%8" PRIu64 " kB\n", key, (int)(15 - strlen(key)), "", bytes / 1024);
}

/* meminfo: the host's lines, with a limited cell's own numbers where they describe its
 * memory (free(1), top and runtimes that size their heaps read these). */
static char *meminfo(const struct rc_view_input *in) {
  struct buf b = {0};
  const struct rc_cell_limits *l = &in->limits;
  uint64_t limit = l->memory_limit;
  /* a limit at or above the host's memory changes nothing (as rc_cell_sysinfo) */
  const char *total = in->host_meminfo ? strstr(in->host_meminfo, "MemTotal:") : NULL;
  uint64_t host_total = total ? strtoull(total + 9, NULL, 10) * 1024 : 0;
  if (host_total && limit >= host_total) limit = 0;
  uint64_t used = l->memory_usage < limit ? l->memory_usage : limit;
  uint64_t cache = in->page_cache < used ? in->page_cache : used;
  uint64_t avail = limit - used + (l->memory_inactive_file < used ? l->memory_inactive_file : 0);
  if (avail > limit) avail = limit;
  for (const char *line = in->host_meminfo ? in->host_meminfo : ""; *line;) {
    const char *end = strchr(line, '\n');
    size_t n = end ? (size_t)(end - line) + 1 : strlen(line);
    const char *colon = memchr(line, ':', n);
    char key[64] = "";
    if (colon && (size_t)(colon - line) < sizeof(key)) memcpy(key, line, (size_t)(colon - line));
    bool replaced = limit != 0;
    if (!limit) {
      /* the host's numbers */
    } else if (!strcmp(key, "MemTotal")) {
      kib_line(&b, key, limit);
    } else if (!strcmp(key, "MemFree")) {
      kib_line(&b, key, limit - used);
    } else if (!strcmp(key, "MemAvailable")) {
      kib_line(&b, key, avail);
    } else if (!strcmp(key, "Cached")) {
      kib_line(&b, key, cache);
    } else if (!strcmp(key, "Active") || !strcmp(key, "Inactive")) {
      bool active = key[0] == 'A';
      uint64_t v =
          stat_value(in->memory_stat, active ? "total_active_anon" : "total_inactive_anon") +
          stat_value(in->memory_stat, active ? "total_active_file" : "total_inactive_file");
      if (!v)
        v = stat_value(in->memory_stat, active ? "active_anon" : "inactive_anon") +
            stat_value(in->memory_stat, active ? "active_file" : "inactive_file");
      kib_line(&b, key, v);
    } else {
      replaced = false;
      for (size_t i = 0; i < sizeof(cell_lines) / sizeof(cell_lines[0]); i++) {
        if (strcmp(key, cell_lines[i].meminfo) != 0) continue;
        uint64_t v = cell_lines[i].v1 ? stat_value(in->memory_stat, cell_lines[i].v1) : 0;
        if (!v && cell_lines[i].v2) v = stat_value(in->memory_stat, cell_lines[i].v2);
        kib_line(&b, key, v);
        replaced = true;
        break;
      }
    }
    if (!replaced) add(&b, line, n);
    line += n;
  }
  return finish(&b);
}

/* cpuinfo: the first `cpus` processor blocks (blocks are separated by blank lines). */
static char *cpuinfo(const struct rc_view_input *in) {
  struct buf b = {0};
  unsigned seen = 0;
  const char *p = in->host_cpuinfo ? in->host_cpuinfo : "";
  while (*p) {
    const char *end = strstr(p, "\n\n");
    size_t n = end ? (size_t)(end - p) + 2 : strlen(p);
    if (!strncmp(p, "processor", 9)) {
      if (seen >= in->cpus) break;
      /* renumber: the cell's CPUs are 0..cpus-1 */
      const char *colon = strchr(p, ':');
      const char *eol = strchr(p, '\n');
      if (colon && eol && colon < eol) {
        add(&b, p, (size_t)(colon - p) + 1);
        addf(&b, " %u", seen);
        add(&b, eol, n - (size_t)(eol - p));
      } else {
        add(&b, p, n);
      }
      seen++;
    } else {
      add(&b, p, n);
    }
    p += n;
  }
  return finish(&b);
}

/* stat: the first `cpus` cpuN lines (renumbered) and an aggregate "cpu" line that sums
 * them; the other lines as they are. */
static char *stat_view(const struct rc_view_input *in) {
  struct buf cpus = {0};
  unsigned long long sum[10] = {0};
  unsigned seen = 0;
  const char *text = in->host_stat ? in->host_stat : "";
  for (const char *line = text; *line && seen < in->cpus;) {
    const char *end = strchr(line, '\n');
    size_t n = end ? (size_t)(end - line) + 1 : strlen(line);
    if (!strncmp(line, "cpu", 3) && line[3] >= '0' && line[3] <= '9') {
      const char *rest = line + 3;
      while (*rest >= '0' && *rest <= '9') rest++;
      addf(&cpus, "cpu%u", seen++);
      add(&cpus, rest, n - (size_t)(rest - line));
      char *p = (char *)rest;
      for (int f = 0; f < 10; f++) sum[f] += strtoull(p, &p, 10);
    }
    line += n;
  }
  struct buf b = {0};
  for (const char *line = text; *line;) {
    const char *end = strchr(line, '\n');
    size_t n = end ? (size_t)(end - line) + 1 : strlen(line);
    if (!strncmp(line, "cpu ", 4)) {
      add(&b, "cpu ", 4);
      for (int f = 0; f < 10; f++) addf(&b, " %llu", sum[f]);
      add(&b, "\n", 1);
      if (cpus.s) add(&b, cpus.s, cpus.len);
    } else if (strncmp(line, "cpu", 3) != 0) {
      add(&b, line, n);
    }
    line += n;
  }
  free(cpus.s);
  return finish(&b);
}

char *rc_view_render(enum rc_view v, const struct rc_view_input *in) {
  struct buf b = {0};
  switch (v) {
    case RC_VIEW_MEMINFO:
      return meminfo(in);
    case RC_VIEW_CPUINFO:
      return cpuinfo(in);
    case RC_VIEW_STAT:
      return stat_view(in);
    case RC_VIEW_UPTIME:
      /* idle time is not tracked per cell: 0, as LXCFS without its load daemon */
      addf(&b, "%.2f 0.00\n", in->uptime);
      return finish(&b);
    case RC_VIEW_CPU_ONLINE:
    case RC_VIEW_CPU_POSSIBLE:
      if (in->cpus <= 1)
        addf(&b, "0\n");
      else
        addf(&b, "0-%u\n", in->cpus - 1);
      return finish(&b);
    case RC_VIEW_COUNT:
      break;
  }
  return finish(&b);
}
