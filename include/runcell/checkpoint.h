/* Checkpoint and restore through CRIU, driven by its command line (`criu dump`,
 * `criu restore --restore-detached`), with the arguments runc gives criu over RPC: the
 * container's rootfs as criu's root, its bind mounts, cgroup binds, masked files and
 * device nodes declared external, a network or PID namespace joined by path declared
 * external, the container's freezer cgroup to stop it, and its stdio pipes recorded in
 * descriptors.json so a restore can hand it new ones. When criu fails, the error carries
 * criu's own reasons (the "Error" lines of its log) and the log's path. */
#ifndef RUNCELL_CHECKPOINT_H
#define RUNCELL_CHECKPOINT_H

#include <stdbool.h>
#include <sys/types.h>

#include "runcell/cli.h"
#include "runcell/error.h"

/* The CLI commands (cmd_checkpoint.c, cmd_restore.c). */
extern const struct rc_command rc_cmd_checkpoint, rc_cmd_restore;

/* What checkpoint and restore share (the criu options runc's two commands both take). */
struct rc_criu_opts {
  const char *criu;                /* the criu binary (--criu); NULL: "criu" from PATH */
  const char *image_path;          /* images directory; checkpoint creates it */
  const char *work_path;           /* logs and work files; NULL: the image path (criu's default) */
  const char *manage_cgroups_mode; /* soft|full|strict|ignore; NULL: soft */
  bool tcp_established;
  bool ext_unix_sk;
  bool shell_job;
  bool file_locks;
  bool auto_dedup;
};

struct rc_checkpoint_opts {
  const char *root;
  const char *id;
  struct rc_criu_opts criu;
  const char *parent_path; /* relative to the image path: a previous pre-dump */
  const char *page_server; /* ADDRESS:PORT or NULL */
  bool leave_running;
  bool pre_dump;
};

/* Checkpoints a running (or paused) container into o->criu.image_path. Without
 * leave_running or pre_dump the container is gone afterwards (criu ended its processes,
 * and its state and cgroup are deleted, as runc does); on failure it is left running. */
int rc_container_checkpoint(const struct rc_checkpoint_opts *o, struct rc_error *err);

struct rc_restore_opts {
  const char *root;
  const char *id;
  const char *bundle; /* NULL: the current directory */
  struct rc_criu_opts criu;
  const char *lsm_profile;       /* TYPE:NAME, or NULL */
  const char *lsm_mount_context; /* or NULL */
};

struct rc_restored {
  pid_t pid; /* the restored init: a child of the caller (criu restores it as its sibling) */
  int pidfd; /* or -1 */
};

/* Creates container o->id from the bundle's config.json and restores its processes from
 * the images. On success the state is "running" with the restored init's pid. On failure
 * nothing is left: no state directory, cgroup, mount or process. */
int rc_container_restore(const struct rc_restore_opts *o, struct rc_restored *out,
                         struct rc_error *err);

/* The argument after `restore` with which criu runs runcell as its action script (so that
 * prestart and createRuntime hooks run once criu has made the namespaces, as runc does). */
#define RC_CRIU_HOOK_FLAG "--criu-action-hook"

/* Run as criu's action script: for the "setup-namespaces" action, runs the container's
 * prestart and createRuntime hooks with the restored init's pid; other actions are no-ops. */
int rc_criu_action_hook(const char *root, const char *id, struct rc_error *err);

#endif
