/* Shared between the cgroup core (cgroups.c: hierarchy discovery, paths, lifecycle) and
 * the per-version resource writers (cgroups_v1.c, cgroups_v2.c). Not a public API. */
#ifndef RUNCELL_CGROUPS_INTERNAL_H
#define RUNCELL_CGROUPS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runcell/cgroups.h"
#include "runcell/error.h"
#include "runcell/oci.h"

/* One mounted cgroup hierarchy, as /proc/self/mountinfo shows it. */
struct rc_cg_hier {
  char *mount; /* where it is mounted, e.g. /sys/fs/cgroup/memory */
  char *root;  /* the part of the hierarchy the mount shows ("/" unless bind-mounted) */
  /* v1: the controllers bound to it from the super options, comma separated, e.g.
   * "cpu,cpuacct" or "name=systemd"; v2: the root's cgroup.controllers, space separated. */
  char *controllers;
  bool v2;
};

struct rc_cg_layout {
  enum rc_cgroup_mode mode;
  struct rc_cg_hier *hiers; /* v1 hierarchies first, then the v2 one (if used) */
  size_t n;
};

/* The host's hierarchies, discovered once per process. Never NULL; n may be 0. */
const struct rc_cg_layout *rc_cg_layout(void);
/* Builds layout l from the mountinfo text in f; known lists the kernel's controllers (from
 * /proc/cgroups, comma separated; NULL to guess them from the mount options). The v2
 * hierarchy's controllers are left empty: they come from its cgroup.controllers. */
void rc_cg_parse_mountinfo(FILE *f, const char *known, struct rc_cg_layout *l);
void rc_cg_layout_free(struct rc_cg_layout *l);
/* The hierarchy a controller ("memory", "cpu", "hugetlb", ...) lives on: the v1 hierarchy
 * that binds it, else the v2 one when its root offers it; NULL when the host lacks it. */
const struct rc_cg_hier *rc_cg_find(const struct rc_cg_layout *l, const char *controller);
/* True when the comma- or space-separated list contains name as a whole item. */
bool rc_cg_list_has(const char *list, const char *name);

/* A container cgroup directory in one hierarchy, opened for reading and writing its files.
 * path is the container cgroup path, used only in messages. */
struct rc_cg_dir {
  int fd;
  const char *path;
};

/* Writes value to a control file. Errors name the cgroup, file and value. When the file
 * does not exist, missing_hint (or a generic text when NULL) says why the host cannot
 * enforce it. */
int rc_cg_write(const struct rc_cg_dir *d, const char *file, const char *value,
                const char *missing_hint, struct rc_error *err);
/* Reads a control file, without its trailing newline. Caller frees *out. */
int rc_cg_read(const struct rc_cg_dir *d, const char *file, char **out, struct rc_error *err);
bool rc_cg_has_file(const struct rc_cg_dir *d, const char *file);
/* Polls file until its content (trimmed) equals want, or one line of it does when
 * it holds "key value" lines; gives up after timeout_ms. */
int rc_cg_wait_for(const struct rc_cg_dir *d, const char *file, const char *want, int timeout_ms,
                   struct rc_error *err);

/* ---- shared by the cgroup core (cgroups.c) and the cell kernel's place in it
 * (cgroups_cell_kernel.c) ---- */

/* The v2 hierarchy (NULL: none is used). */
const struct rc_cg_hier *rc_cg_v2_hier(const struct rc_cg_layout *l);
/* The hierarchy to list a container's processes from. */
const struct rc_cg_hier *rc_cg_procs_hier(const struct rc_cg_layout *l);
/* The directory of cgroup path in hierarchy h (heap string). */
char *rc_cg_hier_dir(const struct rc_cg_hier *h, const char *path);
/* The cleaned-up absolute form of a cgroup path (heap string in *out). */
int rc_cg_canonical(const char *path, char **out, struct rc_error *err);
/* Moves pid (its whole thread group) into cgroup dir_path of hierarchy h; path names the
 * container's cgroup in errors. */
int rc_cg_write_pid(const struct rc_cg_hier *h, const char *dir_path, const char *path, pid_t pid,
                    struct rc_error *err);

struct rc_cg_pid_list {
  pid_t *v;
  size_t n, cap;
};
/* Appends the processes of the cgroup open at dirfd (its own cgroup.procs, or for a
 * threaded cgroup the processes of its cgroup.threads) only. */
int rc_cg_read_own_pids(int dirfd, const char *path, struct rc_cg_pid_list *out,
                        struct rc_error *err);
/* Appends the processes of the cgroup open at dirfd and of every cgroup below it (depth:
 * 0 at the container's own). */
int rc_cg_collect_pids(int dirfd, const char *path, struct rc_cg_pid_list *out, int depth,
                       struct rc_error *err);

/* ---- the cell kernel's place (cgroups_cell_kernel.c) ---- */

/* Removes the cell kernels from a list of the processes of cgroup path (from
 * rc_cg_procs_hier): on a v2 cpu controller they are in a child of it. */
void rc_cg_drop_cell_kernels(const struct rc_cg_layout *l, const char *path,
                             struct rc_cg_pid_list *list);
/* Around a v2 freeze of path: moves its cell kernels out of it (park) and back (unpark). */
int rc_cg_park_cell_kernels(const struct rc_cg_hier *v2, const char *path, bool park,
                            struct rc_error *err);
/* Refuses a container cgroup path with a component named as the cell kernel's cgroups
 * are (runcell-cellk, *.runcell-parked) where they are used (a v2 cpu controller): such a
 * cgroup would be another cell's, and its processes taken for that cell's cell kernels. */
int rc_cg_check_reserved(const struct rc_cg_layout *l, const char *path, struct rc_error *err);
/* For destroy: SIGKILLs the cell kernels charged to path once the container's own
 * processes are gone, and removes the cgroups only they use outside path's tree (until
 * deadline). */
int rc_cg_end_cell_kernels(const struct rc_cg_layout *l, const char *path, long long deadline,
                           struct rc_error *err);

/* What needs doing, so that a controller the host lacks is an error only when asked for. */
bool rc_cg_memory_is_set(const struct oci_resources *r);
bool rc_cg_cpu_is_set(const struct oci_resources *r); /* the cpu controller (not cpuset) */
bool rc_cg_cpuset_is_set(const struct oci_resources *r);
bool rc_cg_blkio_is_set(const struct oci_resources *r);

/* ---- cgroup v1 (cgroups_v1.c) ---- */
int rc_cg_v1_memory(const struct rc_cg_dir *d, const struct oci_memory *m, struct rc_error *err);
int rc_cg_v1_cpu(const struct rc_cg_dir *d, const struct oci_cpu *c, struct rc_error *err);
int rc_cg_v1_cpuset(const struct rc_cg_dir *d, const struct oci_cpu *c, struct rc_error *err);
/* Gives a cpuset cgroup its parent's cpus and mems when it has none: v1 refuses to
 * attach tasks to a cpuset without them. */
int rc_cg_v1_cpuset_inherit(const struct rc_cg_dir *parent, const struct rc_cg_dir *child,
                            struct rc_error *err);
int rc_cg_v1_pids(const struct rc_cg_dir *d, int64_t limit, struct rc_error *err);
int rc_cg_v1_devices(const struct rc_cg_dir *d, const struct oci_device_cgroup *rules, size_t n,
                     struct rc_error *err);
int rc_cg_v1_blkio(const struct rc_cg_dir *d, const struct oci_blkio *b, struct rc_error *err);
int rc_cg_v1_hugetlb(const struct rc_cg_dir *d, const struct oci_hugepage_limit *l, size_t n,
                     struct rc_error *err);
int rc_cg_v1_net_cls(const struct rc_cg_dir *d, uint32_t class_id, struct rc_error *err);
int rc_cg_v1_net_prio(const struct rc_cg_dir *d, const struct oci_key_value *p, size_t n,
                      struct rc_error *err);
int rc_cg_v1_freeze(const struct rc_cg_dir *d, bool freeze, struct rc_error *err);

/* ---- cgroup v2 (cgroups_v2.c) ---- */
int rc_cg_v2_memory(const struct rc_cg_dir *d, const struct oci_memory *m, struct rc_error *err);
int rc_cg_v2_cpu(const struct rc_cg_dir *d, const struct oci_cpu *c, struct rc_error *err);
int rc_cg_v2_cpuset(const struct rc_cg_dir *d, const struct oci_cpu *c, struct rc_error *err);
int rc_cg_v2_pids(const struct rc_cg_dir *d, int64_t limit, struct rc_error *err);
int rc_cg_v2_io(const struct rc_cg_dir *d, const struct oci_blkio *b, struct rc_error *err);
int rc_cg_v2_hugetlb(const struct rc_cg_dir *d, const struct oci_hugepage_limit *l, size_t n,
                     struct rc_error *err);
int rc_cg_v2_unified(const struct rc_cg_dir *d, const struct oci_key_value *kv, size_t n,
                     struct rc_error *err);
int rc_cg_v2_freeze(const struct rc_cg_dir *d, bool freeze, struct rc_error *err);
/* A v2 cgroup's cgroup.type. A domain child of a threaded subtree ("domain threaded"
 * root, "threaded" members) is "domain invalid": it can hold no process until it is made
 * threaded, and a threaded cgroup has only the threaded controllers (cpu, cpuset, pids,
 * perf_event). */
enum rc_cg_v2_type {
  RC_CG_V2_DOMAIN,
  RC_CG_V2_DOMAIN_INVALID,
  RC_CG_V2_DOMAIN_THREADED,
  RC_CG_V2_THREADED,
};
/* -1 when the kernel has no cgroup.type (before 4.14: no threaded mode); *out is then
 * RC_CG_V2_DOMAIN. */
int rc_cg_v2_type(const struct rc_cg_dir *d, enum rc_cg_v2_type *out);
/* Makes a "domain invalid" cgroup threaded (what runc does for a container cgroup inside
 * a threaded subtree, and the cell kernel's cgroups need below a threaded cell); leaves
 * any other as it is. */
int rc_cg_v2_join_threaded(const struct rc_cg_dir *d, struct rc_error *err);
/* Enables in dir's cgroup.subtree_control every controller in its cgroup.controllers
 * that the kernel lets it enable; the ones it refuses are left for the resource writers
 * to report (by the missing file) if they are needed. */
void rc_cg_v2_enable_controllers(const struct rc_cg_dir *d);

/* Conversions from the OCI (v1-shaped) values, as runc does them. */
uint64_t rc_cg_v2_shares_to_weight(uint64_t shares);
uint64_t rc_cg_v2_blkio_weight_to_io(uint64_t weight);
/* OCI swap is memory+swap; v2's memory.swap.max is swap alone. Gives the value to write
 * ("max", a number, or "" for nothing to write) in out. */
int rc_cg_v2_swap_value(const struct oci_memory *m, char *out, size_t len, struct rc_error *err);

/* ---- device rules (cgroups_devices.c) ---- */

/* Access bits, the values of the kernel's BPF_DEVCG_ACC_* so they go into the eBPF
 * filter as they are. */
enum { RC_DEV_ACC_MKNOD = 1, RC_DEV_ACC_READ = 2, RC_DEV_ACC_WRITE = 4, RC_DEV_ACC_ALL = 7 };

/* One exception to a device policy's default: type 'c' or 'b', numbers -1 for any. */
struct rc_dev_exception {
  char type;
  int64_t major, minor;
  unsigned access;
};

/* What a list of device rules leaves: a default and the exceptions to it (the v1 devices
 * controller's model, which the v2 eBPF filter reproduces). */
struct rc_dev_policy {
  bool default_allow;
  struct rc_dev_exception *ex;
  size_t n;
};

/* The devices every container may use, appended after the config's rules (runc's list). */
extern const struct oci_device_cgroup rc_cg_default_device_rules[];
extern const size_t rc_cg_n_default_device_rules;

/* Reduces rules (then the defaults, if asked) to a policy, starting from deny-all.
 * Errors name the rule by index. Free with rc_cg_dev_policy_free. */
int rc_cg_dev_policy_build(const struct oci_device_cgroup *rules, size_t n, bool with_defaults,
                           struct rc_dev_policy *out, struct rc_error *err);
/* Applies one more rule (index is for messages). */
int rc_cg_dev_policy_apply(struct rc_dev_policy *p, size_t index, const struct oci_device_cgroup *r,
                           struct rc_error *err);
/* The policy a v1 devices.list shows. */
int rc_cg_dev_policy_from_list(const char *list, struct rc_dev_policy *out, struct rc_error *err);
/* The access of the exception for exactly type:major:minor (0 if none). */
unsigned rc_cg_dev_policy_access(const struct rc_dev_policy *p, char type, int64_t major,
                                 int64_t minor);
bool rc_cg_dev_policy_equal(const struct rc_dev_policy *a, const struct rc_dev_policy *b);
void rc_cg_dev_policy_free(struct rc_dev_policy *p);
/* "rwm" letters to RC_DEV_ACC_* bits (NULL is all); -1 for anything else or "". */
int rc_cg_dev_access_bits(const char *access, unsigned *out);
/* A devices.list-style line: "c 1:3 rwm", "b 8:* r". */
void rc_cg_dev_format(char type, int64_t major, int64_t minor, unsigned access, char *buf,
                      size_t len);

/* ---- cgroup v2 device rules as eBPF (cgroups_v2_devices.c) ---- */

struct bpf_insn; /* <linux/bpf.h> */

/* Translates a policy into a BPF_PROG_TYPE_CGROUP_DEVICE program (returns 1 to allow).
 * Caller frees *out. */
int rc_cg_bpf_device_program(const struct rc_dev_policy *p, struct bpf_insn **out, size_t *n,
                             struct rc_error *err);
/* Loads a device program; returns its fd. A refusal carries the verifier's log. */
int rc_cg_bpf_device_load(const struct bpf_insn *insns, size_t n, const char *path,
                          struct rc_error *err);
/* Loads the program for policy and attaches it to the cgroup v2 directory dirfd, replacing
 * the device programs attached there before (on update); path is for messages. */
int rc_cg_bpf_device_attach(int dirfd, const char *path, const struct rc_dev_policy *p,
                            struct rc_error *err);
/* The container's rules plus the defaults, enforced through eBPF on a v2 cgroup. */
int rc_cg_v2_devices(const struct rc_cg_dir *d, const struct oci_device_cgroup *rules, size_t n,
                     struct rc_error *err);

#endif
