/* The cell kernel's resource views: CPU counts from quotas, sysinfo from limits. */
#include <stdint.h>

#include "runcell/cell_kernel.h"
#include "unit.h"

static void cpu_counts(void) {
  struct rc_cell_limits none = {0};
  CHECK(rc_cell_cpu_count(&none, 8) == 8);
  struct rc_cell_limits half = {.cpu_quota = 50000, .cpu_period = 100000};
  CHECK(rc_cell_cpu_count(&half, 8) == 1);
  struct rc_cell_limits one_and_half = {.cpu_quota = 150000, .cpu_period = 100000};
  CHECK(rc_cell_cpu_count(&one_and_half, 8) == 2);
  CHECK(rc_cell_cpu_count(&one_and_half, 1) == 1); /* never more than the cell may use */
  struct rc_cell_limits four = {.cpu_quota = 400000, .cpu_period = 100000};
  CHECK(rc_cell_cpu_count(&four, 2) == 2);
  CHECK(rc_cell_cpu_count(&four, 16) == 4);
  struct rc_cell_limits no_period = {.cpu_quota = 400000};
  CHECK(rc_cell_cpu_count(&no_period, 16) == 16);
}

static void sysinfo_view(void) {
  struct sysinfo host = {.totalram = 8ul << 30,
                         .freeram = 4ul << 30,
                         .sharedram = 1 << 20,
                         .bufferram = 1 << 20,
                         .totalswap = 2ul << 30,
                         .freeswap = 2ul << 30,
                         .procs = 300,
                         .mem_unit = 1,
                         .uptime = 1234};
  struct sysinfo v;
  struct rc_cell_limits l = {.memory_limit = 256u << 20, .memory_usage = 56u << 20, .pids = 3};
  rc_cell_sysinfo(&host, &l, &v);
  CHECK(v.totalram == 256ul << 20);
  CHECK(v.freeram == 200ul << 20);
  CHECK(v.totalswap == 0 && v.freeswap == 0);
  CHECK(v.procs == 3);
  CHECK(v.uptime == 1234);

  /* usage above the limit (the kernel lets it overshoot briefly): nothing free, no wrap */
  struct rc_cell_limits over = {.memory_limit = 256u << 20, .memory_usage = 300u << 20};
  rc_cell_sysinfo(&host, &over, &v);
  CHECK(v.freeram == 0);

  /* a limit above the host's memory, or none: the host's numbers */
  struct rc_cell_limits big = {.memory_limit = 64ul << 30};
  rc_cell_sysinfo(&host, &big, &v);
  CHECK(v.totalram == host.totalram && v.freeram == host.freeram);
  CHECK(v.procs == host.procs);

  /* mem_unit is kept: values are in the host's units */
  struct sysinfo units = host;
  units.mem_unit = 4096;
  units.totalram = (8ul << 30) / 4096;
  rc_cell_sysinfo(&units, &l, &v);
  CHECK(v.mem_unit == 4096);
  CHECK(v.totalram == (256ul << 20) / 4096);
}

UNIT_MAIN("cell_view", UNIT_CASE(cpu_counts), UNIT_CASE(sysinfo_view))
