/* The views filesystem: a flat, read-only FUSE filesystem with one file per view, spoken
 * directly over /dev/fuse (the few operations it needs do not warrant libfuse). Files are
 * rendered when opened and read with direct I/O, so their size is 0 (as procfs reports)
 * and every open sees current numbers. Requests come from the kernel, but the numbers in
 * them (offsets, sizes, node ids, file handles) are checked like any other input. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "runcell/cgroups.h"
#include "runcell/rootfs.h"
#include "runcell/util.h"
#include "runcell/views.h"

#define ROOT_INO FUSE_ROOT_ID
#define FUSE_SUPER_MAGIC 0x65735546
/* node id of view v: ROOT_INO + 1 + v */
#define VIEW_INO(v) ((uint64_t)(v) + ROOT_INO + 1)
#define MAX_OPEN 64
#define VIEW_MAX_SIZE (1u << 20)
#define REQUEST_BUFFER (FUSE_MIN_READ_BUFFER + 65536)

struct open_file {
  bool used;
  char *text;
  size_t len;
};

struct rc_views_server {
  int fd;
  char *cgroup_path;
  pid_t init_pid;
  struct open_file open[MAX_OPEN];
  char *req;
};

/* --- the container init's side ------------------------------------------------------ */

/* "/proc/self/fd/N": mount(2) takes paths, and this one names exactly what fd is. */
#define RC_FD_PATH_MAX 32
static void rc_fd_path(char buf[RC_FD_PATH_MAX], int fd) {
  snprintf(buf, RC_FD_PATH_MAX, "/proc/self/fd/%d", fd);
}

int rc_views_mount(int staging_dirfd, int fuse_fd, struct rc_error *err) {
  char opts[128], target[RC_FD_PATH_MAX];
  snprintf(opts, sizeof(opts), "fd=%d,rootmode=40555,user_id=0,group_id=0,allow_other", fuse_fd);
  rc_fd_path(target, staging_dirfd);
  if (mount("runcell-views", target, "fuse.runcell", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
            opts) < 0)
    return rc_err(err, errno, "cell views: mount the views filesystem");
  return 0;
}

int rc_views_bind(int views, const char *staging_path, int rootfd, bool detach_staging,
                  struct rc_error *err) {
  struct statfs fs;
  if (fstatfs(views, &fs) < 0) return rc_err(err, errno, "cell views: statfs %s", staging_path);
  if (fs.f_type != FUSE_SUPER_MAGIC)
    return rc_err(err, 0, "cell views: %s is not the views filesystem", staging_path);
  for (int v = 0; v < RC_VIEW_COUNT; v++) {
    struct rc_error ignore;
    /* only where the container has the file (a /sys or /proc it does not mount stays so) */
    cleanup_close int target = rc_open_in_root(rootfd, rc_view_target((enum rc_view)v) + 1,
                                               O_PATH | O_CLOEXEC, 0, &ignore);
    if (target < 0) continue;
    cleanup_close int source = openat(views, rc_view_name((enum rc_view)v), O_PATH | O_CLOEXEC);
    if (source < 0) return rc_err(err, errno, "cell views: open %s", rc_view_name((enum rc_view)v));
    char from[RC_FD_PATH_MAX], to[RC_FD_PATH_MAX];
    rc_fd_path(from, source);
    rc_fd_path(to, target);
    if (mount(from, to, NULL, MS_BIND, NULL) < 0)
      return rc_err(err, errno, "cell views: bind %s", rc_view_target((enum rc_view)v));
  }
  /* The bind mounts keep the filesystem alive; the staging mount is not needed. With
   * pivot_root it goes away with the old root's tree, which is detached anyway, so only
   * --no-pivot needs an unmount of its own. */
  if (detach_staging && umount2(staging_path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
    return rc_err(err, errno, "cell views: detach the staging mount");
  return 0;
}

/* --- the cell kernel's side --------------------------------------------------------- */

struct rc_views_server *rc_views_server_new(int fuse_fd, const char *cgroup_path, pid_t init_pid) {
  struct rc_views_server *s = rc_xcalloc(1, sizeof(*s));
  s->fd = fuse_fd;
  s->cgroup_path = rc_xstrdup(cgroup_path);
  s->init_pid = init_pid;
  s->req = rc_xcalloc(1, REQUEST_BUFFER);
  return s;
}

void rc_views_server_free(struct rc_views_server *s) {
  if (!s) return;
  for (int i = 0; i < MAX_OPEN; i++) free(s->open[i].text);
  free(s->cgroup_path);
  free(s->req);
  free(s);
}

static void reply(int fd, uint64_t unique, int error, const void *data, size_t len) {
  struct fuse_out_header h = {
      .len = (uint32_t)(sizeof(h) + (error ? 0 : len)), .error = error, .unique = unique};
  struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)data, error ? 0 : len}};
  (void)!writev(fd, iov, error || !len ? 1 : 2);
}

static void fill_attr(struct fuse_attr *a, uint64_t ino) {
  memset(a, 0, sizeof(*a));
  a->ino = ino;
  a->mode = ino == ROOT_INO ? (S_IFDIR | 0555) : (S_IFREG | 0444);
  a->nlink = ino == ROOT_INO ? 2 : 1;
  a->blksize = 4096;
  /* Files are read through the page cache (splice and sendfile, which busybox cat uses,
   * do not work on direct-I/O FUSE files): each open drops the cache, the size offered is
   * an upper bound and the short read at the real end sets the size the reader sees. */
  if (ino != ROOT_INO) a->size = VIEW_MAX_SIZE;
}

static char *read_host(const char *path) {
  char *text = NULL;
  struct rc_error ignore;
  if (rc_read_file(path, 1 << 20, &text, NULL, &ignore) < 0) return rc_xstrdup("");
  return text;
}

/* Seconds since the cell's init started, from its start time in clock ticks. */
static double cell_uptime(pid_t init_pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)init_pid);
  cleanup_free char *st = read_host(path);
  const char *p = strrchr(st, ')');
  unsigned long long start = 0;
  for (int field = 2; p && *p && field < 22; field++) {
    p = strchr(p + 1, ' ');
    if (p && field == 21) start = strtoull(p + 1, NULL, 10);
  }
  struct timespec now;
  clock_gettime(CLOCK_BOOTTIME, &now);
  long hz = sysconf(_SC_CLK_TCK);
  double up = (double)now.tv_sec + (double)now.tv_nsec / 1e9 - (double)start / (double)hz;
  return start && up > 0 ? up : 0;
}

static char *render(struct rc_views_server *s, enum rc_view v) {
  struct rc_view_input in = {0};
  struct rc_error ignore;
  (void)rc_cell_limits_read(s->cgroup_path, &in.limits, &ignore);
  cpu_set_t set;
  CPU_ZERO(&set);
  unsigned allowed = sched_getaffinity(s->init_pid, sizeof(set), &set) == 0
                         ? (unsigned)CPU_COUNT(&set)
                         : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
  in.cpus = rc_cell_cpu_count(&in.limits, allowed);
  in.uptime = cell_uptime(s->init_pid);
  in.page_cache = in.limits.memory_cache;
  cleanup_free char *meminfo = v == RC_VIEW_MEMINFO ? read_host("/proc/meminfo") : NULL;
  cleanup_free char *memory_stat = NULL;
  if (v == RC_VIEW_MEMINFO && rc_cgroup_read_control(s->cgroup_path, "memory", "memory.stat",
                                                     "memory.stat", &memory_stat, &ignore) < 0)
    memory_stat = NULL;
  in.memory_stat = memory_stat;
  cleanup_free char *cpuinfo = v == RC_VIEW_CPUINFO ? read_host("/proc/cpuinfo") : NULL;
  cleanup_free char *stat = v == RC_VIEW_STAT ? read_host("/proc/stat") : NULL;
  in.host_meminfo = meminfo;
  in.host_cpuinfo = cpuinfo;
  in.host_stat = stat;
  return rc_view_render(v, &in);
}

static void do_lookup(struct rc_views_server *s, const struct fuse_in_header *h, const char *name,
                      size_t name_len) {
  if (h->nodeid != ROOT_INO) return reply(s->fd, h->unique, -ENOENT, NULL, 0);
  for (int v = 0; v < RC_VIEW_COUNT; v++) {
    const char *n = rc_view_name((enum rc_view)v);
    if (strnlen(name, name_len) != strlen(n) || strncmp(name, n, name_len) != 0) continue;
    struct fuse_entry_out e = {.nodeid = VIEW_INO(v), .generation = 1};
    fill_attr(&e.attr, VIEW_INO(v));
    return reply(s->fd, h->unique, 0, &e, sizeof(e));
  }
  reply(s->fd, h->unique, -ENOENT, NULL, 0);
}

static void do_open(struct rc_views_server *s, const struct fuse_in_header *h) {
  if (h->nodeid <= ROOT_INO || h->nodeid > VIEW_INO(RC_VIEW_COUNT - 1))
    return reply(s->fd, h->unique, -EISDIR, NULL, 0);
  for (uint64_t fh = 0; fh < MAX_OPEN; fh++) {
    if (s->open[fh].used) continue;
    char *text = render(s, (enum rc_view)(h->nodeid - VIEW_INO(0)));
    if (strlen(text) > VIEW_MAX_SIZE) text[VIEW_MAX_SIZE] = '\0'; /* the size offered */
    s->open[fh] = (struct open_file){.used = true, .text = text, .len = strlen(text)};
    struct fuse_open_out o = {.fh = fh, .open_flags = 0};
    return reply(s->fd, h->unique, 0, &o, sizeof(o));
  }
  reply(s->fd, h->unique, -ENFILE, NULL, 0);
}

static struct open_file *file_of(struct rc_views_server *s, uint64_t fh) {
  return fh < MAX_OPEN && s->open[fh].used ? &s->open[fh] : NULL;
}

int rc_views_server_handle(struct rc_views_server *s) {
  ssize_t n = read(s->fd, s->req, REQUEST_BUFFER);
  if (n < 0) {
    /* ENOENT: the request was interrupted; ENODEV: unmounted everywhere */
    if (errno == EINTR || errno == EAGAIN || errno == ENOENT) return 0;
    return -1;
  }
  if ((size_t)n < sizeof(struct fuse_in_header)) return -1;
  const struct fuse_in_header *h = (const void *)s->req;
  if (h->len != (uint32_t)n) return 0; /* malformed: ignore it */
  const char *arg = s->req + sizeof(*h);
  size_t arg_len = (size_t)n - sizeof(*h);
  switch (h->opcode) {
    case FUSE_INIT: {
      if (arg_len < sizeof(struct fuse_init_in)) return -1;
      const struct fuse_init_in *in = (const void *)arg;
      struct fuse_init_out o = {
          .major = FUSE_KERNEL_VERSION,
          .minor = in->minor < FUSE_KERNEL_MINOR_VERSION ? in->minor : FUSE_KERNEL_MINOR_VERSION,
          .max_readahead = in->max_readahead,
          .max_background = 4,
          .congestion_threshold = 3,
          .max_write = 4096,
          .time_gran = 1};
      reply(s->fd, h->unique, 0, &o, sizeof(o));
      return 0;
    }
    case FUSE_LOOKUP:
      do_lookup(s, h, arg, arg_len);
      return 0;
    case FUSE_GETATTR: {
      if (h->nodeid != ROOT_INO &&
          (h->nodeid < VIEW_INO(0) || h->nodeid > VIEW_INO(RC_VIEW_COUNT - 1))) {
        reply(s->fd, h->unique, -ENOENT, NULL, 0);
        return 0;
      }
      struct fuse_attr_out o = {.attr_valid = 0};
      fill_attr(&o.attr, h->nodeid);
      reply(s->fd, h->unique, 0, &o, sizeof(o));
      return 0;
    }
    case FUSE_OPEN:
      do_open(s, h);
      return 0;
    case FUSE_READ: {
      if (arg_len < sizeof(struct fuse_read_in)) return -1;
      const struct fuse_read_in *in = (const void *)arg;
      struct open_file *f = file_of(s, in->fh);
      if (!f) {
        reply(s->fd, h->unique, -EBADF, NULL, 0);
        return 0;
      }
      size_t off = in->offset < f->len ? (size_t)in->offset : f->len;
      size_t len = f->len - off < in->size ? f->len - off : in->size;
      reply(s->fd, h->unique, 0, f->text + off, len);
      return 0;
    }
    case FUSE_RELEASE: {
      if (arg_len >= sizeof(struct fuse_release_in)) {
        struct open_file *f = file_of(s, ((const struct fuse_release_in *)arg)->fh);
        if (f) {
          free(f->text);
          *f = (struct open_file){0};
        }
      }
      reply(s->fd, h->unique, 0, NULL, 0);
      return 0;
    }
    case FUSE_FLUSH:
    case FUSE_DESTROY:
      reply(s->fd, h->unique, 0, NULL, 0);
      return 0;
    case FUSE_STATFS: {
      struct fuse_statfs_out o = {.st = {.bsize = 4096, .namelen = 255, .frsize = 4096}};
      reply(s->fd, h->unique, 0, &o, sizeof(o));
      return 0;
    }
    case FUSE_FORGET:
    case FUSE_BATCH_FORGET:
    case FUSE_INTERRUPT:
      return 0; /* no reply expected */
    default:
      reply(s->fd, h->unique, -ENOSYS, NULL, 0);
      return 0;
  }
}
