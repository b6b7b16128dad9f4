/* Internals shared by the rootfs files (path_in_root.c, mounts.c, devices.c, rootfs.c).
 * Not part of the public API; the unit test includes it to reach the fallback walker. */
#ifndef RUNCELL_ROOTFS_INTERNAL_H
#define RUNCELL_ROOTFS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "runcell/error.h"
#include "runcell/oci.h"
#include "runcell/rootfs.h"

/* Everything a mount or device step needs: the options, an O_PATH fd of the rootfs (the
 * self-bind mount, so mounts made through it are visible in the container) and the
 * canonical host path of the rootfs, used to check where an fd really points. */
struct rc_mount_ctx {
  const struct rc_rootfs_opts *o;
  int rootfd;
  const char *root_real; /* "/" after pivot_root */
};

/* "/proc/self/fd/N": mount(2) only takes paths, and this one names exactly the object an
 * fd was opened on, so a symlink swapped in after we resolved the path cannot redirect
 * the mount (CVE-2021-30465). */
#define RC_FD_PATH_MAX 32
void rc_fd_path(char buf[RC_FD_PATH_MAX], int fd);

/* The component-by-component resolver used when openat2 is unavailable; exposed so the
 * tests can exercise it on kernels that do have openat2. Returns an fd or -1 with errno
 * set. mkdirs: create missing directories (mode) along the way, including the last one,
 * and return an O_PATH fd of the final directory. */
int rc_walk_in_root(int rootfd, const char *path, int flags, mode_t mode, bool mkdirs);

/* Tests only: behave as if openat2 were missing, so every lookup takes the walker. */
void rc_path_in_root_force_fallback(bool on);

/* Opens path in root as an O_PATH fd, creating it when missing: a directory when dir is
 * true, an empty file otherwise (bind mounts of files need a file to mount on). */
int rc_mount_target(int rootfd, const char *path, bool dir, struct rc_error *err);

/* MS_BIND|MS_REMOUNT of the mount at target with the per-mount flags in flags, keeping
 * nosuid/nodev/noexec/atime flags the mount already has unless clear names them: in a
 * user namespace those are locked and dropping them fails with EPERM. On EPERM it retries
 * carrying every current flag. Returns 0, or -1 with errno set. */
int rc_remount_keep_locked(const char *target, unsigned long flags, unsigned long clear);

/* Makes the mount fd refers to read-only without touching its other flags (mount_setattr,
 * falling back to rc_remount_keep_locked through /proc/self/fd). -1 with errno set. */
int rc_make_readonly(int fd, bool recursive);

/* Performs one config mount inside the rootfs. */
int rc_mount_one(const struct rc_mount_ctx *c, const struct oci_mount *m, struct rc_error *err);

/* Default devices, linux.devices, /dev/ptmx and the /dev symlinks; nothing when /dev is
 * bind-mounted from the config (its contents are then the caller's). */
int rc_setup_dev(const struct rc_mount_ctx *c, struct rc_error *err);

/* Whether the config binds /dev from the host (or elsewhere): its contents are then the
 * caller's, and creating nodes, links or /dev/console there would write into the source
 * directory. */
bool rc_dev_is_bound(const struct oci_config *cfg);

/* Binds the mount tree at src (recursive: with its submounts; its top read-only when
 * asked, keeping what the kernel locked) onto dst, both descriptors, never a path.
 * 0: done; 1: this kernel (or an outer filter) has not got the calls and nothing was
 * attached, so the caller may take the /proc/self/fd way; -1 with errno: failed. */
int rc_bind_by_fd(int src, int dst, bool recursive, bool rdonly);

/* After pivot_root: the container's /proc must be procfs before anything is mounted
 * through /proc/self/fd/N paths (the fallback of rc_bind_by_fd). */
int rc_check_container_proc(struct rc_error *err);

/* Whether a mount is a bind mount (the "bind"/"rbind" option or type "bind"). */
bool rc_mount_is_bind(const struct oci_mount *m);

/* Whether read-only is applied to this mount only in rc_rootfs_finalize: tmpfs and /dev
 * are mounted writable so later mount points and device nodes can be created in them. */
bool rc_mount_ro_deferred(const struct oci_mount *m);

/* Lexically cleans an absolute container path into out ("//a/./b/" -> "/a/b"; ".." is
 * kept as a component to be resolved in root). */
void rc_clean_path(const char *in, char *out, size_t len);

/* One line of /proc/self/mountinfo (root and mountpoint unescaped). */
struct rc_mountinfo {
  char *root;
  char *mountpoint;
  char *optional; /* optional fields joined by ' ' ("shared:1 master:2"), may be "" */
  char *fstype;
  char *source;
  char *superopts;
};
int rc_mountinfo_read(struct rc_mountinfo **out, size_t *n, struct rc_error *err);
void rc_mountinfo_free(struct rc_mountinfo *mi, size_t n);

#endif
