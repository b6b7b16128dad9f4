/* The cell's resources as its cgroup limits them: what the cell kernel answers with. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runcell/cell_kernel.h"
#include "runcell/cgroups.h"
#include "runcell/util.h"

/* A decimal control file value; "max" (v2) and missing files count as no limit. */
static uint64_t read_u64(const char *path, const char *controller, const char *v1, const char *v2) {
  cleanup_free char *text = NULL;
  struct rc_error ignore;
  if (rc_cgroup_read_control(path, controller, v1, v2, &text, &ignore) < 0) return 0;
  if (!strncmp(text, "max", 3)) return 0;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno || end == text) return 0;
  return (uint64_t)v;
}

/* One "key value" line of memory.stat. */
static uint64_t stat_value(const char *stat, const char *key) {
  size_t k = strlen(key);
  for (const char *line = stat; line && *line; line = strchr(line, '\n')) {
    if (*line == '\n') line++;
    if (!strncmp(line, key, k) && line[k] == ' ') return strtoull(line + k + 1, NULL, 10);
  }
  return 0;
}

int rc_cell_limits_read(const char *cgroup_path, struct rc_cell_limits *out, struct rc_error *err) {
  (void)err;
  *out = (struct rc_cell_limits){0};
  out->memory_limit = read_u64(cgroup_path, "memory", "memory.limit_in_bytes", "memory.max");
  /* v1 reports "no limit" as the largest page-aligned value */
  if (out->memory_limit >= (UINT64_C(1) << 62)) out->memory_limit = 0;
  uint64_t usage = read_u64(cgroup_path, "memory", "memory.usage_in_bytes", "memory.current");
  cleanup_free char *stat = NULL;
  struct rc_error ignore;
  uint64_t inactive_file = 0;
  if (rc_cgroup_read_control(cgroup_path, "memory", "memory.stat", "memory.stat", &stat, &ignore) ==
      0) {
    inactive_file = stat_value(stat, "total_inactive_file");
    if (!inactive_file) inactive_file = stat_value(stat, "inactive_file");
    out->memory_cache = stat_value(stat, "total_cache");
    if (!out->memory_cache) out->memory_cache = stat_value(stat, "file");
  }
  out->memory_usage = usage;
  out->memory_inactive_file = inactive_file;

  /* v2: cpu.max is "QUOTA PERIOD" or "max PERIOD"; v1: cfs_quota_us is -1 without one */
  cleanup_free char *cpu_max = NULL;
  if (rc_cgroup_read_control(cgroup_path, "cpu", NULL, "cpu.max", &cpu_max, &ignore) == 0) {
    char *end = NULL;
    errno = 0;
    unsigned long long quota = strtoull(cpu_max, &end, 10);
    if (!errno && end != cpu_max && *end == ' ') {
      out->cpu_quota = quota;
      out->cpu_period = strtoull(end + 1, NULL, 10);
    }
  } else {
    cleanup_free char *q = NULL;
    if (rc_cgroup_read_control(cgroup_path, "cpu", "cpu.cfs_quota_us", NULL, &q, &ignore) == 0) {
      char *end = NULL;
      errno = 0;
      long long quota = strtoll(q, &end, 10);
      if (!errno && end != q && quota > 0) {
        out->cpu_quota = (uint64_t)quota;
        out->cpu_period = read_u64(cgroup_path, "cpu", "cpu.cfs_period_us", NULL);
      }
    }
  }
  out->pids = read_u64(cgroup_path, "pids", "pids.current", "pids.current");
  return 0;
}

unsigned rc_cell_cpu_count(const struct rc_cell_limits *l, unsigned allowed) {
  if (!l->cpu_quota || !l->cpu_period || allowed == 0) return allowed;
  uint64_t n = (l->cpu_quota + l->cpu_period - 1) / l->cpu_period;
  if (n < 1) n = 1;
  return n < allowed ? (unsigned)n : allowed;
}

void rc_cell_sysinfo(const struct sysinfo *host, const struct rc_cell_limits *l,
                     struct sysinfo *out) {
  *out = *host;
  uint64_t unit = host->mem_unit ? host->mem_unit : 1;
  uint64_t host_total = (uint64_t)host->totalram * unit;
  if (l->memory_limit && l->memory_limit < host_total) {
    uint64_t used = l->memory_usage < l->memory_limit ? l->memory_usage : l->memory_limit;
    out->totalram = (unsigned long)(l->memory_limit / unit);
    out->freeram = (unsigned long)((l->memory_limit - used) / unit);
    out->sharedram = 0;
    out->bufferram = 0;
    /* a limited cell is not offered the host's swap */
    out->totalswap = 0;
    out->freeswap = 0;
  }
  if (l->pids) out->procs = (unsigned short)(l->pids > 65535 ? 65535 : l->pids);
}

double rc_cell_start_time(pid_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  cleanup_free char *st = NULL;
  struct rc_error ignore;
  if (rc_read_file(path, 4096, &st, NULL, &ignore) < 0) return -1;
  /* field 22, starttime in clock ticks, counted after the command's closing parenthesis
   * (the command itself may hold spaces and parentheses) */
  const char *p = strrchr(st, ')');
  unsigned long long start = 0;
  for (int field = 2; p && *p && field < 22; field++) {
    p = strchr(p + 1, ' ');
    if (p && field == 21) start = strtoull(p + 1, NULL, 10);
  }
  long hz = sysconf(_SC_CLK_TCK);
  return start && hz > 0 ? (double)start / (double)hz : -1;
}

double rc_cell_uptime(double started) {
  struct timespec now;
  clock_gettime(CLOCK_BOOTTIME, &now);
  double up = (double)now.tv_sec + (double)now.tv_nsec / 1e9 - started;
  return started >= 0 && up > 0 ? up : 0;
}
