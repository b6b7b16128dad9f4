/* Container lifecycle: create (the container init waits just before exec'ing the user
 * program), start (releases it), kill, delete. The CLI commands are thin wrappers. */
#ifndef RUNCELL_CONTAINER_H
#define RUNCELL_CONTAINER_H

#include <stdbool.h>
#include <sys/types.h>

#include "runcell/error.h"
#include "runcell/oci.h"
#include "runcell/state_store.h"

struct rc_create_opts {
  const char *root;
  const char *id;
  const char *bundle;         /* default "." */
  const char *pid_file;       /* may be NULL */
  const char *console_socket; /* may be NULL */
  bool no_pivot;
  bool no_new_keyring;
  int preserve_fds; /* extra fds after stdio passed to the container */
  bool systemd_cgroup;
  /* Foreground `run` with a terminal and no console socket: the runtime itself receives
   * the pty master (returned in rc_created.console_master). */
  bool receive_console;
};

struct rc_created {
  pid_t pid;          /* the container init, a child of the calling process */
  int pidfd;          /* pidfd of the init (or -1) */
  int console_master; /* pty master when opts.receive_console, else -1 */
};

/* Creates the container. On success the state is "created" and the init waits. On
 * failure nothing is left: no state directory, cgroup, mount or process. */
int rc_container_create(const struct rc_create_opts *o, struct rc_created *out,
                        struct rc_error *err);

/* Starts a created container: runs poststart hooks after the user program started. */
int rc_container_start(const char *root, const char *id, struct rc_error *err);

/* Sends a signal to the init (or to every process with all=true). */
int rc_container_kill(const char *root, const char *id, int sig, bool all, struct rc_error *err);

/* Deletes a container; running containers need force. Runs poststop hooks. A missing
 * container with force is not an error (containerd relies on that). */
int rc_container_delete(const char *root, const char *id, bool force, struct rc_error *err);

/* Freezes / thaws every process of the container (cgroup freezer). pause needs a running
 * (or created) container, resume a paused one. */
int rc_container_pause(const char *root, const char *id, struct rc_error *err);
int rc_container_resume(const char *root, const char *id, struct rc_error *err);

/* Applies new cgroup resources to a running (or created, or paused) container. */
int rc_container_update(const char *root, const char *id, const struct oci_resources *r,
                        struct rc_error *err);

/* The pids of every process in the container's cgroup (caller frees). */
int rc_container_pids(const char *root, const char *id, pid_t **pids, size_t *n,
                      struct rc_error *err);

struct rc_exec_opts {
  const char *root;
  const char *id;
  const struct oci_config *cfg;      /* the container's config (rc_container_load_config) */
  const struct oci_process *process; /* what to run */
  const char *console_socket;
  bool detach;
  int preserve_fds;
};

struct rc_exec_result {
  pid_t pid;          /* the new process, a child of the caller */
  int console_master; /* pty master for a foreground terminal process, else -1 */
};

/* Starts a process in a running container; returns once it has exec'd (or with the error
 * that kept it from doing so). */
int rc_container_exec(const struct rc_exec_opts *o, struct rc_exec_result *out,
                      struct rc_error *err);

/* The config saved at create time. */
int rc_container_load_config(const char *root, const char *id, struct oci_config **cfg,
                             struct rc_error *err);

/* Loads the refreshed state of one container (caller frees with oci_state_free). */
int rc_container_state(const char *root, const char *id, struct oci_state **st,
                       struct rc_error *err);

#endif
