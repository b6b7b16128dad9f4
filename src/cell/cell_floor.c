/* The floor of a gated cell: see include/runcell/cell_floor.h. */
#include "runcell/cell_floor.h"

#include <linux/magic.h>
#include <linux/mount.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/vfs.h>

#include "runcell/util.h"

#ifndef CONFIGFS_MAGIC
#define CONFIGFS_MAGIC 0x62656570
#endif
#ifndef FUSE_CTL_SUPER_MAGIC
#define FUSE_CTL_SUPER_MAGIC 0x65735543
#endif

/* runc's default spec (`runc spec`) and Docker's, and /proc/mtrr (writable with
 * CAP_SYS_ADMIN: it changes the host's memory caching): writes there change the host's
 * kernel (sysctls, IRQ affinity, sysrq, filesystem and bus settings). */
static const char *const floor_readonly[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", "/proc/mtrr",
};

/* ... and reads there show the host's kernel memory, keys, timers, firmware tables and
 * physical pages, or consume its log (/proc/kmsg, what the gate refuses syslog(2) for). */
static const char *const floor_masked[] = {
    "/proc/acpi",        "/proc/asound",        "/proc/kcore",
    "/proc/keys",        "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug",   "/proc/scsi",
    "/proc/kmsg",        "/proc/kpagecount",    "/proc/kpageflags",
    "/proc/kpagecgroup", "/sys/firmware",       "/sys/devices/virtual/powercap",
};

/* The kernel's own filesystems whose files are its settings (sysfs, cgroupfs, debugfs,
 * tracefs, securityfs, configfs, efivarfs, pstore, bpffs, fusectl), by type name. */
static const char *const settings_types[] = {
    "sysfs",    "cgroup",   "cgroup2", "debugfs", "tracefs", "securityfs",
    "configfs", "efivarfs", "pstore",  "bpf",     "fusectl",
};

static bool settings_magic(long type) {
  switch ((unsigned long)type) {
    case SYSFS_MAGIC:
    case CGROUP_SUPER_MAGIC:
    case CGROUP2_SUPER_MAGIC:
    case DEBUGFS_MAGIC:
    case TRACEFS_MAGIC:
    case SECURITYFS_MAGIC:
    case CONFIGFS_MAGIC:
    case EFIVARFS_MAGIC:
    case PSTOREFS_MAGIC:
    case BPF_FS_MAGIC:
    case FUSE_CTL_SUPER_MAGIC:
    case PROC_SUPER_MAGIC: /* a bind of the host's /proc (or /proc/sys): no paths kept there */
      return true;
    default:
      return false;
  }
}

static bool listed(char *const *v, size_t n, const char *path) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], path) == 0) return true;
  return false;
}

/* Adds each of want (paths under /proc or /sys) not yet in v, with "/proc" replaced by
 * proc_at (a procfs mounted elsewhere as well: its paths are kept the same way). */
static size_t add_missing(char ***v, size_t *n, const char *const *want, size_t n_want,
                          const char *proc_at) {
  size_t added = 0;
  for (size_t i = 0; i < n_want; i++) {
    char path[4096];
    if (proc_at) {
      if (strncmp(want[i], "/proc/", 6) != 0) continue;
      snprintf(path, sizeof(path), "%s%s", proc_at, want[i] + 5);
    } else {
      snprintf(path, sizeof(path), "%s", want[i]);
    }
    if (listed(*v, *n, path)) continue;
    *v = rc_xrealloc(*v, (*n + 2) * sizeof(**v));
    (*v)[(*n)++] = rc_xstrdup(path);
    (*v)[*n] = NULL;
    added++;
  }
  return added;
}

/* A mount of one of the kernel's settings filesystems, by its type or, for a bind, by
 * what its source is on (asked of the kernel, not read off the path's spelling: /sys/.,
 * //sys, a symlink to /sys/kernel). */
static bool kernel_settings_mount(const struct oci_mount *m) {
  if (m->bind) {
    struct statfs fs;
    return m->source && statfs(m->source, &fs) == 0 && settings_magic(fs.f_type);
  }
  for (size_t i = 0; m->type && i < RC_ARRAY_SIZE(settings_types); i++)
    if (!strcmp(m->type, settings_types[i])) return true;
  return false;
}

size_t rc_cell_floor_apply(struct oci_config *cfg) {
  size_t changed = 0;
  for (size_t i = 0; i < cfg->n_mounts; i++) {
    struct oci_mount *m = &cfg->mounts[i];
    if (!kernel_settings_mount(m)) continue;
    /* read-only on every mount below it too: a bind of the host's /sys brings the host's
     * cgroup hierarchies (release_agent), debugfs and tracefs with it */
    if (!(m->flags & MS_RDONLY)) changed++; /* one asked read-only is not news for the log */
    m->flags |= MS_RDONLY;
    m->clear_flags &= ~(unsigned long)MS_RDONLY;
    m->rattr_set |= MOUNT_ATTR_RDONLY;
    m->rattr_clear &= ~(uint64_t)MOUNT_ATTR_RDONLY;
  }
  if (!cfg->has_linux) return changed;
  struct oci_linux *l = &cfg->linux_;
  changed += add_missing(&l->readonly_paths, &l->n_readonly_paths, floor_readonly,
                         RC_ARRAY_SIZE(floor_readonly), NULL);
  changed += add_missing(&l->masked_paths, &l->n_masked_paths, floor_masked,
                         RC_ARRAY_SIZE(floor_masked), NULL);
  /* a procfs mounted at another place too gets the same paths kept there */
  for (size_t i = 0; i < cfg->n_mounts; i++) {
    const struct oci_mount *m = &cfg->mounts[i];
    if (m->bind || !m->type || strcmp(m->type, "proc") != 0 || !m->destination ||
        !strcmp(m->destination, "/proc"))
      continue;
    changed += add_missing(&l->readonly_paths, &l->n_readonly_paths, floor_readonly,
                           RC_ARRAY_SIZE(floor_readonly), m->destination);
    changed += add_missing(&l->masked_paths, &l->n_masked_paths, floor_masked,
                           RC_ARRAY_SIZE(floor_masked), m->destination);
  }
  return changed;
}
