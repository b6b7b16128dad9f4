/* The floor of a gated cell: see include/runcell/cell_floor.h. */
#include "runcell/cell_floor.h"

#include <stdbool.h>
#include <string.h>
#include <sys/mount.h>

#include "runcell/util.h"

/* runc's default spec (`runc spec`) and Docker's: writes there change the host's kernel
 * (sysctls, IRQ affinity, sysrq, filesystem and bus settings). */
static const char *const floor_readonly[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

/* ... and reads there show the host's kernel memory, keys, timers and firmware tables. */
static const char *const floor_masked[] = {
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
};

static bool listed(char *const *v, size_t n, const char *path) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], path) == 0) return true;
  return false;
}

static size_t add_missing(char ***v, size_t *n, const char *const *want, size_t n_want) {
  size_t added = 0;
  for (size_t i = 0; i < n_want; i++) {
    if (listed(*v, *n, want[i])) continue;
    *v = rc_xrealloc(*v, (*n + 2) * sizeof(**v));
    (*v)[(*n)++] = rc_xstrdup(want[i]);
    (*v)[*n] = NULL;
    added++;
  }
  return added;
}

/* sysfs and cgroupfs, mounted or (without a network namespace of the container's, or
 * rootless) bound from the host's /sys */
static bool kernel_settings_mount(const struct oci_mount *m) {
  if (m->type &&
      (!strcmp(m->type, "sysfs") || !strcmp(m->type, "cgroup") || !strcmp(m->type, "cgroup2")))
    return true;
  return m->bind && m->source && (!strcmp(m->source, "/sys") || !strcmp(m->source, "/sys/"));
}

size_t rc_cell_floor_apply(struct oci_config *cfg) {
  size_t changed = 0;
  for (size_t i = 0; i < cfg->n_mounts; i++) {
    struct oci_mount *m = &cfg->mounts[i];
    if (!kernel_settings_mount(m) || (m->flags & MS_RDONLY)) continue;
    m->flags |= MS_RDONLY;
    m->clear_flags &= ~(unsigned long)MS_RDONLY;
    changed++;
  }
  if (!cfg->has_linux) return changed;
  struct oci_linux *l = &cfg->linux_;
  changed += add_missing(&l->readonly_paths, &l->n_readonly_paths, floor_readonly,
                         RC_ARRAY_SIZE(floor_readonly));
  changed +=
      add_missing(&l->masked_paths, &l->n_masked_paths, floor_masked, RC_ARRAY_SIZE(floor_masked));
  return changed;
}
