/* The cell kernel's place in its cell's cgroups. A cell's cell kernel (src/cell/) spends
 * CPU answering the cell's routed syscalls and serving its views: that is the cell's CPU,
 * so it must count against the cell's quota and show in its usage, or a cell could burn
 * the host's CPU through its cell kernel beyond its limit. But the cell kernel is not one
 * of the container's processes: `ps`, `kill --all`, `pause` and the cell's OOM killer must
 * never meet it.
 *
 *  - v1 (and hybrid hosts whose cpu controller is on v1): it joins the cell's cgroup only
 *    in the hierarchies that account CPU and hold none of pids, freezer, memory, devices
 *    nor the one `ps` lists from.
 *  - v2 cpu controller (pure v2 hosts: Debian 12's default, most Kubernetes nodes): a v2
 *    process is in one cgroup for every controller, so it goes to a child of the cell's
 *    cgroup, <cell>/runcell-cellk, that enables no controller: the child's use is then
 *    the cell's for every controller (cpu, and also memory, pids and io, as runsc's
 *    sandbox and Kata's VMM count in their pod's cgroup). What follows from that:
 *      * the cell's OOM killer must not take it: its oom_score_adj is -1000 before it
 *        joins; the cell's own processes are the victims, as under runc;
 *      * its tasks (two, three with views: the views' size-hint thread) count in the
 *        cell's pids.current; it starts them before it joins (src/cell/cell_kernel.c),
 *        so a cell at its pids limit cannot starve it;
 *      * `ps` and `kill --all` leave out the cell kernels found there (a process of the
 *        container that moved itself there, through a writable cgroupfs, is still the
 *        container's: a cell kernel is told by its mount and pid namespaces, the
 *        runtime's own);
 *      * a v2 freeze takes every descendant, so pausing the cell would freeze its cell
 *        kernel too, and a cell process inside a FUSE request to a frozen server waits
 *        in a killable sleep the freezer cannot interrupt: the freeze would never
 *        complete. So a freeze first moves the cell kernels to a sibling,
 *        <cell>.runcell-parked (outside the frozen tree; nothing runs in the cell while it
 *        is frozen, so nothing escapes its limits there), and a thaw moves them back. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroups_internal.h"
#include "runcell/cell_kernel.h"
#include "runcell/process_attrs.h"
#include "runcell/util.h"

#define CELLK_DIR "runcell-cellk"
#define PARKED_SUFFIX ".runcell-parked"

/* Whether v1 hierarchy h takes a cell kernel: it accounts CPU and holds nothing through
 * which runcell lists, signals or freezes the container's processes (pids, freezer, the
 * hierarchy `ps` reads) nor what would turn on the cell kernel (memory: the cell's OOM
 * killer; devices: its own opens). */
static bool v1_takes_cell_kernel(const struct rc_cg_layout *l, const struct rc_cg_hier *h) {
  if (h->v2 || h == rc_cg_procs_hier(l)) return false;
  if (!rc_cg_list_has(h->controllers, "cpu") && !rc_cg_list_has(h->controllers, "cpuacct"))
    return false;
  static const char *const never[] = {"pids", "freezer", "memory", "devices"};
  for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
    if (rc_cg_list_has(h->controllers, never[i])) return false;
  return true;
}

/* The v2 hierarchy when it has the cpu controller (then the cell kernel goes to
 * <cell>/runcell-cellk there); NULL otherwise. */
static const struct rc_cg_hier *v2_takes_cell_kernel(const struct rc_cg_layout *l) {
  const struct rc_cg_hier *v2 = rc_cg_v2_hier(l);
  return v2 && rc_cg_find(l, "cpu") == v2 ? v2 : NULL;
}

/* What a process listed in one of the cell kernel's cgroups is. */
enum proc_kind {
  PROC_GONE,        /* exited or exiting: its namespaces are gone (ENOENT) */
  PROC_CELL_KERNEL, /* a cell kernel */
  PROC_OTHER,       /* anything else, or what cannot be told */
};

/* The same namespace as ours (both stat()ed through /proc): PROC_CELL_KERNEL if so. */
static enum proc_kind same_ns(pid_t pid, const char *ns) {
  char theirs[64], ours[64];
  snprintf(theirs, sizeof(theirs), "/proc/%d/ns/%s", (int)pid, ns);
  snprintf(ours, sizeof(ours), "/proc/self/ns/%s", ns);
  struct stat a, b;
  if (stat(theirs, &a) < 0) return errno == ENOENT || errno == ESRCH ? PROC_GONE : PROC_OTHER;
  return stat(ours, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino ? PROC_CELL_KERNEL
                                                                             : PROC_OTHER;
}

/* A cell kernel is a child of the runtime that never entered the container's namespaces:
 * the runtime's mount and pid namespaces tell it from a container process (whose are the
 * container's; one that shares both with the host has the host's cgroupfs to go anywhere
 * anyway), and its name from a process of the host's in a cgroup of that name made by
 * someone else (a foreign <cell>.runcell-parked). */
static enum proc_kind proc_kind(pid_t pid) {
  enum proc_kind k = same_ns(pid, "mnt");
  if (k == PROC_CELL_KERNEL) k = same_ns(pid, "pid");
  if (k != PROC_CELL_KERNEL) return k;
  char file[64];
  snprintf(file, sizeof(file), "/proc/%d/comm", (int)pid);
  cleanup_free char *comm = NULL;
  struct rc_error e;
  if (rc_read_proc_file(file, 64, &comm, &e) < 0)
    return e.code == ENOENT || e.code == ESRCH ? PROC_GONE : PROC_OTHER;
  return strcmp(comm, RC_CELL_KERNEL_NAME "\n") == 0 ? PROC_CELL_KERNEL : PROC_OTHER;
}

static bool is_cell_kernel(pid_t pid) {
  return proc_kind(pid) == PROC_CELL_KERNEL;
}

/* Appends the processes listed in dir/cgroup.procs; a missing directory has none. */
static void list_procs(const char *dir, const char *path, struct rc_cg_pid_list *out) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  struct rc_error ignore;
  (void)rc_cg_collect_pids(fd, path, out, 0, &ignore);
  close(fd);
}

/* Appends the processes of dir's own cgroup.procs, not of the cgroups below it. */
static void list_own_procs(const char *dir, const char *path, struct rc_cg_pid_list *out) {
  cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct rc_error ignore;
  if (fd >= 0) (void)rc_cg_read_own_pids(fd, path, out, &ignore);
}

/* Whether <cell>.runcell-parked (dir) is runcell's, or missing: it holds cell kernels only
 * (or exiting ones: delete meets those, ending with their cell) and no cgroup below it.
 * Its name is reserved (rc_cg_check_reserved), but a cgroup of that name made by someone
 * else (another runtime's container) must never take the cell's cell kernels in, nor have
 * its processes moved into the cell, killed or its directory removed with it. */
static bool parked_is_ours(const char *dir, const char *path) {
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT;
  bool ours = true;
  struct dirent *de;
  while (ours && (de = readdir(d)))
    ours = de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
  closedir(d);
  struct rc_cg_pid_list there = {0};
  list_own_procs(dir, path, &there);
  for (size_t i = 0; ours && i < there.n; i++) ours = proc_kind(there.v[i]) != PROC_OTHER;
  free(there.v);
  return ours;
}

/* rc_cg_v2_join_threaded for the cgroup directory dir. */
static int join_threaded(const char *dir, const char *path, struct rc_error *err) {
  struct rc_cg_dir d = {.fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), .path = path};
  if (d.fd < 0) return rc_err(err, errno, "cgroup %s: open %s", path, dir);
  int r = rc_cg_v2_join_threaded(&d, err);
  close(d.fd);
  return r;
}

/* Whether a path component is one of the names the cell kernel's cgroups use. */
static bool reserved_name(const char *name, size_t len) {
  size_t cl = strlen(CELLK_DIR), pl = strlen(PARKED_SUFFIX);
  return (len == cl && memcmp(name, CELLK_DIR, cl) == 0) ||
         (len >= pl && memcmp(name + len - pl, PARKED_SUFFIX, pl) == 0);
}

int rc_cg_check_reserved(const struct rc_cg_layout *l, const char *path, struct rc_error *err) {
  if (!v2_takes_cell_kernel(l)) return 0; /* v1 and hybrid hosts use neither name */
  for (const char *p = path; *p;) {
    while (*p == '/') p++;
    size_t len = strcspn(p, "/");
    if (len && reserved_name(p, len))
      return rc_err(err, EINVAL,
                    "cgroup %s: \"%.*s\" is a name runcell keeps for the cell kernels of the "
                    "cgroup beside or above it (" CELLK_DIR ", <cgroup>" PARKED_SUFFIX ")",
                    path, (int)len, p);
    p += len;
  }
  return 0;
}

int rc_cgroup_charge_cell_kernel(const char *cgroup_path, pid_t pid, struct rc_error *err) {
  if (!cgroup_path || strcmp(cgroup_path, "/") == 0) return 0;
  cleanup_free char *path = NULL;
  if (rc_cg_canonical(cgroup_path, &path, err) < 0) return -1;
  const struct rc_cg_layout *l = rc_cg_layout();
  int joined = 0;
  for (size_t i = 0; i < l->n; i++) {
    if (!v1_takes_cell_kernel(l, &l->hiers[i])) continue;
    if (rc_cg_write_pid(&l->hiers[i], path, path, pid, err) < 0) return -1;
    joined++;
  }
  const struct rc_cg_hier *v2 = v2_takes_cell_kernel(l);
  if (!v2) return joined;
  /* Out of the OOM killer's reach before it is in the cell's memory cgroup. Going below
   * the runtime's own value takes CAP_SYS_RESOURCE in the initial user namespace (the
   * kernel's __set_oom_adj: EACCES), which a runtime on a nested host lacks (root of an
   * unprivileged LXD or Incus container): there it keeps the runtime's value and is
   * charged all the same. The cell's OOM killer may then take it, which ends the cell's
   * routed syscalls and views (the cell's own loss), where not charging it would let the
   * cell spend CPU beyond its quota through it. */
  char file[64];
  snprintf(file, sizeof(file), "/proc/%d/oom_score_adj", (int)pid);
  if (rc_write_proc_file(file, "-1000", 5, err) < 0 && err->code != EACCES)
    return rc_err_wrap(err, "cgroup %s: keep the cell kernel from the cell's OOM killer", path);
  cleanup_free char *child = rc_xasprintf("%s/" CELLK_DIR, path);
  cleanup_free char *dir = rc_cg_hier_dir(v2, child);
  if (mkdir(dir, 0755) < 0 && errno != EEXIST)
    return rc_err(err, errno, "cgroup %s: create %s", path, dir);
  /* Below a threaded cell (cgroups.c's threaded_level) the child is "domain invalid" and
   * takes no process until it is threaded too. */
  if (join_threaded(dir, path, err) < 0) return -1;
  if (rc_cg_write_pid(v2, child, path, pid, err) < 0) return -1;
  return joined + 1;
}

void rc_cg_drop_cell_kernels(const struct rc_cg_layout *l, const char *path,
                             struct rc_cg_pid_list *list) {
  const struct rc_cg_hier *v2 = v2_takes_cell_kernel(l);
  if (!v2 || rc_cg_procs_hier(l) != v2 || list->n == 0) return;
  cleanup_free char *child = rc_xasprintf("%s/" CELLK_DIR, path);
  cleanup_free char *dir = rc_cg_hier_dir(v2, child);
  struct rc_cg_pid_list there = {0};
  list_procs(dir, path, &there);
  size_t kept = 0;
  for (size_t i = 0; i < list->n; i++) {
    bool drop = false;
    for (size_t k = 0; k < there.n && !drop; k++)
      drop = there.v[k] == list->v[i] && is_cell_kernel(list->v[i]);
    if (!drop) list->v[kept++] = list->v[i];
  }
  list->n = kept;
  free(there.v);
}

int rc_cg_park_cell_kernels(const struct rc_cg_hier *v2, const char *path, bool park,
                            struct rc_error *err) {
  const struct rc_cg_layout *l = rc_cg_layout();
  if (v2_takes_cell_kernel(l) != v2) return 0;
  cleanup_free char *cellk = rc_xasprintf("%s/" CELLK_DIR, path);
  cleanup_free char *parked = rc_xasprintf("%s" PARKED_SUFFIX, path);
  cleanup_free char *cellk_dir = rc_cg_hier_dir(v2, cellk);
  cleanup_free char *parked_dir = rc_cg_hier_dir(v2, parked);
  struct rc_cg_pid_list from = {0};
  /* parked: its own processes only (one of a foreign cgroup of that name below it is
   * nobody's to move) */
  if (park)
    list_procs(cellk_dir, path, &from);
  else
    list_own_procs(parked_dir, path, &from);
  int ret = 0;
  if (park && from.n) {
    if (mkdir(parked_dir, 0755) < 0) {
      if (errno != EEXIST)
        ret = rc_err(err, errno, "cgroup %s: create %s for its cell kernels during the freeze",
                     path, parked_dir);
      else if (!parked_is_ours(parked_dir, path))
        ret = rc_err(err, EEXIST,
                     "cgroup %s: %s, where its cell kernels wait out a freeze, exists and holds "
                     "processes or cgroups that are not runcell's cell kernels",
                     path, parked_dir);
    }
    /* the sibling of a threaded cell is "domain invalid" as the cell was */
    if (ret == 0) ret = join_threaded(parked_dir, path, err);
  }
  for (size_t i = 0; ret == 0 && i < from.n; i++) {
    /* Only cell kernels leave the cell, and only they come back. */
    if (!is_cell_kernel(from.v[i])) continue;
    if (rc_cg_write_pid(v2, park ? parked : cellk, path, from.v[i], err) < 0 && err->code != ESRCH)
      ret = rc_err_wrap(err, "%s the cell kernel %d", park ? "park" : "bring back", (int)from.v[i]);
  }
  free(from.v);
  /* gone, or busy with an exiting one; one that is not ours is left alone */
  if (!park && ret == 0 && parked_is_ours(parked_dir, path)) (void)rmdir(parked_dir);
  return ret;
}

/* Removes an empty leaf cgroup, waiting while tasks that are exiting still hold it. */
static int remove_leaf(const char *dir, const char *path, long long deadline,
                       struct rc_error *err) {
  for (long delay = 10;;) {
    if (rmdir(dir) == 0 || errno == ENOENT) return 0;
    if (errno != EBUSY || rc_now_ms() >= deadline)
      return rc_err(err, errno, "cgroup %s: remove %s", path, dir);
    struct timespec ts = {0, delay * 1000 * 1000};
    nanosleep(&ts, NULL);
    if (delay < 100) delay *= 2;
  }
}

static void kill_listed(const char *dir, const char *path) {
  struct rc_cg_pid_list list = {0};
  list_procs(dir, path, &list);
  for (size_t k = 0; k < list.n; k++) kill(list.v[k], SIGKILL);
  free(list.v);
}

int rc_cg_end_cell_kernels(const struct rc_cg_layout *l, const char *path, long long deadline,
                           struct rc_error *err) {
  const struct rc_cg_hier *ph = rc_cg_procs_hier(l);
  if (!ph) return 0;
  {
    cleanup_free char *dir = rc_cg_hier_dir(ph, path);
    cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      struct rc_cg_pid_list left = {0};
      struct rc_error ignore;
      int r = rc_cg_collect_pids(fd, path, &left, 0, &ignore);
      if (r == 0) rc_cg_drop_cell_kernels(l, path, &left);
      free(left.v);
      /* the container's own processes: not ours to end here (destroy fails on them) */
      if (r < 0 || left.n) return 0;
    }
  }
  /* They end with their cell on their own, but not always before rmdir's deadline. */
  const struct rc_cg_hier *v2 = v2_takes_cell_kernel(l);
  cleanup_free char *parked = rc_xasprintf("%s" PARKED_SUFFIX, path);
  cleanup_free char *parked_dir = v2 ? rc_cg_hier_dir(v2, parked) : NULL;
  for (size_t i = 0; i < l->n; i++) {
    const struct rc_cg_hier *h = &l->hiers[i];
    if (!v1_takes_cell_kernel(l, h) && h != v2) continue;
    cleanup_free char *dir = rc_cg_hier_dir(h, path);
    kill_listed(dir, path);
  }
  if (!v2 || !parked_is_ours(parked_dir, path)) return 0; /* not the cell's: left alone */
  kill_listed(parked_dir, path);
  return remove_leaf(parked_dir, path, deadline, err);
}
