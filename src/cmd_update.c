/* update: new cgroup limits for a container, from a LinuxResources JSON (--resources FILE,
 * "-" for stdin: what containerd sends) and/or runc's flags, which take precedence. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "runcell/cli.h"
#include "runcell/container.h"
#include "runcell/util.h"

static int run_update(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_update = {
    "update", "<container-id>", "update container resource constraints",
    "   --resources FILE (or - for stdin) is a LinuxResources JSON object; the flags\n"
    "   override its values. Sizes take k, m, g suffixes (512m).",
    run_update};

/* "1024", "512k", "64m", "1g" (and -1 for unlimited) in bytes. */
static int parse_size(const char *flag, const char *s, int64_t *out, struct rc_error *err) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s) return rc_err(err, 0, "update: invalid --%s \"%s\"", flag, s);
  long long mult = 1;
  if (*end) {
    const char *u = end;
    if (!strcasecmp(u, "k") || !strcasecmp(u, "kb") || !strcasecmp(u, "kib"))
      mult = 1LL << 10;
    else if (!strcasecmp(u, "m") || !strcasecmp(u, "mb") || !strcasecmp(u, "mib"))
      mult = 1LL << 20;
    else if (!strcasecmp(u, "g") || !strcasecmp(u, "gb") || !strcasecmp(u, "gib"))
      mult = 1LL << 30;
    else if (!strcasecmp(u, "b"))
      mult = 1;
    else
      return rc_err(err, 0, "update: invalid --%s \"%s\": unknown unit", flag, s);
  }
  if (v < -1 || (v > 0 && v > INT64_MAX / mult))
    return rc_err(err, 0, "update: invalid --%s \"%s\"", flag, s);
  *out = v == -1 ? -1 : v * mult;
  return 0;
}

static int parse_int(const char *flag, const char *s, int64_t *out, struct rc_error *err) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end) return rc_err(err, 0, "update: invalid --%s \"%s\"", flag, s);
  *out = v;
  return 0;
}

static int run_update(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  const char *resources = NULL, *memory = NULL, *reservation = NULL, *swap = NULL,
             *cpu_shares = NULL, *cpu_quota = NULL, *cpu_period = NULL, *cpus = NULL, *mems = NULL,
             *pids = NULL, *rt_period = NULL, *rt_runtime = NULL, *blkio_weight = NULL;
  const struct rc_opt opts[] = {
      {"resources", 'r', RC_OPT_STRING, &resources, "FILE", "LinuxResources JSON (- for stdin)"},
      {"memory", 0, RC_OPT_STRING, &memory, "BYTES", "memory limit"},
      {"memory-reservation", 0, RC_OPT_STRING, &reservation, "BYTES", "memory soft limit"},
      {"memory-swap", 0, RC_OPT_STRING, &swap, "BYTES", "memory plus swap limit"},
      {"cpu-share", 0, RC_OPT_STRING, &cpu_shares, "N", "CPU shares (relative weight)"},
      {"cpu-quota", 0, RC_OPT_STRING, &cpu_quota, "US", "CFS quota per period"},
      {"cpu-period", 0, RC_OPT_STRING, &cpu_period, "US", "CFS period"},
      {"cpu-rt-period", 0, RC_OPT_STRING, &rt_period, "US", "realtime period"},
      {"cpu-rt-runtime", 0, RC_OPT_STRING, &rt_runtime, "US", "realtime runtime"},
      {"cpuset-cpus", 0, RC_OPT_STRING, &cpus, "LIST", "CPUs to run on (0-3,5)"},
      {"cpuset-mems", 0, RC_OPT_STRING, &mems, "LIST", "memory nodes"},
      {"pids-limit", 0, RC_OPT_STRING, &pids, "N", "maximum number of processes"},
      {"blkio-weight", 0, RC_OPT_STRING, &blkio_weight, "N",
       "block I/O weight, 10 to 1000 (io.weight or io.bfq.weight on cgroup v2)"},
  };
  char **pos = NULL;
  int n_pos = 0;
  int r = rc_cli_command_args(&rc_cmd_update, opts, RC_ARRAY_SIZE(opts), argc - 1, argv + 1, &pos,
                              &n_pos, err);
  if (r != 0) return r < 0 ? -1 : 0;
  int rc = -1;
  struct oci_resources res = {0};
  cleanup_free char *text = NULL;
  if (rc_cli_expect_args("update", n_pos, 1, 1, err) < 0) goto out;
  if (resources) {
    size_t len = 0;
    const char *path = strcmp(resources, "-") == 0 ? "/dev/stdin" : resources;
    if (rc_read_file(path, 1 << 20, &text, &len, err) < 0) goto out;
    if (oci_resources_parse(text, len, "update: resources", &res, err) < 0) goto out;
  }
  int64_t v = 0; /* set by every successful parse below */
  if (memory) {
    if (parse_size("memory", memory, &v, err) < 0) goto out;
    res.has_memory = res.memory.has_limit = true;
    res.memory.limit = v;
  }
  if (reservation) {
    if (parse_size("memory-reservation", reservation, &v, err) < 0) goto out;
    res.has_memory = res.memory.has_reservation = true;
    res.memory.reservation = v;
  }
  if (swap) {
    if (parse_size("memory-swap", swap, &v, err) < 0) goto out;
    res.has_memory = res.memory.has_swap = true;
    res.memory.swap = v;
  }
  if (cpu_shares) {
    if (parse_int("cpu-share", cpu_shares, &v, err) < 0) goto out;
    res.has_cpu = res.cpu.has_shares = true;
    res.cpu.shares = (uint64_t)v;
  }
  if (cpu_quota) {
    if (parse_int("cpu-quota", cpu_quota, &v, err) < 0) goto out;
    res.has_cpu = res.cpu.has_quota = true;
    res.cpu.quota = v;
  }
  if (cpu_period) {
    if (parse_int("cpu-period", cpu_period, &v, err) < 0) goto out;
    res.has_cpu = res.cpu.has_period = true;
    res.cpu.period = (uint64_t)v;
  }
  if (rt_period) {
    if (parse_int("cpu-rt-period", rt_period, &v, err) < 0) goto out;
    res.has_cpu = res.cpu.has_realtime_period = true;
    res.cpu.realtime_period = (uint64_t)v;
  }
  if (rt_runtime) {
    if (parse_int("cpu-rt-runtime", rt_runtime, &v, err) < 0) goto out;
    res.has_cpu = res.cpu.has_realtime_runtime = true;
    res.cpu.realtime_runtime = v;
  }
  if (cpus) {
    res.has_cpu = true;
    free(res.cpu.cpus);
    res.cpu.cpus = rc_xstrdup(cpus);
  }
  if (mems) {
    res.has_cpu = true;
    free(res.cpu.mems);
    res.cpu.mems = rc_xstrdup(mems);
  }
  if (pids) {
    if (parse_int("pids-limit", pids, &v, err) < 0) goto out;
    res.has_pids_limit = true;
    res.pids_limit = v;
  }
  if (blkio_weight) {
    /* runc's flag, which runcell lacked (the cgroup v2 lane's update checks found it);
     * 0 leaves the weight as it is, as in runc. Outside blkio's range the kernel refuses
     * it on v1, and v2's io.weight conversion has no value for it. */
    if (parse_int("blkio-weight", blkio_weight, &v, err) < 0) goto out;
    if (v != 0 && (v < 10 || v > 1000)) {
      rc_err(err, 0, "update: invalid --blkio-weight \"%s\": the range is 10 to 1000",
             blkio_weight);
      goto out;
    }
    if (v != 0) {
      res.has_blkio = res.blkio.has_weight = true;
      res.blkio.weight = (uint16_t)v;
    }
  }
  if (rc_container_update(g->root, pos[0], &res, err) < 0) goto out;
  rc = 0;
out:
  oci_resources_free_fields(&res);
  free(pos);
  return rc;
}
