/* What a cell with its gate on keeps out of reach whatever its config says: the kernel's
 * settings and information files that runc's defaults make read-only or masked, and /sys.
 * A privileged config (containerd's for a privileged pod) leaves /proc/sys, /sys and the
 * cgroup files writable and masks nothing; the gate cannot tell a write to
 * kernel/core_pattern or /sys/kernel/uevent_helper from any other file I/O, so such a
 * cell would not be contained. A privileged workload that must change the host's settings
 * runs with the gate off (runcell-native), as under runc. */
#ifndef RUNCELL_CELL_FLOOR_H
#define RUNCELL_CELL_FLOOR_H

#include <stddef.h>

#include "runcell/oci.h"

/* Adds to cfg what the floor needs and it lacks: the read-only paths and masked paths
 * of runc's default spec (and Docker's /sys/devices/virtual/powercap), and read-only on
 * every sysfs and cgroup mount and on a bind of the host's /sys. Returns how many things
 * it changed (0: the config already kept them). */
size_t rc_cell_floor_apply(struct oci_config *cfg);

#endif
