/* /dev/console for a container whose process has a terminal: as with runc, the container's
 * /dev/console is its pty (the same character device as its stdin), which programs such
 * as systemd and agetty, or anything that writes to /dev/console, expect. Only the
 * container's init gets it; `exec --tty` leaves /dev/console alone, as runc does.
 *
 * Made so that nothing the container controls can redirect it (CVE-2025-52565, where runc
 * bind-mounted the path /dev/pts/N onto the path /dev/console, and a symlink swapped in at
 * either gave the container a writable copy of /proc/sysrq-trigger or core_pattern): the
 * mount's source is the pty slave runcell opened itself, by its descriptor, and its
 * target a regular file runcell has just created in the container's /dev, by its
 * descriptor; no path the container controls is resolved for either. */
#ifndef RUNCELL_CONSOLE_H
#define RUNCELL_CONSOLE_H

#include "runcell/error.h"
#include "runcell/oci.h"

/* Makes /dev/console the pty whose slave is open at slave (opened through its master with
 * TIOCGPTPEER, so it is the container's own pty). To be called once the container's root is
 * the process's root (after pivot_root, or the chroot of --no-pivot). Whatever the image or
 * a hook left at /dev/console is removed without being followed (a symlink, an empty
 * directory, a node, a file, something mounted there, which is detached from the
 * container's mount namespace only); a directory with entries is refused. Nothing is done
 * where the config binds /dev from elsewhere: its entries are the caller's, and runcell
 * creates nothing in it (as for the default devices). */
int rc_console_mount(const struct oci_config *cfg, int slave, struct rc_error *err);

#endif
