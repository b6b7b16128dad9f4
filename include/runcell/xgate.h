/* The MPK placement of the cell kernel ("xgate"): constants shared by the runtime, which
 * builds the seccomp filter that routes syscalls into the gate, and by runcell-xgate, the
 * freestanding cell loader + cell kernel that every process of such a cell runs in.
 * docs/xgate.md explains the design. */
#ifndef RUNCELL_XGATE_H
#define RUNCELL_XGATE_H

/* The descriptor every process of an xgate cell holds: the sealed memfd of runcell-xgate.
 * Each execve becomes execveat(RC_XGATE_LOADER_FD, "", ...) so that the new program is
 * loaded by the cell loader, with the cell kernel mapped, instead of by the host kernel. */
#define RC_XGATE_LOADER_FD 1000

/* The protection key of the cell kernel's memory. pkey_alloc hands out the lowest free
 * key, and the loader is the first to ask in a fresh process, so it is 1; the loader
 * refuses to go on with any other (the gate compares PKRU with constants, see below). */
#define RC_XGATE_PKEY 1

/* PKRU values: two bits per key (access-disable, write-disable). CLOSED is the kernel's
 * default for a new process and for a signal handler (every key but 0 access-disabled);
 * OPEN additionally enables the cell kernel's key. The gate's WRPKRU instructions load
 * these constants and compare PKRU with them afterwards, so a jump into the middle of the
 * gate with another value in EAX is caught (ERIM's call gate). */
#define RC_XGATE_PKRU_CLOSED 0x55555554
#define RC_XGATE_PKRU_OPEN 0x55555550

/* SECCOMP_RET_DATA of the gate's traps: in si_errno of the SIGSYS, so the cell kernel can
 * tell its own traps from those of a filter the program installed itself. */
#define RC_XGATE_TRAP_DATA 0x5843 /* "XC" */

/* argv[0] the cell kernel gives the loader (what /proc/PID/cmdline never shows: the loader
 * hands the program its own argv). */
#define RC_XGATE_LOADER_ARGV0 "runcell-xgate"

#ifndef RC_XGATE_FREESTANDING
#include <stdbool.h>

#include "runcell/error.h"

/* Set in a cell process once its xgate filter is in: every exec from then on must go
 * through rc_xgate_exec (hooks included). */
extern bool rc_xgate_active;

/* The gate of an xgate cell: the built-in gate without routing (the cell kernel inside
 * each process serves the routed syscalls) and with the xgate flag. */
const struct rc_gate_program *rc_xgate_gate(void);

/* Can this machine run the xgate placement: does pkey_alloc work (a CPU with PKU, a kernel
 * that enables it)? */
bool rc_xgate_supported(void);

/* In the cell's process, before its rlimits apply: runcell-xgate as a sealed memfd at
 * RC_XGATE_LOADER_FD. */
int rc_xgate_prepare_loader(struct rc_error *err);

/* The xgate filter: traps into the gate what the cell kernel serves or must check (the
 * routed syscalls, execve, executable mappings, the gate's own signals and descriptor),
 * lets all of it through from the gate's syscall instruction. Installed after the gate's
 * own two filters, with the same privileges. */
int rc_xgate_install_filter(struct rc_error *err);

/* The last step of a cell process: exec of exe through the cell loader. Returns only on
 * failure, with errno set. */
void rc_xgate_exec(const char *exe, char *const argv[], char *const envp[]);
#endif

#endif
