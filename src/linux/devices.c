/* Device nodes and /dev links inside the rootfs: the devices every container gets (the
 * runtime spec's list: null, zero, full, random, urandom, tty), linux.devices, /dev/ptmx
 * pointing at the container's own devpts, and the fd/stdin/stdout/stderr/core links.
 * Nodes are made with mknod, or bound from the host node where mknod is not allowed (in a
 * user namespace, or EPERM). Parents are resolved and created inside the rootfs, and the
 * node is created relative to that directory fd, so a symlinked /dev in an image cannot
 * place a node on the host. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "rootfs_internal.h"
#include "runcell/util.h"

static const struct oci_device default_devices[] = {
    {.type = 'c', .path = "/dev/null", .major = 1, .minor = 3},
    {.type = 'c', .path = "/dev/zero", .major = 1, .minor = 5},
    {.type = 'c', .path = "/dev/full", .major = 1, .minor = 7},
    {.type = 'c', .path = "/dev/random", .major = 1, .minor = 8},
    {.type = 'c', .path = "/dev/urandom", .major = 1, .minor = 9},
    {.type = 'c', .path = "/dev/tty", .major = 5, .minor = 0},
};

/* runc's default when fileMode is absent. */
#define DEFAULT_DEVICE_MODE 0666

bool rc_dev_is_bound(const struct oci_config *cfg) {
  for (size_t i = 0; i < cfg->n_mounts; i++) {
    char d[PATH_MAX];
    rc_clean_path(cfg->mounts[i].destination, d, sizeof(d));
    if (rc_mount_is_bind(&cfg->mounts[i]) && strcmp(d, "/dev") == 0) return true;
  }
  return false;
}

/* Splits a cleaned absolute path into its parent ("/" for "/x") and last component.
 * Fails for "/" itself and for a last component "..". */
static int split_path(const char *path, char *parent, size_t plen, char base[NAME_MAX + 1]) {
  rc_clean_path(path, parent, plen);
  char *slash = strrchr(parent, '/');
  if (!slash || !slash[1] || strlen(slash + 1) > NAME_MAX || strcmp(slash + 1, "..") == 0)
    return -1;
  snprintf(base, NAME_MAX + 1, "%s", slash + 1);
  if (slash == parent)
    parent[1] = '\0';
  else
    *slash = '\0';
  return 0;
}

static mode_t node_type(char t) {
  switch (t) {
    case 'c':
    case 'u':
      return S_IFCHR;
    case 'b':
      return S_IFBLK;
    case 'p':
      return S_IFIFO;
    default:
      return 0;
  }
}

/* The host's node, bound onto an empty file inside the rootfs. */
static int bind_device(int pfd, const char *base, const struct oci_device *d,
                       struct rc_error *err) {
  /* What the image left at that name is never opened for reading (a FIFO would block
   * create for ever, a device node of its own choosing would be opened by the runtime):
   * it is held by O_PATH, and an empty file is made only where there is nothing.
   * O_NOFOLLOW: the mount point is in the directory we resolved, not through a symlink. */
  cleanup_close int f = openat(pfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (f < 0 && errno == ENOENT) {
    int made =
        openat(pfd, base, O_CREAT | O_EXCL | O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
    if (made >= 0) {
      close(made);
      f = openat(pfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    }
  }
  struct stat fst;
  if (f < 0 || fstat(f, &fst) < 0)
    return rc_err(err, errno, "bind mount device %s: create mount point", d->path);
  if (S_ISLNK(fst.st_mode))
    return rc_err(err, ELOOP, "bind mount device %s: create mount point", d->path);
  cleanup_close int src = open(d->path, O_PATH | O_CLOEXEC);
  if (src < 0) return rc_err(err, errno, "bind mount device %s: open host node", d->path);
  struct stat sst;
  if (fstat(src, &sst) < 0) return rc_err(err, errno, "bind mount device %s", d->path);
  mode_t want = node_type(d->type);
  if ((sst.st_mode & S_IFMT) != want ||
      (want != S_IFIFO && sst.st_rdev != makedev((unsigned)d->major, (unsigned)d->minor)))
    return rc_err(err, ENODEV, "bind mount device %s: the host node is not %c %lld:%lld", d->path,
                  d->type, (long long)d->major, (long long)d->minor);
  char sp[RC_FD_PATH_MAX], dp[RC_FD_PATH_MAX];
  rc_fd_path(sp, src);
  rc_fd_path(dp, f);
  if (mount(sp, dp, NULL, MS_BIND, NULL) < 0)
    return rc_err(err, errno, "bind mount device %s", d->path);
  return 0;
}

/* Is name (in the directory dirfd) what the config put there on purpose: a mount point
 * (a host node bound in, `-v /dev/urandom:/dev/random`, or devpts) or a directory? Such an
 * entry is left exactly as it is, as runc leaves whatever exists: replacing it fails on
 * the mount, and a chmod or chown of it would change the host's own node. */
static bool leave_alone(int dirfd, const char *name) {
  struct statx here, parent;
  if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_MNT_ID | STATX_TYPE, &here) < 0) return false;
  if (S_ISDIR(here.stx_mode)) return true;
  if (statx(dirfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &parent) < 0) return false;
  /* without mount ids (Linux < 5.8) a node on another device is a mount of it */
  if (!(here.stx_mask & STATX_MNT_ID) || !(parent.stx_mask & STATX_MNT_ID))
    return here.stx_dev_major != parent.stx_dev_major || here.stx_dev_minor != parent.stx_dev_minor;
  return here.stx_mnt_id != parent.stx_mnt_id;
}

static int create_device(const struct rc_mount_ctx *c, const struct oci_device *d,
                         struct rc_error *err) {
  char parent[PATH_MAX], base[NAME_MAX + 1];
  if (!d->path || split_path(d->path, parent, sizeof(parent), base) < 0)
    return rc_err(err, EINVAL, "mknod %s: not a valid device path", d->path ? d->path : "");
  mode_t type = node_type(d->type);
  if (!type) return rc_err(err, EINVAL, "mknod %s: unknown device type '%c'", d->path, d->type);
  mode_t perm = (d->has_file_mode ? d->file_mode : DEFAULT_DEVICE_MODE) & 07777;
  dev_t dev = type == S_IFIFO ? 0 : makedev((unsigned)d->major, (unsigned)d->minor);

  cleanup_close int pfd = rc_mkdir_in_root(c->rootfd, parent, 0755, err);
  if (pfd < 0) return rc_err_wrap(err, "mknod %s", d->path);

  if (leave_alone(pfd, base)) return 0;
  if (c->o->new_userns) return bind_device(pfd, base, d, err);

  if (mknodat(pfd, base, type | perm, dev) < 0) {
    if (errno == EPERM) return bind_device(pfd, base, d, err);
    if (errno != EEXIST) return rc_err(err, errno, "mknod %s", d->path);
    /* Already there (a /dev from the image): keep it if it is this very node, otherwise
     * replace it, so e.g. a regular file named /dev/null never stands in for the device. */
    struct stat st;
    if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
      return rc_err(err, errno, "mknod %s", d->path);
    if ((st.st_mode & S_IFMT) != type || (type != S_IFIFO && st.st_rdev != dev)) {
      if (unlinkat(pfd, base, 0) < 0) return rc_err(err, errno, "mknod %s: remove old", d->path);
      if (mknodat(pfd, base, type | perm, dev) < 0) {
        if (errno == EPERM) return bind_device(pfd, base, d, err);
        return rc_err(err, errno, "mknod %s", d->path);
      }
    } else if (fchmodat(pfd, base, perm, 0) < 0) {
      return rc_err(err, errno, "mknod %s: chmod", d->path);
    }
  }
  uid_t uid = d->has_uid ? d->uid : 0;
  gid_t gid = d->has_gid ? d->gid : 0;
  if (fchownat(pfd, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
    return rc_err(err, errno, "mknod %s: chown to %u:%u", d->path, (unsigned)uid, (unsigned)gid);
  return 0;
}

static bool configured(const struct oci_config *cfg, const char *path) {
  if (!cfg->has_linux) return false;
  for (size_t i = 0; i < cfg->linux_.n_devices; i++) {
    char a[PATH_MAX], b[PATH_MAX];
    rc_clean_path(cfg->linux_.devices[i].path ? cfg->linux_.devices[i].path : "", a, sizeof(a));
    rc_clean_path(path, b, sizeof(b));
    if (strcmp(a, b) == 0) return true;
  }
  return false;
}

static int create_devices(const struct rc_mount_ctx *c, struct rc_error *err) {
  const struct oci_config *cfg = c->o->cfg;
  for (size_t i = 0; i < RC_ARRAY_SIZE(default_devices); i++) {
    /* a linux.devices entry for the same path wins (its mode/owner are wanted) */
    if (configured(cfg, default_devices[i].path)) continue;
    struct oci_device d = default_devices[i];
    d.has_file_mode = true;
    d.file_mode = 0666;
    if (create_device(c, &d, err) < 0) return -1;
  }
  if (cfg->has_linux)
    for (size_t i = 0; i < cfg->linux_.n_devices; i++)
      if (create_device(c, &cfg->linux_.devices[i], err) < 0) return -1;
  return 0;
}

/* The container's devpts (mounted with newinstance) has its own ptmx; /dev/ptmx must lead
 * there rather than to the host's multiplexer. */
static int setup_ptmx(int devfd, struct rc_error *err) {
  if (unlinkat(devfd, "ptmx", 0) < 0 && errno != ENOENT)
    return rc_err(err, errno, "remove /dev/ptmx");
  if (symlinkat("pts/ptmx", devfd, "ptmx") < 0)
    return rc_err(err, errno, "symlink /dev/ptmx to pts/ptmx");
  return 0;
}

static int setup_dev_symlinks(int devfd, struct rc_error *err) {
  static const char *const links[][2] = {
      {"/proc/self/fd", "fd"},
      {"/proc/self/fd/0", "stdin"},
      {"/proc/self/fd/1", "stdout"},
      {"/proc/self/fd/2", "stderr"},
  };
  for (size_t i = 0; i < RC_ARRAY_SIZE(links); i++)
    if (symlinkat(links[i][0], devfd, links[i][1]) < 0 && errno != EEXIST)
      return rc_err(err, errno, "symlink /dev/%s to %s", links[i][1], links[i][0]);
  /* kcore exists only with CONFIG_PROC_KCORE; judged on the host's /proc (the container's
   * is the same kernel) */
  if (access("/proc/kcore", F_OK) == 0 && symlinkat("/proc/kcore", devfd, "core") < 0 &&
      errno != EEXIST)
    return rc_err(err, errno, "symlink /dev/core to /proc/kcore");
  return 0;
}

int rc_setup_dev(const struct rc_mount_ctx *c, struct rc_error *err) {
  if (rc_dev_is_bound(c->o->cfg)) return 0;
  cleanup_close int devfd = rc_mkdir_in_root(c->rootfd, "/dev", 0755, err);
  if (devfd < 0) return -1;
  /* modes are exactly fileMode, whatever umask the caller runs with */
  mode_t old = umask(0);
  int r = create_devices(c, err);
  umask(old);
  if (r < 0) return -1;
  if (setup_ptmx(devfd, err) < 0) return -1;
  return setup_dev_symlinks(devfd, err);
}
