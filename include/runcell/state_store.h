/* The state store: one directory per container under the root (default /run/runcell),
 * holding state.json (written atomically) and the start socket. Commands on one id are
 * serialized by an exclusive flock on the container directory. */
#ifndef RUNCELL_STATE_STORE_H
#define RUNCELL_STATE_STORE_H

#include <stdbool.h>

#include "runcell/error.h"
#include "runcell/oci.h"

#define RC_DEFAULT_ROOT "/run/runcell"
#define RC_ID_MAX 1024
/* The largest state.json read back. It holds the config's annotations (containerd reads
 * them back through `state`), so create refuses annotations of more than
 * RC_STATE_ANNOTATIONS_MAX bytes in all: JSON escaping can make a byte six (a control
 * character as \u00XX), and the rest of the state is small. Kubernetes allows 256 KiB. */
#define RC_STATE_MAX (4 << 20)
#define RC_STATE_ANNOTATIONS_MAX (RC_STATE_MAX / 8)

struct rc_container_dir {
  int dirfd;  /* the container's directory, flock'ed exclusively */
  char *path; /* <root>/<id> */
};

/* Checks an id: non-empty, at most RC_ID_MAX bytes, only [A-Za-z0-9_+.-], not "." or "..".
 * Message: "invalid container id format: <id>". */
int rc_state_validate_id(const char *id, struct rc_error *err);

/* Makes a new container directory; "container with id exists: <id>" if present. */
int rc_state_dir_create(const char *root, const char *id, struct rc_container_dir *d,
                        struct rc_error *err);
/* Opens and locks an existing container directory; "container does not exist". */
int rc_state_dir_open(const char *root, const char *id, struct rc_container_dir *d,
                      struct rc_error *err);
void rc_state_dir_close(struct rc_container_dir *d);
/* Removes the directory and everything in it, then closes it. */
int rc_state_dir_remove(struct rc_container_dir *d, struct rc_error *err);

int rc_state_load(struct rc_container_dir *d, struct oci_state **st, struct rc_error *err);
/* Reads and refreshes a container's state without taking its lock: state.json is only ever
 * replaced atomically, and readers (state, list, kill, hooks calling `state`) must not wait
 * behind a command that holds the lock for long (start running hooks, a blocked start). */
int rc_state_read(const char *root, const char *id, struct oci_state **st, struct rc_error *err);

int rc_state_save(struct rc_container_dir *d, const struct oci_state *st, struct rc_error *err);

/* Reads the start time (field 22 of /proc/<pid>/stat); 0 if the process is gone. */
unsigned long long rc_pid_start_time(pid_t pid);

/* The one-letter state of a process (R, S, T, Z, ...) from /proc/<pid>/stat. */
int rc_pid_state(pid_t pid, char *state);

/* Brings st->status up to date from the live system: an init that has exited (or is a
 * zombie, or whose pid was reused) means stopped; a frozen cgroup means paused. */
void rc_state_refresh(struct oci_state *st);

/* Opens a pidfd for the container's init, verifying the pid was not reused. Returns -1
 * with errno ESRCH when the process is gone. */
int rc_state_open_pidfd(const struct oci_state *st);

#endif
