/* The disks a microVM's guest mounts: the bundle's rootfs directory becomes an erofs image
 * (read-only; the agent lays a tmpfs over it so the container can write), and each bind
 * mount's source becomes one too. Images are cached under <cache>/images by a key over
 * the tree's metadata (names, types, owners, modes, sizes, change times, link targets), so
 * a second container from the same unchanged rootfs boots without building anything.
 * A rootfs that already is a block device or a filesystem image file is used as it is. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runcell/log.h"
#include "runcell/microvm.h"
#include "runcell/util.h"

/* Bumped when the image format or the mkfs options change, so old images are not reused. */
#define IMAGE_FORMAT "erofs-1"

/* Two independent 64-bit FNV-1a streams make a 128-bit key. */
struct tree_key {
  uint64_t a, b;
};

static void fnv(uint64_t *h, uint64_t prime, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    *h ^= p[i];
    *h *= prime;
  }
}

/* Words byte by byte, low byte first (their bytes in memory on x86, so keys did not change
 * when this replaced hashing the array's memory, which clang-analyzer cannot follow). */
static void fnv_words(uint64_t *h, uint64_t prime, const uint64_t *words, size_t n) {
  for (size_t i = 0; i < n; i++)
    for (int byte = 0; byte < 8; byte++) {
      *h ^= (unsigned char)(words[i] >> (8 * byte));
      *h *= prime;
    }
}

/* One entry's record. Entries are summed, so the order a directory lists them in does
 * not matter. */
static void key_add_entry(struct tree_key *k, const char *rel, const struct stat *sb,
                          const char *link) {
  uint64_t a = 0xcbf29ce484222325ULL, b = 0x84222325cbf29ce4ULL;
  const uint64_t pa = 0x100000001b3ULL, pb = 0x1000193ULL * 0x100000001ULL + 0x1b3;
  uint64_t fields[] = {(uint64_t)sb->st_mode,         (uint64_t)sb->st_uid,
                       (uint64_t)sb->st_gid,          (uint64_t)sb->st_size,
                       (uint64_t)sb->st_rdev,         (uint64_t)sb->st_mtim.tv_sec,
                       (uint64_t)sb->st_mtim.tv_nsec, (uint64_t)sb->st_ctim.tv_sec,
                       (uint64_t)sb->st_ctim.tv_nsec, (uint64_t)sb->st_ino};
  fnv(&a, pa, rel, strlen(rel) + 1);
  fnv(&b, pb, rel, strlen(rel) + 1);
  fnv_words(&a, pa, fields, sizeof(fields) / sizeof(fields[0]));
  fnv_words(&b, pb, fields, sizeof(fields) / sizeof(fields[0]));
  if (link) {
    fnv(&a, pa, link, strlen(link));
    fnv(&b, pb, link, strlen(link));
  }
  k->a += a;
  k->b += b;
}

/* The walk is done with descriptors: each directory is opened from its parent's
 * descriptor with O_NOFOLLOW and checked to be the directory that was listed, so a
 * directory swapped for a link while the tree is read (a volume a running container
 * writes) never sends the walk into the host's tree. Mounts inside the tree are not part of
 * its image (the image is built without them), so entries of another filesystem are left
 * out. */
#define TREE_MAX_DEPTH 256

struct tree_walk {
  struct tree_key key;
  dev_t dev;
};

/* The record of one entry of directory d (its name in rel). A link's target is read here,
 * so its buffer lives only while it is hashed. */
static int walk_entry(struct tree_walk *w, int dfd, const char *name, const char *rel,
                      struct stat *sb) {
  if (fstatat(dfd, name, sb, AT_SYMLINK_NOFOLLOW) < 0) return -1;
  if (sb->st_dev != w->dev) return 0;
  char link[PATH_MAX];
  const char *target = NULL;
  if (S_ISLNK(sb->st_mode)) {
    ssize_t l = readlinkat(dfd, name, link, sizeof(link) - 1);
    if (l >= 0) {
      link[l] = '\0';
      target = link;
    }
  }
  key_add_entry(&w->key, rel, sb, target);
  return 0;
}

/* Walks directory fd (taken over: closed here) whose path in the tree is rel. */
static int walk_dir(struct tree_walk *w, int fd, char *rel, size_t rel_len, int depth,
                    struct rc_error *err) {
  DIR *d = fdopendir(fd);
  if (!d) {
    int e = errno;
    close(fd);
    return rc_err(err, e, "read %s for its disk image", rel);
  }
  if (depth > TREE_MAX_DEPTH) {
    closedir(d);
    return rc_err(err, ELOOP, "read %s for its disk image: deeper than %d directories", rel,
                  TREE_MAX_DEPTH);
  }
  int dfd = dirfd(d);
  int r = 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de) {
      if (errno) r = rc_err(err, errno, "read %s for its disk image", rel);
      break;
    }
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    size_t n = strlen(de->d_name);
    /* rel is "/" for the root; its entries are "/name" */
    size_t base = rel_len == 1 ? 0 : rel_len;
    if (base + 1 + n >= PATH_MAX) {
      r = rc_err(err, ENAMETOOLONG, "read %s/%s for its disk image", rel, de->d_name);
      break;
    }
    rel[base] = '/';
    memcpy(rel + base + 1, de->d_name, n + 1);
    struct stat sb;
    if (walk_entry(w, dfd, de->d_name, rel, &sb) < 0) {
      /* removed while the tree is read (a volume in use): not part of this image */
      if (errno != ENOENT) r = rc_err(err, errno, "read %s for its disk image", rel);
      rel[rel_len] = '\0';
      if (r < 0) break;
      continue;
    }
    if (S_ISDIR(sb.st_mode) && sb.st_dev == w->dev) {
      int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0 && errno == ENOENT) { /* removed since it was listed, as above */
        rel[rel_len] = '\0';
        continue;
      }
      struct stat now;
      if (sub < 0 || fstat(sub, &now) < 0 || now.st_ino != sb.st_ino || now.st_dev != sb.st_dev) {
        int e = sub < 0 ? errno : EAGAIN;
        if (sub >= 0) close(sub);
        r = rc_err(
            err, e, "read %s for its disk image%s", rel,
            e == ENOTDIR || e == ELOOP || e == EAGAIN ? ": it changed while it was read" : "");
        break;
      }
      r = walk_dir(w, sub, rel, base + 1 + n, depth + 1, err);
      if (r < 0) break;
    }
    rel[rel_len] = '\0';
  }
  closedir(d);
  return r;
}

/* root is the bundle's path (trusted, followed); below it nothing is followed. A file (a
 * file bind's source) is its only entry. */
static int tree_key(const char *root, char out[33], struct rc_error *err) {
  cleanup_close int fd = open(root, O_PATH | O_CLOEXEC);
  if (fd < 0) return rc_err(err, errno, "read %s for its disk image", root);
  struct stat sb;
  if (fstat(fd, &sb) < 0) return rc_err(err, errno, "read %s for its disk image", root);
  struct tree_walk w = {.dev = sb.st_dev};
  char rel[PATH_MAX] = "/";
  key_add_entry(&w.key, "/", &sb, NULL);
  if (S_ISDIR(sb.st_mode)) {
    int dir = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return rc_err(err, errno, "read %s for its disk image", root);
    if (walk_dir(&w, dir, rel, 1, 0, err) < 0) return -1;
  }
  uint64_t a = w.key.a, b = w.key.b;
  fnv(&a, 0x100000001b3ULL, IMAGE_FORMAT, sizeof(IMAGE_FORMAT));
  snprintf(out, 33, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
  return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
  (void)sb;
  (void)ftw;
  return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* Staging directories (".build.PID.*" of rc_microvm_mkfs, ".bind.PID.*" of a file bind's
 * copy) whose runcell is gone: one killed while it built an image left a partial image
 * there, as large as the tree. The images directory is root's alone (0700), so what is in
 * it is runcell's own; a live process with that pid keeps its directory. */
static void sweep_abandoned(const char *images) {
  DIR *d = opendir(images);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    const char *rest = NULL;
    if (strncmp(e->d_name, ".build.", 7) == 0) rest = e->d_name + 7;
    if (strncmp(e->d_name, ".bind.", 6) == 0) rest = e->d_name + 6;
    if (!rest) continue;
    char *end = NULL;
    long pid = strtol(rest, &end, 10);
    if (pid <= 0 || !end || *end != '.' || pid == getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", images, e->d_name);
    if (nftw(path, remove_entry, 8, FTW_DEPTH | FTW_PHYS) == 0)
      rc_debug("microvm: removed %s, left by runcell %ld", path, pid);
  }
  closedir(d);
}

/* The cached image of directory src (built when missing) into out; the cache key is taken
 * over the tree at key_of (src itself, or for a file bind the file the copy came from). */
static int image_of_dir(const char *src, const char *key_of, char out[PATH_MAX],
                        struct rc_error *err) {
  char key[33];
  if (tree_key(key_of, key, err) < 0) return -1;
  char dir[PATH_MAX];
  snprintf(dir, sizeof(dir), "%s/images", rc_microvm_cache_dir());
  if (rc_mkdir_p(dir, 0700, err) < 0) return -1;
  sweep_abandoned(dir);
  snprintf(out, PATH_MAX, "%s/%s.erofs", dir, key);
  if (access(out, R_OK) == 0) {
    rc_debug("microvm: image %s of %s is cached", out, key_of);
    return 0;
  }
  /* Built under a name of its own and renamed into place (rc_microvm_mkfs): concurrent
   * creates of the same rootfs each build, and the last rename wins with an identical
   * image. */
  if (rc_microvm_mkfs(src, out, err) < 0) return rc_err_wrap(err, "make a disk image of %s", src);
  rc_debug("microvm: built image %s of %s", out, src);
  return 0;
}

/* A file bind: the image holds a copy of the file under its own name. The key is over
 * the file itself; the copy lives only while the image is built. */
static int copy_file(const char *src, int dst_dirfd, const char *name, struct rc_error *err) {
  cleanup_close int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in < 0) return rc_err(err, errno, "open bind mount source %s", src);
  struct stat sb;
  if (fstat(in, &sb) < 0) return rc_err(err, errno, "stat %s", src);
  cleanup_close int out =
      openat(dst_dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, sb.st_mode & 07777);
  if (out < 0) return rc_err(err, errno, "copy %s", src);
  char buf[65536];
  for (;;) {
    ssize_t n = read(in, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return rc_err(err, errno, "read %s", src);
    if (n == 0) break;
    if (rc_write_all(out, buf, (size_t)n) < 0) return rc_err(err, errno, "copy %s", src);
  }
  (void)!fchown(out, sb.st_uid, sb.st_gid);
  (void)fchmod(out, sb.st_mode & 07777);
  return 0;
}

static int image_of_file(const char *src, char out[PATH_MAX], char name[NAME_MAX + 1],
                         struct rc_error *err) {
  const char *base = strrchr(src, '/');
  base = base && base[1] ? base + 1 : "file";
  snprintf(name, NAME_MAX + 1, "%s", base);
  char staging[PATH_MAX];
  snprintf(staging, sizeof(staging), "%s/images/.bind.%d.XXXXXX", rc_microvm_cache_dir(),
           (int)getpid());
  char parent[PATH_MAX];
  snprintf(parent, sizeof(parent), "%s/images", rc_microvm_cache_dir());
  if (rc_mkdir_p(parent, 0700, err) < 0) return -1;
  if (!mkdtemp(staging)) return rc_err(err, errno, "staging directory for %s", src);
  int r = -1;
  cleanup_close int dfd = open(staging, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0 && copy_file(src, dfd, name, err) == 0) {
    /* key over the source (its change time, size, name), image over the copy */
    const char *key_of = src;
    r = image_of_dir(staging, key_of, out, err);
  } else if (dfd < 0) {
    rc_err(err, errno, "open %s", staging);
  }
  char copy[PATH_MAX];
  snprintf(copy, sizeof(copy), "%s/%s", staging, name);
  unlink(copy);
  rmdir(staging);
  return r;
}

/* erofs or ext4, by the superblock magic, for a rootfs that is already a filesystem. */
static int sniff_fstype(const char *path, char fstype[16], struct rc_error *err) {
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return rc_err(err, errno, "open rootfs %s", path);
  unsigned char sb[1024 + 64];
  if (pread(fd, sb, sizeof(sb), 0) != (ssize_t)sizeof(sb))
    return rc_err(err, 0, "rootfs %s is too small to hold a filesystem", path);
  uint32_t erofs = (uint32_t)sb[1024] | (uint32_t)sb[1025] << 8 | (uint32_t)sb[1026] << 16 |
                   (uint32_t)sb[1027] << 24;
  uint16_t ext = (uint16_t)(sb[1024 + 56] | sb[1024 + 57] << 8);
  if (erofs == 0xE0F5E1E2U)
    snprintf(fstype, 16, "erofs");
  else if (ext == 0xEF53)
    snprintf(fstype, 16, "ext4");
  else
    return rc_err(err, 0, "rootfs %s holds no erofs or ext4 filesystem", path);
  return 0;
}

int rc_microvm_disks(const struct oci_config *cfg, const char *rootfs, struct rc_microvm_plan *plan,
                     struct rc_error *err) {
  struct stat sb;
  if (stat(rootfs, &sb) < 0) return rc_err(err, errno, "rootfs %s", rootfs);
  struct rc_microvm_disk *root = &plan->disks[0];
  snprintf(root->serial, sizeof(root->serial), "rootfs");
  root->read_only = true;
  if (S_ISDIR(sb.st_mode)) {
    if (image_of_dir(rootfs, rootfs, root->path, err) < 0) return -1;
    snprintf(root->fstype, sizeof(root->fstype), "erofs");
  } else if (S_ISBLK(sb.st_mode) || S_ISREG(sb.st_mode)) {
    if (sniff_fstype(rootfs, root->fstype, err) < 0) return -1;
    snprintf(root->path, sizeof(root->path), "%s", rootfs);
    /* the guest may write to it only if the bundle asked for a writable root */
    root->read_only = cfg->root_readonly;
  } else {
    return rc_err(err, 0, "rootfs %s is neither a directory, a block device nor an image file",
                  rootfs);
  }
  plan->n_disks = 1;

  for (size_t i = 0; i < cfg->n_mounts; i++) {
    const struct oci_mount *m = &cfg->mounts[i];
    if (!m->bind) continue;
    if (plan->n_disks == VMM_MAX_DISKS)
      return rc_err(err, 0,
                    "microVM mode: at most %d bind mounts (each is a disk in the guest); the "
                    "config has more",
                    VMM_MAX_DISKS - 1);
    if (!m->source || m->source[0] != '/')
      return rc_err(err, 0, "mount %s: a bind mount's source must be an absolute path",
                    m->destination);
    struct stat ms;
    if (stat(m->source, &ms) < 0) return rc_err(err, errno, "bind mount source %s", m->source);
    struct rc_microvm_disk *d = &plan->disks[plan->n_disks];
    struct rc_microvm_bind *b = &plan->binds[plan->n_binds];
    *b = (struct rc_microvm_bind){.mount_index = i, .disk = plan->n_disks};
    snprintf(d->serial, sizeof(d->serial), "vol%u", plan->n_disks);
    snprintf(d->fstype, sizeof(d->fstype), "erofs");
    d->read_only = true;
    if (S_ISDIR(ms.st_mode)) {
      if (image_of_dir(m->source, m->source, d->path, err) < 0) return -1;
    } else if (S_ISREG(ms.st_mode)) {
      if (image_of_file(m->source, d->path, b->subpath, err) < 0) return -1;
    } else {
      return rc_err(err, 0,
                    "mount %s: microVM mode cannot bind %s into the guest (only directories and "
                    "regular files)",
                    m->destination, m->source);
    }
    plan->n_disks++;
    plan->n_binds++;
  }
  return 0;
}
