/* Rootfs tests. The in-root resolver cases run anywhere; the rootfs cases build a real
 * container root (busybox, proc, sysfs, devpts, binds, masked/readonly paths) in child
 * processes with their own mount/pid/net/ipc/uts namespaces, so they need root and are
 * skipped (reported, not failed) where unshare is refused. A child reports through its
 * exit status and explains failures on stderr. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/magic.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/linux/rootfs_internal.h"
#include "runcell/rootfs.h"
#include "runcell/util.h"
#include "unit.h"

/* not in every linux/magic.h */
#ifndef MQUEUE_MAGIC
#define MQUEUE_MAGIC 0x19800202
#endif

#define SKIP_STATUS 77

/* ---- helpers ---- */

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    return;
  }
  fputs(text, f);
  fclose(f);
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  if (type == FTW_DP)
    rmdir(path);
  else
    unlink(path);
  return 0;
}

/* FTW_MOUNT: never descend into something still mounted (it would be the host's). */
static void rm_rf(const char *path) {
  nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static bool dir_is_empty(const char *path) {
  char cmd[PATH_MAX + 32];
  snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", path);
  /* NOLINTNEXTLINE(cert-env33-c): test helper running a fixed command on a test path */
  return system(cmd) == 0;
}

static bool copy_file(const char *from, const char *to, mode_t mode) {
  int in = open(from, O_RDONLY | O_CLOEXEC);
  int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  bool ok = in >= 0 && out >= 0;
  char buf[65536];
  ssize_t n;
  while (ok && (n = read(in, buf, sizeof(buf))) > 0) ok = write(out, buf, (size_t)n) == n;
  if (in >= 0) close(in);
  if (out >= 0) close(out);
  return ok;
}

static bool same_file(int fd, const char *path) {
  struct stat a, b;
  return fd >= 0 && fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino;
}

/* Runs fn in a child with its own namespaces (flags); with CLONE_NEWPID fn runs in a
 * grandchild, pid 1 of the new pid namespace. Returns fn's exit status, SKIP_STATUS when
 * namespaces cannot be made here, or 128+signal. */
static int run_isolated(int (*fn)(void *), void *arg, int flags) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (unshare(flags) < 0) {
      fprintf(stderr, "  (unshare: %s)\n", strerror(errno));
      _exit(SKIP_STATUS);
    }
    if (!(flags & CLONE_NEWPID)) _exit(fn(arg));
    pid_t g = fork();
    if (g < 0) _exit(126);
    if (g == 0) _exit(fn(arg));
    int st;
    while (waitpid(g, &st, 0) < 0 && errno == EINTR) {
    }
    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  }
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Checks inside a child: counted, explained on stderr, summed into the exit status. */
static int child_failures;
#define EXPECT(cond)                                                                           \
  do {                                                                                         \
    int e_ = errno;                                                                            \
    if (!(cond)) {                                                                             \
      child_failures++;                                                                        \
      fprintf(stderr, "  [child] %s:%d: expected %s (errno: %s)\n", __FILE__, __LINE__, #cond, \
              strerror(e_));                                                                   \
    }                                                                                          \
  } while (0)

static struct oci_mount mnt(const char *dest, const char *type, const char *src,
                            unsigned long flags, const char *data) {
  struct oci_mount m = {
      .destination = (char *)dest,
      .type = (char *)type,
      .source = (char *)src,
      .flags = flags,
      .data = (char *)data,
  };
  if (type && strcmp(type, "bind") == 0) {
    m.bind = true;
    m.recursive = true;
    m.flags |= MS_BIND | MS_REC;
  }
  return m;
}

/* ---- resolver cases, against openat2 and against the fallback walker ---- */

struct fixture {
  char base[64];
  char root[PATH_MAX];
  char outside[PATH_MAX];
  char passwd[PATH_MAX];
};

static bool fixture_make(struct fixture *f) {
  snprintf(f->base, sizeof(f->base), "/tmp/rc-inroot-XXXXXX");
  if (!mkdtemp(f->base)) return false;
  snprintf(f->root, sizeof(f->root), "%s/root", f->base);
  snprintf(f->outside, sizeof(f->outside), "%s/outside", f->base);
  snprintf(f->passwd, sizeof(f->passwd), "%s/etc/passwd", f->root);
  char p[PATH_MAX];
  mkdir(f->root, 0755);
  mkdir(f->outside, 0755);
  snprintf(p, sizeof(p), "%s/etc", f->root);
  mkdir(p, 0755);
  write_text(f->passwd, "in-root\n");
  snprintf(p, sizeof(p), "%s/dir", f->root);
  mkdir(p, 0755);
  struct {
    const char *target, *name;
  } links[] = {
      {"/etc/passwd", "abs"}, {"../../../../etc/passwd", "rel"},
      {"../..", "dir/up"},    {"loop", "loop"},
      {f->outside, "esc"}, /* absolute host path outside the root */
  };
  for (size_t i = 0; i < RC_ARRAY_SIZE(links); i++) {
    snprintf(p, sizeof(p), "%s/%s", f->root, links[i].name);
    if (symlink(links[i].target, p) < 0) return false;
  }
  return true;
}

typedef int (*resolver)(int rootfd, const char *path, int flags);

static int via_openat2(int rootfd, const char *path, int flags) {
  struct rc_error err;
  int fd = rc_open_in_root(rootfd, path, flags, 0644, &err);
  if (fd < 0) errno = err.code;
  return fd;
}

static int via_walk(int rootfd, const char *path, int flags) {
  return rc_walk_in_root(rootfd, path, flags, 0644, false);
}

static void resolver_cases(resolver open_in) {
  struct fixture f;
  CHECK(fixture_make(&f));
  int rootfd = open(f.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  CHECK(rootfd >= 0);

  static const char *const to_passwd[] = {
      "/etc/passwd", "etc/passwd", "../../etc/passwd",   "/../../../etc/./passwd",
      "/abs",        "/rel",       "/dir/up/etc/passwd", "/dir/../dir/up/dir/up/etc/passwd",
  };
  for (size_t i = 0; i < RC_ARRAY_SIZE(to_passwd); i++) {
    int fd = open_in(rootfd, to_passwd[i], O_RDONLY);
    if (!same_file(fd, f.passwd)) fprintf(stderr, "  %s did not resolve in root\n", to_passwd[i]);
    CHECK(same_file(fd, f.passwd));
    if (fd >= 0) close(fd);
  }

  errno = 0;
  int fd = open_in(rootfd, "/loop", O_RDONLY);
  CHECK(fd < 0 && errno == ELOOP);
  /* the symlink points at a host dir that exists, but inside the root it does not */
  errno = 0;
  fd = open_in(rootfd, "/esc", O_RDONLY);
  CHECK(fd < 0 && errno == ENOENT);
  /* O_NOFOLLOW|O_PATH hands back the link itself */
  fd = open_in(rootfd, "/abs", O_PATH | O_NOFOLLOW);
  struct stat st;
  CHECK(fd >= 0 && fstat(fd, &st) == 0 && S_ISLNK(st.st_mode));
  if (fd >= 0) close(fd);
  /* O_CREAT through an absolute symlinked parent creates inside the root */
  char p[PATH_MAX];
  snprintf(p, sizeof(p), "%s/dir/new", f.root);
  fd = open_in(rootfd, "/dir/up/dir/new", O_CREAT | O_WRONLY);
  CHECK(same_file(fd, p));
  if (fd >= 0) close(fd);
  /* the root itself */
  fd = open_in(rootfd, "/", O_PATH | O_DIRECTORY);
  CHECK(same_file(fd, f.root));
  if (fd >= 0) close(fd);

  /* mkdir -p through the escaping link: lands in root/<outside>, host dir untouched */
  struct rc_error err;
  fd = rc_mkdir_in_root(rootfd, "/esc/newdir/sub", 0755, &err);
  snprintf(p, sizeof(p), "%s%s/newdir/sub", f.root, f.outside);
  CHECK(same_file(fd, p));
  if (fd >= 0) close(fd);
  fd = rc_walk_in_root(rootfd, "/esc/walked", 0, 0755, true);
  snprintf(p, sizeof(p), "%s%s/walked", f.root, f.outside);
  CHECK(same_file(fd, p));
  if (fd >= 0) close(fd);
  /* O_CREAT through a dangling link to a host path: made inside the root, or refused */
  char link[PATH_MAX], made[PATH_MAX];
  snprintf(link, sizeof(link), "%s/dangle", f.root);
  snprintf(made, sizeof(made), "%s/made", f.outside);
  CHECK(symlink(made, link) == 0);
  fd = open_in(rootfd, "/dangle", O_CREAT | O_WRONLY);
  snprintf(p, sizeof(p), "%s%s/made", f.root, f.outside);
  CHECK(fd < 0 || same_file(fd, p));
  if (fd >= 0) close(fd);
  CHECK(dir_is_empty(f.outside));
  /* a file in the way is an error that names the path */
  fd = rc_mkdir_in_root(rootfd, "/etc/passwd/x", 0755, &err);
  CHECK(fd < 0);
  if (fd < 0) CHECK_STR_EQ(err.msg, "mkdir /etc/passwd/x inside rootfs: Not a directory");

  close(rootfd);
  rm_rf(f.base);
}

static void test_open_in_root_openat2(void) {
  resolver_cases(via_openat2);
}
static void test_open_in_root_walk(void) {
  resolver_cases(via_walk);
}

static void test_clean_path(void) {
  char out[64];
  rc_clean_path("//a/./b//", out, sizeof(out));
  CHECK_STR_EQ(out, "/a/b");
  rc_clean_path("/", out, sizeof(out));
  CHECK_STR_EQ(out, "/");
  rc_clean_path("dev/../x", out, sizeof(out));
  CHECK_STR_EQ(out, "/dev/../x");
}

/* ---- a full container root ---- */

struct bundle {
  char base[64];
  char rootfs[PATH_MAX];
  char host_target[PATH_MAX]; /* what rootfs/evil points at: a real host directory */
  char data[PATH_MAX];
};

static bool bundle_make(struct bundle *b) {
  snprintf(b->base, sizeof(b->base), "/tmp/rc-rootfs-XXXXXX");
  if (!mkdtemp(b->base)) return false;
  snprintf(b->rootfs, sizeof(b->rootfs), "%s/rootfs", b->base);
  snprintf(b->host_target, sizeof(b->host_target), "%s/host-target", b->base);
  snprintf(b->data, sizeof(b->data), "%s/data", b->base);
  char p[PATH_MAX];
  static const char *const dirs[] = {"", "/bin", "/etc", "/proc", "/sys", "/dev", "/tmp"};
  for (size_t i = 0; i < RC_ARRAY_SIZE(dirs); i++) {
    snprintf(p, sizeof(p), "%s%s", b->rootfs, dirs[i]);
    mkdir(p, 0755);
  }
  mkdir(b->host_target, 0755);
  mkdir(b->data, 0755);
  snprintf(p, sizeof(p), "%s/hello", b->data);
  write_text(p, "hello\n");
  snprintf(p, sizeof(p), "%s/resolv.conf", b->base);
  write_text(p, "nameserver 192.0.2.1\n");
  snprintf(p, sizeof(p), "%s/etc/hostname", b->rootfs);
  write_text(p, "image\n");
  snprintf(p, sizeof(p), "%s/etc/secret", b->rootfs);
  write_text(p, "secret\n");
  snprintf(p, sizeof(p), "%s/rw", b->base);
  mkdir(p, 0755);
  snprintf(p, sizeof(p), "%s/rw/file", b->base);
  write_text(p, "file\n");
  snprintf(p, sizeof(p), "%s/bin/busybox", b->rootfs);
  if (!copy_file("/bin/busybox", p, 0755)) return false;
  snprintf(p, sizeof(p), "%s/bin/sh", b->rootfs);
  if (symlink("busybox", p) < 0) return false;
  snprintf(p, sizeof(p), "%s/evil", b->rootfs);
  return symlink(b->host_target, p) == 0;
}

static bool is_fs(const char *path, long magic) {
  struct statfs s;
  return statfs(path, &s) == 0 && s.f_type == magic;
}

static bool write_fails_erofs(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) {
    close(fd);
    return false;
  }
  return errno == EROFS;
}

static bool link_is(const char *path, const char *want) {
  char buf[PATH_MAX];
  ssize_t n = readlink(path, buf, sizeof(buf) - 1);
  if (n < 0) return false;
  buf[n] = '\0';
  return strcmp(buf, want) == 0;
}

static bool v1_host;
static bool host_has_kcore, host_has_sysrq;

static int full_container(void *arg) {
  struct bundle *b = arg;
  const unsigned long nse = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  char inner[PATH_MAX];
  snprintf(inner, sizeof(inner), "/evil/inner");
  struct oci_mount mounts[] = {
      mnt("/proc", "proc", "proc", nse, NULL),
      mnt("/dev", "tmpfs", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"),
      mnt("/dev/pts", "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
          "newinstance,ptmxmode=0666,mode=0620"),
      mnt("/dev/shm", "tmpfs", "shm", nse, "mode=1777,size=65536k"),
      mnt("/dev/mqueue", "mqueue", "mqueue", nse, NULL),
      mnt("/sys", "sysfs", "sysfs", nse | MS_RDONLY, NULL),
      mnt("/sys/fs/cgroup", "cgroup", "cgroup", nse | MS_RELATIME | MS_RDONLY, NULL),
      mnt("/mnt/data", "bind", "data", MS_RDONLY, NULL), /* relative: from the bundle */
      mnt("/etc/resolv.conf", "bind", "resolv.conf", MS_RDONLY, NULL), /* a file */
      mnt("/mnt/rw", "bind", "rw", 0, NULL),
      mnt("/tmp", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV, NULL),
      mnt(inner, "tmpfs", "tmpfs", 0, NULL), /* through rootfs/evil -> host path */
  };
  struct oci_device devices[] = {
      {.type = 'c',
       .path = "/dev/custom0",
       .major = 1,
       .minor = 3,
       .has_file_mode = true,
       .file_mode = 0600,
       .has_uid = true,
       .uid = 1000,
       .has_gid = true,
       .gid = 1000},
      {.type = 'p', .path = "/dev/fifo0"},
  };
  char *masked[] = {"/proc/kcore", "/sys/firmware", "/proc/does-not-exist", "/etc/secret"};
  char *ro[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/nope", "/mnt/rw/file"};
  struct oci_config cfg = {
      .root_readonly = true,
      .mounts = mounts,
      .n_mounts = RC_ARRAY_SIZE(mounts),
      .has_linux = true,
  };
  cfg.linux_.devices = devices;
  cfg.linux_.n_devices = RC_ARRAY_SIZE(devices);
  cfg.linux_.masked_paths = masked;
  cfg.linux_.n_masked_paths = RC_ARRAY_SIZE(masked);
  cfg.linux_.readonly_paths = ro;
  cfg.linux_.n_readonly_paths = RC_ARRAY_SIZE(ro);
  struct rc_rootfs_opts o = {
      .cfg = &cfg, .rootfs = b->rootfs, .bundle = b->base, .new_netns = true};
  struct rc_error err = {0};

  if (rc_rootfs_prepare(&o, &err) < 0) {
    fprintf(stderr, "  [child] prepare: %s\n", err.msg);
    return 1;
  }
  /* still before pivot_root: the host path the symlink named got nothing */
  char p[PATH_MAX];
  snprintf(p, sizeof(p), "%s/inner", b->host_target);
  errno = 0;
  EXPECT(access(p, F_OK) < 0 && errno == ENOENT);
  EXPECT(!is_fs(b->host_target, TMPFS_MAGIC) || dir_is_empty(b->host_target));

  if (rc_rootfs_finalize(&o, &err) < 0) {
    fprintf(stderr, "  [child] finalize: %s\n", err.msg);
    return 1;
  }

  char cwd[PATH_MAX];
  EXPECT(getcwd(cwd, sizeof(cwd)) && strcmp(cwd, "/") == 0);
  EXPECT(getpid() == 1 && link_is("/proc/self", "1"));
  EXPECT(access("/bin/busybox", X_OK) == 0);
  /* the host's paths are gone (b->base itself exists: /evil/inner made it in /tmp) */
  errno = 0;
  EXPECT(access(b->rootfs, F_OK) < 0 && errno == ENOENT);

  struct stat st;
  EXPECT(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3) &&
         (st.st_mode & 07777) == 0666);
  EXPECT(stat("/dev/urandom", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 9));
  EXPECT(stat("/dev/tty", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(5, 0));
  EXPECT(stat("/dev/custom0", &st) == 0 && (st.st_mode & 07777) == 0600 && st.st_uid == 1000 &&
         st.st_gid == 1000);
  EXPECT(stat("/dev/fifo0", &st) == 0 && S_ISFIFO(st.st_mode));
  EXPECT(link_is("/dev/fd", "/proc/self/fd"));
  EXPECT(link_is("/dev/stdin", "/proc/self/fd/0"));
  EXPECT(link_is("/dev/stderr", "/proc/self/fd/2"));
  EXPECT(link_is("/dev/ptmx", "pts/ptmx"));
  EXPECT(!host_has_kcore || link_is("/dev/core", "/proc/kcore"));
  EXPECT(is_fs("/dev/pts", DEVPTS_SUPER_MAGIC));
  EXPECT(is_fs("/dev/shm", TMPFS_MAGIC));
  EXPECT(is_fs("/dev/mqueue", MQUEUE_MAGIC));
  int ptm = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  EXPECT(ptm >= 0);
  if (ptm >= 0) close(ptm);

  /* read-only bind of a bundle-relative dir, and of a file */
  char buf[64] = "";
  int fd = open("/mnt/data/hello", O_RDONLY | O_CLOEXEC);
  EXPECT(fd >= 0 && read(fd, buf, sizeof(buf) - 1) == 6 && strcmp(buf, "hello\n") == 0);
  if (fd >= 0) close(fd);
  EXPECT(write_fails_erofs("/mnt/data/new"));
  EXPECT(write_fails_erofs("/etc/resolv.conf"));
  /* readonly root */
  EXPECT(write_fails_erofs("/etc/hostname"));
  errno = 0;
  EXPECT(mkdir("/newdir", 0755) < 0 && errno == EROFS);
  /* /tmp is a writable tmpfs on the read-only root */
  fd = open("/tmp/ok", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  EXPECT(fd >= 0);
  if (fd >= 0) close(fd);
  /* readonlyPaths / maskedPaths */
  EXPECT(write_fails_erofs("/proc/sys/kernel/hostname"));
  if (host_has_sysrq) EXPECT(write_fails_erofs("/proc/sysrq-trigger"));
  /* a read-only file inside a writable bind; its neighbour stays writable */
  EXPECT(write_fails_erofs("/mnt/rw/file"));
  fd = open("/mnt/rw/other", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  EXPECT(fd >= 0);
  if (fd >= 0) close(fd);
  /* a masked file from the image reads as /dev/null */
  EXPECT(stat("/etc/secret", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3));
  fd = open("/etc/secret", O_RDONLY | O_CLOEXEC);
  EXPECT(fd >= 0 && read(fd, buf, sizeof(buf)) == 0);
  if (fd >= 0) close(fd);
  if (host_has_kcore)
    EXPECT(stat("/proc/kcore", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3));
  if (access("/sys/firmware", F_OK) == 0) {
    EXPECT(is_fs("/sys/firmware", TMPFS_MAGIC));
    EXPECT(write_fails_erofs("/sys/firmware/x"));
  }
  /* sysfs read-only */
  EXPECT(is_fs("/sys", SYSFS_MAGIC));
  errno = 0;
  EXPECT(mkdir("/sys/x", 0755) < 0 && errno == EROFS);
  /* cgroup: v1 host -> read-only tmpfs with the container's own hierarchies bound */
  if (v1_host) {
    EXPECT(is_fs("/sys/fs/cgroup", TMPFS_MAGIC));
    EXPECT(write_fails_erofs("/sys/fs/cgroup/x"));
    EXPECT(is_fs("/sys/fs/cgroup/pids", CGROUP_SUPER_MAGIC));
    EXPECT(access("/sys/fs/cgroup/pids/cgroup.procs", R_OK) == 0);
    EXPECT(write_fails_erofs("/sys/fs/cgroup/pids/x"));
  } else {
    EXPECT(is_fs("/sys/fs/cgroup", CGROUP2_SUPER_MAGIC));
  }
  /* the escape attempt: the tmpfs is at rootfs/<host_target>/inner, inside the container */
  EXPECT(is_fs("/evil/inner", TMPFS_MAGIC));
  snprintf(p, sizeof(p), "%s/inner", b->host_target);
  EXPECT(is_fs(p, TMPFS_MAGIC));

  /* and a real program runs in it */
  fflush(stderr);
  pid_t sh = fork();
  if (sh == 0) {
    execl("/bin/sh", "sh", "-c",
          "test -c /dev/null && test -L /dev/fd && test -d /proc/self && "
          "! (echo x > /etc/hostname) 2>/dev/null && echo ok > /tmp/sh-ok && test -s /tmp/sh-ok",
          (char *)NULL);
    _exit(127);
  }
  int status = -1;
  EXPECT(sh > 0 && waitpid(sh, &status, 0) == sh && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  return child_failures ? 1 : 0;
}

static void rootfs_full(bool walker) {
  struct bundle b;
  CHECK(bundle_make(&b));
  struct statfs s;
  v1_host = !(statfs("/sys/fs/cgroup", &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC);
  host_has_kcore = access("/proc/kcore", F_OK) == 0;
  host_has_sysrq = access("/proc/sysrq-trigger", F_OK) == 0;
  rc_path_in_root_force_fallback(walker);
  int r = run_isolated(full_container, &b,
                       CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS);
  rc_path_in_root_force_fallback(false);
  if (r == SKIP_STATUS) {
    printf("SKIP rootfs full container (needs root and namespaces)\n");
  } else {
    CHECK(r == 0);
    /* on the host: nothing was created or mounted through rootfs/evil, the read-only bind
     * took no writes, and the container's tmpfs mounts kept the rootfs dirs empty */
    CHECK(dir_is_empty(b.host_target));
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/new", b.data);
    CHECK(access(p, F_OK) < 0);
    snprintf(p, sizeof(p), "%s/dev", b.rootfs);
    CHECK(dir_is_empty(p));
    snprintf(p, sizeof(p), "%s/tmp", b.rootfs);
    CHECK(dir_is_empty(p));
    /* the file bind's mount point was created in the image, the dir bind's too */
    snprintf(p, sizeof(p), "%s/etc/resolv.conf", b.rootfs);
    struct stat st;
    CHECK(stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0);
  }
  rm_rf(b.base);
}

static void test_rootfs_full(void) {
  rootfs_full(false);
}
/* the same container with every lookup done by the fallback walker */
static void test_rootfs_full_walker(void) {
  rootfs_full(true);
}

/* --no-pivot: MS_MOVE + chroot */
static int no_pivot_container(void *arg) {
  struct bundle *b = arg;
  struct oci_mount mounts[] = {
      mnt("/proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL),
      mnt("/dev", "tmpfs", "tmpfs", MS_NOSUID | MS_RDONLY, "mode=755"),
      mnt("/sys", "sysfs", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL),
  };
  struct oci_config cfg = {.mounts = mounts, .n_mounts = RC_ARRAY_SIZE(mounts), .has_linux = true};
  cfg.linux_.rootfs_propagation = "rprivate";
  /* as in a user namespace without its own netns: devices are bound from the host and
   * /sys is the host's, bound read-only (we are not really in one, so both are checked
   * for what they produce) */
  struct rc_rootfs_opts o = {.cfg = &cfg,
                             .rootfs = b->rootfs,
                             .bundle = b->base,
                             .no_pivot = true,
                             .new_userns = true,
                             .new_netns = false};
  struct rc_error err = {0};
  if (rc_rootfs_prepare(&o, &err) < 0 || rc_rootfs_finalize(&o, &err) < 0) {
    fprintf(stderr, "  [child] %s\n", err.msg);
    return 1;
  }
  char cwd[PATH_MAX];
  EXPECT(getcwd(cwd, sizeof(cwd)) && strcmp(cwd, "/") == 0);
  EXPECT(access("/bin/busybox", X_OK) == 0);
  errno = 0;
  EXPECT(access(b->base, F_OK) < 0 && errno == ENOENT);
  struct stat st;
  EXPECT(stat("/dev/zero", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 5));
  /* bound from the host: a different filesystem from the /dev tmpfs */
  struct stat devst;
  EXPECT(stat("/dev", &devst) == 0 && stat("/dev/null", &st) == 0 && st.st_dev != devst.st_dev);
  /* host /sys bound read-only, submounts included */
  EXPECT(is_fs("/sys", SYSFS_MAGIC));
  errno = 0;
  EXPECT(mkdir("/sys/x", 0755) < 0 && errno == EROFS);
  if (access("/sys/fs/cgroup", F_OK) == 0 && !is_fs("/sys/fs/cgroup", SYSFS_MAGIC))
    EXPECT(write_fails_erofs("/sys/fs/cgroup/x"));
  /* /dev asked ro: devices were made first, then it became read-only */
  EXPECT(write_fails_erofs("/dev/newfile"));
  /* root not asked read-only */
  int fd = open("/etc/written", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  EXPECT(fd >= 0);
  if (fd >= 0) close(fd);
  return child_failures ? 1 : 0;
}

static void test_rootfs_no_pivot(void) {
  struct bundle b;
  CHECK(bundle_make(&b));
  int r = run_isolated(no_pivot_container, &b, CLONE_NEWNS | CLONE_NEWPID);
  if (r == SKIP_STATUS)
    printf("SKIP rootfs.test_rootfs_no_pivot (needs root and namespaces)\n");
  else
    CHECK(r == 0);
  rm_rf(b.base);
}

/* The cgroup2-host branch: on a v1/hybrid host the child first mounts cgroup2 over
 * /sys/fs/cgroup in its own mount namespace, so the runtime sees a cgroup2 host. */
static int cgroup2_container(void *arg) {
  struct bundle *b = arg;
  struct statfs s;
  if (statfs("/sys/fs/cgroup", &s) < 0 || s.f_type != CGROUP2_SUPER_MAGIC) {
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0 ||
        mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, NULL) < 0) {
      fprintf(stderr, "  [child] cannot fake a cgroup2 host: %s\n", strerror(errno));
      return SKIP_STATUS;
    }
  }
  struct oci_mount mounts[] = {
      mnt("/sys/fs/cgroup", "cgroup", "cgroup",
          MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME | MS_RDONLY, NULL),
  };
  struct oci_config cfg = {.mounts = mounts, .n_mounts = RC_ARRAY_SIZE(mounts)};
  struct rc_rootfs_opts o = {.cfg = &cfg, .rootfs = b->rootfs, .bundle = b->base};
  struct rc_error err = {0};
  if (rc_rootfs_prepare(&o, &err) < 0 || rc_rootfs_finalize(&o, &err) < 0) {
    fprintf(stderr, "  [child] %s\n", err.msg);
    return 1;
  }
  EXPECT(is_fs("/sys/fs/cgroup", CGROUP2_SUPER_MAGIC));
  EXPECT(access("/sys/fs/cgroup/cgroup.controllers", R_OK) == 0);
  errno = 0;
  EXPECT(mkdir("/sys/fs/cgroup/x", 0755) < 0 && errno == EROFS);
  return child_failures ? 1 : 0;
}

static void test_rootfs_cgroup2(void) {
  struct bundle b;
  CHECK(bundle_make(&b));
  int r = run_isolated(cgroup2_container, &b, CLONE_NEWNS | CLONE_NEWPID);
  if (r == SKIP_STATUS)
    printf("SKIP rootfs.test_rootfs_cgroup2 (needs root and namespaces)\n");
  else
    CHECK(r == 0);
  rm_rf(b.base);
}

/* Error messages: a child prepares a rootfs with one bad item and sends err.msg back. */
struct bad_case {
  struct bundle *b;
  struct oci_mount m;
  bool has_mount;
  struct oci_device d;
  bool has_device;
  int pipe_w;
};

static int bad_container(void *arg) {
  struct bad_case *bc = arg;
  struct oci_config cfg = {.has_linux = true};
  if (bc->has_mount) {
    cfg.mounts = &bc->m;
    cfg.n_mounts = 1;
  }
  if (bc->has_device) {
    cfg.linux_.devices = &bc->d;
    cfg.linux_.n_devices = 1;
  }
  struct rc_rootfs_opts o = {.cfg = &cfg, .rootfs = bc->b->rootfs, .bundle = bc->b->base};
  struct rc_error err = {0};
  int r = rc_rootfs_prepare(&o, &err);
  if (r == 0) snprintf(err.msg, sizeof(err.msg), "(no error)");
  (void)!write(bc->pipe_w, err.msg, strlen(err.msg));
  return 0;
}

static void expect_error(struct bad_case *bc, const char *want) {
  int fds[2];
  CHECK(pipe(fds) == 0);
  bc->pipe_w = fds[1];
  int r = run_isolated(bad_container, bc, CLONE_NEWNS);
  close(fds[1]);
  char msg[RC_ERROR_MAX] = "";
  ssize_t n = read(fds[0], msg, sizeof(msg) - 1);
  close(fds[0]);
  if (r == SKIP_STATUS) return;
  msg[n > 0 ? n : 0] = '\0';
  CHECK(r == 0);
  CHECK_STR_EQ(msg, want);
}

static void test_rootfs_errors(void) {
  struct bundle b;
  CHECK(bundle_make(&b));
  char missing[PATH_MAX], want[PATH_MAX * 3];
  snprintf(missing, sizeof(missing), "%s/no-such-dir", b.base);

  struct bad_case bc = {.b = &b, .has_mount = true};
  bc.m = mnt("/mnt/x", "bind", missing, 0, NULL);
  snprintf(want, sizeof(want), "mount %s to /mnt/x: stat %s: No such file or directory", missing,
           missing);
  expect_error(&bc, want);

  /* nothing but procfs may cover /proc, and only lxcfs-style files inside it */
  bc.m = mnt("/proc", "tmpfs", "tmpfs", 0, NULL);
  expect_error(&bc, "mount tmpfs to /proc: /proc cannot be mounted because it is not of type proc");
  bc.m = mnt("/proc/sys", "bind", b.data, 0, NULL);
  snprintf(want, sizeof(want),
           "mount %s to /proc/sys: /proc/sys cannot be mounted because it is inside /proc", b.data);
  expect_error(&bc, want);
  /* ...also when reached through a symlink */
  char p[PATH_MAX];
  snprintf(p, sizeof(p), "%s/sneaky", b.rootfs);
  CHECK(symlink("/proc/sys", p) == 0);
  bc.m = mnt("/sneaky", "tmpfs", "tmpfs", 0, NULL);
  expect_error(&bc,
               "mount tmpfs to /sneaky: /proc/sys cannot be mounted because it is inside /proc");
  unlink(p);

  /* a mount point blocked by a file */
  bc.m = mnt("/etc/hostname/x", "tmpfs", "tmpfs", 0, NULL);
  expect_error(&bc,
               "mount tmpfs to /etc/hostname/x: open /etc/hostname/x inside rootfs: Not a "
               "directory");

  struct bad_case bd = {.b = &b, .has_device = true};
  bd.d = (struct oci_device){.type = 'x', .path = "/dev/fuse", .major = 10, .minor = 229};
  expect_error(&bd, "mknod /dev/fuse: unknown device type 'x': Invalid argument");
  bd.d = (struct oci_device){.type = 'c', .path = "/etc/hostname/fuse", .major = 10, .minor = 229};
  expect_error(&bd, "mknod /etc/hostname/fuse: mkdir /etc/hostname inside rootfs: Not a directory");
  rm_rf(b.base);
}

UNIT_MAIN("rootfs", UNIT_CASE(test_clean_path), UNIT_CASE(test_open_in_root_openat2),
          UNIT_CASE(test_open_in_root_walk), UNIT_CASE(test_rootfs_full),
          UNIT_CASE(test_rootfs_full_walker), UNIT_CASE(test_rootfs_no_pivot),
          UNIT_CASE(test_rootfs_cgroup2), UNIT_CASE(test_rootfs_errors))
