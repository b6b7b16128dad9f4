/* The cell's file views, rendered from fixed host files and limits. */
#include <stdlib.h>
#include <string.h>

#include "runcell/views.h"
#include "unit.h"

static const char host_meminfo[] =
    "MemTotal:        8000000 kB\n"
    "MemFree:         4000000 kB\n"
    "MemAvailable:    6000000 kB\n"
    "Buffers:           10000 kB\n"
    "Cached:          1500000 kB\n"
    "Active(file):     700000 kB\n"
    "SwapTotal:       2000000 kB\n"
    "SwapFree:        2000000 kB\n"
    "HugePages_Total:       0\n";

static void meminfo_of_a_limited_cell(void) {
  struct rc_view_input in = {
      .limits = {.memory_limit = 256u << 20,
                 .memory_usage = 64u << 20,
                 .memory_inactive_file = 8u << 20},
      .page_cache = 16u << 20,
      .memory_stat = "total_active_file 4194304\ntotal_inactive_file 8388608\n",
      .host_meminfo = host_meminfo,
      .cpus = 1};
  char *t = rc_view_render(RC_VIEW_MEMINFO, &in);
  CHECK_CONTAINS(t, "MemTotal:         262144 kB\n");
  CHECK_CONTAINS(t, "MemFree:          196608 kB\n");
  CHECK_CONTAINS(t, "MemAvailable:     204800 kB\n"); /* free + reclaimable cache */
  CHECK_CONTAINS(t, "Buffers:               0 kB\n");
  CHECK_CONTAINS(t, "Cached:            16384 kB\n");
  CHECK_CONTAINS(t, "Active(file):       4096 kB\n");
  CHECK_CONTAINS(t, "SwapTotal:             0 kB\n");
  CHECK_CONTAINS(t, "HugePages_Total:       0\n"); /* lines about the host stay */
  free(t);
}

static void meminfo_without_a_limit_is_the_hosts(void) {
  struct rc_view_input in = {.host_meminfo = host_meminfo, .cpus = 2};
  char *t = rc_view_render(RC_VIEW_MEMINFO, &in);
  CHECK_STR_EQ(t, host_meminfo);
  free(t);
  in.limits.memory_limit = 64ull << 30; /* above the host's memory: no change */
  t = rc_view_render(RC_VIEW_MEMINFO, &in);
  CHECK_STR_EQ(t, host_meminfo);
  free(t);
}

static void cpus_are_cut_and_renumbered(void) {
  const char cpuinfo[] =
      "processor\t: 0\nmodel name\t: X\n\nprocessor\t: 1\nmodel name\t: X\n\n"
      "processor\t: 2\nmodel name\t: X\n\n";
  const char stat[] =
      "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 1 0 2 30 0 0 0 0 0 0\n"
      "cpu1 2 0 3 30 0 0 0 0 0 0\ncpu2 7 0 5 40 0 0 0 0 0 0\nctxt 99\n";
  struct rc_view_input in = {.host_cpuinfo = cpuinfo, .host_stat = stat, .cpus = 2};
  char *t = rc_view_render(RC_VIEW_CPUINFO, &in);
  CHECK_STR_EQ(t, "processor\t: 0\nmodel name\t: X\n\nprocessor\t: 1\nmodel name\t: X\n\n");
  free(t);
  t = rc_view_render(RC_VIEW_STAT, &in);
  CHECK_STR_EQ(t,
               "cpu  3 0 5 60 0 0 0 0 0 0\ncpu0 1 0 2 30 0 0 0 0 0 0\n"
               "cpu1 2 0 3 30 0 0 0 0 0 0\nctxt 99\n");
  free(t);
  t = rc_view_render(RC_VIEW_CPU_ONLINE, &in);
  CHECK_STR_EQ(t, "0-1\n");
  free(t);
  in.cpus = 1;
  t = rc_view_render(RC_VIEW_CPU_POSSIBLE, &in);
  CHECK_STR_EQ(t, "0\n");
  free(t);
}

static void uptime_is_the_cells(void) {
  struct rc_view_input in = {.uptime = 12.345, .cpus = 1};
  char *t = rc_view_render(RC_VIEW_UPTIME, &in);
  CHECK_STR_EQ(t, "12.35 0.00\n");
  free(t);
  CHECK_STR_EQ(rc_view_target(RC_VIEW_CPU_ONLINE), "/sys/devices/system/cpu/online");
}

UNIT_MAIN("views", UNIT_CASE(meminfo_of_a_limited_cell),
          UNIT_CASE(meminfo_without_a_limit_is_the_hosts), UNIT_CASE(cpus_are_cut_and_renumbered),
          UNIT_CASE(uptime_is_the_cells))
