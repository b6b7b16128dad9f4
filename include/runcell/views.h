/* The cell's file views: /proc/meminfo, /proc/cpuinfo, /proc/stat, /proc/uptime and
 * /sys/devices/system/cpu/{online,possible} as the cell's limits say (what LXCFS serves,
 * without a daemon). The cell kernel serves them over FUSE; the container init mounts
 * that filesystem in the container's mount namespace only and bind-mounts each file over
 * its place, so opening them costs a FUSE round trip while every other open goes straight
 * to the host kernel (no open is trapped). */
#ifndef RUNCELL_VIEWS_H
#define RUNCELL_VIEWS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runcell/cell_kernel.h"
#include "runcell/error.h"

enum rc_view {
  RC_VIEW_MEMINFO,
  RC_VIEW_CPUINFO,
  RC_VIEW_STAT,
  RC_VIEW_UPTIME,
  RC_VIEW_CPU_ONLINE,
  RC_VIEW_CPU_POSSIBLE,
  RC_VIEW_COUNT
};

/* The file name in the views filesystem and where it goes in the container. */
const char *rc_view_name(enum rc_view v);
const char *rc_view_target(enum rc_view v);

/* What the cell kernel knows when it renders a view. */
struct rc_view_input {
  struct rc_cell_limits limits;
  uint64_t page_cache;      /* bytes of the cell's page cache */
  unsigned cpus;            /* CPUs the cell sees (rc_cell_cpu_count) */
  double uptime;            /* seconds since the cell started */
  const char *memory_stat;  /* the cell's memory.stat */
  const char *host_meminfo; /* the host's files, as read by the cell kernel */
  const char *host_cpuinfo;
  const char *host_stat;
};

/* Renders a view as text (heap string). */
char *rc_view_render(enum rc_view v, const struct rc_view_input *in);

/* Container init: mounts the views filesystem, served through fuse_fd (/dev/fuse, opened
 * by the runtime: the container's device rules would refuse the init), on staging (a
 * directory, in the container's own mount namespace). */
int rc_views_mount(int staging_dirfd, int fuse_fd, struct rc_error *err);
/* A cell with a user namespace of its own: FUSE mounts only with a /dev/fuse fd opened in
 * the user namespace that mounts, and the init cannot open one itself (the container's
 * device rules refuse it) nor reach the staging directory by path (the state directory's
 * modes keep the namespace's ids out). The runtime gets both for it, before GO.
 * rc_views_open_fuse_in: /dev/fuse opened by a short-lived child that joins the user
 * namespace of init (outside the container's cgroup). rc_views_staging_in: the staging
 * directory as init's mount namespace holds it (through /proc/<init>/root, resolved inside
 * it), checked to be staging_dirfd's directory. */
int rc_views_open_fuse_in(pid_t init, struct rc_error *err);
int rc_views_staging_in(pid_t init, const char *staging_path, int staging_dirfd,
                        struct rc_error *err);
/* Container init in such a cell: mounts the views filesystem on staging_dirfd (an fd of
 * its own mount namespace) by descriptor (fsopen, fsmount, move_mount: Linux 5.2) and
 * returns the root of the mount (for rc_views_bind and the cell kernel). */
int rc_views_mount_in_userns(int staging_dirfd, int fuse_fd, struct rc_error *err);
/* Container init, once the cell kernel has the views: checks that views (the root of the
 * filesystem mounted at staging_path) is the views filesystem, bind-mounts each view over
 * its target inside the rootfs (targets resolved inside it; missing ones are skipped, and
 * so are ones on a shared mount, whose peers, the host's among them, would get the view),
 * then detaches the staging mount when detach_staging (without pivot_root, which drops it
 * with the old root; the mount of views, named through it, not by staging_path, which a
 * user namespace's init cannot look up). */
int rc_views_bind(int views, const char *staging_path, int rootfd, bool detach_staging,
                  struct rc_error *err);

/* Cell kernel: the thread that raises the kernel's size for a fresh open and then replies
 * to it (a store can wait on a page a reader of the cell holds while its READ waits for
 * the main loop: see views_fuse.c). Started with the cell kernel, before it joins the
 * cell's cgroups; returns the fd to hand to rc_views_server_set_hints, or -1 (no hints:
 * a grown view may then be cut short by sendfile). A server not told otherwise stores
 * from its own thread (the unit and fuzz tests, which have no readers). */
int rc_views_hint_thread_start(int fuse_fd);
struct rc_views_server;
void rc_views_server_set_hints(struct rc_views_server *s, int hint_fd);

/* Cell kernel: serves one request from the FUSE fd. Returns 0, or -1 when the
 * filesystem is gone (unmounted everywhere: the cell has ended). */
struct rc_views_server;
struct rc_views_server *rc_views_server_new(int fuse_fd, const char *cgroup_path, pid_t init_pid);
int rc_views_server_handle(struct rc_views_server *s);
void rc_views_server_free(struct rc_views_server *s);

#endif
