/* The two rootfs phases around the createContainer hooks.
 *
 * prepare: / becomes recursively slave (or rootfsPropagation) so nothing we mount leaks to
 * the host, the rootfs is bound onto itself (pivot_root needs a mount point), then config
 * mounts in order and /dev.
 * finalize: pivot_root(".", ".") (or MS_MOVE + chroot for --no-pivot), rootfsPropagation
 * on the new /, the caller's after_pivot step (the terminal and /dev/console),
 * readonlyPaths, maskedPaths, the deferred read-only tmpfs and /dev, and a read-only root.
 * Order as runc: masking and read-only binds come before the root turns read-only, which
 * they do not depend on. */
#include "runcell/rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "rootfs_internal.h"
#include "runcell/util.h"

static int parse_propagation(const char *s, unsigned long *out) {
  static const struct {
    const char *name;
    unsigned long flags;
  } table[] = {
      {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
      {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
      {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
      {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
  };
  for (size_t i = 0; i < RC_ARRAY_SIZE(table); i++)
    if (strcmp(s, table[i].name) == 0) {
      *out = table[i].flags;
      return 0;
    }
  return -1;
}

static const char *root_propagation(const struct oci_config *cfg) {
  if (!cfg->has_linux || !cfg->linux_.rootfs_propagation || !*cfg->linux_.rootfs_propagation)
    return NULL;
  return cfg->linux_.rootfs_propagation;
}

/* pivot_root and MS_MOVE refuse a mount whose parent mount is shared. With a shared
 * rootfsPropagation / is shared, so the mount holding the rootfs is made private (only in
 * our namespace). */
static int make_parent_private(const char *root, struct rc_error *err) {
  struct rc_mountinfo *mi = NULL;
  size_t n = 0;
  if (rc_mountinfo_read(&mi, &n, err) < 0) return -1;
  const struct rc_mountinfo *best = NULL;
  size_t best_len = 0;
  for (size_t i = 0; i < n; i++) {
    const char *mp = mi[i].mountpoint;
    size_t l = strlen(mp);
    bool under =
        strcmp(mp, "/") == 0 || (strncmp(root, mp, l) == 0 && (root[l] == '/' || root[l] == '\0'));
    /* longest prefix wins; of equal mount points the last listed is the one on top */
    if (under && l >= best_len) {
      best = &mi[i];
      best_len = l;
    }
  }
  int ret = 0;
  if (best && strstr(best->optional, "shared:") &&
      mount(NULL, best->mountpoint, NULL, MS_PRIVATE, NULL) < 0)
    ret = rc_err(err, errno, "make parent mount %s of the rootfs private", best->mountpoint);
  rc_mountinfo_free(mi, n);
  return ret;
}

int rc_rootfs_prepare(const struct rc_rootfs_opts *o, struct rc_error *err) {
  const struct oci_config *cfg = o->cfg;
  unsigned long prop = MS_SLAVE | MS_REC;
  const char *p = root_propagation(cfg);
  if (p && parse_propagation(p, &prop) < 0)
    return rc_err(err, EINVAL, "linux.rootfsPropagation: unknown value \"%s\"", p);
  if (mount(NULL, "/", NULL, prop, NULL) < 0)
    return rc_err(err, errno, "set propagation of / to %s", p ? p : "rslave");

  char root[PATH_MAX];
  if (!realpath(o->rootfs, root)) return rc_err(err, errno, "rootfs %s", o->rootfs);
  if (make_parent_private(root, err) < 0) return -1;
  if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) < 0)
    return rc_err(err, errno, "bind mount rootfs %s onto itself", root);
  /* opened after the self-bind: mounts made through this fd land on the new mount, the
   * one pivot_root will make the container's / */
  cleanup_close int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) return rc_err(err, errno, "open rootfs %s", root);

  struct rc_mount_ctx c = {.o = o, .rootfd = rootfd, .root_real = root};
  for (size_t i = 0; i < cfg->n_mounts; i++)
    if (rc_mount_one(&c, &cfg->mounts[i], err) < 0) return -1;
  return rc_setup_dev(&c, err);
}

/* Makes the mount at the cwd the root of this mount namespace. pivot_root(".", ".") stacks
 * the old root on top of the new one, so no directory for it is needed inside the new
 * root (which may be read-only); the old root becomes slave, so that detaching it cannot
 * propagate to a peer (the host) when / was shared, and is detached. *pivoted says
 * whether pivot_root itself succeeded (it answers EINVAL where / is an initramfs). */
static int pivot_cwd(bool *pivoted, struct rc_error *err) {
  *pivoted = false;
  if (syscall(SYS_pivot_root, ".", ".") < 0) return rc_err(err, errno, "pivot_root");
  *pivoted = true;
  if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
    return rc_err(err, errno, "pivot_root: make the old root rslave");
  if (umount2(".", MNT_DETACH) < 0) return rc_err(err, errno, "pivot_root: detach the old root");
  if (chdir("/") < 0) return rc_err(err, errno, "chdir /");
  return 0;
}

/* The mount at the cwd moved over / and chrooted into: the old root's mounts stay in the
 * namespace, out of reach below the chroot for a process without CAP_SYS_CHROOT (as with
 * runc --no-pivot, which is meant for a / that cannot be pivoted, e.g. an initramfs). */
static int move_cwd(struct rc_error *err) {
  if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
    return rc_err(err, errno, "move the new root onto /");
  if (chroot(".") < 0) return rc_err(err, errno, "chroot into the new root");
  if (chdir("/") < 0) return rc_err(err, errno, "chdir /");
  return 0;
}

static int pivot(const char *root, struct rc_error *err) {
  if (chdir(root) < 0) return rc_err(err, errno, "pivot_root: chdir %s", root);
  bool pivoted;
  if (pivot_cwd(&pivoted, err) < 0) {
    if (!pivoted && err->code == EINVAL)
      return rc_err(err, EINVAL, "pivot_root (is / an initramfs? then use --no-pivot)");
    return -1;
  }
  return 0;
}

/* --no-pivot */
static int move_root(const char *root, struct rc_error *err) {
  if (chdir(root) < 0) return rc_err(err, errno, "chdir %s", root);
  if (move_cwd(err) < 0) return rc_err_wrap(err, "rootfs %s", root);
  return 0;
}

int rc_rootfs_enter_cwd(struct rc_error *err) {
  bool pivoted;
  if (pivot_cwd(&pivoted, err) == 0) return 0;
  if (pivoted || err->code != EINVAL) return -1;
  return move_cwd(err);
}

/* Opens a masked/readonly path in the new root; 0 with *fd = -1 when it does not exist
 * (those are ignored, as the spec's defaults list paths some kernels lack). */
static int open_optional(int rootfd, const char *path, int *fd, struct rc_error *err) {
  struct rc_error e;
  *fd = rc_open_in_root(rootfd, path, O_PATH, 0, &e);
  if (*fd >= 0) return 0;
  if (e.code == ENOENT || e.code == ENOTDIR) return 0;
  *err = e;
  return -1;
}

/* After pivot_root, runcell binds and mounts onto the masked and read-only paths (and
 * /dev/console) by descriptor (open_tree, fsmount, move_mount): a /proc/self/fd/N path
 * would be looked up in the container's /proc, where whoever can mount there — a second
 * container racing from a shared mount (runc's CVE-2025-52881) — decides what N is, and
 * the read-only bind meant for /proc/sys would land on a directory of the attacker's,
 * leaving core_pattern writable. open_tree, fsopen and move_mount are Linux 5.2,
 * mount_setattr 5.12; an outer runtime's filter that predates them answers EPERM. Only
 * the first call can say "not here": nothing is attached before the last one. */
static int fd_mounts_missing(void) {
  return errno == ENOSYS || errno == EPERM ? 1 : -1;
}

int rc_bind_by_fd(int src, int dst, bool recursive, bool rdonly) {
  cleanup_close int tree = (int)open_tree(
      src, "",
      AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0));
  if (tree < 0) return fd_mounts_missing();
  struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
  if (rdonly && mount_setattr(tree, "", AT_EMPTY_PATH, &ro, sizeof(ro)) < 0)
    return fd_mounts_missing(); /* 5.12, after open_tree's 5.2: still nothing attached */
  return move_mount(tree, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

/* An empty read-only tmpfs attached onto dst; returns as rc_bind_by_fd. */
static int empty_tmpfs_by_fd(int dst) {
  cleanup_close int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
  if (fs < 0) return fd_mounts_missing();
  if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) return -1;
  cleanup_close int mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY);
  if (mnt < 0) return -1;
  return move_mount(mnt, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

static int readonly_path(int rootfd, const char *path, struct rc_error *err) {
  cleanup_close int fd = -1;
  if (open_optional(rootfd, path, &fd, err) < 0) return rc_err_wrap(err, "readonly path");
  if (fd < 0) return 0;
  /* read-only, keeping the nosuid/nodev/noexec the mount has, as runc does (adding them
   * would stop programs under a read-only /bin or / from running) */
  int r = rc_bind_by_fd(fd, fd, true, true);
  if (r == 0) return 0;
  if (r < 0) return rc_err(err, errno, "readonly path %s: read-only bind mount", path);
  char p[RC_FD_PATH_MAX];
  rc_fd_path(p, fd);
  if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0)
    return rc_err(err, errno, "readonly path %s: bind mount", path);
  cleanup_close int nfd = rc_open_in_root(rootfd, path, O_PATH, 0, err);
  if (nfd < 0) return rc_err_wrap(err, "readonly path");
  char np[RC_FD_PATH_MAX];
  rc_fd_path(np, nfd);
  if (rc_remount_keep_locked(np, MS_RDONLY, 0) < 0)
    return rc_err(err, errno, "readonly path %s: remount read-only", path);
  return 0;
}

static int masked_path(int rootfd, const char *path, struct rc_error *err) {
  cleanup_close int fd = -1;
  if (open_optional(rootfd, path, &fd, err) < 0) return rc_err_wrap(err, "masked path");
  if (fd < 0) return 0;
  struct stat st;
  if (fstat(fd, &st) < 0) return rc_err(err, errno, "masked path %s", path);
  char p[RC_FD_PATH_MAX];
  rc_fd_path(p, fd);
  if (S_ISDIR(st.st_mode)) {
    /* an empty read-only tmpfs hides the directory's contents */
    int r = empty_tmpfs_by_fd(fd);
    if (r == 0) return 0;
    if (r < 0 || mount("tmpfs", p, "tmpfs", MS_RDONLY, NULL) < 0)
      return rc_err(err, errno, "masked path %s: mount tmpfs", path);
    return 0;
  }
  /* files read as empty and take no writes: the container's own /dev/null over them,
   * after checking it really is the null device (a symlink or file put in its place
   * would otherwise be bound over the path: CVE-2025-31133) */
  cleanup_close int null = rc_open_in_root(rootfd, "/dev/null", O_PATH, 0, err);
  if (null < 0) return rc_err_wrap(err, "masked path %s", path);
  struct stat nst;
  if (fstat(null, &nst) < 0) return rc_err(err, errno, "masked path %s: stat /dev/null", path);
  if (!S_ISCHR(nst.st_mode) || nst.st_rdev != makedev(1, 3))
    return rc_err(err, ENODEV, "masked path %s: /dev/null is not the null device", path);
  int r = rc_bind_by_fd(null, fd, false, false);
  if (r == 0) return 0;
  char np[RC_FD_PATH_MAX];
  rc_fd_path(np, null);
  if (r < 0 || mount(np, p, NULL, MS_BIND, NULL) < 0)
    return rc_err(err, errno, "masked path %s: bind /dev/null", path);
  return 0;
}

static bool is_procfs(const char *path, int flags) {
  cleanup_close int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC | flags);
  struct statfs fs;
  return fd >= 0 && fstatfs(fd, &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC;
}

/* From pivot_root on, the /proc this process sees is the container's, and the masks and
 * read-only binds below name their targets as /proc/self/fd/N. An image can leave a
 * directory of its own in its place (a /proc link whose procfs a later volume hides, or a
 * config without a proc mount) whose self/fd/N links would send the masks anywhere in the
 * container (/sys/firmware stayed readable): with paths to mask, the container must have
 * the kernel's procfs there, as runc requires ("/proc/self/fd is not on procfs"). (The
 * process attributes written there before exec check each file they open; the bounding
 * set's last capability is probed, not read from /proc.) */
int rc_check_container_proc(struct rc_error *err) {
  if (!is_procfs("/proc", O_NOFOLLOW) || !is_procfs("/proc/self/fd", 0))
    return rc_err(err, 0,
                  "the container's /proc is not procfs after pivot_root (it must be a proc "
                  "mount on an ordinary directory, not hidden by a later mount)");
  return 0;
}

int rc_rootfs_finalize(const struct rc_rootfs_opts *o, struct rc_error *err) {
  const struct oci_config *cfg = o->cfg;
  char root[PATH_MAX];
  if (!realpath(o->rootfs, root)) return rc_err(err, errno, "rootfs %s", o->rootfs);
  if ((o->no_pivot ? move_root(root, err) : pivot(root, err)) < 0) return -1;

  const char *p = root_propagation(cfg);
  if (p) {
    unsigned long prop;
    if (parse_propagation(p, &prop) < 0)
      return rc_err(err, EINVAL, "linux.rootfsPropagation: unknown value \"%s\"", p);
    if (mount(NULL, "/", NULL, prop, NULL) < 0)
      return rc_err(err, errno, "set propagation of / to %s", p);
  }

  /* The terminal's /dev/console comes before readonlyPaths and maskedPaths, as in runc,
   * but nothing in it can be redirected (CVE-2025-52565: runc's source and target were
   * paths the container could swap for symlinks, which turned the unmasked /dev/console
   * into a writable /proc/sysrq-trigger): its source is the pty slave's descriptor and its
   * target a regular file just created in /dev, so the bind can only ever be the pty, and
   * there is nothing in it for a mask to have covered. Being first, it cannot undo a mask
   * or a read-only bind either: those are applied to the tree it leaves, so a maskedPaths
   * or readonlyPaths entry naming /dev/console or /dev still holds (made afterwards, the
   * console would have had to detach such a mount to put the pty there). And it is made
   * before /dev and / turn read-only, which a new file in /dev needs. */
  if (o->after_pivot && o->after_pivot(o->after_pivot_arg, err) < 0) return -1;

  if (cfg->has_linux && (cfg->linux_.n_readonly_paths || cfg->linux_.n_masked_paths) &&
      rc_check_container_proc(err) < 0)
    return -1;

  cleanup_close int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) return rc_err(err, errno, "open /");

  if (cfg->has_linux) {
    for (size_t i = 0; i < cfg->linux_.n_readonly_paths; i++)
      if (readonly_path(rootfd, cfg->linux_.readonly_paths[i], err) < 0) return -1;
    for (size_t i = 0; i < cfg->linux_.n_masked_paths; i++)
      if (masked_path(rootfd, cfg->linux_.masked_paths[i], err) < 0) return -1;
  }

  /* tmpfs and /dev mounts asked for ro were mounted writable so mount points and device
   * nodes could be made in them; now they get their ro */
  for (size_t i = 0; i < cfg->n_mounts; i++) {
    const struct oci_mount *m = &cfg->mounts[i];
    /* rro too, on this mount alone: a fresh tmpfs had nothing below it when runc would
     * have applied it, and what the config mounted there since must stay as mounted */
    bool rro = m->rattr_set & MOUNT_ATTR_RDONLY;
    if (!((m->flags & MS_RDONLY) || rro) || !rc_mount_ro_deferred(m)) continue;
    cleanup_close int fd = rc_open_in_root(rootfd, m->destination, O_PATH, 0, err);
    if (fd < 0) return rc_err_wrap(err, "remount %s read-only", m->destination);
    if (rc_make_readonly(fd, false) < 0)
      return rc_err(err, errno, "remount %s read-only", m->destination);
  }

  if (cfg->root_readonly && rc_remount_keep_locked("/", MS_RDONLY, 0) < 0)
    return rc_err(err, errno, "remount / read-only");
  return 0;
}
