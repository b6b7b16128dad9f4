/* The runtime's own handle on procfs, for the files of /proc it writes or reads on behalf
 * of a container's process once that process is in the container's mount namespace
 * (oom_score_adj, the LSM exec labels, setgroups).
 *
 * After pivot_root, or after joining a running container's mount namespace, "/proc" is
 * the container's mount, and whoever can mount there — the container itself, or a second
 * container racing from a shared mount (runc's CVE-2025-52881) — can put another procfs
 * file over /proc/self/... A write meant for the process's oom_score_adj or AppArmor
 * exec label would land in the other file, which passes an "is it procfs" check (it is
 * procfs: /proc/sysrq-trigger, another process's attributes). So the handle is made
 * before the container's mounts exist: a procfs instance mounted nowhere (fsopen) or a
 * detached copy of the runtime's /proc (open_tree), which no one else can reach; and
 * every file is opened from it without crossing a mount or following a magic link. */
#ifndef RUNCELL_PROCFS_H
#define RUNCELL_PROCFS_H

#include <stddef.h>

#include "runcell/error.h"

/* Makes this process's handle (once; later calls do nothing). Call it in the runtime
 * before the container's process is cloned or joins the container's namespaces: the
 * handle is inherited (close-on-exec) by the processes forked after it. */
int rc_procfs_prepare(struct rc_error *err);

/* Opens path ("/proc/..." or relative to the procfs root, e.g. "thread-self/attr/exec")
 * from the handle, or, where none was prepared, from the runtime's /proc after checking
 * that it is procfs's root; crossing a mount on the way (something mounted over the
 * file) is refused. flags as for open(2); O_CLOEXEC, O_NOCTTY and O_NONBLOCK are added. */
int rc_procfs_open(const char *path, int flags, struct rc_error *err);

/* Forgets the handle (closing it): a forked process that must not keep it (the VMM). */
void rc_procfs_release(void);

#endif
