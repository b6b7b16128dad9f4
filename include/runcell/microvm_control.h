/* A running microVM's control socket: `control.sock` in the container's state directory,
 * made by `create` (microVM containers only) and served by the VMM process once the
 * container runs. `runcell exec`, `ps`, `pause`, `resume`, `update` (memory, pids limit)
 * and `events --stats` reach the guest through it.
 *
 * SOCK_SEQPACKET, one message per request and per reply, each framed like an agent frame
 * (agent_proto.h's header and field encoding, types below) so one bounds-checked codec
 * reads both. File descriptors travel by SCM_RIGHTS with the request that needs them.
 * Every request is answered with one REPLY {i32 errno, str message, result...}: errno 0
 * and "" on success. An EXEC's connection then belongs to that process: the caller sends
 * SIGNAL / RESIZE on it, the VMM sends EXITED when the process is over and closes it, and
 * a caller that hangs up first has the process killed (its stand-in died).
 *
 * Adding a request: a type here and a row in the VMM's table (src/microvm_control.c). */
#ifndef RUNCELL_MICROVM_CONTROL_H
#define RUNCELL_MICROVM_CONTROL_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "runcell/agent_proto.h"
#include "runcell/container.h"
#include "runcell/error.h"
#include "runcell/vmm/machine.h"

#define RC_VMCTL_SOCKET "control.sock"

enum rc_vmctl_type {
  /* EXEC's payload as the agent takes it (agent_exec; proc is the VMM's to set) with fds
   * stdin, stdout, stderr, or the terminal's (slave) side alone. Result: {u32 guest pid}. */
  RC_VMCTL_EXEC = 0x0301,
  RC_VMCTL_PS = 0x0302,     /* {}. Result: a PS_REPLY payload (agent_ps_reply) */
  RC_VMCTL_SIGNAL = 0x0303, /* {u32 signo}, on an EXEC's connection; no reply */
  RC_VMCTL_RESIZE = 0x0304, /* {}, on an EXEC's connection: its terminal was resized */
  RC_VMCTL_PAUSE = 0x0305,  /* {}: the vCPUs stop (devices keep running). Result: {} */
  RC_VMCTL_RESUME = 0x0306, /* {}: the vCPUs run again. Result: {} */
  /* {u64 guest bytes, 0: leave the target}: the balloon's target, the memory the guest
   * keeps. Result: {u64 guest RAM, u64 balloon target, u64 balloon actual} in bytes */
  RC_VMCTL_MEMORY = 0x0307,
  RC_VMCTL_STATS = 0x0308, /* {}. Result: a STATS_REPLY payload (agent_stats) */
  /* {u64 limit, 0: none}: pids.max of the guest cgroup of the container's processes (the
   * agent's PIDS_LIMIT). Result: {}; the guest's refusal is the REPLY's errno and message */
  RC_VMCTL_PIDS_LIMIT = 0x0309,
  RC_VMCTL_REPLY = 0x0401,  /* {i32 errno, str message, result} */
  RC_VMCTL_EXITED = 0x0402, /* {u32 kind, u32 value}: the EXEC'd process ended */
};

/* ---- The VMM's side (src/microvm_control.c) ----------------------------------------- */

/* How the control side reaches the agent: through the VMM's queue of frames for it. */
struct rc_vmctl_agent {
  void *vm;
  /* Ends and queues a frame for the agent. */
  int (*send)(void *vm, struct agent_msg *m, struct rc_error *err);
  /* Bytes queued for the agent and not yet written: while a frame's worth waits, nothing
   * more is read from callers or exec'd processes' stdin (the queue stays bounded). */
  size_t (*queued)(void *vm);
  /* PAUSE, RESUME and MEMORY act on the machine itself */
  struct vmm_machine *machine;
};

struct rc_vmctl;

/* Serves listen_fd (nonblocking, taken over); never fails (a NULL listen is fine: -1). */
struct rc_vmctl *rc_vmctl_new(int listen_fd, const struct rc_vmctl_agent *agent);
/* Hangs up on every caller (a stand-in whose process never reported sees the guest gone:
 * its process was killed with the VM) and frees everything. */
void rc_vmctl_free(struct rc_vmctl *c);
/* The most pollfds rc_vmctl_poll_fill asks for. */
size_t rc_vmctl_max_pollfds(void);
/* Fills p (at least rc_vmctl_max_pollfds() of them); returns how many it used. */
size_t rc_vmctl_poll_fill(struct rc_vmctl *c, struct pollfd *p);
/* Handles what poll reported on the pollfds rc_vmctl_poll_fill filled, then answers and
 * lets go whoever was held past the deadline (a caller the agent never answered, an EXEC
 * it never started): call it after every poll, a timeout's included. */
int rc_vmctl_poll_handle(struct rc_vmctl *c, const struct pollfd *p, size_t n,
                         struct rc_error *err);
/* The poll timeout (ms) until the next deadline; -1 for none. */
int rc_vmctl_poll_timeout(const struct rc_vmctl *c);
/* Tests only: how long callers and unstarted EXECs are held (0: the default, 55 s, just
 * under the caller's own 60 s timeout), so that a test need not wait that long. */
void rc_vmctl_set_deadline_ms(uint32_t ms);
/* A frame from the agent: 1 if it was about an EXEC'd process or answers a request (PS,
 * STATS, PIDS_LIMIT: handled), 0 if it is the container's process's, <0 when it breaks the
 * protocol. */
int rc_vmctl_on_frame(struct rc_vmctl *c, const struct agent_frame *f, struct rc_error *err);
/* Credits due to the agent, output still queued: called once per loop turn. */
int rc_vmctl_flush(struct rc_vmctl *c, struct rc_error *err);
/* The container's process has exited and the VM ends: what exec'd processes wrote is
 * written out (without waiting on a reader that does not read), and each caller gets its
 * process's EXITED (killed if the agent never said). */
void rc_vmctl_finish(struct rc_vmctl *c);

/* ---- The caller's side (src/microvm_control_client.c, src/microvm_exec.c) ----------- */

/* Connects to <root>/<id>/control.sock. */
int rc_vmctl_connect(const char *root, const char *id, struct rc_error *err);
/* Sends a request (its frame ended by the caller) with nfds fds. */
int rc_vmctl_send(int fd, const struct agent_msg *m, const int *fds, size_t nfds,
                  struct rc_error *err);
/* Receives one message into m (type and payload in *f, valid while m is). */
int rc_vmctl_recv(int fd, struct agent_msg *m, struct agent_frame *f, struct rc_error *err);
/* Decodes a REPLY: a failure becomes err (with the VMM's or agent's words); on success
 * *result points at the rest of the payload. */
int rc_vmctl_reply(const struct agent_frame *f, struct agent_cursor *result, struct rc_error *err);

/* `runcell pause` / `resume` of a running microVM: its vCPUs stop / run again. */
int rc_microvm_set_paused(const char *root, const char *id, bool paused, struct rc_error *err);
/* `runcell update --memory`: the guest keeps guest_bytes (0: unchanged); the balloon's
 * state comes back (any pointer may be NULL). */
int rc_microvm_memory(const char *root, const char *id, uint64_t guest_bytes, uint64_t *ram,
                      uint64_t *target, uint64_t *actual, struct rc_error *err);
/* `runcell update --pids-limit`: the guest cgroup's pids.max becomes limit, 0 for none
 * ("max"); fails with the guest's reason when its kernel refuses the number. */
int rc_microvm_pids_limit(const char *root, const char *id, uint64_t limit, struct rc_error *err);
/* `events --stats`: the guest's cpu and memory from its agent. */
int rc_microvm_stats(const char *root, const char *id, struct agent_stats *out,
                     struct rc_error *err);

/* `runcell ps` on a running microVM: the guest's processes (guest pids). */
int rc_microvm_ps(const char *root, const char *id, struct agent_ps_reply *out,
                  struct rc_error *err);

/* `runcell exec` on a microVM: starts the process in the guest and returns the pid of its
 * stand-in, a child of the caller that lives as long as the guest process, forwards the
 * signals it receives to it, and exits with its status (as the exec'd process would). */
int rc_microvm_exec(const struct rc_exec_opts *o, const struct oci_state *st,
                    struct rc_exec_result *out, struct rc_error *err);

#endif
