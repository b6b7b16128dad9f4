/* STATS: the guest's resource usage for `runcell events --stats`. The guest is the
 * container, so its totals are the container's: cpu time from /proc/stat's first line
 * (all CPUs, in USER_HZ ticks), memory from /proc/meminfo, the process count from the
 * same listing PS uses. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

/* /proc/stat counts in USER_HZ, which is 100 on every Linux architecture's ABI. */
#define USER_HZ 100ULL
#define NS_PER_TICK (1000000000ULL / USER_HZ)

/* Up to n unsigned decimal fields after p, separated by blanks; how many were read. */
static size_t parse_fields(const char *p, unsigned long long *v, size_t n) {
  size_t got = 0;
  while (got < n) {
    while (*p == ' ' || *p == '\t') p++;
    if (*p < '0' || *p > '9') break;
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(p, &end, 10);
    if (errno || end == p) break;
    v[got++] = x;
    p = end;
  }
  return got;
}

static int read_cpu(struct agent_stats *s, struct rc_error *err) {
  FILE *f = fopen("/proc/stat", "re");
  if (!f) return rc_err(err, errno, "open /proc/stat");
  /* user nice system idle iowait irq softirq */
  unsigned long long t[7] = {0};
  char line[512];
  int r = -1;
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, "cpu ", 4) == 0) {
      if (parse_fields(line + 4, t, 7) >= 3) r = 0;
    } else if (strncmp(line, "cpu", 3) == 0 && line[3] >= '0' && line[3] <= '9') {
      s->ncpus++;
    }
  }
  fclose(f);
  if (r < 0) return rc_err(err, EPROTO, "/proc/stat has no cpu line");
  s->cpu_user_ns = (t[0] + t[1]) * NS_PER_TICK;
  s->cpu_system_ns = (t[2] + t[5] + t[6]) * NS_PER_TICK;
  if (s->ncpus == 0) s->ncpus = 1;
  return 0;
}

static int read_memory(struct agent_stats *s, struct rc_error *err) {
  FILE *f = fopen("/proc/meminfo", "re");
  if (!f) return rc_err(err, errno, "open /proc/meminfo");
  static const struct {
    const char *key;
    size_t offset;
  } keys[] = {{"MemTotal:", offsetof(struct agent_stats, mem_total)},
              {"MemFree:", offsetof(struct agent_stats, mem_free)},
              {"MemAvailable:", offsetof(struct agent_stats, mem_available)},
              {"Cached:", offsetof(struct agent_stats, mem_cached)}};
  char line[256];
  while (fgets(line, sizeof(line), f)) {
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
      size_t k = strlen(keys[i].key);
      unsigned long long kb = 0;
      if (strncmp(line, keys[i].key, k) == 0 && parse_fields(line + k, &kb, 1) == 1)
        *(uint64_t *)((char *)s + keys[i].offset) = kb * 1024;
    }
  }
  fclose(f);
  if (s->mem_total == 0) return rc_err(err, EPROTO, "/proc/meminfo has no MemTotal");
  /* the kernel's numbers are consistent; clamp anyway so the host's check never trips */
  if (s->mem_free > s->mem_total) s->mem_free = s->mem_total;
  if (s->mem_available > s->mem_total) s->mem_available = s->mem_total;
  if (s->mem_cached > s->mem_total) s->mem_cached = s->mem_total;
  return 0;
}

int agent_read_stats(struct agent_stats *s, struct rc_error *err) {
  uint32_t request = s->request;
  memset(s, 0, sizeof(*s));
  s->request = request;
  if (read_cpu(s, err) < 0 || read_memory(s, err) < 0) return -1;
  struct agent_ps_reply ps = {0};
  if (agent_list_processes(&ps, err) == 0) s->nprocs = ps.n;
  agent_ps_reply_free(&ps);
  s->pids_limit = agent_pids_limit();
  return 0;
}
