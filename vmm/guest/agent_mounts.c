/* The container's root inside the guest: the root disk read-only under a tmpfs overlay (so
 * the container can write, and mount points can be made), the extra disks under
 * /run/volumes/<n>, then the OCI mounts inside the new root. Destinations are resolved
 * inside the root with openat2(RESOLVE_IN_ROOT), so a symlink in the image cannot send a
 * mount outside it; the mount goes onto the resolved fd through /proc/self/fd. Every mount
 * of the container is nodev but devpts and the device nodes bound into its /dev (runc's
 * default ones and linux.devices): the guest kernel has no device cgroup, so this is what
 * keeps runc's device list. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent.h"

#define LOWER_DIR "/run/lower"
#define OVERLAY_DIR "/run/overlay"
/* The agent's own device nodes (outside the container's root), bound one by one into the
 * container's /dev: the only mount of the container that allows device nodes. */
#define DEVICES_DIR "/run/devices"

static int mkdir_guest(const char *path, struct rc_error *err) {
  if (mkdir(path, 0755) < 0 && errno != EEXIST) return rc_err(err, errno, "mkdir %s", path);
  return 0;
}

/* "/dev/vda" as it is; "serial:NAME" is the virtio disk whose serial reads NAME. */
static int find_device(const char *spec, char *out, size_t size, struct rc_error *err) {
  if (strncmp(spec, "serial:", 7) != 0) {
    snprintf(out, size, "%s", spec);
    return 0;
  }
  const char *want = spec + 7;
  DIR *d = opendir("/sys/block");
  if (!d) return rc_err(err, errno, "open /sys/block");
  const struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[300], serial[64] = "";
    snprintf(path, sizeof(path), "/sys/block/%s/serial", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, serial, sizeof(serial) - 1);
    close(fd);
    if (n <= 0) continue;
    serial[n] = '\0';
    serial[strcspn(serial, "\n")] = '\0';
    if (strcmp(serial, want) == 0) {
      snprintf(out, size, "/dev/%s", e->d_name);
      closedir(d);
      return 0;
    }
  }
  closedir(d);
  return rc_err(err, ENODEV, "no disk with serial \"%s\"", want);
}

static int mount_disk(const char *spec, const char *fstype, bool read_only, const char *dir,
                      struct rc_error *err) {
  char dev[300];
  if (find_device(spec, dev, sizeof(dev), err) < 0) return -1;
  if (mkdir_guest(dir, err) < 0) return -1;
  /* nodev: a node in the image would name a device of the guest (its disks among them);
   * the guest kernel has no device cgroup to stop it as runc's rules would */
  if (mount(dev, dir, fstype, MS_NODEV | (read_only ? MS_RDONLY : 0), NULL) < 0)
    return rc_err(err, errno, "mount %s (%s) on %s", dev, fstype, dir);
  return 0;
}

static int mount_root(const struct agent_config *cfg, struct rc_error *err) {
  if (mount_disk(cfg->rootfs_device, cfg->rootfs_fstype, true, LOWER_DIR, err) < 0) return -1;
  if (mkdir_guest(OVERLAY_DIR, err) < 0) return -1;
  if (mount("tmpfs", OVERLAY_DIR, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
    return rc_err(err, errno, "mount tmpfs on %s", OVERLAY_DIR);
  if (mkdir_guest(OVERLAY_DIR "/upper", err) < 0 || mkdir_guest(OVERLAY_DIR "/work", err) < 0 ||
      mkdir_guest(AGENT_ROOT_DIR, err) < 0)
    return -1;
  /* nodev is what stops the image's device nodes (and any the workload makes with
   * CAP_MKNOD): the open is checked against the overlay's mount, not the layers' */
  if (mount("overlay", AGENT_ROOT_DIR, "overlay", MS_NODEV,
            "lowerdir=" LOWER_DIR ",upperdir=" OVERLAY_DIR "/upper,workdir=" OVERLAY_DIR
            "/work") < 0)
    return rc_err(err, errno, "mount the overlay on %s", AGENT_ROOT_DIR);
  return 0;
}

static int mount_volumes(const struct agent_config *cfg, struct rc_error *err) {
  if (cfg->n_volumes && mkdir_guest(AGENT_VOLUMES_DIR, err) < 0) return -1;
  for (uint32_t i = 0; i < cfg->n_volumes; i++) {
    char dir[64];
    snprintf(dir, sizeof(dir), AGENT_VOLUMES_DIR "/%u", i);
    const struct agent_volume *v = &cfg->volumes[i];
    if (mount_disk(v->device, v->fstype, v->read_only, dir, err) < 0) return -1;
  }
  return 0;
}

/* ---- OCI mounts -------------------------------------------------------------------- */

struct mount_flags {
  unsigned long flags;       /* for mount(2) */
  unsigned long propagation; /* MS_SHARED / MS_PRIVATE / ... (| MS_REC) */
  bool bind, recursive;
  char data[1024]; /* the options that are not flags, comma-separated */
};

static const struct {
  const char *name;
  bool clear;
  unsigned long flag;
} flag_options[] = {
    {"ro", false, MS_RDONLY},
    {"rw", true, MS_RDONLY},
    {"nosuid", false, MS_NOSUID},
    {"suid", true, MS_NOSUID},
    {"nodev", false, MS_NODEV},
    {"dev", true, MS_NODEV},
    {"noexec", false, MS_NOEXEC},
    {"exec", true, MS_NOEXEC},
    {"sync", false, MS_SYNCHRONOUS},
    {"async", true, MS_SYNCHRONOUS},
    {"dirsync", false, MS_DIRSYNC},
    {"remount", false, MS_REMOUNT},
    {"mand", false, MS_MANDLOCK},
    {"nomand", true, MS_MANDLOCK},
    {"noatime", false, MS_NOATIME},
    {"atime", true, MS_NOATIME},
    {"nodiratime", false, MS_NODIRATIME},
    {"diratime", true, MS_NODIRATIME},
    {"relatime", false, MS_RELATIME},
    {"norelatime", true, MS_RELATIME},
    {"strictatime", false, MS_STRICTATIME},
    {"nostrictatime", true, MS_STRICTATIME},
    /* runc's recursive attributes: a volume reaches the guest as one image holding its
     * whole tree, with no mounts below it, so they are the plain flags here */
    {"rro", false, MS_RDONLY},
    {"rrw", true, MS_RDONLY},
    {"rnosuid", false, MS_NOSUID},
    {"rsuid", true, MS_NOSUID},
    {"rnodev", false, MS_NODEV},
    {"rdev", true, MS_NODEV},
    {"rnoexec", false, MS_NOEXEC},
    {"rexec", true, MS_NOEXEC},
    {"rnoatime", false, MS_NOATIME},
    {"ratime", true, MS_NOATIME},
    {"rnodiratime", false, MS_NODIRATIME},
    {"rdiratime", true, MS_NODIRATIME},
    {"rrelatime", false, MS_RELATIME},
    {"rnorelatime", true, MS_RELATIME},
    {"rstrictatime", false, MS_STRICTATIME},
    {"rnostrictatime", true, MS_STRICTATIME},
};

static const struct {
  const char *name;
  unsigned long flag;
} propagation_options[] = {
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

static int parse_options(const struct agent_mount *m, struct mount_flags *mf,
                         struct rc_error *err) {
  memset(mf, 0, sizeof(*mf));
  size_t used = 0;
  for (uint32_t i = 0; i < m->n_options; i++) {
    const char *o = m->options[i];
    bool known = false;
    for (size_t k = 0; k < sizeof(flag_options) / sizeof(flag_options[0]) && !known; k++) {
      if (strcmp(o, flag_options[k].name) != 0) continue;
      known = true;
      if (flag_options[k].clear)
        mf->flags &= ~flag_options[k].flag;
      else
        mf->flags |= flag_options[k].flag;
    }
    for (size_t k = 0; k < sizeof(propagation_options) / sizeof(propagation_options[0]) && !known;
         k++) {
      if (strcmp(o, propagation_options[k].name) != 0) continue;
      known = true;
      mf->propagation = propagation_options[k].flag;
    }
    if (!known && (strcmp(o, "bind") == 0 || strcmp(o, "rbind") == 0)) {
      known = true;
      mf->bind = true;
      mf->recursive = o[0] == 'r';
    }
    if (known) continue;
    /* filesystem data ("mode=755", "size=65536k"); a comma would smuggle in more options */
    size_t n = strlen(o);
    if (strchr(o, ',') || used + n + 2 > sizeof(mf->data))
      return rc_err(err, EINVAL, "mount %s: bad option \"%s\"", m->destination, o);
    if (used) mf->data[used++] = ',';
    memcpy(mf->data + used, o, n + 1);
    used += n;
  }
  if (strcmp(m->type, "bind") == 0) mf->bind = true;
  return 0;
}

int agent_open_in_root(int rootfd, const char *path, int flags) {
  struct open_how how = {
      .flags = (uint64_t)(flags | O_CLOEXEC),
      .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
  };
  return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
}

/* Opens (O_PATH) the destination inside the root, making the missing directories on the
 * way and, for a file bind mount, an empty file at the end. Errors begin "WHAT WHOM: "
 * ("mount /data", "device /dev/net/tun" for the directory that holds a device node). */
static int make_destination(int rootfd, const char *dest, bool is_dir, const char *what,
                            const char *whom, struct rc_error *err) {
  size_t len = strlen(dest);
  char *prefix = malloc(len + 1);
  if (!prefix) return rc_err(err, ENOMEM, "%s %s", what, whom);
  int parent = agent_open_in_root(rootfd, "/", O_PATH | O_DIRECTORY);
  if (parent < 0) {
    rc_err(err, errno, "%s %s: open the container root", what, whom);
    goto fail;
  }
  size_t i = 0;
  for (;;) {
    while (dest[i] == '/') i++;
    if (dest[i] == '\0') break;
    size_t start = i;
    while (dest[i] && dest[i] != '/') i++;
    bool last = dest[i + strspn(dest + i, "/")] == '\0';
    memcpy(prefix, dest, i);
    prefix[i] = '\0';
    int fd = agent_open_in_root(rootfd, prefix, O_PATH);
    if (fd < 0 && errno == ENOENT) {
      char name[256];
      size_t n = i - start;
      if (n >= sizeof(name)) {
        rc_err(err, ENAMETOOLONG, "%s %s", what, whom);
        goto fail;
      }
      memcpy(name, dest + start, n);
      name[n] = '\0';
      int r = (last && !is_dir) ? mknodat(parent, name, S_IFREG | 0644, 0)
                                : mkdirat(parent, name, 0755);
      if (r < 0 && errno != EEXIST) {
        rc_err(err, errno, "%s %s: create %s", what, whom, prefix);
        goto fail;
      }
      fd = agent_open_in_root(rootfd, prefix, O_PATH);
    }
    if (fd < 0) {
      rc_err(err, errno, "%s %s: resolve %s in the container root", what, whom, prefix);
      goto fail;
    }
    close(parent);
    parent = fd;
  }
  free(prefix);
  prefix = NULL;
  struct stat st;
  if (fstat(parent, &st) < 0) {
    rc_err(err, errno, "%s %s: stat", what, whom);
    goto fail;
  }
  if (is_dir != S_ISDIR(st.st_mode)) {
    rc_err(err, is_dir ? ENOTDIR : EISDIR, "%s %s: %s in the image is %s", what, whom, dest,
           is_dir ? "not a directory" : "a directory");
    goto fail;
  }
  return parent;
fail:
  free(prefix);
  if (parent >= 0) close(parent);
  return -1;
}

static int do_oci_mount(int rootfd, const struct agent_mount *m, struct rc_error *err) {
  struct mount_flags mf;
  if (parse_options(m, &mf, err) < 0) return -1;
  bool is_dir = true;
  const char *type = m->type;
  /* Every mount of the container is nodev, whatever the bundle asks ("dev" included): the
   * guest has no device cgroup, so a node on a dev-allowed mount (one a volume's image
   * carries, or one a root workload makes with CAP_MKNOD on a tmpfs) would open a device
   * of the guest, its disks included. The default devices and linux.devices are bound in
   * one by one (make_devices). devpts keeps its nodes: they are the ptys it makes itself. */
  if (strcmp(type, "devpts") != 0) mf.flags |= MS_NODEV;
  if (mf.bind) {
    struct stat st;
    if (m->source[0] != '/')
      return rc_err(err, EINVAL, "mount %s: bind source \"%s\" is not an absolute guest path",
                    m->destination, m->source);
    if (stat(m->source, &st) < 0)
      return rc_err(err, errno, "mount %s: bind source %s", m->destination, m->source);
    is_dir = S_ISDIR(st.st_mode);
  } else if (strcmp(type, "cgroup") == 0) {
    /* the guest has its own, unified hierarchy; v1 controllers are not built */
    type = "cgroup2";
    /* Without a cgroup namespace the mount shows the whole guest hierarchy, the pids
     * cgroup included: writable, a root workload could raise pids.max or leave the cgroup.
     * Read-only then, whatever the bundle asked, and also when the bundle sets no limit:
     * `update --pids-limit` may set one later, and a process that had left the cgroup by
     * then would escape it. (runc's default spec asks for it read-only anyway.) */
    if (agent_has_pids_cgroup()) mf.flags |= MS_RDONLY;
  }
  int fd = make_destination(rootfd, m->destination, is_dir, "mount", m->destination, err);
  if (fd < 0) return -1;
  char target[64];
  snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
  int r = 0;
  if (mf.bind) {
    unsigned long bind = MS_BIND | (mf.recursive ? MS_REC : 0);
    r = mount(m->source, target, NULL, bind, NULL);
    /* A bind mount takes its flags (ro, nosuid, ...) only on a remount, and that must name
     * the new mount: fd still names the directory it covers, so resolve the destination
     * again (inside the root, as before). */
    unsigned long extra = mf.flags & ~(unsigned long)(MS_REMOUNT | MS_BIND | MS_REC);
    if (r == 0 && extra) {
      int top = agent_open_in_root(rootfd, m->destination, O_PATH);
      if (top < 0) {
        r = -1;
      } else {
        char top_path[64];
        snprintf(top_path, sizeof(top_path), "/proc/self/fd/%d", top);
        r = mount(NULL, top_path, NULL, MS_BIND | MS_REMOUNT | extra, NULL);
        int e = errno;
        close(top);
        errno = e;
      }
    }
  } else {
    r = mount(m->source, target, type, mf.flags, mf.data[0] ? mf.data : NULL);
    if (r < 0 && errno == ENODEV && strcmp(type, "cgroup2") == 0) {
      agent_log("mount %s: no cgroup support in the guest kernel, skipped", m->destination);
      close(fd);
      return 0;
    }
  }
  if (r == 0 && mf.propagation) r = mount(NULL, target, NULL, mf.propagation, NULL);
  int e = errno;
  close(fd);
  if (r < 0)
    return rc_err(err, e, "mount %s on %s (type %s)", m->source, m->destination,
                  mf.bind ? "bind" : type);
  return 0;
}

/* The device nodes every container has (runc's default list) and linux.devices. They are
 * made once in DEVICES_DIR, a tmpfs of the agent's that allows device nodes, and each is
 * bound onto its path in the container's /dev: every other mount of the container is
 * nodev, so these are the only nodes the workload can open (what runc's device cgroup
 * allows; the guest kernel has none). */
static const struct {
  const char *name;
  unsigned major, minor;
} default_devices[] = {{"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
                       {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};

/* Is path one of linux.devices? Such an entry replaces the default node of its path, as
 * under runc (its mode and owner are the ones wanted). */
static bool listed(const struct agent_config *cfg, const char *path) {
  for (uint32_t i = 0; i < cfg->n_devices; i++)
    if (strcmp(cfg->devices[i].path, path) == 0) return true;
  return false;
}

/* runc makes /dev/ptmx its link to pts/ptmx after the nodes, whatever linux.devices says
 * (a node there would open the guest's own pty multiplexer, not the container's devpts). */
static bool replaced_by_link(const struct agent_device *d) {
  return strcmp(d->path, "/dev/ptmx") == 0;
}

static mode_t node_type(uint8_t type) {
  switch (type) {
    case 'b':
      return S_IFBLK;
    case 'p':
      return S_IFIFO;
    default: /* 'c' and 'u': the CONFIG's validation let no other through */
      return S_IFCHR;
  }
}

/* A listed device's node in DEVICES_DIR: named by its index, not its path, so that
 * /dev/net/tun needs no directories there and no name can clash with a default one. */
static void listed_node(char *buf, size_t size, uint32_t index) {
  snprintf(buf, size, DEVICES_DIR "/%u", index);
}

/* mknod, then chown, then chmod: chown clears the setuid and setgid bits of a non-directory,
 * so the mode is set last to be exactly the one asked (the umask is 0 here). */
static int make_listed_node(const struct agent_device *d, uint32_t index, struct rc_error *err) {
  char path[64];
  listed_node(path, sizeof(path), index);
  dev_t dev = d->type == 'p' ? 0 : makedev(d->major, d->minor);
  if (mknod(path, node_type(d->type) | (mode_t)d->mode, dev) < 0)
    return rc_err(err, errno, "device %s: mknod", d->path);
  if (chown(path, (uid_t)d->uid, (gid_t)d->gid) < 0)
    return rc_err(err, errno, "device %s: chown to %u:%u", d->path, d->uid, d->gid);
  if (chmod(path, (mode_t)d->mode) < 0)
    return rc_err(err, errno, "device %s: chmod to 0%o", d->path, d->mode);
  return 0;
}

static int make_device_nodes(const struct agent_config *cfg, struct rc_error *err) {
  if (mkdir_guest(DEVICES_DIR, err) < 0) return -1;
  if (mount("tmpfs", DEVICES_DIR, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755") < 0)
    return rc_err(err, errno, "mount tmpfs on %s", DEVICES_DIR);
  /* mknod obeys the umask; the nodes' modes are exactly the ones wanted */
  mode_t old = umask(0);
  int r = 0;
  for (size_t i = 0; i < sizeof(default_devices) / sizeof(default_devices[0]) && r == 0; i++) {
    char path[64], target[64];
    snprintf(path, sizeof(path), DEVICES_DIR "/%s", default_devices[i].name);
    snprintf(target, sizeof(target), "/dev/%s", default_devices[i].name);
    if (listed(cfg, target)) continue;
    if (mknod(path, S_IFCHR | 0666, makedev(default_devices[i].major, default_devices[i].minor)) <
        0)
      r = rc_err(err, errno, "mknod %s", path);
  }
  for (uint32_t i = 0; i < cfg->n_devices && r == 0; i++)
    if (!replaced_by_link(&cfg->devices[i])) r = make_listed_node(&cfg->devices[i], i, err);
  umask(old);
  return r;
}

static int mount_id_of(int fd, uint64_t *id) {
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) < 0) return -1;
  if (!(stx.stx_mask & STATX_MNT_ID)) {
    errno = ENOSYS;
    return -1;
  }
  *id = stx.stx_mnt_id;
  return 0;
}

/* Binds the agent's node `source` onto `path` of the container (`base` in the directory
 * `parent`, both resolved inside the root). An entry the config mounted there (a bind
 * mount: its own mount, not /dev's), a directory or a symlink is left as it is, as runc
 * leaves it (returns 1); any other entry (the image's own node or file, when the bundle
 * does not mount /dev) is covered, and a missing one gets an empty file to cover. */
static int bind_node(int rootfd, int parent, uint64_t dev_mnt, const char *source, const char *path,
                     const char *base, struct rc_error *err) {
  int fd = agent_open_in_root(rootfd, path, O_PATH | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT) {
    if (mknodat(parent, base, S_IFREG | 0644, 0) < 0 && errno != EEXIST)
      return rc_err(err, errno, "create %s in the container root", path);
    fd = agent_open_in_root(rootfd, path, O_PATH | O_NOFOLLOW);
  }
  if (fd < 0) return rc_err(err, errno, "open %s in the container root", path);
  struct stat st;
  uint64_t mnt;
  if (fstat(fd, &st) < 0 || mount_id_of(fd, &mnt) < 0) {
    int e = errno;
    close(fd);
    return rc_err(err, e, "stat %s in the container root", path);
  }
  if (S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode) || mnt != dev_mnt) {
    close(fd);
    return 1;
  }
  char target[64];
  snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
  int r = mount(source, target, NULL, MS_BIND, NULL);
  int e = errno;
  close(fd);
  if (r < 0) return rc_err(err, e, "bind %s onto %s in the container root", source, path);
  /* as runc's /dev tmpfs: nosuid, noexec, but not nodev (the remount names the new mount:
   * resolve again) */
  fd = agent_open_in_root(rootfd, path, O_PATH | O_NOFOLLOW);
  if (fd < 0) return rc_err(err, errno, "reopen %s in the container root", path);
  snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
  r = mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NOEXEC, NULL);
  e = errno;
  close(fd);
  if (r < 0) return rc_err(err, e, "remount %s in the container root", path);
  return 0;
}

/* A linux.devices entry: its directories (/dev/net) made inside the container's root as a
 * mount's are, then its node bound in as a default one is. */
static int bind_listed(int rootfd, uint64_t dev_mnt, const struct agent_device *d, uint32_t index,
                       struct rc_error *err) {
  /* the path is "/dev/..." with plain components (agent_config_validate) */
  const char *base = strrchr(d->path, '/') + 1;
  size_t dir_len = (size_t)(base - 1 - d->path);
  char *dir = strndup(d->path, dir_len);
  if (!dir) return rc_err(err, ENOMEM, "device %s", d->path);
  int parent = make_destination(rootfd, dir, true, "device", d->path, err);
  free(dir);
  if (parent < 0) return -1;
  char source[64];
  listed_node(source, sizeof(source), index);
  int r = bind_node(rootfd, parent, dev_mnt, source, d->path, base, err);
  close(parent);
  if (r < 0) return rc_err_wrap(err, "device %s", d->path);
  if (r > 0)
    agent_log("device %s: left as the config mounted it (or a directory, a link)", d->path);
  return 0;
}

/* The default devices, linux.devices and runc's /dev links, in the container's /dev: the
 * bundle's /dev mount (usually a tmpfs), or else the image's own /dev (made when the image
 * has none). */
static int make_devices(int rootfd, const struct agent_config *cfg, struct rc_error *err) {
  static const struct {
    const char *name, *target;
  } links[] = {{"fd", "/proc/self/fd"},
               {"stdin", "/proc/self/fd/0"},
               {"stdout", "/proc/self/fd/1"},
               {"stderr", "/proc/self/fd/2"},
               {"ptmx", "pts/ptmx"}};
  if (make_device_nodes(cfg, err) < 0) return -1;
  int dev = agent_open_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY);
  if (dev < 0 && errno == ENOENT) {
    if (mkdirat(rootfd, "dev", 0755) < 0 && errno != EEXIST)
      return rc_err(err, errno, "mkdir /dev in the container root");
    dev = agent_open_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY);
  }
  if (dev < 0) return rc_err(err, errno, "open /dev in the container root");
  uint64_t dev_mnt;
  if (mount_id_of(dev, &dev_mnt) < 0) {
    int e = errno;
    close(dev);
    return rc_err(err, e, "stat /dev in the container root");
  }
  int r = 0;
  for (size_t i = 0; i < sizeof(default_devices) / sizeof(default_devices[0]) && r == 0; i++) {
    char source[64], path[64];
    snprintf(source, sizeof(source), DEVICES_DIR "/%s", default_devices[i].name);
    snprintf(path, sizeof(path), "/dev/%s", default_devices[i].name);
    if (listed(cfg, path)) continue;
    if (bind_node(rootfd, dev, dev_mnt, source, path, default_devices[i].name, err) < 0) r = -1;
  }
  for (uint32_t i = 0; i < cfg->n_devices && r == 0; i++) {
    if (replaced_by_link(&cfg->devices[i])) {
      agent_log("device /dev/ptmx: runc's link to pts/ptmx takes its place");
      continue;
    }
    r = bind_listed(rootfd, dev_mnt, &cfg->devices[i], i, err);
  }
  for (size_t i = 0; i < sizeof(links) / sizeof(links[0]) && r == 0; i++) {
    if (symlinkat(links[i].target, dev, links[i].name) < 0 && errno != EEXIST)
      r = rc_err(err, errno, "symlink /dev/%s in the container root", links[i].name);
  }
  close(dev);
  return r;
}

int agent_build_rootfs(const struct agent_config *cfg, struct agent_failure *f) {
  f->stage = AGENT_STAGE_ROOTFS;
  if (mount_root(cfg, &f->err) < 0) return -1;
  f->stage = AGENT_STAGE_VOLUMES;
  if (mount_volumes(cfg, &f->err) < 0) return -1;
  f->stage = AGENT_STAGE_MOUNTS;
  int rootfd = open(AGENT_ROOT_DIR, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) return rc_err(&f->err, errno, "open %s", AGENT_ROOT_DIR);
  for (uint32_t i = 0; i < cfg->n_mounts; i++) {
    if (do_oci_mount(rootfd, &cfg->mounts[i], &f->err) < 0) {
      close(rootfd);
      return -1;
    }
  }
  int r = make_devices(rootfd, cfg, &f->err);
  if (r == 0) {
    /* runc's order: sysctls, then read-only paths, then masked paths */
    f->stage = AGENT_STAGE_SECURITY;
    r = agent_apply_sysctls(&cfg->security, &f->err);
    if (r == 0) r = agent_apply_paths(rootfd, &cfg->security, &f->err);
  }
  close(rootfd);
  if (r < 0) return -1;
  /* the overlay let the mount points be made; now the root becomes what the config says */
  f->stage = AGENT_STAGE_ROOTFS;
  if (cfg->rootfs_read_only &&
      mount(NULL, AGENT_ROOT_DIR, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NODEV, NULL) < 0)
    return rc_err(&f->err, errno, "remount the container root read-only");
  return 0;
}
