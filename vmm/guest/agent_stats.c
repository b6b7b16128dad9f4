/* STATS: the guest's resource usage for `runcell events --stats`. The guest is the
 * container, so its totals are the container's: cpu time from /proc/stat's first line
 * (all CPUs, in USER_HZ ticks), memory from /proc/meminfo, the process count from the
 * same listing PS uses. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

/* /proc/stat counts in USER_HZ, which is 100 on every Linux architecture's ABI. */
#define USER_HZ 100ULL
#define NS_PER_TICK (1000000000ULL / USER_HZ)

static int read_cpu(struct agent_stats *s, struct rc_error *err) {
  FILE *f = fopen("/proc/stat", "re");
  if (!f) return rc_err(err, errno, "open /proc/stat");
  unsigned long long user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
  char line[512];
  int r = -1;
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, "cpu ", 4) == 0) {
      if (sscanf(line + 4, "%llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle, &iowait,
                 &irq, &softirq) >= 3)
        r = 0;
    } else if (strncmp(line, "cpu", 3) == 0 && line[3] >= '0' && line[3] <= '9') {
      s->ncpus++;
    }
  }
  fclose(f);
  if (r < 0) return rc_err(err, EPROTO, "/proc/stat has no cpu line");
  s->cpu_user_ns = (user + nice) * NS_PER_TICK;
  s->cpu_system_ns = (sys + irq + softirq) * NS_PER_TICK;
  if (s->ncpus == 0) s->ncpus = 1;
  return 0;
}

static int read_memory(struct agent_stats *s, struct rc_error *err) {
  FILE *f = fopen("/proc/meminfo", "re");
  if (!f) return rc_err(err, errno, "open /proc/meminfo");
  char line[256];
  while (fgets(line, sizeof(line), f)) {
    char key[64];
    unsigned long long kb = 0;
    if (sscanf(line, "%63[^:]: %llu", key, &kb) != 2) continue;
    if (!strcmp(key, "MemTotal"))
      s->mem_total = kb * 1024;
    else if (!strcmp(key, "MemFree"))
      s->mem_free = kb * 1024;
    else if (!strcmp(key, "MemAvailable"))
      s->mem_available = kb * 1024;
    else if (!strcmp(key, "Cached"))
      s->mem_cached = kb * 1024;
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
  return 0;
}
