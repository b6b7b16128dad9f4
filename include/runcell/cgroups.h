/* Container cgroups on v1 (legacy), v2 (unified) and hybrid hosts.
 * A container's cgroup is one relative path (from linux.cgroupsPath, or /runcell/<id>),
 * created in every hierarchy that is mounted: each v1 controller hierarchy (and the named
 * systemd one) and, on unified or hybrid hosts, the v2 hierarchy. */
#ifndef RUNCELL_CGROUPS_H
#define RUNCELL_CGROUPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "runcell/error.h"
#include "runcell/oci.h"

enum rc_cgroup_mode { RC_CGROUP_LEGACY, RC_CGROUP_HYBRID, RC_CGROUP_UNIFIED };

/* Detects the host's cgroup layout from /proc/self/mountinfo (cached). */
enum rc_cgroup_mode rc_cgroup_mode(void);
const char *rc_cgroup_mode_name(enum rc_cgroup_mode m);

/* Computes the cgroup path to use: an absolute cgroupsPath is taken as is; a relative one
 * is relative to the runtime's own cgroup; none gives "/runcell/<id>". The systemd
 * driver's "slice:prefix:name" is refused here (cgroups_systemd.h resolves those).
 * Returns a heap string starting with '/'. */
int rc_cgroup_resolve_path(const char *cgroups_path, const char *id, char **out,
                           struct rc_error *err);

/* True for runc's systemd-driver form "slice:prefix:name" (exactly two colons, not an
 * absolute path). */
bool rc_cgroup_is_systemd_format(const char *cgroups_path);

/* Creates the cgroup in every hierarchy (mkdir -p; v1 cpuset levels inherit cpus/mems
 * from their parent), applies resources, and moves pid into it. On failure removes what
 * it created. resources may be NULL. */
int rc_cgroup_create(const char *path, const struct oci_resources *resources, pid_t pid,
                     struct rc_error *err);
/* A new process's own way into a container's cgroups, taken instead of being moved in by
 * the runtime. Moving another process into a v1 cgroup (writing its pid to cgroup.procs)
 * takes the kernel's threadgroup lock for writing, which waits for an RCU grace period:
 * 10-16 ms here, the largest single cost of a create. A task that writes "0" (itself) to
 * a v1 hierarchy's `tasks` file skips that lock, and a process cloned with clone3's
 * CLONE_INTO_CGROUP is born in its v2 cgroup; either way one thread moves, which for a
 * just-cloned process is all of it.
 *
 * The runtime opens the handle (after rc_cgroup_create with no pid), clones with
 * rc_cgroup_clone, and the child calls rc_cgroup_join_self before it does anything else. */
struct rc_cgroup_join;
int rc_cgroup_join_open(const char *path, struct rc_cgroup_join **out, struct rc_error *err);
/* The v2 part is the runtime's (rc_cgroup_enter_v2): for a process that enters the
 * container's cgroup namespace, from which its own cgroup is out of sight. */
void rc_cgroup_join_leave_v2(struct rc_cgroup_join *j);
/* In the child, single-threaded: joins every hierarchy not yet joined. The error names
 * the hierarchy and the file (v2's no-internal-process rule explained). Closes the
 * handle's descriptors either way; the memory is the caller's to free. */
int rc_cgroup_join_self(struct rc_cgroup_join *j, struct rc_error *err);
void rc_cgroup_join_free(struct rc_cgroup_join *j);
/* clone(2) for a container's first process: with a join handle, clone3 places the child
 * in its v2 cgroup (falling back to plain clone where clone3 or CLONE_INTO_CGROUP is
 * refused: an old kernel, a seccomp profile, the no-internal-process rule — the child's
 * write then says which). Returns as fork does. */
pid_t rc_cgroup_clone(unsigned long flags, struct rc_cgroup_join *j);
/* Applies (or re-applies, for update) resources to an existing cgroup. Resources the
 * host cannot enforce give an error naming the file, never silence. */
int rc_cgroup_apply(const char *path, const struct oci_resources *resources, struct rc_error *err);
/* Adds pid to the existing cgroup in every hierarchy. */
int rc_cgroup_enter(const char *path, pid_t pid, struct rc_error *err);
/* Charges a cell kernel (pid) serving the cell of cgroup path to that cell: its CPU counts
 * against the cell's quota and in its usage, while `ps`, `kill --all`, `pause` and the
 * cell's OOM killer leave it alone (src/linux/cgroups_cell_kernel.c: on v1, the cell's
 * cgroup in the hierarchies that account CPU only; on a v2 cpu controller, the child
 * <path>/runcell-cellk, which is the cell's for every controller, with oom_score_adj
 * -1000). The process must have every thread it needs already: it may not fork in a cell
 * at its pids limit. Returns how many hierarchies it joined (0 for path "/": no cgroup). */
int rc_cgroup_charge_cell_kernel(const char *path, pid_t pid, struct rc_error *err);
/* Adds pid to the existing cgroup in the v2 hierarchy only (none: nothing to do). */
int rc_cgroup_enter_v2(const char *path, pid_t pid, struct rc_error *err);
/* Lists the pids in the container cgroup (recursively), its cell kernels left out.
 * Caller frees *pids. */
int rc_cgroup_pids(const char *path, pid_t **pids, size_t *n, struct rc_error *err);
/* Sends sig to every process in the cgroup (for kill --all and delete --force). */
int rc_cgroup_kill_all(const char *path, int sig, struct rc_error *err);
/* Freezes or thaws (v1 freezer.state, v2 cgroup.freeze), waiting until it takes effect;
 * on v2 the cell kernels step out of the cgroup for the freeze. */
int rc_cgroup_freeze(const char *path, bool freeze, struct rc_error *err);
/* Removes the cgroup from every hierarchy, retrying while it drains. It kills only the
 * cell kernels charged to it (rc_cgroup_charge_cell_kernel), and only once the container's
 * own processes are gone. Missing directories are not an error (delete must be idempotent). */
int rc_cgroup_destroy(const char *path, struct rc_error *err);
/* Reads one control file of the container's cgroup in the hierarchy that holds
 * controller: file_v1 where that is a v1 hierarchy, file_v2 (NULL: none) where it is the
 * unified one. Without the trailing newline; caller frees *out. */
int rc_cgroup_read_control(const char *path, const char *controller, const char *file_v1,
                           const char *file_v2, char **out, struct rc_error *err);

/* True if the cgroup exists in at least one hierarchy. */
bool rc_cgroup_exists(const char *path);

/* ---- Statistics (cgroups_stats.c), read as runc's libcontainer reads them for `events`:
 * v1 controller files (cgroups/fs), or the unified hierarchy's (cgroups/fs2). Times are
 * in nanoseconds, sizes in bytes; what a host or kernel lacks stays 0 / empty. */

struct rc_cgroup_u64_list {
  uint64_t *v;
  size_t n;
};

/* One blkio counter: "major:minor [op] value" (op "" when the file has none). */
struct rc_cgroup_blkio_entry {
  uint64_t major, minor;
  char op[16];
  uint64_t value;
};

struct rc_cgroup_blkio_list {
  struct rc_cgroup_blkio_entry *v;
  size_t n;
};

/* runc's BlkioStats tables, in the order of its types.Blkio. */
enum rc_cgroup_blkio_table {
  RC_BLKIO_SERVICE_BYTES,
  RC_BLKIO_SERVICED,
  RC_BLKIO_QUEUED,
  RC_BLKIO_SERVICE_TIME,
  RC_BLKIO_WAIT_TIME,
  RC_BLKIO_MERGED,
  RC_BLKIO_TIME,
  RC_BLKIO_SECTORS,
  RC_BLKIO_TABLES
};

/* memory, memory+swap, kernel or kernel TCP: v1's usage_in_bytes, max_usage_in_bytes,
 * limit_in_bytes, failcnt; v2's current and max. */
struct rc_cgroup_memory_entry {
  uint64_t limit, usage, max, failcnt;
};

struct rc_cgroup_stat_value {
  char *key;
  uint64_t value;
};

struct rc_cgroup_hugetlb_stats {
  char page_size[16]; /* "2MB", "1GB": the name in the control files */
  uint64_t usage, max, failcnt;
};

struct rc_cgroup_stats {
  struct {
    uint64_t total, kernel, user;
    struct rc_cgroup_u64_list percpu, percpu_kernel, percpu_user;
    uint64_t periods, throttled_periods, throttled_time;
  } cpu;
  struct {
    struct rc_cgroup_u64_list cpus, mems;
    uint64_t cpu_exclusive, mem_hardwall, mem_exclusive, memory_migrate, memory_spread_page,
        memory_spread_slab, memory_pressure, sched_load_balance;
    int64_t sched_relax_domain_level;
  } cpuset;
  struct {
    uint64_t cache;
    struct rc_cgroup_memory_entry usage, swap, kernel, kernel_tcp;
    struct rc_cgroup_stat_value *raw; /* memory.stat, sorted by key */
    size_t n_raw;
  } memory;
  struct {
    uint64_t current, limit; /* limit 0: none */
  } pids;
  struct rc_cgroup_blkio_list blkio[RC_BLKIO_TABLES];
  struct rc_cgroup_hugetlb_stats *hugetlb; /* sorted by page size name */
  size_t n_hugetlb;
};

/* The groups of files the statistics come from. On cgroup v2, cpu.stat gives the cpu
 * usage too (RC_CGS_CPUACCT is v1 only) and runc reads no cpuset statistics. */
enum rc_cgroup_stat_group {
  RC_CGS_CPU,
  RC_CGS_CPUACCT,
  RC_CGS_CPUSET,
  RC_CGS_MEMORY,
  RC_CGS_PIDS,
  RC_CGS_BLKIO,
  RC_CGS_HUGETLB,
  RC_CGS_GROUPS
};

/* Where to read each group: the container's directory (NULL: not on this host) and
 * whether it is in the cgroup v2 hierarchy. A directory that does not exist is skipped. */
struct rc_cgroup_stat_source {
  const char *dir[RC_CGS_GROUPS];
  bool v2[RC_CGS_GROUPS];
};

/* Reads the statistics of the container cgroup path from the host's hierarchies. */
int rc_cgroup_stats(const char *path, struct rc_cgroup_stats *st, struct rc_error *err);
/* The same from explicit directories (what rc_cgroup_stats does after finding them). */
int rc_cgroup_stats_read(const struct rc_cgroup_stat_source *src, struct rc_cgroup_stats *st,
                         struct rc_error *err);
void rc_cgroup_stats_free(struct rc_cgroup_stats *st);

/* ---- OOM notification (cgroups_oom.c), as runc's `events` gets it: on v1 an eventfd
 * registered for memory.oom_control through cgroup.event_control, which the kernel also
 * signals when the cgroup is removed; on v2 inotify on memory.events (the oom_kill count)
 * and cgroup.events (populated 0 when the last process is gone). */
struct rc_cgroup_oom_watch {
  int fd; /* poll for POLLIN, then call rc_cgroup_oom_watch_read */
  bool v2;
  bool ended;     /* v1: the cgroup was removed; v2: no process is left in it */
  int dirfd;      /* the memory cgroup directory */
  int control_fd; /* v1: memory.oom_control, kept open while registered */
  int wd_events, wd_populated;
  uint64_t oom_kills; /* v2: the oom_kill count last seen */
};

/* Starts watching the memory cgroup of container cgroup path. */
int rc_cgroup_oom_watch_open(const char *path, struct rc_cgroup_oom_watch *w, struct rc_error *err);
/* The same on a directory: v2 selects the inotify method. */
int rc_cgroup_oom_watch_open_dir(const char *dir, bool v2, struct rc_cgroup_oom_watch *w,
                                 struct rc_error *err);
/* After fd polled readable: *ooms is the number of OOM events to report (0 or more);
 * w->ended is set when the watch is over. */
int rc_cgroup_oom_watch_read(struct rc_cgroup_oom_watch *w, unsigned *ooms, struct rc_error *err);
void rc_cgroup_oom_watch_close(struct rc_cgroup_oom_watch *w);

#endif
