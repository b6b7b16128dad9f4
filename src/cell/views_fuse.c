/* The views filesystem: a flat, read-only FUSE filesystem with one file per view, spoken
 * directly over /dev/fuse (the few operations it needs do not warrant libfuse). Each open
 * file is a snapshot rendered for it, read with direct I/O, and its size is that
 * snapshot's length (see fill_attr for why not 0, as procfs says). Requests come from the
 * kernel, but the numbers in them (offsets, sizes, node ids, file handles) are checked
 * like any other input. */
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
/* Open view files of the whole cell (ENFILE beyond, as the host's file-max) and of one
 * opener (EMFILE beyond, as a process's RLIMIT_NOFILE). A mapping keeps its file open
 * after close(), so fd limits do not bound what a process holds; the per-opener limit
 * keeps one process from taking every handle and denying the views to the rest of the
 * cell. An idle handle costs a few bytes: the table grows as needed. */
#define MAX_OPEN (1u << 18)
#define MAX_OPEN_PER_OPENER (1u << 14)
/* Rendered text held by open files; past this, other files' texts are dropped (their next
 * read renders again, as a seq_file read at an unexpected offset does), so that many
 * held files cannot make the cell kernel grow without bound. */
#define TEXT_BUDGET (64u << 20)
#define REQUEST_BUFFER (FUSE_MIN_READ_BUFFER + 65536)
/* How long a rendering made for a LOOKUP or GETATTR waits for the open that follows it */
#define PENDING_MS 1000

struct open_file {
  char *text; /* the snapshot, NULL once dropped for the budget */
  size_t len;
  uint32_t opener;    /* the opening thread's id (the FUSE request's pid) */
  uint32_t next_free; /* the free list's next slot + 1, while unused */
  uint8_t view;
  bool used;
};

/* Live handles per opener: an open-addressing table keyed by pid, 0 marking a free entry
 * (pid 0 is the kernel's own requests, which never open) and tombstones (count 0 with a
 * pid) left behind until the table is rebuilt. */
struct opener_count {
  uint32_t pid;
  uint32_t count;
};

struct rc_views_server {
  int fd;
  char *cgroup_path;
  pid_t init_pid;
  double started;               /* the init's start (rc_cell_start_time), read while it is alive */
  struct open_file *open;       /* slots; the fh of a file is its index */
  uint32_t open_cap, free_head; /* free_head: the first free slot + 1, 0 if none */
  struct opener_count *openers;
  uint32_t openers_cap, openers_filled; /* filled: entries with a pid, tombstones too */
  size_t text_bytes;
  /* The rendering whose length the last LOOKUP or GETATTR by path reported, per view:
   * the next open takes it, so that the size the kernel holds (which bounds sendfile and
   * splice, read through the page cache) is the length of what that open reads. */
  struct {
    char *text;
    size_t len;
    int64_t at_ms; /* when rendered: an open long after (one that skipped the lookup, as a
                    * re-open through /proc/self/fd does) renders afresh instead */
  } pending[RC_VIEW_COUNT];
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
  s->started = rc_cell_start_time(init_pid);
  s->req = rc_xcalloc(1, REQUEST_BUFFER);
  return s;
}

void rc_views_server_free(struct rc_views_server *s) {
  if (!s) return;
  for (uint32_t i = 0; i < s->open_cap; i++) free(s->open[i].text);
  for (int v = 0; v < RC_VIEW_COUNT; v++) free(s->pending[v].text);
  free(s->open);
  free(s->openers);
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

static bool is_view_ino(uint64_t ino) {
  return ino >= VIEW_INO(0) && ino <= VIEW_INO(RC_VIEW_COUNT - 1);
}

/* size: the length of the text an open of the file reads. procfs says 0 and is read
 * until EOF; reads here are direct I/O and end at the text's end too, but sendfile and
 * splice (busybox cat) read FUSE files through the page cache, which ends at the size the
 * kernel holds (Linux 6.18 still: fuse_splice_read uses filemap_splice_read even for
 * FOPEN_DIRECT_IO files): a size of 0 would make cat print nothing, a larger one would
 * make tail and wc -c see a longer file (they seek to the end). */
static void fill_attr(struct fuse_attr *a, uint64_t ino, uint64_t size) {
  memset(a, 0, sizeof(*a));
  a->ino = ino;
  a->mode = ino == ROOT_INO ? (S_IFDIR | 0555) : (S_IFREG | 0444);
  a->nlink = ino == ROOT_INO ? 2 : 1;
  a->blksize = 4096;
  if (is_view_ino(ino)) {
    a->size = size;
    a->blocks = (size + 511) / 512;
  }
}

static char *read_host(const char *path) {
  char *text = NULL;
  struct rc_error ignore;
  if (rc_read_file(path, 1 << 20, &text, NULL, &ignore) < 0) return rc_xstrdup("");
  return text;
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
  in.uptime = rc_cell_uptime(s->started);
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

/* Renders view v as the next open's text; returns its length. */
static size_t render_pending(struct rc_views_server *s, enum rc_view v) {
  free(s->pending[v].text);
  s->pending[v].text = render(s, v);
  s->pending[v].len = strlen(s->pending[v].text);
  s->pending[v].at_ms = rc_now_ms();
  return s->pending[v].len;
}

static void do_lookup(struct rc_views_server *s, const struct fuse_in_header *h, const char *name,
                      size_t name_len) {
  if (h->nodeid != ROOT_INO) return reply(s->fd, h->unique, -ENOENT, NULL, 0);
  for (int v = 0; v < RC_VIEW_COUNT; v++) {
    const char *n = rc_view_name((enum rc_view)v);
    if (strnlen(name, name_len) != strlen(n) || strncmp(name, n, name_len) != 0) continue;
    struct fuse_entry_out e = {.nodeid = VIEW_INO(v), .generation = 1};
    fill_attr(&e.attr, VIEW_INO(v), render_pending(s, (enum rc_view)v));
    return reply(s->fd, h->unique, 0, &e, sizeof(e));
  }
  reply(s->fd, h->unique, -ENOENT, NULL, 0);
}

/* The live-handle count of the opener keyed key (its pid + 1, so that 0 marks a free
 * entry), created when create; NULL when absent. */
static uint32_t *opener_count(struct rc_views_server *s, uint32_t key, bool create) {
  if (create && (s->openers_filled + 1) * 4 > s->openers_cap * 3) {
    /* rebuild with the live entries only, at most half full */
    uint32_t live = 0;
    for (uint32_t i = 0; i < s->openers_cap; i++) live += s->openers[i].count > 0;
    uint32_t cap = 64;
    while ((live + 1) * 2 > cap) cap *= 2;
    struct opener_count *old = s->openers;
    uint32_t old_cap = s->openers_cap;
    s->openers = rc_xcalloc(cap, sizeof(*s->openers));
    s->openers_cap = cap;
    s->openers_filled = 0;
    for (uint32_t i = 0; i < old_cap; i++)
      if (old[i].count) *opener_count(s, old[i].pid, true) = old[i].count;
    free(old);
  }
  if (!s->openers_cap) return NULL;
  uint32_t mask = s->openers_cap - 1, reuse = UINT32_MAX;
  uint32_t hash = key * 2654435761u;
  for (uint32_t i = (hash ^ (hash >> 16)) & mask;; i = (i + 1) & mask) {
    struct opener_count *o = &s->openers[i];
    if (o->pid == key) return &o->count;
    if (o->pid == 0) {
      if (!create) return NULL;
      if (reuse != UINT32_MAX)
        o = &s->openers[reuse];
      else
        s->openers_filled++;
      *o = (struct opener_count){.pid = key};
      return &o->count;
    }
    if (o->count == 0 && reuse == UINT32_MAX) reuse = i;
  }
}

static void drop_text(struct rc_views_server *s, struct open_file *f) {
  s->text_bytes -= f->len;
  free(f->text);
  f->text = NULL;
  f->len = 0;
}

/* Gives f its text (rendered now unless text is given), within the budget. */
static void set_text(struct rc_views_server *s, struct open_file *f, char *text) {
  drop_text(s, f);
  f->text = text ? text : render(s, (enum rc_view)f->view);
  f->len = strlen(f->text);
  s->text_bytes += f->len;
  if (s->text_bytes > TEXT_BUDGET)
    for (uint32_t i = 0; i < s->open_cap; i++)
      if (s->open[i].text && &s->open[i] != f) drop_text(s, &s->open[i]);
}

static void do_open(struct rc_views_server *s, const struct fuse_in_header *h) {
  if (!is_view_ino(h->nodeid)) return reply(s->fd, h->unique, -EISDIR, NULL, 0);
  uint32_t key = h->pid + 1;
  uint32_t *count = opener_count(s, key, true);
  if (*count >= MAX_OPEN_PER_OPENER) return reply(s->fd, h->unique, -EMFILE, NULL, 0);
  if (!s->free_head) {
    if (s->open_cap >= MAX_OPEN) return reply(s->fd, h->unique, -ENFILE, NULL, 0);
    uint32_t cap = s->open_cap ? s->open_cap * 2 : 64;
    if (cap > MAX_OPEN) cap = MAX_OPEN;
    s->open = rc_xrealloc(s->open, cap * sizeof(*s->open));
    for (uint32_t i = cap; i-- > s->open_cap;) {
      s->open[i] = (struct open_file){.next_free = s->free_head};
      s->free_head = i + 1;
    }
    s->open_cap = cap;
  }
  uint32_t fh = s->free_head - 1;
  s->free_head = s->open[fh].next_free;
  enum rc_view v = (enum rc_view)(h->nodeid - VIEW_INO(0));
  s->open[fh] = (struct open_file){.used = true, .view = (uint8_t)v, .opener = key};
  (*count)++;
  /* the lookup's rendering, whose length the kernel now holds, if it is that lookup's */
  bool fresh = s->pending[v].text && rc_now_ms() - s->pending[v].at_ms < PENDING_MS;
  set_text(s, &s->open[fh], fresh ? s->pending[v].text : NULL); /* NULL: render */
  if (!fresh) free(s->pending[v].text);
  s->pending[v].text = NULL;
  /* Direct I/O: every read comes here and gets this open's snapshot, so concurrent
   * readers do not share cached pages, and a read ends at the snapshot's end whatever
   * size the kernel holds. Without FUSE_DIRECT_IO_ALLOW_MMAP a shared mapping is refused
   * (ENODEV, as sysfs answers; procfs answers EIO to any mapping). */
  struct fuse_open_out o = {.fh = fh, .open_flags = FOPEN_DIRECT_IO};
  reply(s->fd, h->unique, 0, &o, sizeof(o));
}

static struct open_file *file_of(struct rc_views_server *s, uint64_t fh) {
  return fh < s->open_cap && s->open[fh].used ? &s->open[fh] : NULL;
}

static void do_release(struct rc_views_server *s, uint64_t fh) {
  struct open_file *f = file_of(s, fh);
  if (!f) return;
  drop_text(s, f);
  uint32_t *count = opener_count(s, f->opener, false);
  if (count && *count) (*count)--;
  *f = (struct open_file){.next_free = s->free_head};
  s->free_head = (uint32_t)fh + 1;
}

/* A read of the open's snapshot, so that a file read in pieces is one consistent text. */
static void do_read(struct rc_views_server *s, const struct fuse_in_header *h,
                    const struct fuse_read_in *in) {
  struct open_file *f = file_of(s, in->fh);
  if (!f) return reply(s->fd, h->unique, -EBADF, NULL, 0);
  if (!f->text) set_text(s, f, NULL);
  size_t off = in->offset < f->len ? (size_t)in->offset : f->len;
  size_t len = f->len - off < in->size ? f->len - off : in->size;
  reply(s->fd, h->unique, 0, f->text + off, len);
}

/* GETATTR: of an open file (fstat), its snapshot's length; by path, a new rendering's,
 * which the next open then reads. */
static void do_getattr(struct rc_views_server *s, const struct fuse_in_header *h, const char *arg,
                       size_t arg_len) {
  if (h->nodeid != ROOT_INO && !is_view_ino(h->nodeid))
    return reply(s->fd, h->unique, -ENOENT, NULL, 0);
  uint64_t size = 0;
  if (is_view_ino(h->nodeid)) {
    const struct fuse_getattr_in *in = arg_len >= sizeof(*in) ? (const void *)arg : NULL;
    struct open_file *f = in && (in->getattr_flags & FUSE_GETATTR_FH) ? file_of(s, in->fh) : NULL;
    if (f && f->view == h->nodeid - VIEW_INO(0)) {
      if (!f->text) set_text(s, f, NULL);
      size = f->len;
    } else {
      size = render_pending(s, (enum rc_view)(h->nodeid - VIEW_INO(0)));
    }
  }
  struct fuse_attr_out o = {.attr_valid = 0};
  fill_attr(&o.attr, h->nodeid, size);
  reply(s->fd, h->unique, 0, &o, sizeof(o));
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
    case FUSE_GETATTR:
      do_getattr(s, h, arg, arg_len);
      return 0;
    case FUSE_OPEN:
      do_open(s, h);
      return 0;
    case FUSE_READ:
      if (arg_len < sizeof(struct fuse_read_in)) return -1;
      do_read(s, h, (const struct fuse_read_in *)arg);
      return 0;
    case FUSE_RELEASE:
      if (arg_len >= sizeof(struct fuse_release_in))
        do_release(s, ((const struct fuse_release_in *)arg)->fh);
      reply(s->fd, h->unique, 0, NULL, 0);
      return 0;
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
