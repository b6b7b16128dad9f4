/* The views filesystem: a flat, read-only FUSE filesystem with one file per view, spoken
 * directly over /dev/fuse (the few operations it needs do not warrant libfuse). Each open
 * file is a snapshot rendered for it, read with direct I/O, and its size is that
 * snapshot's length (see fill_attr for why not 0, as procfs says). Requests come from the
 * kernel, but the numbers in them (offsets, sizes, node ids, file handles) are checked
 * like any other input. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <linux/magic.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runcell/cgroups.h"
#include "runcell/log.h"
#include "runcell/procfs.h"
#include "runcell/rootfs.h"
#include "runcell/sync.h"
#include "runcell/util.h"
#include "runcell/views.h"

#define ROOT_INO FUSE_ROOT_ID
#define FUSE_SUPER_MAGIC 0x65735546
/* node id of view v: ROOT_INO + 1 + v */
#define VIEW_INO(v) ((uint64_t)(v) + ROOT_INO + 1)
/* Open view files of the whole cell (ENFILE beyond, as the host's file-max) and of one
 * opening process (EMFILE beyond, as its RLIMIT_NOFILE would answer). A mapping keeps its
 * file open after close(), and fork or SCM_RIGHTS hand files on, so fd limits do not bound
 * what a process holds: the handles it has opened count, wherever they are held. An idle
 * handle costs a few bytes: the table grows as needed.
 *
 * The per-process limit is what keeps one process from denying the views to the rest of
 * the cell, so it counts processes, not threads. FUSE names the thread that opens (its id
 * in the pid namespace of the mount, the container's), and a limit per thread let one
 * process with 17 threads take every handle. The thread is resolved to its thread group
 * through a procfs of that namespace that the cell kernel holds (proc_of_cell), not the
 * container's /proc, which the container may change. The thread waits for the answer
 * (the kernel does not abandon a request the server has read), so it and its group are
 * there to be resolved. The opener is the group's id with its leader's start time: a
 * process that is given the id of one that has exited (whose files its children, say,
 * may still hold) starts with none. So one process, whatever its threads, holds at most
 * MAX_OPEN_PER_PROCESS handles; another process's open fails only when it has opened that
 * many itself, or when others hold the whole table (16 processes at their limit), the
 * bound fd limits set against file-max. Requests from outside the namespace (pid 0, which
 * the cell's processes cannot be) share one opener; while no procfs can be had (looked for
 * again every RETRY_PROC_MS, without the forked child once the program may run), threads
 * count apart as before. */
#define MAX_OPEN (1u << 18)
#define MAX_OPEN_PER_PROCESS (1u << 14)
#define RETRY_PROC_MS 1000
#define HELPER_MS 200 /* how long proc_of_cell waits for its child (it takes about 1 ms) */
/* Rendered text held by open files; past this, the texts used longest ago are dropped
 * (their next read renders again, as a seq_file read at an unexpected offset does), so
 * that many held files cannot make the cell kernel grow without bound. 16 MiB: on cgroup
 * v1 the cell kernel's memory is not charged to the cell (v2: it is), and a cell holding
 * 128k views grew it by the whole budget (64 MiB before; session-19 red team). */
#define TEXT_BUDGET (16u << 20)
#define REQUEST_BUFFER (FUSE_MIN_READ_BUFFER + 65536)
/* How long a rendering made for a LOOKUP or GETATTR waits for the open that follows it */
#define PENDING_MS 1000
/* Above any rendering (the host files a view is made from are read up to 1 MiB): the
 * size an open leaves the kernel with when it cannot say the exact one (store_size_hint). */
#define SIZE_CEILING (4u << 20)
#define HINTS_INLINE (-2)

/* The opener of a handle: its process's id (tgid) and the leader's start time in the low
 * and high 32 bits (UNRESOLVED: the thread's id instead). */
#define UNRESOLVED (1ull << 63)

struct open_file {
  char *text; /* the snapshot, NULL once dropped for the budget */
  size_t len;
  uint64_t opener;
  uint32_t next_free;          /* the free list's next slot + 1, while unused */
  uint32_t lru_prev, lru_next; /* while it has a text: the list by last use, slot + 1 */
  uint8_t view;
  bool used;
};

/* Live handles per opener: linear probing, entries with no handles are empty (deletion
 * shifts the entries after them back, so no tombstones), at most half full. */
struct opener_count {
  uint64_t opener;
  uint32_t count;
};

struct rc_views_server {
  int fd;
  /* Where a fresh open's size hint and reply go (rc_views_server_set_hints): the hint
   * thread's pipe, -1 for no hints, HINTS_INLINE (tests) for this thread. */
  int hints;
  char *cgroup_path;
  pid_t init_pid;
  double started;               /* the init's start (rc_cell_start_time), read while it is alive */
  int pidns;                    /* the init's pid namespace, in which FUSE gives pids */
  int proc;                     /* a procfs of that namespace, or -1 */
  int64_t proc_tried_ms;        /* when a procfs was last looked for */
  struct open_file *open;       /* slots; the fh of a file is its index */
  uint32_t open_cap, free_head; /* free_head: the first free slot + 1, 0 if none */
  struct opener_count *openers;
  uint32_t openers_cap, openers_used;
  size_t text_bytes;
  uint32_t lru_head, lru_tail; /* files with a text, least recently used first (slot + 1) */
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

/* The id of the mount fd is on (statx), 0 if unknown. */
static uint64_t mount_id(int fd) {
  struct statx st;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &st) < 0 || !(st.stx_mask & STATX_MNT_ID))
    return 0;
  return st.stx_mnt_id;
}

/* Makes the mount that holds the directory dir (its copy in this mount namespace) a slave:
 * it no longer sends what is mounted in it here to its peers. The staging directory lies
 * in the state directory, on a mount of the host's copied into the container's namespace;
 * with a rootfsPropagation that leaves that copy shared ("shared", "rshared", or "private"
 * and "slave", which change / alone) and a shared host mount there (systemd makes / and
 * /run shared), the views filesystem mounted on it appeared on the host too, served by the
 * cell kernel; the detaching of the old root after pivot_root does not propagate, so it
 * stayed there after the container was gone (a dead FUSE mount, and `delete` failed on
 * the state directory). The mount's root is found by walking up from dir until ".." leaves
 * the mount, so no path is looked up again; a walk that ends at this process's root
 * instead (runcell chrooted, not at a mount's root: nothing to make a slave) is left so. */
static int stop_propagation_to_the_host(int dir, struct rc_error *err) {
  uint64_t id = mount_id(dir);
  cleanup_close int cur = fcntl(dir, F_DUPFD_CLOEXEC, 0);
  if (!id || cur < 0) return rc_err(err, errno, "cell views: find the staging directory's mount");
  bool at_root = false;
  for (;;) {
    cleanup_close int up = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct stat a, b;
    if (up < 0 || fstat(up, &a) < 0 || fstat(cur, &b) < 0)
      return rc_err(err, errno, "cell views: find the staging directory's mount");
    at_root = a.st_dev == b.st_dev && a.st_ino == b.st_ino;
    if (mount_id(up) != id || at_root) break;
    close(cur);
    cur = rc_steal_fd(&up);
  }
  char root[RC_FD_PATH_MAX];
  rc_fd_path(root, cur);
  if (mount(NULL, root, NULL, MS_SLAVE, NULL) < 0 && !(at_root && errno == EINVAL))
    return rc_err(err, errno, "cell views: keep the staging mount from the host's namespace");
  return 0;
}

int rc_views_mount(int staging_dirfd, int fuse_fd, struct rc_error *err) {
  if (stop_propagation_to_the_host(staging_dirfd, err) < 0) return -1;
  char opts[128], target[RC_FD_PATH_MAX];
  snprintf(opts, sizeof(opts), "fd=%d,rootmode=40555,user_id=0,group_id=0,allow_other", fuse_fd);
  rc_fd_path(target, staging_dirfd);
  if (mount("runcell-views", target, "fuse.runcell", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
            opts) < 0)
    return rc_err(err, errno, "cell views: mount the views filesystem");
  return 0;
}

/* A fsconfig step that failed: the filesystem's own message when it left one (fuse says
 * what it refused), else errno's. */
static int fsconfig_failed(int fs, const char *what, struct rc_error *err) {
  int e = errno;
  char msg[256];
  ssize_t n = read(fs, msg, sizeof(msg) - 1);
  if (n > 0) {
    msg[n] = '\0';
    msg[strcspn(msg, "\n")] = '\0';
    return rc_err(err, e, "cell views: %s: %s", what, msg);
  }
  return rc_err(err, e, "cell views: %s", what);
}

int rc_views_mount_in_userns(int staging_dirfd, int fuse_fd, struct rc_error *err) {
  /* No propagation to stop here (cf. stop_propagation_to_the_host): a mount namespace
   * made together with a less privileged user namespace gets the host's shared mounts as
   * slaves (the kernel's CL_SHARED_TO_SLAVE), so nothing mounted in it reaches the host. */
  cleanup_close int fs = fsopen("fuse", FSOPEN_CLOEXEC);
  if (fs < 0) return rc_err(err, errno, "cell views: fsopen fuse");
  char fd[16];
  snprintf(fd, sizeof(fd), "%d", fuse_fd);
  static const char *const keys[][2] = {{"source", "runcell-views"},
                                        {"subtype", "runcell"},
                                        {"rootmode", "40555"},
                                        {"user_id", "0"},
                                        {"group_id", "0"}};
  for (size_t i = 0; i < RC_ARRAY_SIZE(keys); i++)
    if (fsconfig(fs, FSCONFIG_SET_STRING, keys[i][0], keys[i][1], 0) < 0)
      return fsconfig_failed(fs, keys[i][0], err);
  if (fsconfig(fs, FSCONFIG_SET_STRING, "fd", fd, 0) < 0) return fsconfig_failed(fs, "fd", err);
  if (fsconfig(fs, FSCONFIG_SET_FLAG, "allow_other", NULL, 0) < 0)
    return fsconfig_failed(fs, "allow_other", err);
  if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
    return fsconfig_failed(fs, "mount the views filesystem", err);
  int mnt = fsmount(fs, FSMOUNT_CLOEXEC,
                    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
  if (mnt < 0) return rc_err(err, errno, "cell views: fsmount");
  /* attached where it is not looked up by path: the fd is this namespace's directory */
  if (move_mount(mnt, "", staging_dirfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) <
      0) {
    int e = errno;
    close(mnt);
    return rc_err(err, e, "cell views: attach the views filesystem");
  }
  return mnt;
}

/* Largest mountinfo read: a host with many thousands of mounts still fits. */
#define MOUNTINFO_MAX (64u << 20)

/* The peer group of the mount whose id is id, from mountinfo (a line's optional fields
 * hold "shared:N" when the mount is shared); 0 when it is in none. -1 if the mount is not
 * listed. */
static int64_t peer_group(const char *mountinfo, uint64_t id) {
  for (const char *line = mountinfo; *line;) {
    const char *end = strchr(line, '\n');
    if (!end) end = line + strlen(line);
    char *after = NULL;
    if (strtoull(line, &after, 10) == id && after != line && *after == ' ') {
      /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS, then optional fields up to "-"; the
       * paths are escaped (\040 for a space), so fields are split at spaces */
      const char *p = line;
      for (int field = 0; field < 6 && p; field++) {
        p = memchr(p, ' ', (size_t)(end - p));
        if (p) p++;
      }
      while (p && p < end && !(p[0] == '-' && (p + 1 == end || p[1] == ' '))) {
        if (!strncmp(p, "shared:", 7)) return (int64_t)strtoull(p + 7, NULL, 10);
        p = memchr(p, ' ', (size_t)(end - p));
        if (p) p++;
      }
      return 0;
    }
    line = *end ? end + 1 : end;
  }
  return -1;
}

/* Whether a view may be bound over target: not when target lies on a shared mount. A
 * mount made on a shared mount is made on each of its peers too, whatever API makes it
 * (the kernel propagates when it attaches a mount), and a peer may be the host's: with
 * rootfsPropagation "rshared" (containerd's for a bidirectional volume), or one that
 * changes / alone, a volume (or /sys bound from the host) stays in the host mount's peer
 * group, and the views bound on it appeared on the host (a node's
 * /sys/devices/system/cpu/online said "0" while a 0.5-CPU cell ran), then stayed there,
 * dead, after delete: the end of the container's namespace unmounts nothing on its peers.
 * Making the user's mount a slave would stop that, and also the propagation the user
 * asked for. Which namespaces a group reaches is not visible from here (mountinfo lists
 * this one's mounts only: a group made in it, an rshared volume under the default rslave
 * root, looks like the host's), so a view on any shared mount is left out, and the
 * container sees there what runc shows: the file of the mount the user chose. A slave
 * only receives, a private mount neither: a view on them stays in the container. */
static int may_bind_over(int target, const char *path, const char *mountinfo, bool *ok,
                         struct rc_error *err) {
  *ok = false;
  uint64_t id = mount_id(target);
  int64_t group = id ? peer_group(mountinfo, id) : -1;
  if (group < 0) return rc_err(err, id ? 0 : errno, "cell views: find the mount of %s", path);
  *ok = group == 0;
  if (!*ok)
    rc_warn(
        "cell views: %s is not served: it is on a shared mount (peer group %lld), which "
        "would propagate the view to its peers, outside the container",
        path, (long long)group);
  return 0;
}

int rc_views_bind(int views, const char *staging_path, int rootfd, bool detach_staging,
                  struct rc_error *err) {
  struct statfs fs;
  if (fstatfs(views, &fs) < 0) return rc_err(err, errno, "cell views: statfs %s", staging_path);
  if (fs.f_type != FUSE_SUPER_MAGIC)
    return rc_err(err, 0, "cell views: %s is not the views filesystem", staging_path);
  /* This namespace's mounts, through the runtime's own procfs handle: nothing of the
   * container's is mounted over it. Read once: nothing else mounts while the views are
   * bound, and the view mounts themselves go on top of the targets, not under them. */
  cleanup_close int mi_fd = rc_procfs_open("thread-self/mountinfo", O_RDONLY, err);
  cleanup_free char *mountinfo = NULL;
  if (mi_fd < 0 ||
      rc_read_fd(mi_fd, "/proc/thread-self/mountinfo", MOUNTINFO_MAX, &mountinfo, NULL, err) < 0)
    return rc_err_wrap(err, "cell views: read the container's mounts");
  for (int v = 0; v < RC_VIEW_COUNT; v++) {
    struct rc_error ignore;
    const char *path = rc_view_target((enum rc_view)v);
    /* only where the container has the file (a /sys or /proc it does not mount stays so) */
    cleanup_close int target = rc_open_in_root(rootfd, path + 1, O_PATH | O_CLOEXEC, 0, &ignore);
    if (target < 0) continue;
    bool ok;
    if (may_bind_over(target, path, mountinfo, &ok, err) < 0) return -1;
    if (!ok) continue;
    cleanup_close int source = openat(views, rc_view_name((enum rc_view)v), O_PATH | O_CLOEXEC);
    if (source < 0) return rc_err(err, errno, "cell views: open %s", rc_view_name((enum rc_view)v));
    char from[RC_FD_PATH_MAX], to[RC_FD_PATH_MAX];
    rc_fd_path(from, source);
    rc_fd_path(to, target);
    if (mount(from, to, NULL, MS_BIND, NULL) < 0)
      return rc_err(err, errno, "cell views: bind %s", path);
  }
  /* The bind mounts keep the filesystem alive; the staging mount is not needed. With
   * pivot_root it goes away with the old root's tree, which is detached anyway, so only
   * --no-pivot needs an unmount of its own: the mount views is the root of, named by the
   * fd (followed, as the magic link it is), not by a path looked up again. */
  char root[RC_FD_PATH_MAX];
  rc_fd_path(root, views);
  if (detach_staging && umount2(root, MNT_DETACH) < 0)
    return rc_err(err, errno, "cell views: detach the staging mount %s", staging_path);
  return 0;
}

/* --- the runtime's side, for a cell with a user namespace of its own ------------------ */

int rc_views_open_fuse_in(pid_t init, struct rc_error *err) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)init);
  cleanup_close int ns = open(path, O_RDONLY | O_CLOEXEC);
  if (ns < 0) return rc_err(err, errno, "cell views: open %s", path);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return rc_err(err, errno, "cell views: socketpair");
  pid_t child = fork();
  if (child == 0) {
    /* A member of the namespace opens it (the fd's credentials are what FUSE compares
     * with the mounter's namespace); this child stays in the runtime's cgroup, where the
     * container's device rules do not apply. */
    close(sv[0]);
    struct rc_error e = {0};
    int fd = -1;
    if (setns(ns, CLONE_NEWUSER) < 0)
      rc_err(&e, errno, "join the container's user namespace");
    else if ((fd = open("/dev/fuse", O_RDWR | O_CLOEXEC)) < 0)
      rc_err(&e, errno, "open /dev/fuse in the container's user namespace");
    if (fd < 0 ? rc_sync_send_error(sv[1], &e) : rc_sync_send_fd(sv[1], RC_SYNC_VIEWS, fd, &e))
      _exit(1);
    _exit(0);
  }
  int e = errno;
  close(sv[1]);
  int fd = -1;
  if (child < 0)
    rc_err(err, e, "cell views: fork");
  else if (rc_sync_recv_fd(sv[0], "cell views", &fd, err) >= 0 && fd < 0)
    rc_err(err, 0, "cell views: no /dev/fuse fd came back");
  close(sv[0]);
  if (child > 0)
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
    }
  return fd;
}

int rc_views_staging_in(pid_t init, const char *staging_path, int staging_dirfd,
                        struct rc_error *err) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/root", (int)init);
  cleanup_close int root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return rc_err(err, errno, "cell views: open %s", path);
  while (*staging_path == '/') staging_path++;
  int fd =
      rc_open_in_root(root, staging_path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0, err);
  if (fd < 0)
    return rc_err_wrap(err, "cell views: the staging directory in the container's namespace");
  struct stat a, b;
  if (fstat(fd, &a) < 0 || fstat(staging_dirfd, &b) < 0 || a.st_dev != b.st_dev ||
      a.st_ino != b.st_ino) {
    close(fd);
    return rc_err(err, 0, "cell views: /%s was replaced", staging_path);
  }
  return fd;
}

/* --- the cell kernel's side --------------------------------------------------------- */

static int proc_of_cell(int pidns, bool may_fork);

struct rc_views_server *rc_views_server_new(int fuse_fd, const char *cgroup_path, pid_t init_pid) {
  struct rc_views_server *s = rc_xcalloc(1, sizeof(*s));
  s->fd = fuse_fd;
  s->hints = HINTS_INLINE;
  s->cgroup_path = rc_xstrdup(cgroup_path);
  s->init_pid = init_pid;
  s->started = rc_cell_start_time(init_pid);
  /* the namespace now, while the init that mounted the views is known to be alive */
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)init_pid);
  s->pidns = open(path, O_RDONLY | O_CLOEXEC);
  s->proc = proc_of_cell(s->pidns, true);
  s->proc_tried_ms = rc_now_ms();
  s->req = rc_xcalloc(1, REQUEST_BUFFER);
  return s;
}

void rc_views_server_free(struct rc_views_server *s) {
  if (!s) return;
  for (uint32_t i = 0; i < s->open_cap; i++) free(s->open[i].text);
  for (int v = 0; v < RC_VIEW_COUNT; v++) free(s->pending[v].text);
  if (s->pidns >= 0) close(s->pidns);
  if (s->proc >= 0) close(s->proc);
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

/* --- openers ----------------------------------------------------------------------- */

static bool same_file(int a, int b) {
  struct stat sa, sb;
  return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

/* A detached procfs mount of the procfs being set up in fs, pid directories only where the
 * kernel can (subset=pid); -1 on failure. Closes fs. */
static int proc_mount(int fs) {
  if (fs < 0) return -1;
  (void)fsconfig(fs, FSCONFIG_SET_STRING, "subset", "pid", 0);
  int mnt =
      fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0
          ? fsmount(fs, FSMOUNT_CLOEXEC,
                    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)
          : -1;
  close(fs);
  return mnt;
}

/* A procfs of the pid namespace FUSE gives pids in (pidns), mounted nowhere. Where that
 * namespace is the cell kernel's own, its /proc (if it is of it: "self" is this process).
 * Otherwise a procfs told the namespace (its pidns option, on kernels that have it); or,
 * on older kernels, one made by a child forked into the namespace (a procfs is of its
 * maker's), which sends it back and exits. That child is visible in the cell for a moment
 * and takes a pid there; it is made when the views are mounted, before the container's
 * program runs, so none of the cell's processes is there yet to get in its way — and
 * only then (may_fork): a later retry must not put a process of the cell kernel's, with
 * its privileges and the host's mounts, among the cell's running processes. */
static int proc_of_cell(int pidns, bool may_fork) {
  cleanup_close int own = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
  if (own < 0 || pidns < 0) return -1;
  struct statfs fs;
  if (same_file(own, pidns)) {
    cleanup_close int proc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
    char self[16] = "", want[16];
    snprintf(want, sizeof(want), "%d", (int)getpid());
    if (proc >= 0 && fstatfs(proc, &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC &&
        readlinkat(proc, "self", self, sizeof(self) - 1) > 0 && !strcmp(self, want))
      return rc_steal_fd(&proc);
  }
  int proc = -1, told = fsopen("proc", FSOPEN_CLOEXEC);
  if (told >= 0 && fsconfig(told, FSCONFIG_SET_FD, "pidns", NULL, pidns) == 0) {
    proc = proc_mount(told);
  } else {
    if (told >= 0) close(told);
    if (!may_fork) return -1;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -1;
    /* setns(CLONE_NEWPID) places this thread's next child, not this thread */
    pid_t child = setns(pidns, CLONE_NEWPID) == 0 ? fork() : -1;
    if (child == 0) {
      struct rc_error ignore;
      int mnt = proc_mount(fsopen("proc", FSOPEN_CLOEXEC));
      if (mnt >= 0) (void)rc_sync_send_fd(sv[1], RC_SYNC_VIEWS, mnt, &ignore);
      _exit(0);
    }
    (void)setns(own, CLONE_NEWPID);
    close(sv[1]);
    struct pollfd p = {.fd = sv[0], .events = POLLIN};
    struct rc_error ignore;
    if (child > 0 && poll(&p, 1, HELPER_MS) == 1)
      (void)rc_sync_recv_fd(sv[0], "views", &proc, &ignore);
    close(sv[0]);
    if (child > 0) {
      kill(child, SIGKILL);
      while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
      }
    }
  }
  if (proc >= 0 && (fstatfs(proc, &fs) < 0 || fs.f_type != PROC_SUPER_MAGIC)) {
    close(proc);
    proc = -1;
  }
  return proc;
}

/* Up to size - 1 bytes of proc's file "<pid>/<name>", NUL-terminated; false if none. */
static bool read_proc(int proc, uint32_t pid, const char *name, char *buf, size_t size) {
  char path[32];
  snprintf(path, sizeof(path), "%u/%s", pid, name);
  cleanup_close int fd = openat(proc, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  ssize_t n = fd >= 0 ? read(fd, buf, size - 1) : -1;
  if (n <= 0) return false;
  buf[n] = '\0';
  return true;
}

/* Field n (3 or more) of a stat text: counted after the command, which is in parentheses
 * and may hold anything; 0 if absent. */
static uint64_t stat_field(const char *stat, int n) {
  const char *p = strrchr(stat, ')');
  for (int field = 2; p && field < n; field++) p = strchr(p + 1, ' ');
  return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* The opener of a request from thread tid (see MAX_OPEN): its thread group's id and the
 * leader's start time. The thread's stat says both when it is its group's only thread (so
 * its leader); otherwise status says which group, and the leader's stat its start. */
static uint64_t opener_of(struct rc_views_server *s, uint32_t tid) {
  if (!tid) return UNRESOLVED;
  if (s->proc < 0 && rc_now_ms() - s->proc_tried_ms >= RETRY_PROC_MS) {
    s->proc = proc_of_cell(s->pidns, false);
    s->proc_tried_ms = rc_now_ms();
  }
  char buf[1024];
  if (s->proc < 0 || !read_proc(s->proc, tid, "stat", buf, sizeof(buf))) return UNRESOLVED | tid;
  uint64_t tgid = tid, start = stat_field(buf, 22);
  if (stat_field(buf, 20) != 1) {
    const char *t =
        read_proc(s->proc, tid, "status", buf, sizeof(buf)) ? strstr(buf, "\nTgid:") : NULL;
    tgid = t ? strtoull(t + 6, NULL, 10) : 0;
    if (!tgid || tgid > UINT32_MAX) return UNRESOLVED | tid;
    if (tgid != tid) {
      if (!read_proc(s->proc, (uint32_t)tgid, "stat", buf, sizeof(buf))) return UNRESOLVED | tid;
      start = stat_field(buf, 22);
    }
  }
  return (start & 0x7fffffff) << 32 | tgid;
}

static uint32_t opener_home(uint64_t opener, uint32_t cap) {
  return (uint32_t)((opener * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

/* The entry of opener: its own, or the empty one it would take; NULL while the table has
 * no room for another (which an open then makes, opener_add). */
static struct opener_count *opener_find(struct rc_views_server *s, uint64_t opener) {
  if (!s->openers_cap) return NULL;
  for (uint32_t i = opener_home(opener, s->openers_cap);; i = (i + 1) & (s->openers_cap - 1))
    if (!s->openers[i].count || s->openers[i].opener == opener) return &s->openers[i];
}

static void opener_add(struct rc_views_server *s, uint64_t opener) {
  if ((s->openers_used + 1) * 2 > s->openers_cap) {
    struct opener_count *old = s->openers;
    uint32_t old_cap = s->openers_cap;
    s->openers_cap = old_cap ? old_cap * 2 : 64;
    s->openers = rc_xcalloc(s->openers_cap, sizeof(*s->openers));
    for (uint32_t i = 0; i < old_cap; i++)
      if (old[i].count) *opener_find(s, old[i].opener) = old[i];
    free(old);
  }
  struct opener_count *o = opener_find(s, opener);
  if (!o->count) *o = (struct opener_count){.opener = opener}, s->openers_used++;
  o->count++;
}

static void opener_remove(struct rc_views_server *s, uint64_t opener) {
  struct opener_count *o = opener_find(s, opener);
  if (!o || !o->count || --o->count) return;
  /* emptied: move back each entry after it that may live there (its home is not in the
   * run between the hole and it), so that lookups need not step over holes */
  uint32_t mask = s->openers_cap - 1, hole = (uint32_t)(o - s->openers);
  for (uint32_t i = (hole + 1) & mask; s->openers[i].count; i = (i + 1) & mask) {
    uint32_t home = opener_home(s->openers[i].opener, s->openers_cap);
    if (((i - home) & mask) >= ((i - hole) & mask)) {
      s->openers[hole] = s->openers[i];
      s->openers[i].count = 0;
      hole = i;
    }
  }
  s->openers_used--;
}

/* --- texts ------------------------------------------------------------------------- */

static void lru_unlink(struct rc_views_server *s, struct open_file *f) {
  uint32_t *prev_next = f->lru_prev ? &s->open[f->lru_prev - 1].lru_next : &s->lru_head;
  uint32_t *next_prev = f->lru_next ? &s->open[f->lru_next - 1].lru_prev : &s->lru_tail;
  *prev_next = f->lru_next;
  *next_prev = f->lru_prev;
  f->lru_prev = f->lru_next = 0;
}

/* f (which has a text) becomes the most recently used */
static void lru_touch(struct rc_views_server *s, struct open_file *f) {
  uint32_t slot = (uint32_t)(f - s->open) + 1;
  if (s->lru_tail == slot) return;
  if (f->lru_prev || f->lru_next || s->lru_head == slot) lru_unlink(s, f);
  f->lru_prev = s->lru_tail;
  if (s->lru_tail)
    s->open[s->lru_tail - 1].lru_next = slot;
  else
    s->lru_head = slot;
  s->lru_tail = slot;
}

static void drop_text(struct rc_views_server *s, struct open_file *f) {
  if (!f->text) return;
  lru_unlink(s, f);
  s->text_bytes -= f->len;
  free(f->text);
  f->text = NULL;
  f->len = 0;
}

/* Gives f its text (rendered now unless text is given), within the budget: the texts used
 * longest ago go first, each dropped once for the bytes it added, so this is O(1)
 * amortised, however many files are open. */
static void set_text(struct rc_views_server *s, struct open_file *f, char *text) {
  drop_text(s, f);
  f->text = text ? text : render(s, (enum rc_view)f->view);
  f->len = strlen(f->text);
  s->text_bytes += f->len;
  lru_touch(s, f);
  while (s->text_bytes > TEXT_BUDGET && &s->open[s->lru_head - 1] != f)
    drop_text(s, &s->open[s->lru_head - 1]);
}

/* A view's file is bound over its place, so the kernel never looks it up again: the size
 * it holds is the one the last LOOKUP or GETATTR said, and sendfile and splice (busybox
 * cat) read through the page cache up to that size. A rendering that grew since (an
 * uptime past 10 s, a cpu list after an update, a meminfo figure with one more digit)
 * came out cut short. NOTIFY_STORE is the one way to raise the kernel's size from here
 * (a store of no bytes leaves it): one byte at the ceiling's last offset, a page that
 * stays not up to date. The open then drops the page cache (no FOPEN_KEEP_CACHE), and the
 * first page read comes back short, which brings the kernel's size down to the text.
 *
 * The store locks that page, and a process of the cell can hold the lock (readahead(2) of
 * it, a fault on a mapping) while its READ waits for this server: a store made by the
 * thread that serves READs would wait for ever (the session-19 red team froze a cell's
 * views, and `pause`, that way). So stores, and the replies to the opens that need them,
 * go to a thread of their own (rc_views_hint_thread_start); the main loop goes on serving
 * the READ that lets the page go. */
static void store_size_hint(int fd, uint64_t nodeid) {
  struct fuse_notify_store_out st = {.nodeid = nodeid, .offset = SIZE_CEILING - 1, .size = 1};
  char byte = '\n';
  struct fuse_out_header h = {.len = (uint32_t)(sizeof(h) + sizeof(st) + 1),
                              .error = FUSE_NOTIFY_STORE};
  struct iovec iov[3] = {{&h, sizeof(h)}, {&st, sizeof(st)}, {&byte, 1}};
  (void)!writev(fd, iov, 3); /* an older kernel without it: the size stays as it was */
}

/* What the hint thread is asked: the node to store for, then the open's reply. */
struct size_hint {
  uint64_t nodeid, unique, fh;
};

struct hint_thread {
  int fuse, requests;
};

static void *serve_size_hints(void *arg) {
  struct hint_thread *t = arg;
  struct size_hint h;
  while (read(t->requests, &h, sizeof(h)) == (ssize_t)sizeof(h)) {
    store_size_hint(t->fuse, h.nodeid);
    struct fuse_open_out out = {.fh = h.fh, .open_flags = FOPEN_DIRECT_IO};
    reply(t->fuse, h.unique, 0, &out, sizeof(out));
  }
  close(t->requests);
  free(t);
  return NULL;
}

int rc_views_hint_thread_start(int fuse_fd) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return -1;
  struct hint_thread *t = rc_xcalloc(1, sizeof(*t));
  *t = (struct hint_thread){.fuse = fuse_fd, .requests = p[0]};
  int e = rc_thread_start_detached(serve_size_hints, t);
  if (e != 0) {
    close(p[0]);
    close(p[1]);
    free(t);
    errno = e;
    return -1;
  }
  /* never wait on a thread that waits on a page: a full pipe means no hint */
  (void)fcntl(p[1], F_SETFL, O_NONBLOCK);
  return p[1];
}

void rc_views_server_set_hints(struct rc_views_server *s, int hint_fd) {
  s->hints = hint_fd;
}

static void do_open(struct rc_views_server *s, const struct fuse_in_header *h) {
  if (!is_view_ino(h->nodeid)) return reply(s->fd, h->unique, -EISDIR, NULL, 0);
  uint64_t opener = opener_of(s, h->pid);
  struct opener_count *o = opener_find(s, opener);
  if (o && o->count >= MAX_OPEN_PER_PROCESS) return reply(s->fd, h->unique, -EMFILE, NULL, 0);
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
  s->open[fh] = (struct open_file){.used = true, .view = (uint8_t)v, .opener = opener};
  opener_add(s, opener);
  /* the lookup's rendering, whose length the kernel now holds, if it is that lookup's */
  bool fresh = s->pending[v].text && rc_now_ms() - s->pending[v].at_ms < PENDING_MS;
  set_text(s, &s->open[fh], fresh ? s->pending[v].text : NULL); /* NULL: render */
  if (!fresh) free(s->pending[v].text);
  s->pending[v].text = NULL;
  if (!fresh && s->hints >= 0) {
    struct size_hint hint = {.nodeid = h->nodeid, .unique = h->unique, .fh = fh};
    if (write(s->hints, &hint, sizeof(hint)) == (ssize_t)sizeof(hint)) return; /* it replies */
  } else if (!fresh && s->hints == HINTS_INLINE) {
    store_size_hint(s->fd, h->nodeid);
  }
  /* Direct I/O: every read comes here and gets this open's snapshot, so concurrent
   * readers do not share cached pages, and a read ends at the snapshot's end whatever
   * size the kernel holds. Without FUSE_DIRECT_IO_ALLOW_MMAP a shared mapping is refused
   * (ENODEV, as sysfs answers; procfs answers EIO to any mapping). */
  struct fuse_open_out out = {.fh = fh, .open_flags = FOPEN_DIRECT_IO};
  reply(s->fd, h->unique, 0, &out, sizeof(out));
}

static struct open_file *file_of(struct rc_views_server *s, uint64_t fh) {
  return fh < s->open_cap && s->open[fh].used ? &s->open[fh] : NULL;
}

static void do_release(struct rc_views_server *s, uint64_t fh) {
  struct open_file *f = file_of(s, fh);
  if (!f) return;
  drop_text(s, f);
  opener_remove(s, f->opener);
  *f = (struct open_file){.next_free = s->free_head};
  s->free_head = (uint32_t)fh + 1;
}

/* A read of the open's snapshot, so that a file read in pieces is one consistent text. */
static void do_read(struct rc_views_server *s, const struct fuse_in_header *h,
                    const struct fuse_read_in *in) {
  struct open_file *f = file_of(s, in->fh);
  if (!f) return reply(s->fd, h->unique, -EBADF, NULL, 0);
  if (f->text)
    lru_touch(s, f);
  else
    set_text(s, f, NULL);
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
