/* The systemd cgroup driver (`--systemd-cgroup`), as runc's: each container's cgroup is a
 * transient systemd unit (a scope, or a slice), made over D-Bus on the system bus
 * (DBUS_SYSTEM_BUS_ADDRESS, else /run/dbus/system_bus_socket), so that systemd owns the
 * tree it manages and does not undo limits on its next reload. Its resources are given to
 * systemd as unit properties (runc's docs/systemd.md tables) and then written to the
 * cgroupfs files as with the cgroupfs driver, which also covers what systemd cannot set.
 * Everything else (ps, kill --all, pause, events, exec's join) works on the unit's cgroup
 * path through the cgroupfs code.
 *
 * libsystemd is loaded with dlopen when the driver is first used: runcell is started for
 * every container operation, and most hosts (and every cgroupfs run) need none of it. */
#ifndef RUNCELL_CGROUPS_SYSTEMD_H
#define RUNCELL_CGROUPS_SYSTEMD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "runcell/error.h"
#include "runcell/oci.h"

/* A container's unit, from its cgroupsPath "slice:prefix:name" (empty: ":runcell:<id>"):
 * the scope "prefix-name.scope" in slice (empty: system.slice; "-": the root slice). A
 * name ending in ".slice" is refused: a slice holds no processes. */
struct rc_systemd_unit {
  char *unit;  /* "runcell-<id>.scope" */
  char *slice; /* the slice the unit is in, e.g. "system.slice", "-.slice" */
  char *path;  /* its cgroup, relative to the hierarchy roots: "/system.slice/runcell-x.scope" */
};

/* A file in the state directory of a container created with the systemd driver: delete
 * --force of one whose state.json cannot be read finds its cgroup from the saved
 * config.json, whose cgroupsPath does not name the driver when it is empty (the default
 * is runcell-<id>.scope with this driver, /runcell/<id> without). */
#define RC_SYSTEMD_STATE_MARKER "systemd-cgroup"

/* Parses and checks cgroups_path (NULL or "" for the default) for container id. */
int rc_systemd_resolve(const char *cgroups_path, const char *id, struct rc_systemd_unit *out,
                       struct rc_error *err);
void rc_systemd_unit_free(struct rc_systemd_unit *u);
/* The unit whose cgroup is path (one rc_systemd_resolve gave): its last component. */
const char *rc_systemd_unit_of(const char *path);
/* Expands a slice name to its cgroup path as systemd does: "a-b.slice" gives
 * "/a.slice/a-b.slice", "-.slice" gives "/". Heap string in *out. */
int rc_systemd_expand_slice(const char *slice, char **out, struct rc_error *err);

/* A scope cannot start empty: the process that holds it until the container's own first
 * process is in its cgroup. */
struct rc_systemd_standin {
  pid_t pid;
};

/* Starts the unit with the resources as properties (resources may be NULL), the config's
 * org.systemd.property.* annotations after them (they win), and waits for systemd's job.
 * A scope gets a stand-in process (end it with rc_systemd_standin_end once the container
 * has a process in the cgroup); a slice has none (standin->pid 0). */
int rc_systemd_start(const struct rc_systemd_unit *u, const char *id,
                     const struct oci_resources *resources, const struct oci_key_value *annotations,
                     size_t n_annotations, struct rc_systemd_standin *standin,
                     struct rc_error *err);
void rc_systemd_standin_end(struct rc_systemd_standin *s);
/* Stops the unit and waits for it; a unit systemd no longer has is not an error. */
int rc_systemd_stop(const char *unit, struct rc_error *err);
/* Gives systemd the resources an update sets (the cgroupfs files are the caller's). */
int rc_systemd_update(const char *unit, const struct oci_resources *resources,
                      struct rc_error *err);

/* Parses one org.systemd.property.* annotation value (GVariant text: true/false, 'str',
 * "uint64 5", "@t 5", a bare integer for int32, a bare real for double) into a D-Bus type
 * signature (one basic type) and its value. A name ending in "Sec" (not "USec") is given as
 * its "USec" form in microseconds, as runc does. Exposed for the unit tests. */
struct rc_systemd_value {
  char type; /* 'b','s','y','n','q','i','u','x','t','d' */
  char *name;
  char *s;
  long long i;
  unsigned long long u;
  double d;
};
int rc_systemd_parse_property(const char *name, const char *text, struct rc_systemd_value *out,
                              struct rc_error *err);
void rc_systemd_value_free(struct rc_systemd_value *v);
/* A cpuset list ("0-3,7") as the byte mask systemd's AllowedCPUs/AllowedMemoryNodes take.
 * Heap buffer in *mask, its size in *len. */
int rc_systemd_cpuset_mask(const char *list, unsigned char **mask, size_t *len,
                           struct rc_error *err);

#endif
