/* Namespaces of a new container: which to create with clone(2), which to join by path,
 * user-namespace id mappings written by the parent, time-namespace offsets, and the
 * per-namespace settings done inside (hostname, domainname, sysctl). */
#ifndef RUNCELL_NAMESPACES_H
#define RUNCELL_NAMESPACES_H

#include <stdbool.h>
#include <sys/types.h>

#include "runcell/error.h"
#include "runcell/oci.h"

/* CLONE_NEW* flags for the namespaces the config asks to create (no path), without
 * CLONE_NEWTIME, which clone(2) cannot take (see rc_ns_prepare_parent), and without
 * CLONE_NEWCGROUP (see rc_ns_unshare_cgroup). */
int rc_ns_clone_flags(const struct oci_config *cfg);

/* Opens every namespace path in the config before anything else happens, so a bad path
 * fails create early with its name. fds[type] = fd or -1. */
int rc_ns_open_paths(const struct oci_config *cfg, int fds[OCI_NS_COUNT], struct rc_error *err);
void rc_ns_close_paths(int fds[OCI_NS_COUNT]);

/* In the parent, before clone: enters the pid namespace to join (affects children only)
 * and, for a new time namespace, unshares it and writes linux.timeOffsets. */
int rc_ns_prepare_parent(const struct oci_config *cfg, const int fds[OCI_NS_COUNT], int saved[2],
                         struct rc_error *err);
/* After clone: puts the runtime's own pid and time namespaces for children back, so the
 * hooks it runs (prestart, createRuntime, poststart) are in the runtime's namespaces. */
void rc_ns_restore_parent(int saved[2]);

/* In the child: joins the path namespaces (user first, then the rest; pid and time were
 * handled by the parent). */
int rc_ns_join_paths(const int fds[OCI_NS_COUNT], struct rc_error *err);

/* In the child, after the parent moved it into the container's cgroup: a new cgroup
 * namespace rooted at that cgroup. */
int rc_ns_unshare_cgroup(const struct oci_config *cfg, struct rc_error *err);

/* In the parent: writes /proc/<pid>/{uid_map,gid_map} (and setgroups when needed). */
int rc_ns_write_id_maps(const struct oci_config *cfg, pid_t pid, struct rc_error *err);

/* In the child, in its namespaces: hostname, domainname, sysctl. */
int rc_ns_apply_uts(const struct oci_config *cfg, bool new_uts, struct rc_error *err);
int rc_ns_apply_sysctl(const struct oci_config *cfg, struct rc_error *err);
/* In the parent, with the namespaces given by path already open (rc_ns_open_paths): a
 * sysctl whose namespace is given by a path that leads to the runtime's own namespace, the
 * host's, is refused, as runc's checkHostNs refuses it (a path cannot dodge the rule that
 * a namespaced sysctl needs a namespace of the container's own). */
int rc_ns_check_sysctl_targets(const struct oci_config *cfg, const int fds[OCI_NS_COUNT],
                               struct rc_error *err);

#endif
