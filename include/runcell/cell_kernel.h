/* The cell kernel, notify placement: a small process outside the cell that serves the
 * syscalls the gate routes to it (RC_GATE_ROUTE in gate_policy.c) through the seccomp
 * listener of the cell's gate, answering them as the cell's cgroup limits say, so that
 * programs size themselves to the cell rather than to the host (what LXCFS does for
 * files, for syscalls and without a daemon). One runs per listener: the container init's
 * and each exec'd process's; it exits when the last process of its filter has. */
#ifndef RUNCELL_CELL_KERNEL_H
#define RUNCELL_CELL_KERNEL_H

#include <stdint.h>
#include <sys/sysinfo.h>
#include <sys/types.h>

#include "runcell/error.h"

/* A cell kernel's process name (comm): how runcell's cgroup code tells one apart, and
 * what `ps` on the host shows. */
#define RC_CELL_KERNEL_NAME "runcell-cellk"

/* What a cell kernel serves; -1 for what it does not. */
struct rc_cell_kernel_fds {
  int listener; /* a gate's seccomp listener */
  int fuse;     /* /dev/fuse of the views filesystem (the init's cell kernel only) */
  /* A socket on which what exists only later arrives (rc_sync messages with an fd):
   * RC_SYNC_VIEWS, the views filesystem's root, from the init once it has mounted it (the
   * fuse fd is served from then on), and RC_SYNC_LISTENER, the gate's listener, from the
   * runtime once the init has installed its gate. */
  int control;
  /* A pidfd of the container's init: the cell kernel holds the views root until the init
   * has exited, so that the filesystem's last unmount (a FUSE superblock's teardown: RCU
   * grace periods, a writeback flush, ~2 ms) happens in the cell kernel afterwards rather
   * than in the init's exit, which `run` and the shim wait for. */
  int init_pidfd;
};

/* Starts a detached cell kernel for the cell whose cgroup is cgroup_path and whose init is
 * init_pid (the runtime's own process returns at once; the cell kernel is reparented to
 * the nearest subreaper, containerd's shim under containerd). It ends when everything it
 * serves is gone. */
int rc_cell_kernel_spawn(const struct rc_cell_kernel_fds *fds, const char *cgroup_path,
                         pid_t init_pid, struct rc_error *err);

/* The cell's view of its resources, read from its cgroup. 0 means "no limit". */
struct rc_cell_limits {
  uint64_t memory_limit;         /* bytes */
  uint64_t memory_usage;         /* bytes charged to the cell, page cache included */
  uint64_t memory_cache;         /* bytes of page cache */
  uint64_t memory_inactive_file; /* bytes of reclaimable page cache */
  uint64_t cpu_quota;            /* microseconds per period */
  uint64_t cpu_period;
  uint64_t pids; /* processes in the cell now */
};
int rc_cell_limits_read(const char *cgroup_path, struct rc_cell_limits *out, struct rc_error *err);

/* How many of the allowed CPUs the cell may see: all of them, or as many as its quota
 * covers (1.5 CPUs of quota → 2). */
unsigned rc_cell_cpu_count(const struct rc_cell_limits *l, unsigned allowed);

/* When process pid (of the caller's namespace) started, in seconds after boot; < 0 if it
 * cannot be read. The cell kernel reads its init's once, while the init is alive. */
double rc_cell_start_time(pid_t pid);
/* Seconds since started (rc_cell_start_time of the cell's init): the cell's uptime, which
 * /proc/uptime and sysinfo both show; 0 when started is unknown. */
double rc_cell_uptime(double started);

/* sysinfo as the cell sees it: the host's, with memory and process counts from its limits. */
void rc_cell_sysinfo(const struct sysinfo *host, const struct rc_cell_limits *l,
                     struct sysinfo *out);

#endif
