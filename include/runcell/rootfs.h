/* Building the container's root filesystem inside its new mount namespace: mounts in
 * order, default devices and /dev symlinks, linux.devices, pivot_root (or chroot with
 * --no-pivot), rootfsPropagation, readonly root, maskedPaths and readonlyPaths.
 * Every destination is resolved inside the rootfs (openat2 RESOLVE_IN_ROOT), so a
 * symlink in an image cannot redirect a mount or a device node to the host. */
#ifndef RUNCELL_ROOTFS_H
#define RUNCELL_ROOTFS_H

#include <stdbool.h>

#include "runcell/error.h"
#include "runcell/oci.h"

struct rc_rootfs_opts {
  const struct oci_config *cfg;
  const char *rootfs; /* absolute host path of the rootfs (bundle-relative resolved) */
  const char *bundle; /* absolute bundle dir; relative bind sources are relative to it */
  bool no_pivot;      /* --no-pivot: chroot instead of pivot_root */
  bool new_userns;    /* in a new user namespace: device nodes are bind-mounted */
  bool new_netns;     /* sysfs may only be mounted when a new netns was made */
  bool new_cgroupns;  /* cgroup mounts are fresh mounts, rooted at the namespace's root */
  /* Called by rc_rootfs_finalize as soon as the container's root is the process's root,
   * before readonlyPaths, maskedPaths and every read-only remount: the init's terminal and
   * its /dev/console (rootfs.c says why then). NULL: nothing. */
  int (*after_pivot)(void *arg, struct rc_error *err);
  void *after_pivot_arg;
};

/* Phase 1, run in the container's new mount namespace before createContainer hooks:
 * makes / recursively slave (or rootfsPropagation), bind-mounts the rootfs onto itself,
 * performs every mount in config order, creates devices and /dev symlinks. */
int rc_rootfs_prepare(const struct rc_rootfs_opts *o, struct rc_error *err);

/* Phase 2, after createContainer hooks: pivot_root (or chroot), applies
 * rootfsPropagation, calls after_pivot, then readonlyPaths, maskedPaths, the deferred
 * read-only mounts and the read-only root. After it the process's / and cwd are the
 * container's root. */
int rc_rootfs_finalize(const struct rc_rootfs_opts *o, struct rc_error *err);

/* For runcell's own confined processes (the image builder, the jailed VMM), in a mount
 * namespace of their own whose mounts are private: makes the mount the process stands in
 * (its cwd, a mount point) the namespace's root. pivot_root(".", ".") with the old root
 * detached, or where / is an initramfs (pivot_root answers EINVAL) the mount moved over /
 * and chrooted into, which confines as well for a process that keeps no CAP_SYS_ADMIN or
 * CAP_SYS_CHROOT and no descriptor of the old tree. Leaves the cwd at the new /. */
int rc_rootfs_enter_cwd(struct rc_error *err);

/* Opens path (absolute, in container terms) inside the root dirfd with
 * RESOLVE_IN_ROOT semantics (falls back to a component-by-component walk that refuses to
 * leave the root where openat2 is missing). flags as for openat. */
int rc_open_in_root(int rootfd, const char *path, int flags, mode_t mode, struct rc_error *err);

/* Creates every missing directory of path inside root (mkdir -p, resolved in root), and
 * returns an O_PATH fd to the final directory. */
int rc_mkdir_in_root(int rootfd, const char *path, mode_t mode, struct rc_error *err);

#endif
