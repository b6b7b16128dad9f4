/* The OCI runtime-spec configuration (config.json) as typed structs.
 * oci/config.c parses it with jansson and validates it; every error names the JSON path.
 * Optional scalar fields carry a has_* flag; strings are NULL when absent; arrays come
 * with an explicit count. Unknown fields are ignored. */
#ifndef RUNCELL_OCI_H
#define RUNCELL_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "runcell/error.h"

#define OCI_VERSION "1.2.0"     /* spec version runcell implements and reports */
#define OCI_VERSION_MIN "1.0.0" /* oldest config ociVersion accepted */

struct oci_rlimit {
  int type; /* RLIMIT_* resource number */
  char *name;
  uint64_t soft, hard;
};

struct oci_capabilities {
  /* each set is a bitmask of CAP_* numbers (bit n = capability n); names are validated
   * against the capabilities libcap knows. has_set tells whether the set was given. */
  uint64_t bounding, effective, inheritable, permitted, ambient;
  bool has_bounding, has_effective, has_inheritable, has_permitted, has_ambient;
};

struct oci_user {
  uid_t uid;
  gid_t gid;
  bool has_umask;
  mode_t umask;
  gid_t *additional_gids;
  size_t n_additional_gids;
  char *username; /* Windows only; ignored */
};

struct oci_process {
  bool terminal;
  bool has_console_size;
  unsigned console_height, console_width;
  struct oci_user user;
  char **args; /* NULL-terminated, n_args > 0 */
  size_t n_args;
  char **env; /* NULL-terminated (may be empty) */
  size_t n_env;
  char *cwd; /* absolute */
  bool has_capabilities;
  struct oci_capabilities capabilities;
  struct oci_rlimit *rlimits;
  size_t n_rlimits;
  bool no_new_privileges;
  char *apparmor_profile;
  bool has_oom_score_adj;
  int oom_score_adj;
  char *selinux_label;
  /* process.ioPriority */
  bool has_io_priority;
  int io_priority_class; /* IOPRIO_CLASS_* */
  int io_priority;
  /* process.scheduler, for sched_setattr(2): the policy's name and number (SCHED_*) */
  char *scheduler_policy;
  int sched_policy;
  int sched_nice;
  uint32_t sched_priority;
  uint64_t sched_flags; /* SCHED_FLAG_* */
  uint64_t sched_runtime, sched_deadline, sched_period;
};

struct oci_mount {
  char *destination; /* absolute path inside the container */
  char *type;        /* may be NULL (bind mounts) */
  char *source;
  char **options; /* raw options, NULL-terminated */
  size_t n_options;
  /* Derived from options by the parser (see oci/mount_options.c): */
  unsigned long flags;       /* MS_* flags to set */
  unsigned long clear_flags; /* MS_* flags explicitly cleared (rw, suid, ...) */
  unsigned long propagation; /* MS_SHARED/MS_PRIVATE/MS_SLAVE/MS_UNBINDABLE (|MS_REC) or 0 */
  char *data;                /* remaining filesystem-specific options joined by ',' */
  bool bind;                 /* bind or rbind */
  bool recursive;            /* rbind */
  bool idmap;                /* idmap/ridmap requested (unsupported: error) */
  /* MOUNT_ATTR_* to set and clear on the mount and every mount below it (rro, rnosuid, ...) */
  uint64_t rattr_set, rattr_clear;
  /* mount-level uid/gid mappings (idmapped mounts) */
  size_t n_uid_mappings, n_gid_mappings;
};

struct oci_hook {
  char *path;
  char **args; /* NULL-terminated; may be NULL */
  size_t n_args;
  char **env; /* NULL-terminated; may be NULL */
  size_t n_env;
  bool has_timeout;
  int timeout; /* seconds, > 0 */
};

struct oci_hooks {
  struct oci_hook *prestart, *create_runtime, *create_container, *start_container, *poststart,
      *poststop;
  size_t n_prestart, n_create_runtime, n_create_container, n_start_container, n_poststart,
      n_poststop;
};

enum oci_ns_type {
  OCI_NS_PID,
  OCI_NS_NETWORK,
  OCI_NS_MOUNT,
  OCI_NS_IPC,
  OCI_NS_UTS,
  OCI_NS_USER,
  OCI_NS_CGROUP,
  OCI_NS_TIME,
  OCI_NS_COUNT
};

struct oci_namespace {
  enum oci_ns_type type;
  char *path; /* NULL: create a new one */
};

struct oci_id_mapping {
  uint32_t container_id, host_id, size;
};

struct oci_device {
  char type; /* 'c', 'u', 'b', 'p' */
  char *path;
  int64_t major, minor;
  bool has_file_mode;
  mode_t file_mode;
  bool has_uid, has_gid;
  uid_t uid;
  gid_t gid;
};

struct oci_device_cgroup {
  bool allow;
  char type; /* 'a', 'c', 'b' */
  bool has_major, has_minor;
  int64_t major, minor; /* -1 means wildcard */
  char *access;         /* subset of "rwm"; NULL = "rwm" */
};

struct oci_memory {
  bool has_limit, has_reservation, has_swap, has_kernel, has_kernel_tcp, has_swappiness,
      has_disable_oom_killer, has_use_hierarchy, has_check_before_update;
  int64_t limit, reservation, swap, kernel, kernel_tcp; /* -1 = unlimited */
  uint64_t swappiness;
  bool disable_oom_killer, use_hierarchy, check_before_update;
};

struct oci_cpu {
  bool has_shares, has_quota, has_period, has_realtime_runtime, has_realtime_period, has_burst,
      has_idle;
  uint64_t shares;
  int64_t quota; /* -1 = unlimited */
  uint64_t period;
  int64_t realtime_runtime;
  uint64_t realtime_period;
  uint64_t burst;
  int64_t idle;
  char *cpus; /* cpuset, e.g. "0-3" */
  char *mems;
};

struct oci_throttle_device {
  int64_t major, minor;
  uint64_t rate;
};

struct oci_weight_device {
  int64_t major, minor;
  bool has_weight, has_leaf_weight;
  uint16_t weight, leaf_weight;
};

struct oci_blkio {
  bool has_weight, has_leaf_weight;
  uint16_t weight, leaf_weight;
  struct oci_weight_device *weight_device;
  size_t n_weight_device;
  struct oci_throttle_device *throttle_read_bps, *throttle_write_bps, *throttle_read_iops,
      *throttle_write_iops;
  size_t n_throttle_read_bps, n_throttle_write_bps, n_throttle_read_iops, n_throttle_write_iops;
};

struct oci_hugepage_limit {
  char *page_size; /* "2MB", "1GB" */
  uint64_t limit;
};

struct oci_key_value {
  char *key;
  char *value;
};

struct oci_resources {
  struct oci_device_cgroup *devices;
  size_t n_devices;
  bool has_memory;
  struct oci_memory memory;
  bool has_cpu;
  struct oci_cpu cpu;
  bool has_pids_limit;
  int64_t pids_limit; /* <= 0 = unlimited */
  bool has_blkio;
  struct oci_blkio blkio;
  struct oci_hugepage_limit *hugepage_limits;
  size_t n_hugepage_limits;
  bool has_network;
  bool has_class_id;
  uint32_t class_id;
  struct oci_key_value *net_priorities; /* name -> priority as decimal string */
  size_t n_net_priorities;
  struct oci_key_value *unified; /* cgroup v2 file -> value */
  size_t n_unified;
  /* rdma: name -> limits; kept raw */
  struct oci_key_value *rdma; /* device -> "hca_handle=N hca_object=M" */
  size_t n_rdma;
};

struct oci_seccomp_arg {
  unsigned index;
  uint64_t value, value_two;
  int op; /* enum scmp_compare value (SCMP_CMP_NE ...) */
};

struct oci_seccomp_syscall {
  char **names; /* NULL-terminated */
  size_t n_names;
  uint32_t action; /* SCMP_ACT_* value without errno/trace data */
  char *action_name;
  bool has_errno_ret;
  uint32_t errno_ret;
  struct oci_seccomp_arg *args;
  size_t n_args;
};

struct oci_seccomp {
  uint32_t default_action;
  char *default_action_name;
  bool has_default_errno_ret;
  uint32_t default_errno_ret;
  uint32_t *architectures; /* SCMP_ARCH_* tokens */
  size_t n_architectures;
  char **flags; /* SECCOMP_FILTER_FLAG_* names */
  size_t n_flags;
  char *listener_path;
  char *listener_metadata;
  struct oci_seccomp_syscall *syscalls;
  size_t n_syscalls;
};

struct oci_time_offset {
  char *clock; /* "monotonic" or "boottime" */
  int64_t secs;
  uint32_t nanosecs;
};

struct oci_linux {
  struct oci_namespace *namespaces;
  size_t n_namespaces;
  struct oci_id_mapping *uid_mappings, *gid_mappings;
  size_t n_uid_mappings, n_gid_mappings;
  struct oci_time_offset *time_offsets;
  size_t n_time_offsets;
  struct oci_device *devices;
  size_t n_devices;
  char *cgroups_path;
  bool has_resources;
  struct oci_resources resources;
  char *rootfs_propagation; /* "shared", "slave", "private", "unbindable" (+ r prefix) */
  bool has_seccomp;
  struct oci_seccomp seccomp;
  struct oci_key_value *sysctl;
  size_t n_sysctl;
  char **masked_paths;
  size_t n_masked_paths;
  char **readonly_paths;
  size_t n_readonly_paths;
  char *mount_label;
  bool has_personality;
  unsigned long personality_domain; /* PER_LINUX or PER_LINUX32 */
  char *intel_rdt_clos_id;          /* parsed to reject clearly */
};

struct oci_config {
  char *oci_version;
  char *root_path; /* as written in config.json */
  bool root_readonly;
  bool has_process;
  struct oci_process process;
  char *hostname;
  char *domainname;
  struct oci_mount *mounts;
  size_t n_mounts;
  struct oci_hooks hooks;
  struct oci_key_value *annotations;
  size_t n_annotations;
  bool has_linux;
  struct oci_linux linux_;
  /* the raw JSON text, kept for hooks and re-serialization */
  char *raw;
};

/* Parses and validates config.json text. On error, err->msg reads
 * "config.json: <json.path>: <what was expected>". */
int oci_config_parse(const char *json_text, size_t len, struct oci_config **out,
                     struct rc_error *err);
/* Loads <bundle>/config.json and parses it. */
int oci_config_load(const char *bundle_dir, struct oci_config **out, struct rc_error *err);
void oci_config_free(struct oci_config *cfg);

/* Parses a process object (as `exec --process` gives) with the same validation; the path
 * prefix is used in error messages ("process.json: args: ..."). */
int oci_process_parse(const char *json_text, size_t len, const char *what, struct oci_process *out,
                      struct rc_error *err);
void oci_process_free_fields(struct oci_process *p);

/* Parses a LinuxResources object (what `update --resources` reads); errors are prefixed
 * with `what`. Free with oci_resources_free_fields. */
int oci_resources_parse(const char *json_text, size_t len, const char *what,
                        struct oci_resources *out, struct rc_error *err);
void oci_resources_free_fields(struct oci_resources *r);

/* Returns the namespace entry of a type, or NULL. */
const struct oci_namespace *oci_config_namespace(const struct oci_config *cfg,
                                                 enum oci_ns_type type);
const char *oci_ns_type_name(enum oci_ns_type type); /* "pid", "network", ... */
const char *oci_ns_proc_name(enum oci_ns_type type); /* /proc/<pid>/ns/: "pid", "net", ... */
int oci_ns_clone_flag(enum oci_ns_type type);        /* CLONE_NEWPID, ... */
/* Looks up an annotation; NULL if absent. */
const char *oci_config_annotation(const struct oci_config *cfg, const char *key);

/* Capability name <-> number (CAP_SYS_ADMIN <-> 21). -1 if unknown. */
int oci_cap_from_name(const char *name);
const char *oci_cap_name(int cap);
int oci_cap_last(void); /* highest capability number this build knows */

/* The default config.json that `runcell spec` writes (like runc's). rootless selects the
 * variant with a user namespace; cgroup_ns adds a cgroup namespace, as runc does on a
 * cgroup v2 host. Returns a heap string (pretty-printed JSON). */
char *oci_default_spec(bool rootless, bool cgroup_ns);

/* The OCI features document (`runcell features`). Heap string. */
char *oci_features_json(void);

/* ---- state.json ---- */
enum oci_status {
  OCI_STATUS_CREATING,
  OCI_STATUS_CREATED,
  OCI_STATUS_RUNNING,
  OCI_STATUS_STOPPED,
  OCI_STATUS_PAUSED
};
const char *oci_status_name(enum oci_status s);
int oci_status_from_name(const char *name); /* -1 if unknown */

/* What runcell keeps per container in <root>/<id>/state.json. */
struct oci_state {
  char *oci_version;
  char *id;
  enum oci_status status;
  pid_t pid;               /* container init, host pid; 0 if none */
  uint64_t pid_start_time; /* /proc/<pid>/stat starttime, guards against pid reuse */
  char *bundle;            /* absolute */
  char *rootfs;            /* absolute */
  char *created;           /* RFC 3339 */
  char *owner;             /* "" for root, like runc */
  char *cgroup_path;       /* the cgroupsPath in force (relative to hierarchy roots) */
  char *mode;              /* "native", "cell", "microvm" */
  struct oci_key_value *annotations;
  size_t n_annotations;
  bool systemd_cgroup;
  bool use_terminal;
  bool paused_from_created; /* paused before start: resume goes back to created */
};

/* Serializes a state for the store (all fields). Heap string. */
char *oci_state_to_json(const struct oci_state *st);
/* The JSON `runcell state` prints (runc's format: ociVersion, id, pid, status, bundle,
 * rootfs, created, owner, annotations). Heap string, pretty-printed like runc. */
char *oci_state_to_runc_json(const struct oci_state *st);
/* The OCI state object given to hooks on stdin (ociVersion, id, status, pid, bundle,
 * annotations). Heap string. */
char *oci_state_to_hook_json(const struct oci_state *st);
int oci_state_parse(const char *json_text, size_t len, struct oci_state **out,
                    struct rc_error *err);
void oci_state_free(struct oci_state *st);

#endif
