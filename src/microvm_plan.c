/* What a microVM is made of: the guest kernel and agent initrd to boot, and how many vCPUs
 * and how much memory the container's limits give it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runcell/log.h"
#include "runcell/microvm.h"
#include "runcell/util.h"

const char *rc_microvm_cache_dir(void) {
  const char *d = getenv("RUNCELL_CACHE_DIR");
  return d && *d == '/' ? d : "/var/cache/runcell";
}

static bool is_regular_file(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The directory of the running binary, for assets installed or built beside it. */
static int exe_dir(char *out, size_t size) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return -1;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (!slash) return -1;
  *slash = '\0';
  snprintf(out, size, "%s", exe);
  return 0;
}

/* The newest kernel build.sh left in the cache (its directories are named by a key; the
 * "latest" link points at the last one built). */
static bool cached_kernel(char *out, size_t size) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/guest-kernel/latest/vmlinux", rc_microvm_cache_dir());
  if (is_regular_file(path)) {
    snprintf(out, size, "%s", path);
    return true;
  }
  return false;
}

static int find_one(const char *env, const char *const *candidates, size_t n, const char *what,
                    const char *hint, char *out, struct rc_error *err) {
  const char *e = getenv(env);
  if (e && *e) {
    if (!is_regular_file(e))
      return rc_err(err, errno ? errno : ENOENT, "%s %s (from $%s) is not a readable file", what, e,
                    env);
    snprintf(out, PATH_MAX, "%s", e);
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (candidates[i][0] && is_regular_file(candidates[i])) {
      snprintf(out, PATH_MAX, "%s", candidates[i]);
      return 0;
    }
  }
  return rc_err(err, ENOENT, "microVM mode: no %s found (set $%s, or %s)", what, env, hint);
}

int rc_microvm_find_assets(struct rc_microvm_plan *plan, struct rc_error *err) {
  char dir[PATH_MAX] = "";
  (void)exe_dir(dir, sizeof(dir));
  char k1[PATH_MAX] = "", k2[PATH_MAX] = "", i1[PATH_MAX] = "", i2[PATH_MAX] = "";
  if (*dir) {
    snprintf(k1, sizeof(k1), "%s/../lib/runcell/vmlinux", dir);
    snprintf(i1, sizeof(i1), "%s/guest/agent.initrd", dir);
    snprintf(i2, sizeof(i2), "%s/../lib/runcell/agent.initrd", dir);
  }
  (void)cached_kernel(k2, sizeof(k2));
  const char *kernels[] = {k1, k2};
  const char *initrds[] = {i1, i2};
  if (find_one("RUNCELL_GUEST_KERNEL", kernels, 2, "guest kernel",
               "build it with vmm/kernel/build.sh", plan->kernel, err) < 0)
    return -1;
  return find_one("RUNCELL_AGENT_INITRD", initrds, 2, "guest agent initrd",
                  "build runcell with CMake and install it", plan->initrd, err);
}

/* Number of CPUs in a cpuset list such as "0-3,8". 0 when it does not parse. */
static unsigned cpuset_count(const char *list) {
  unsigned n = 0;
  const char *p = list;
  while (*p) {
    char *end;
    unsigned long a = strtoul(p, &end, 10);
    if (end == p) return 0;
    unsigned long b = a;
    if (*end == '-') {
      p = end + 1;
      b = strtoul(p, &end, 10);
      if (end == p || b < a) return 0;
    }
    n += (unsigned)(b - a + 1);
    p = end;
    if (*p == ',')
      p++;
    else if (*p)
      return 0;
  }
  return n;
}

int rc_microvm_size(const struct oci_config *cfg, struct rc_microvm_plan *plan,
                    struct rc_error *err) {
  plan->vcpus = 1;
  plan->mem_bytes = RC_MICROVM_DEFAULT_MEM;
  if (!cfg->has_linux || !cfg->linux_.has_resources) return 0;
  const struct oci_resources *r = &cfg->linux_.resources;
  if (r->has_cpu) {
    const struct oci_cpu *c = &r->cpu;
    /* A quota of 1.5 CPUs gets 2 vCPUs; the cgroup keeps the VMM to the quota itself. */
    if (c->has_quota && c->quota > 0) {
      uint64_t period = c->has_period && c->period ? c->period : 100000;
      plan->vcpus = (unsigned)(((uint64_t)c->quota + period - 1) / period);
    }
    if (c->cpus && *c->cpus) {
      unsigned n = cpuset_count(c->cpus);
      if (n == 0) return rc_err(err, 0, "linux.resources.cpu.cpus: cannot parse \"%s\"", c->cpus);
      if (!(c->has_quota && c->quota > 0) || n < plan->vcpus) plan->vcpus = n;
    }
    if (plan->vcpus == 0) plan->vcpus = 1;
    if (plan->vcpus > RC_MICROVM_MAX_VCPUS) plan->vcpus = RC_MICROVM_MAX_VCPUS;
  }
  if (r->has_memory && r->memory.has_limit && r->memory.limit > 0) {
    uint64_t limit = (uint64_t)r->memory.limit;
    if (limit < RC_MICROVM_MIN_GUEST_MEM + RC_MICROVM_VMM_OVERHEAD)
      return rc_err(err, 0,
                    "linux.resources.memory.limit %llu is too small for a microVM: it needs at "
                    "least %llu MiB (%llu MiB of guest memory and %llu MiB for the VMM)",
                    (unsigned long long)limit,
                    (RC_MICROVM_MIN_GUEST_MEM + RC_MICROVM_VMM_OVERHEAD) >> 20,
                    RC_MICROVM_MIN_GUEST_MEM >> 20, RC_MICROVM_VMM_OVERHEAD >> 20);
    /* whole MiB: the guest's memory map is built from it */
    plan->mem_bytes = (limit - RC_MICROVM_VMM_OVERHEAD) & ~((1ULL << 20) - 1);
  }
  return 0;
}

int rc_microvm_plan(const struct oci_config *cfg, const char *rootfs, struct rc_microvm_plan *plan,
                    struct rc_error *err) {
  memset(plan, 0, sizeof(*plan));
  /* the guest agent does not carry these yet: said, not silently dropped */
  if (cfg->process.scheduler_policy)
    rc_warn("microVM: process.scheduler (%s) is not applied in the guest yet",
            cfg->process.scheduler_policy);
  if (cfg->process.has_io_priority)
    rc_warn("microVM: process.ioPriority is not applied in the guest yet");
  if (rc_microvm_find_assets(plan, err) < 0) return -1;
  if (rc_microvm_size(cfg, plan, err) < 0) return -1;
  return rc_microvm_disks(cfg, rootfs, plan, err);
}
