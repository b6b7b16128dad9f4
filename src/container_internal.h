/* What the create path hands to the container init across clone(2). */
#ifndef RUNCELL_CONTAINER_INTERNAL_H
#define RUNCELL_CONTAINER_INTERNAL_H

#include <limits.h>
#include <stdbool.h>

#include "runcell/gate.h"
#include "runcell/microvm.h"
#include "runcell/mode.h"
#include "runcell/oci.h"

struct rc_init_ctx {
  const struct oci_config *cfg;
  const char *id;
  const char *rootfs; /* absolute */
  const char *bundle; /* absolute */
  int sync_fd;        /* child end of the sync socketpair */
  int start_fd;       /* listening socket that `start` connects to */
  int control_fd;     /* a microVM's control socket (exec, ps), listening; -1 for a cell */
  int console_fd;     /* connected console socket, or -1 */
  int state_dir_fd;   /* the locked state directory: the init must not keep the lock */
  int ns_fds[OCI_NS_COUNT];
  int clone_flags;
  int preserve_fds;
  bool no_pivot;
  bool no_new_keyring;
  const struct rc_gate_program *gate; /* a cell's syscall gate, compiled; NULL when off */
  int views_dirfd;        /* staging directory for the cell's file views, or -1 for none */
  const char *views_path; /* its path: the init reopens it in its own mount namespace */
  int views_fuse;         /* /dev/fuse for them, opened by the runtime */
  /* A cell with a user namespace of its own: the runtime sends the staging directory (as
   * the init's mount namespace holds it) and a /dev/fuse opened in the user namespace on
   * the sync socket after GO, instead of views_dirfd and views_fuse. */
  bool views_in_userns;
  int views_control; /* the cell kernel's control socket: the views root goes there */
  /* microVM mode: what the VM is made of (NULL for a cell), and the file the guest
   * kernel's console goes to (-1 for none). */
  const struct rc_microvm_plan *microvm;
  int vm_console_log;
  pid_t hook_pid; /* the pid hooks are told, when not the caller's own (microVM start hooks) */
  struct rc_cgroup_join *cgroup_join; /* the init's way into its cgroups (NULL: none) */
};

/* The cgroup resources a container gets (create and restore): the config's, with an allow
 * rule added for every linux.devices node (as runc does). The result shares everything
 * with cfg except its devices array (*owned, to free). NULL when there is nothing. */
const struct oci_resources *rc_effective_resources(const struct oci_config *cfg,
                                                   struct oci_resources *copy,
                                                   struct oci_device_cgroup **owned);

/* The annotations a container's state shows: the config's, with the mode and gate in
 * force (run.runcell.mode, run.runcell.gate) in place of any the config gave. The array is
 * the caller's to free; its strings are borrowed from cfg and static text. */
struct oci_key_value *rc_state_annotations(const struct oci_config *cfg,
                                           const struct rc_mode_choice *mode, size_t *n);

/* Runs in the cloned child; never returns. */
__attribute__((noreturn)) void rc_init_main(struct rc_init_ctx *ctx);
/* The same for a microVM: the child becomes the VMM (src/microvm_init.c). */
__attribute__((noreturn)) void rc_microvm_init_main(struct rc_init_ctx *ctx);

/* Looks up the program like execvp would, in the container (after pivot_root), with the
 * container's PATH. Fills path (PATH_MAX). */
int rc_find_executable(const char *arg0, char *const env[], char *path, struct rc_error *err);

/* The last steps before exec shared by the container init and exec'd processes (a routed
 * gate's listener fd comes back in *listener, else -1): rlimits,
 * oom_score_adj, personality, security labels, umask, the cell's syscall gate (gate),
 * seccomp (unless it must come late: *late_seccomp), bounding set, user and capabilities,
 * noNewPrivileges; then the program lookup into exe and the environment to exec with (HOME
 * filled in). */
int rc_process_finalize(const struct oci_config *cfg, const struct oci_process *p, bool new_userns,
                        const struct rc_gate_program *gate, int *listener, char exe[PATH_MAX],
                        char ***exec_env, bool *late_seccomp, struct rc_error *err);

/* For a terminal process: a pty from the container's /dev/ptmx, its master sent to
 * console_fd (then closed), the slave as controlling terminal and stdio. dev_console: the
 * container's config, for the init, whose pty also becomes /dev/console (rc_console_mount);
 * NULL for an exec'd process, which leaves /dev/console alone, as runc does. */
int rc_setup_process_terminal(const struct oci_process *p, int console_fd,
                              const struct oci_config *dev_console, struct rc_error *err);

/* Closes every descriptor from `first` on that is not close-on-exec: what runcell inherited
 * from its caller beyond stdio and the preserved fds never reaches a container. */
void rc_close_inherited_fds(int first);

/* After chdir to a process's cwd: fails if the cwd is not reachable from the container's
 * root (a /proc/self/fd/N cwd through a host directory descriptor, CVE-2024-21626). */
int rc_verify_cwd_inside_root(const char *cwd, struct rc_error *err);

/* The container init's first steps, shared by cells and microVMs: root of a new user
 * namespace, the namespaces joined by path, a new cgroup namespace, a new session. */
int rc_init_enter_namespaces(struct rc_init_ctx *ctx, struct rc_error *err);
/* createContainer hooks, in the container's namespaces with the rootfs as working
 * directory (as runc). */
int rc_init_create_container_hooks(const struct rc_init_ctx *ctx, struct rc_error *err);
/* startContainer hooks, after `start` and before the program runs. */
int rc_init_start_container_hooks(const struct rc_init_ctx *ctx, struct rc_error *err);
/* Waits on the start socket for `start`; *conn_out is its connection (errors go back on it;
 * closing it tells `start` the container runs). */
int rc_wait_for_start(int listen_fd, int *conn_out, struct rc_error *err);
/* The state JSON a createContainer/startContainer hook gets on stdin. */
void rc_hook_state_json(const struct rc_init_ctx *ctx, enum oci_status status, char **out);
/* Marks every fd above stdio and the preserved ones close-on-exec (keep included). */
void rc_prepare_exec_fds(int preserve_fds, int keep);

#endif
