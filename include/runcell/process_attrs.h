/* Per-process security attributes applied just before exec: rlimits, user and groups,
 * capabilities (the five sets), noNewPrivileges, oomScoreAdj, personality, and the
 * seccomp filter from linux.seccomp (libseccomp). */
#ifndef RUNCELL_PROCESS_ATTRS_H
#define RUNCELL_PROCESS_ATTRS_H

#include <stdbool.h>
#include <sys/types.h>

#include "runcell/error.h"
#include "runcell/oci.h"

/* Applies rlimits. Must run before dropping privileges (raising hard limits needs
 * CAP_SYS_RESOURCE). */
int rc_apply_rlimits(const struct oci_process *p, struct rc_error *err);

/* Writes (rc_write_proc_file) or reads (rc_read_proc_file, at most max bytes) a file of
 * /proc through the runtime's own procfs handle (runcell/procfs.h): after pivot_root and
 * in exec the /proc is the container's, and a label or limit written to a file of the
 * image (CVE-2023-28642) or to another procfs file mounted over the right one
 * (CVE-2025-52881) would silently not be the process's. */
int rc_write_proc_file(const char *path, const char *data, size_t len, struct rc_error *err);
int rc_read_proc_file(const char *path, size_t max, char **out, struct rc_error *err);

/* Writes /proc/self/oom_score_adj. */
int rc_apply_oom_score_adj(const struct oci_process *p, struct rc_error *err);

/* process.scheduler through sched_setattr(2), and process.ioPriority through
 * ioprio_set(2), for the calling process (inherited across exec). Before the
 * capabilities are dropped: real-time policies and raised priorities need CAP_SYS_NICE. */
int rc_apply_scheduler(const struct oci_process *p, struct rc_error *err);
int rc_apply_io_priority(const struct oci_process *p, struct rc_error *err);

/* Sets the personality (linux.personality). */
int rc_apply_personality(const struct oci_linux *l, struct rc_error *err);

/* Drops the bounding set to p->capabilities.bounding (all caps when no capabilities
 * object is given means: drop them all, as the spec says absent sets are empty). */
int rc_caps_drop_bounding(const struct oci_process *p, struct rc_error *err);

/* For runcell's own helpers (the VMM once its workload runs, the confined image builder),
 * not a container's process: leaves the capabilities in keep and nothing it could regain
 * (bounding set cut to keep, ambient and inheritable emptied, effective and permitted cut
 * to keep). Works without /proc (the last capability is then probed). */
int rc_caps_reduce_to(uint64_t keep, struct rc_error *err);

/* For a thread of a runcell process that never needs privilege (the VMM's vCPU and I/O
 * threads): empties this thread's capability sets, bounding set included. Capabilities
 * are per thread: the main thread's drop does not reach threads that already exist, so
 * each such thread calls this first. Nothing to do when the thread holds none. */
int rc_caps_drop_this_thread(struct rc_error *err);

/* setgroups(additionalGids), setgid, setuid keeping capabilities across the uid change
 * (PR_SET_KEEPCAPS), then sets effective/permitted/inheritable and raises ambient.
 * Must run after rc_caps_drop_bounding. */
int rc_apply_user_and_caps(const struct oci_process *p, bool setgroups_allowed,
                           struct rc_error *err);

/* Sets PR_SET_NO_NEW_PRIVS when requested. */
int rc_apply_no_new_privs(const struct oci_process *p, struct rc_error *err);

/* Builds and loads the seccomp filter. Errors name the syscall or field at fault.
 * Unknown syscall names are skipped (as runc does: profiles list syscalls newer than the
 * host's libseccomp). A listenerPath (SCMP_ACT_NOTIFY) is refused with a clear error. */
int rc_seccomp_load(const struct oci_seccomp *s, struct rc_error *err);

/* Validates a seccomp object without loading it (used at create time so that errors
 * appear before the container process exists). */
int rc_seccomp_check(const struct oci_seccomp *s, struct rc_error *err);

/* Builds the filter and exports it as the kernel's classic BPF program (struct sock_filter
 * array, *len bytes, heap) for a process this one does not load it into (a microVM's
 * agent); *flags gets the SECCOMP_FILTER_FLAG_LOG / _SPEC_ALLOW the profile asks for.
 * s NULL: no filter (*bpf NULL). */
int rc_seccomp_export(const struct oci_seccomp *s, uint8_t **bpf, uint32_t *len, uint32_t *flags,
                      struct rc_error *err);

#endif
