/* Container cgroups on v1 (legacy), v2 (unified) and hybrid hosts.
 * A container's cgroup is one relative path (from linux.cgroupsPath, or /runcell/<id>),
 * created in every hierarchy that is mounted: each v1 controller hierarchy (and the named
 * systemd one) and, on unified or hybrid hosts, the v2 hierarchy. */
#ifndef RUNCELL_CGROUPS_H
#define RUNCELL_CGROUPS_H

#include <stdbool.h>
#include <sys/types.h>

#include "runcell/error.h"
#include "runcell/oci.h"

enum rc_cgroup_mode { RC_CGROUP_LEGACY, RC_CGROUP_HYBRID, RC_CGROUP_UNIFIED };

/* Detects the host's cgroup layout from /proc/self/mountinfo (cached). */
enum rc_cgroup_mode rc_cgroup_mode(void);
const char *rc_cgroup_mode_name(enum rc_cgroup_mode m);

/* Computes the cgroup path to use: an absolute cgroupsPath is taken as is; a relative one
 * is relative to the runtime's own cgroup; none gives "/runcell/<id>". systemd-style
 * "slice:prefix:name" paths are rejected (no systemd driver) with a clear error.
 * Returns a heap string starting with '/'. */
int rc_cgroup_resolve_path(const char *cgroups_path, const char *id, char **out,
                           struct rc_error *err);

/* The error for asking for the systemd cgroup driver, which runcell does not have: what
 * names the request (--systemd-cgroup, a "slice:prefix:name" cgroupsPath), advice says
 * what to do instead. When systemd is not running (PID 1 is not systemd) the message says
 * so first, in runc's words. Returns -1. */
int rc_cgroup_systemd_unsupported(const char *what, const char *advice, struct rc_error *err);

/* Creates the cgroup in every hierarchy (mkdir -p; v1 cpuset levels inherit cpus/mems
 * from their parent), applies resources, and moves pid into it. On failure removes what
 * it created. resources may be NULL. */
int rc_cgroup_create(const char *path, const struct oci_resources *resources, pid_t pid,
                     struct rc_error *err);
/* Applies (or re-applies, for update) resources to an existing cgroup. Resources the
 * host cannot enforce give an error naming the file, never silence. */
int rc_cgroup_apply(const char *path, const struct oci_resources *resources, struct rc_error *err);
/* Adds pid to the existing cgroup in every hierarchy (for exec). */
int rc_cgroup_enter(const char *path, pid_t pid, struct rc_error *err);
/* Lists the pids in the container cgroup (recursively). Caller frees *pids. */
int rc_cgroup_pids(const char *path, pid_t **pids, size_t *n, struct rc_error *err);
/* Sends sig to every process in the cgroup (for kill --all and delete --force). */
int rc_cgroup_kill_all(const char *path, int sig, struct rc_error *err);
/* Freezes or thaws (v1 freezer.state, v2 cgroup.freeze), waiting until it takes effect. */
int rc_cgroup_freeze(const char *path, bool freeze, struct rc_error *err);
/* Removes the cgroup from every hierarchy, retrying while it drains; kills nothing.
 * Missing directories are not an error (delete must be idempotent). */
int rc_cgroup_destroy(const char *path, struct rc_error *err);
/* Reads one control file of the container's cgroup in the hierarchy that holds
 * controller: file_v1 where that is a v1 hierarchy, file_v2 (NULL: none) where it is the
 * unified one. Without the trailing newline; caller frees *out. */
int rc_cgroup_read_control(const char *path, const char *controller, const char *file_v1,
                           const char *file_v2, char **out, struct rc_error *err);

/* True if the cgroup exists in at least one hierarchy. */
bool rc_cgroup_exists(const char *path);

#endif
