/* libFuzzer target: the cell's file views rendered from arbitrary host files and limits.
 * The host's /proc files are trusted in practice, but a renderer that walks text must not
 * depend on it being well formed (a kernel may add fields, a file may be cut short).
 *
 * Input: a 75-byte header (missing bytes read as 0), little-endian:
 *   u8 view, u16 cpus, u64 memory_limit, memory_usage, memory_cache,
 *   memory_inactive_file, cpu_quota, cpu_period, pids, page_cache, f64 uptime;
 * then memory.stat, the host's meminfo, cpuinfo and stat, separated by NUL bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>

#include "runcell/cell_kernel.h"
#include "runcell/views.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER_SIZE 75

struct reader {
  const uint8_t *p;
  size_t left;
};

static uint64_t take(struct reader *r, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    if (i < r->left) v |= (uint64_t)r->p[i] << (8 * i);
  size_t used = n < r->left ? n : r->left;
  r->p += used;
  r->left -= used;
  return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct reader r = {data, size < HEADER_SIZE ? size : HEADER_SIZE};
  struct rc_view_input in = {0};
  enum rc_view v = (enum rc_view)(take(&r, 1) % RC_VIEW_COUNT);
  unsigned allowed = (unsigned)take(&r, 2);
  in.limits.memory_limit = take(&r, 8);
  in.limits.memory_usage = take(&r, 8);
  in.limits.memory_cache = take(&r, 8);
  in.limits.memory_inactive_file = take(&r, 8);
  in.limits.cpu_quota = take(&r, 8);
  in.limits.cpu_period = take(&r, 8);
  in.limits.pids = take(&r, 8);
  in.page_cache = take(&r, 8);
  uint64_t uptime_bits = take(&r, 8);
  memcpy(&in.uptime, &uptime_bits, sizeof(in.uptime));
  in.cpus = rc_cell_cpu_count(&in.limits, allowed);

  /* the four texts, NUL-terminated like the files the cell kernel reads */
  size_t rest = size > HEADER_SIZE ? size - HEADER_SIZE : 0;
  char *text = malloc(rest + 1);
  if (!text) abort();
  if (rest) memcpy(text, data + HEADER_SIZE, rest);
  text[rest] = '\0';
  const char *field[4] = {"", "", "", ""};
  size_t at = 0;
  for (int i = 0; i < 4 && at <= rest; i++) {
    field[i] = text + at;
    at += strlen(text + at) + 1;
  }
  in.memory_stat = field[0];
  in.host_meminfo = field[1];
  in.host_cpuinfo = field[2];
  in.host_stat = field[3];

  char *out = rc_view_render(v, &in);
  if (!out) abort();
  free(out);
  /* the same limits answer sysinfo */
  struct sysinfo host = {.totalram = (unsigned long)in.limits.memory_usage,
                         .mem_unit = (unsigned)(in.limits.pids & 0xffff)},
                 cell;
  rc_cell_sysinfo(&host, &in.limits, &cell);
  free(text);
  return 0;
}
