/* Performing one config mount inside the rootfs.
 *
 * The destination is resolved inside the rootfs (rc_open_in_root) to an O_PATH fd, created
 * when missing, and the mount is made onto /proc/self/fd/N, never onto a path string that
 * the kernel would resolve again: an image symlink, or one swapped in after the check,
 * therefore cannot point the mount at the host. Flags a bind mount cannot take on its
 * first mount(2) (ro, nosuid, ...) are applied by a remount of the new mount, reopened in
 * the rootfs. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "rootfs_internal.h"
#include "runcell/util.h"

/* older headers lack these (Linux 5.10) */
#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif
#ifndef ST_NOSYMFOLLOW
#define ST_NOSYMFOLLOW 0x2000
#endif

#define PROPAGATION_FLAGS (MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE)
#define ATIME_FLAGS (MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME)
/* Flags a bind remount can change per mount point. */
#define PER_MOUNT_FLAGS \
  (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOSYMFOLLOW | ATIME_FLAGS)

bool rc_mount_is_bind(const struct oci_mount *m) {
  return m->bind || (m->type && strcmp(m->type, "bind") == 0);
}

void rc_clean_path(const char *in, char *out, size_t len) {
  size_t o = 0;
  if (len == 0) return;
  const char *p = in;
  while (*p) {
    while (*p == '/') p++;
    if (!*p) break;
    const char *end = strchrnul(p, '/');
    size_t n = (size_t)(end - p);
    if (!(n == 1 && p[0] == '.') && o + 1 + n < len) {
      out[o++] = '/';
      memcpy(out + o, p, n);
      o += n;
    }
    p = end;
  }
  if (o == 0) out[o++] = '/';
  out[o] = '\0';
}

bool rc_mount_ro_deferred(const struct oci_mount *m) {
  char dest[PATH_MAX];
  rc_clean_path(m->destination, dest, sizeof(dest));
  if (rc_mount_is_bind(m)) return false;
  return (m->type && strcmp(m->type, "tmpfs") == 0) || strcmp(dest, "/dev") == 0;
}

/* statvfs reports ST_* bits; the remount needs the matching MS_* ones. */
static unsigned long st_to_ms(unsigned long st) {
  unsigned long ms = 0;
  if (st & ST_RDONLY) ms |= MS_RDONLY;
  if (st & ST_NOSUID) ms |= MS_NOSUID;
  if (st & ST_NODEV) ms |= MS_NODEV;
  if (st & ST_NOEXEC) ms |= MS_NOEXEC;
  if (st & ST_NOATIME) ms |= MS_NOATIME;
  if (st & ST_NODIRATIME) ms |= MS_NODIRATIME;
  if (st & ST_RELATIME) ms |= MS_RELATIME;
  if (st & ST_NOSYMFOLLOW) ms |= MS_NOSYMFOLLOW;
  return ms;
}

int rc_remount_keep_locked(const char *target, unsigned long flags, unsigned long clear) {
  struct statvfs sv;
  if (statvfs(target, &sv) < 0) return -1;
  unsigned long cur = st_to_ms(sv.f_flag);
  unsigned long want = MS_REMOUNT | MS_BIND | (flags & PER_MOUNT_FLAGS);
  want |= cur & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOSYMFOLLOW) & ~clear;
  if (!(flags & ATIME_FLAGS)) {
    /* no atime option asked for: keep what the mount has (a locked atime setting must
     * not change); neither noatime nor relatime means strictatime */
    want |= cur & MS_NODIRATIME;
    if (cur & (MS_NOATIME | MS_RELATIME))
      want |= cur & (MS_NOATIME | MS_RELATIME);
    else
      want |= MS_STRICTATIME;
  }
  if (mount(NULL, target, NULL, want, NULL) == 0) return 0;
  if (errno != EPERM) return -1;
  /* Something we tried to drop is locked (the mount came from a more privileged user
   * namespace): keep everything it has and try once more. */
  want |= cur & PER_MOUNT_FLAGS;
  if ((want & (MS_NOATIME | MS_RELATIME)) && (want & MS_STRICTATIME)) want &= ~MS_STRICTATIME;
  return mount(NULL, target, NULL, want, NULL);
}

int rc_make_readonly(int fd, bool recursive) {
  /* mount_setattr changes only the attribute named, so locked flags cannot get lost, and
   * it works on the fd without needing /proc. */
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
  unsigned int at = AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
  if (mount_setattr(fd, "", at, &attr, sizeof(attr)) == 0) return 0;
  if (errno != ENOSYS) return -1;
  /* Older kernels: remount the top mount only (submounts of an rbind stay as they are,
   * as with runc's plain "ro"), through /proc/self/fd/N, once /proc is known to be procfs
   * (after pivot_root it is the container's). */
  struct statfs fs;
  if (statfs("/proc/self/fd", &fs) < 0 || fs.f_type != PROC_SUPER_MAGIC) {
    errno = ENOENT;
    return -1;
  }
  char p[RC_FD_PATH_MAX];
  rc_fd_path(p, fd);
  return rc_remount_keep_locked(p, MS_RDONLY, 0);
}

int rc_mount_target(int rootfd, const char *path, bool dir, struct rc_error *err) {
  struct rc_error e;
  int fd = rc_open_in_root(rootfd, path, O_PATH, 0, &e);
  if (fd >= 0) return fd;
  if (e.code != ENOENT) {
    *err = e;
    return -1;
  }
  if (dir) return rc_mkdir_in_root(rootfd, path, 0755, err);

  /* A file to bind a file onto: its parent first, then the file itself, both created by
   * the in-root resolver so a symlinked parent still lands inside the rootfs. */
  char parent[PATH_MAX];
  rc_clean_path(path, parent, sizeof(parent));
  char *slash = strrchr(parent, '/');
  if (slash == parent)
    parent[1] = '\0';
  else
    *slash = '\0';
  cleanup_close int pfd = rc_mkdir_in_root(rootfd, parent, 0755, err);
  if (pfd < 0) return -1;
  cleanup_close int created =
      rc_open_in_root(rootfd, path, O_CREAT | O_RDONLY | O_NOCTTY, 0644, err);
  if (created < 0) return rc_err_wrap(err, "create mount point");
  return rc_open_in_root(rootfd, path, O_PATH, 0, err);
}

/* Where fd really is, in container terms: /proc/self/fd/N reads back the host path, which
 * starts with the rootfs path because the rootfs is bind-mounted onto itself. Returns -1
 * when it does not, i.e. the fd is outside the rootfs. */
static int in_root_path(const struct rc_mount_ctx *c, int fd, char *out, size_t len) {
  char p[RC_FD_PATH_MAX], host[PATH_MAX];
  rc_fd_path(p, fd);
  ssize_t n = readlink(p, host, sizeof(host) - 1);
  if (n < 0) return -1;
  host[n] = '\0';
  size_t rl = strlen(c->root_real);
  if (strcmp(c->root_real, "/") == 0) {
    snprintf(out, len, "%s", host);
    return 0;
  }
  if (strncmp(host, c->root_real, rl) != 0 || (host[rl] != '/' && host[rl] != '\0')) {
    errno = EXDEV;
    return -1;
  }
  snprintf(out, len, "%s", host[rl] ? host + rl : "/");
  return 0;
}

static bool path_under(const char *path, const char *dir) {
  size_t n = strlen(dir);
  return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Mounts over /proc could hide files that confine the container (AppArmor attr, sysrq)
 * or expose others; only a procfs on /proc itself and the few files that tools like lxcfs
 * emulate are allowed, judged on the resolved destination. */
static int check_proc_dest(const char *resolved, const struct oci_mount *m, const char *src,
                           bool src_is_proc, struct rc_error *err) {
  static const char *const allowed[] = {
      "/proc/cpuinfo",
      "/proc/diskstats",
      "/proc/meminfo",
      "/proc/stat",
      "/proc/swaps",
      "/proc/uptime",
      "/proc/loadavg",
      "/proc/slabinfo",
      "/proc/net/dev",
      "/proc/pressure/cpu",
      "/proc/pressure/io",
      "/proc/pressure/memory",
      "/proc/sys/kernel/ns_last_pid",
  };
  if (!path_under(resolved, "/proc")) return 0;
  if (strcmp(resolved, "/proc") == 0) {
    bool is_proc = rc_mount_is_bind(m) ? src_is_proc : (m->type && strcmp(m->type, "proc") == 0);
    if (is_proc) return 0;
    rc_err(err, 0, "mount %s to %s: %s cannot be mounted because it is not of type proc", src,
           m->destination, resolved);
    err->code = EPERM;
    return -1;
  }
  for (size_t i = 0; i < RC_ARRAY_SIZE(allowed); i++)
    if (strcmp(resolved, allowed[i]) == 0) return 0;
  rc_err(err, 0, "mount %s to %s: %s cannot be mounted because it is inside /proc", src,
         m->destination, resolved);
  err->code = EPERM;
  return -1;
}

/* Resolves (creating) the destination and checks where it landed. */
static int open_dest(const struct rc_mount_ctx *c, const struct oci_mount *m, const char *src,
                     bool dir, bool src_is_proc, struct rc_error *err) {
  cleanup_close int fd = rc_mount_target(c->rootfd, m->destination, dir, err);
  if (fd < 0) return rc_err_wrap(err, "mount %s to %s", src, m->destination);
  char resolved[PATH_MAX];
  if (in_root_path(c, fd, resolved, sizeof(resolved)) < 0)
    return rc_err(err, errno, "mount %s to %s: destination is not inside the rootfs", src,
                  m->destination);
  if (check_proc_dest(resolved, m, src, src_is_proc, err) < 0) return -1;
  return rc_steal_fd(&fd);
}

/* After a mount the fd we mounted on still names the covered directory; the new mount's
 * root is found by resolving the destination again. */
static int reopen_dest(const struct rc_mount_ctx *c, const char *dest, struct rc_error *err) {
  return rc_open_in_root(c->rootfd, dest, O_PATH, 0, err);
}

static int apply_propagation(const struct rc_mount_ctx *c, const struct oci_mount *m,
                             const char *src, struct rc_error *err) {
  if (!m->propagation) return 0;
  cleanup_close int fd = reopen_dest(c, m->destination, err);
  if (fd < 0) return rc_err_wrap(err, "mount %s to %s", src, m->destination);
  char p[RC_FD_PATH_MAX];
  rc_fd_path(p, fd);
  if (mount(NULL, p, NULL, m->propagation, NULL) < 0)
    return rc_err(err, errno, "mount %s to %s: set propagation", src, m->destination);
  return 0;
}

static int do_bind(const struct rc_mount_ctx *c, const struct oci_mount *m, struct rc_error *err) {
  if (!m->source || !*m->source)
    return rc_err(err, EINVAL, "mount to %s: bind mount without a source", m->destination);
  cleanup_free char *src =
      m->source[0] == '/' ? rc_xstrdup(m->source)
                          : rc_xasprintf("%s/%s", c->o->bundle ? c->o->bundle : ".", m->source);
  /* The source is a host path chosen by whoever wrote config.json; it is opened once and
   * mounted through its fd so what we stat is what gets mounted. */
  cleanup_close int sfd = open(src, O_PATH | O_CLOEXEC);
  struct stat sst;
  if (sfd < 0 || fstat(sfd, &sst) < 0)
    return rc_err(err, errno, "mount %s to %s: stat %s", src, m->destination, src);
  struct statfs sfs;
  bool src_is_proc = fstatfs(sfd, &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC;

  cleanup_close int dfd = open_dest(c, m, src, S_ISDIR(sst.st_mode), src_is_proc, err);
  if (dfd < 0) return -1;
  char sp[RC_FD_PATH_MAX], dp[RC_FD_PATH_MAX];
  rc_fd_path(sp, sfd);
  rc_fd_path(dp, dfd);
  if (mount(sp, dp, NULL, MS_BIND | (m->recursive ? MS_REC : 0), NULL) < 0)
    return rc_err(err, errno, "mount %s to %s", src, m->destination);

  cleanup_close int nfd = reopen_dest(c, m->destination, err);
  if (nfd < 0) return rc_err_wrap(err, "mount %s to %s", src, m->destination);
  /* The root of a bind mount is the source inode itself; anything else means the
   * destination changed under us between the mount and the reopen. */
  struct stat nst;
  if (fstat(nfd, &nst) < 0) return rc_err(err, errno, "mount %s to %s", src, m->destination);
  if (nst.st_dev != sst.st_dev || nst.st_ino != sst.st_ino)
    return rc_err(err, EXDEV, "mount %s to %s: destination changed during the mount", src,
                  m->destination);

  unsigned long extra = m->flags & ~(MS_BIND | MS_REC | MS_REMOUNT | PROPAGATION_FLAGS);
  if (extra) {
    char np[RC_FD_PATH_MAX];
    rc_fd_path(np, nfd);
    if (rc_remount_keep_locked(np, extra, m->clear_flags) < 0)
      return rc_err(err, errno, "mount %s to %s: remount with options", src, m->destination);
  }
  return apply_propagation(c, m, src, err);
}

/* mount(2) of a filesystem (not a bind) onto the resolved destination. On failure err is
 * filled and *mount_errno is the mount(2) errno (0 when resolving the destination failed),
 * so callers can pick a fallback on EPERM. */
static int mount_fs(const struct rc_mount_ctx *c, const struct oci_mount *m, const char *src,
                    const char *type, unsigned long flags, const char *data, int *mount_errno,
                    struct rc_error *err) {
  *mount_errno = 0;
  cleanup_close int dfd = open_dest(c, m, src, true, false, err);
  if (dfd < 0) return -1;
  char dp[RC_FD_PATH_MAX];
  rc_fd_path(dp, dfd);
  if (mount(src, dp, type, flags, data) < 0) {
    *mount_errno = errno;
    /* The kernel's EINVAL and ENODEV are about the type and the options: name them, as
     * runc does ("data: size=-5k: invalid argument"). */
    if (errno == ENODEV)
      return rc_err(err, errno, "mount %s to %s: unknown filesystem type \"%s\"", src,
                    m->destination, type ? type : "");
    if (errno == EINVAL && data && *data)
      return rc_err(err, errno, "mount %s to %s (type %s, data \"%s\")", src, m->destination,
                    type ? type : "", data);
    return rc_err(err, errno, "mount %s to %s", src, m->destination);
  }
  return 0;
}

static unsigned long fs_flags(const struct oci_mount *m) {
  unsigned long f = m->flags & ~(MS_BIND | MS_REC | MS_REMOUNT | PROPAGATION_FLAGS);
  if (rc_mount_ro_deferred(m)) f &= ~MS_RDONLY; /* made read-only in rc_rootfs_finalize */
  return f;
}

static const char *src_or(const struct oci_mount *m, const char *dflt) {
  return m->source && *m->source ? m->source : dflt;
}

/* As runc 1.1.5 (CVE-2023-27561, CVE-2023-28642): proc and sysfs are mounted on an
 * ordinary directory, never through a symlink of the image at the destination. With
 * /proc -> /vol/p, say, the procfs would land in /vol/p and a volume mounted at /vol later
 * would hide it behind files of the image's choosing, which everything done after
 * pivot_root through /proc (the masks, the process attributes) would then take for the
 * kernel's. (rc_rootfs_finalize checks /proc again after pivot_root, whatever put it
 * there.) */
static int check_plain_dir_dest(const struct rc_mount_ctx *c, const struct oci_mount *m,
                                const char *fstype, struct rc_error *err) {
  struct rc_error ignore;
  /* a destination that does not exist (yet) is created as a directory; other errors are
   * reported by the mount itself */
  cleanup_close int fd =
      rc_open_in_root(c->rootfd, m->destination, O_PATH | O_NOFOLLOW, 0, &ignore);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) return 0;
  rc_err(err, 0,
         "mount %s to %s: filesystem \"%s\" must be mounted on ordinary directory (%s is %s)",
         src_or(m, fstype), m->destination, fstype, m->destination,
         S_ISLNK(st.st_mode) ? "a symlink" : "not a directory");
  err->code = EPERM;
  return -1;
}

static int do_proc(const struct rc_mount_ctx *c, const struct oci_mount *m, struct rc_error *err) {
  const char *src = src_or(m, "proc");
  if (check_plain_dir_dest(c, m, "proc", err) < 0) return -1;
  int me;
  if (mount_fs(c, m, src, "proc", fs_flags(m), m->data, &me, err) < 0) {
    if (me == EPERM)
      return rc_err(err, EPERM,
                    "mount %s to %s: %s (a user namespace can mount proc only in its own pid "
                    "namespace, and not while parts of the host /proc are covered by mounts)",
                    src, m->destination, strerror(EPERM));
    return -1;
  }
  return apply_propagation(c, m, src, err);
}

/* Without its own network namespace a container in a user namespace may not mount sysfs
 * (the kernel ties sysfs to the netns owner); like runc it gets the host's /sys bound
 * read-only instead. */
static int bind_sys_readonly(const struct rc_mount_ctx *c, const struct oci_mount *m,
                             struct rc_error *err) {
  cleanup_close int sfd = open("/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (sfd < 0) return rc_err(err, errno, "mount /sys to %s: open /sys", m->destination);
  cleanup_close int dfd = open_dest(c, m, "/sys", true, false, err);
  if (dfd < 0) return -1;
  char sp[RC_FD_PATH_MAX], dp[RC_FD_PATH_MAX];
  rc_fd_path(sp, sfd);
  rc_fd_path(dp, dfd);
  if (mount(sp, dp, NULL, MS_BIND | MS_REC, NULL) < 0)
    return rc_err(err, errno, "mount /sys to %s", m->destination);
  cleanup_close int nfd = reopen_dest(c, m->destination, err);
  if (nfd < 0) return rc_err_wrap(err, "mount /sys to %s", m->destination);
  if (rc_make_readonly(nfd, true) < 0)
    return rc_err(err, errno, "mount /sys to %s: make read-only", m->destination);
  return apply_propagation(c, m, "/sys", err);
}

static int do_sysfs(const struct rc_mount_ctx *c, const struct oci_mount *m, struct rc_error *err) {
  const char *src = src_or(m, "sysfs");
  if (check_plain_dir_dest(c, m, "sysfs", err) < 0) return -1;
  if (!c->o->new_netns && c->o->new_userns) return bind_sys_readonly(c, m, err);
  int me;
  if (mount_fs(c, m, src, "sysfs", fs_flags(m), m->data, &me, err) < 0) {
    if (me == EPERM && !c->o->new_netns) return bind_sys_readonly(c, m, err);
    return -1;
  }
  return apply_propagation(c, m, src, err);
}

/* tmpfs, devpts, mqueue and anything else mount(2) understands. */
static int do_generic(const struct rc_mount_ctx *c, const struct oci_mount *m,
                      struct rc_error *err) {
  const char *src = src_or(m, m->type);
  int me;
  if (mount_fs(c, m, src, m->type, fs_flags(m), m->data, &me, err) < 0) return -1;
  return apply_propagation(c, m, src, err);
}

/* ---- cgroup ----
 * On a cgroup2 host the container gets a cgroup2 mount (seen through its cgroup namespace
 * if it has one). Where that is refused (EPERM/EBUSY: no cgroup namespace in a user
 * namespace) its own cgroup directory is bound instead.
 * On a v1 or hybrid host (what runc does): a tmpfs at the destination, and in it, for every
 * hierarchy mounted directly under /sys/fs/cgroup, a bind mount of the container's own
 * cgroup directory in that hierarchy (from /proc/self/cgroup), with the mount's flags
 * (normally ro); co-mounted controllers ("cpu,cpuacct") also get "cpu" and "cpuacct"
 * symlinks. The tmpfs is made read-only at the end when the mount asks for ro. */

#define CGROUP_ROOT "/sys/fs/cgroup"

struct own_cgroup {
  char *controllers; /* "cpu,cpuacct", "name=systemd", "" for the unified hierarchy */
  char *path;
};

static void own_cgroups_free(struct own_cgroup *g, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(g[i].controllers);
    free(g[i].path);
  }
  free(g);
}

static int own_cgroups_read(struct own_cgroup **out, size_t *n, struct rc_error *err) {
  cleanup_free char *text = NULL;
  if (rc_read_file("/proc/self/cgroup", 1 << 20, &text, NULL, err) < 0) return -1;
  struct own_cgroup *g = NULL;
  size_t cnt = 0;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c2 = '\0';
    g = rc_xrealloc(g, (cnt + 1) * sizeof(*g));
    g[cnt].controllers = rc_xstrdup(c1 + 1);
    g[cnt].path = rc_xstrdup(c2 + 1);
    cnt++;
  }
  *out = g;
  *n = cnt;
  return 0;
}

static bool list_has(const char *list, const char *item) {
  size_t n = strlen(item);
  for (const char *p = list; p && *p;) {
    const char *end = strchrnul(p, ',');
    if ((size_t)(end - p) == n && strncmp(p, item, n) == 0) return true;
    p = *end ? end + 1 : end;
  }
  return false;
}

/* The container's path in the hierarchy mounted as mi, or NULL. */
static const char *own_path_for(const struct rc_mountinfo *mi, const struct own_cgroup *g,
                                size_t n) {
  bool v2 = strcmp(mi->fstype, "cgroup2") == 0;
  for (size_t i = 0; i < n; i++) {
    if (v2) {
      if (g[i].controllers[0] == '\0') return g[i].path;
      continue;
    }
    /* any superblock option that names one of this line's controllers matches */
    for (const char *p = mi->superopts; *p;) {
      const char *end = strchrnul(p, ',');
      char opt[256];
      size_t len = (size_t)(end - p) < sizeof(opt) - 1 ? (size_t)(end - p) : sizeof(opt) - 1;
      memcpy(opt, p, len);
      opt[len] = '\0';
      if (g[i].controllers[0] && list_has(g[i].controllers, opt)) return g[i].path;
      p = *end ? end + 1 : end;
    }
  }
  return NULL;
}

/* Binds the container's own cgroup directory of one host hierarchy (no cgroup namespace:
 * /proc/self/cgroup gives full paths). */
static int bind_own_cgroup(const struct rc_mount_ctx *c, const struct oci_mount *m,
                           const struct rc_mountinfo *mi, const char *own, const char *base,
                           struct rc_error *err) {
  /* own is relative to the cgroup namespace root, which is what the host mount's root
   * field is relative to as well */
  const char *rel = own;
  size_t rl = strlen(mi->root);
  if (strcmp(mi->root, "/") != 0 && strncmp(own, mi->root, rl) == 0 &&
      (own[rl] == '/' || own[rl] == '\0'))
    rel = own + rl;
  cleanup_free char *src = rc_xasprintf("%s%s%s", mi->mountpoint, *rel == '/' ? "" : "/", rel);
  cleanup_free char *dst = rc_xasprintf("%s/%s", m->destination, base);
  struct oci_mount b = {
      .destination = dst,
      .source = src,
      .type = "bind",
      .bind = true,
      .recursive = true,
      .flags = MS_BIND | MS_REC | (m->flags & ~PROPAGATION_FLAGS),
      .clear_flags = m->clear_flags,
      .propagation = m->propagation,
  };
  return do_bind(c, &b, err);
}

static int cgroup_v1(const struct rc_mount_ctx *c, const struct oci_mount *m,
                     struct rc_error *err) {
  struct rc_mountinfo *mi = NULL;
  size_t nmi = 0;
  struct own_cgroup *g = NULL;
  size_t ng = 0;
  int ret = -1;
  if (rc_mountinfo_read(&mi, &nmi, err) < 0) return -1;
  if (own_cgroups_read(&g, &ng, err) < 0) goto out;

  struct oci_mount tmpfs = {
      .destination = m->destination,
      .type = "tmpfs",
      .source = "tmpfs",
      .flags = MS_NOSUID | MS_NODEV | MS_NOEXEC,
      .data = "mode=755",
  };
  if (do_generic(c, &tmpfs, err) < 0) goto out;

  for (size_t i = 0; i < nmi; i++) {
    /* v1 hierarchies only: on a hybrid host runc does not expose the unified hierarchy
     * either, and containers are meant to see the same tree under both. */
    if (strcmp(mi[i].fstype, "cgroup") != 0) continue;
    const char *base = strrchr(mi[i].mountpoint, '/');
    /* only the hierarchies of the host's standard layout, /sys/fs/cgroup/<name>; this also
     * skips our own earlier binds inside the rootfs */
    if (!base || (size_t)(base - mi[i].mountpoint) != strlen(CGROUP_ROOT) ||
        strncmp(mi[i].mountpoint, CGROUP_ROOT, strlen(CGROUP_ROOT)) != 0)
      continue;
    base++;
    const char *own = own_path_for(&mi[i], g, ng);
    if (!own) continue;
    cleanup_free char *dst_ns = rc_xasprintf("%s/%s", m->destination, base);
    if (c->o->new_cgroupns) {
      /* In a cgroup namespace /proc/self/cgroup is relative to the namespace root, so a
       * bind would expose the host's hierarchy root; a fresh mount of the same hierarchy
       * is rooted at the container's own cgroup instead. */
      char opts[512] = "";
      size_t used = 0;
      bool v2 = strcmp(mi[i].fstype, "cgroup2") == 0;
      for (const char *p = mi[i].superopts; !v2 && *p;) {
        const char *end = strchrnul(p, ',');
        size_t len = (size_t)(end - p);
        bool keep = !(len == 2 && (!strncmp(p, "rw", 2) || !strncmp(p, "ro", 2)));
        if (keep && used + len + 2 < sizeof(opts))
          used += (size_t)snprintf(opts + used, sizeof(opts) - used, "%s%.*s", used ? "," : "",
                                   (int)len, p);
        p = *end ? end + 1 : end;
      }
      struct oci_mount fresh = {
          .destination = dst_ns,
          .type = v2 ? "cgroup2" : "cgroup",
          .source = v2 ? "cgroup2" : "cgroup",
          .flags = (m->flags & ~PROPAGATION_FLAGS) | MS_NOSUID | MS_NODEV | MS_NOEXEC,
          .data = v2 ? NULL : opts,
      };
      if (do_generic(c, &fresh, err) < 0) goto out;
    } else if (bind_own_cgroup(c, m, &mi[i], own, base, err) < 0) {
      goto out;
    }

    if (strchr(base, ',')) {
      cleanup_close int dfd =
          rc_open_in_root(c->rootfd, m->destination, O_PATH | O_DIRECTORY, 0, err);
      if (dfd < 0) goto out;
      char names[NAME_MAX + 1];
      snprintf(names, sizeof(names), "%s", base);
      char *save = NULL;
      for (char *s = strtok_r(names, ",", &save); s; s = strtok_r(NULL, ",", &save))
        if (symlinkat(base, dfd, s) < 0 && errno != EEXIST) {
          rc_err(err, errno, "mount cgroup to %s: symlink %s", m->destination, s);
          goto out;
        }
    }
  }

  if (m->flags & MS_RDONLY) {
    cleanup_close int fd = reopen_dest(c, m->destination, err);
    if (fd < 0) goto out;
    if (rc_make_readonly(fd, false) < 0) {
      rc_err(err, errno, "mount cgroup to %s: make read-only", m->destination);
      goto out;
    }
  }
  ret = 0;
out:
  rc_mountinfo_free(mi, nmi);
  own_cgroups_free(g, ng);
  return ret;
}

static int cgroup_v2(const struct rc_mount_ctx *c, const struct oci_mount *m,
                     struct rc_error *err) {
  const char *src = src_or(m, "cgroup2");
  int me;
  if (mount_fs(c, m, src, "cgroup2", fs_flags(m), m->data, &me, err) == 0)
    return apply_propagation(c, m, src, err);
  if (me != EPERM && me != EBUSY) return -1;

  struct own_cgroup *g = NULL;
  size_t ng = 0;
  if (own_cgroups_read(&g, &ng, err) < 0) return -1;
  const char *own = NULL;
  for (size_t i = 0; i < ng; i++)
    if (strcmp(g[i].controllers, "") == 0) own = g[i].path;
  cleanup_free char *bsrc = rc_xasprintf(CGROUP_ROOT "%s", own && strcmp(own, "/") != 0 ? own : "");
  own_cgroups_free(g, ng);
  struct oci_mount b = *m;
  b.source = bsrc;
  b.type = "bind";
  b.bind = true;
  b.recursive = true;
  b.flags = MS_BIND | MS_REC | m->flags;
  return do_bind(c, &b, err);
}

static int do_cgroup(const struct rc_mount_ctx *c, const struct oci_mount *m,
                     struct rc_error *err) {
  struct statfs sfs;
  if (statfs(CGROUP_ROOT, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC)
    return cgroup_v2(c, m, err);
  if (strcmp(m->type, "cgroup2") == 0) return do_generic(c, m, err);
  return cgroup_v1(c, m, err);
}

/* The recursive attributes (rro, rnosuid, ...) on the mount just made and every mount
 * below it, as runc applies them: right after the mount, so a later mount of the config
 * under it is not touched. A deferred read-only (a tmpfs or /dev, whose mount points and
 * nodes are still to be made) gets its rro in rc_rootfs_finalize, with its ro, on that
 * mount alone (a fresh tmpfs has nothing below it now). */
static int apply_recursive_attrs(const struct rc_mount_ctx *c, const struct oci_mount *m,
                                 struct rc_error *err) {
  struct mount_attr attr = {.attr_set = m->rattr_set, .attr_clr = m->rattr_clear};
  if (rc_mount_ro_deferred(m)) attr.attr_set &= ~(uint64_t)MOUNT_ATTR_RDONLY;
  if (!attr.attr_set && !attr.attr_clr) return 0;
  cleanup_close int fd = reopen_dest(c, m->destination, err);
  if (fd < 0) return rc_err_wrap(err, "mount %s to %s", src_or(m, ""), m->destination);
  if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
    return rc_err(err, errno, "mount %s to %s: set recursive mount attributes", src_or(m, ""),
                  m->destination);
  return 0;
}

static int mount_by_type(const struct rc_mount_ctx *c, const struct oci_mount *m,
                         struct rc_error *err) {
  if (!m->destination || !*m->destination)
    return rc_err(err, EINVAL, "mount: destination is empty");
  if (m->idmap || m->n_uid_mappings || m->n_gid_mappings)
    return rc_err(err, ENOTSUP, "mount %s to %s: idmapped mounts are not supported", src_or(m, ""),
                  m->destination);
  if (rc_mount_is_bind(m)) return do_bind(c, m, err);
  if (!m->type || !*m->type)
    return rc_err(err, EINVAL, "mount %s to %s: no type and not a bind mount", src_or(m, ""),
                  m->destination);
  if (strcmp(m->type, "proc") == 0) return do_proc(c, m, err);
  if (strcmp(m->type, "sysfs") == 0) return do_sysfs(c, m, err);
  if (strcmp(m->type, "cgroup") == 0 || strcmp(m->type, "cgroup2") == 0)
    return do_cgroup(c, m, err);
  /* tmpfs, devpts, mqueue (fails with EPERM without an own ipc namespace in a user
   * namespace, reported as is, like runc) and any other filesystem */
  return do_generic(c, m, err);
}

int rc_mount_one(const struct rc_mount_ctx *c, const struct oci_mount *m, struct rc_error *err) {
  if (mount_by_type(c, m, err) < 0) return -1;
  return apply_recursive_attrs(c, m, err);
}

/* ---- /proc/self/mountinfo ---- */

/* Undoes the kernel's octal escapes (\040 for space, \011, \012, \134). */
static char *unescape(const char *s) {
  char *out = rc_xmalloc(strlen(s) + 1), *o = out;
  while (*s) {
    if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
        s[3] <= '7') {
      *o++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
      s += 4;
    } else {
      *o++ = *s++;
    }
  }
  *o = '\0';
  return out;
}

void rc_mountinfo_free(struct rc_mountinfo *mi, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(mi[i].root);
    free(mi[i].mountpoint);
    free(mi[i].optional);
    free(mi[i].fstype);
    free(mi[i].source);
    free(mi[i].superopts);
  }
  free(mi);
}

int rc_mountinfo_read(struct rc_mountinfo **out, size_t *n, struct rc_error *err) {
  cleanup_free char *text = NULL;
  if (rc_read_file("/proc/self/mountinfo", 64 << 20, &text, NULL, err) < 0) return -1;
  struct rc_mountinfo *mi = NULL;
  size_t cnt = 0;
  char *lsave = NULL;
  for (char *line = strtok_r(text, "\n", &lsave); line; line = strtok_r(NULL, "\n", &lsave)) {
    /* id parent major:minor root mountpoint options [optional...] - fstype source super */
    char *f[64];
    size_t nf = 0;
    char *fsave = NULL;
    for (char *t = strtok_r(line, " ", &fsave); t && nf < RC_ARRAY_SIZE(f);
         t = strtok_r(NULL, " ", &fsave))
      f[nf++] = t;
    size_t dash = 0;
    for (size_t i = 6; i < nf; i++)
      if (strcmp(f[i], "-") == 0) {
        dash = i;
        break;
      }
    if (nf < 7 || dash == 0 || dash + 2 >= nf) continue;
    mi = rc_xrealloc(mi, (cnt + 1) * sizeof(*mi));
    struct rc_mountinfo *e = &mi[cnt++];
    e->root = unescape(f[3]);
    e->mountpoint = unescape(f[4]);
    char opt[1024] = "";
    for (size_t i = 6; i < dash; i++) {
      size_t l = strlen(opt);
      snprintf(opt + l, sizeof(opt) - l, "%s%s", l ? " " : "", f[i]);
    }
    e->optional = rc_xstrdup(opt);
    e->fstype = rc_xstrdup(f[dash + 1]);
    e->source = unescape(f[dash + 2]);
    e->superopts = rc_xstrdup(dash + 3 < nf ? f[dash + 3] : "");
  }
  *out = mi;
  *n = cnt;
  return 0;
}
