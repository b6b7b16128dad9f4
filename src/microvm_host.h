/* The host side of a microVM's agent channel (src/microvm_init.c): the frame exchange of
 * boot (HELLO, NETWORK, CONFIG, CONFIGURED) and start (START, STARTED), and the relay of
 * the running container (stdio, credits, signals, the control side's frames, EXIT). The
 * guest is untrusted (SECURITY.md): whatever it sends, these fail the container with an
 * error, or go on, within bounded memory and without spinning.
 *
 * Declared here rather than static so that tests drive the real state machine without a
 * machine: a socketpair stands in for the agent channel, pipes for the container's stdio,
 * an eventfd for the machine's stop (tests/unit/test_agent_host.c,
 * tests/fuzz/fuzz_agent_host.c). The VMM itself is rc_microvm_init_main. */
#ifndef RUNCELL_MICROVM_HOST_H
#define RUNCELL_MICROVM_HOST_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runcell/agent_proto.h"
#include "runcell/error.h"
#include "runcell/microvm_control.h"
#include "runcell/oci.h"
#include "runcell/vmm/machine.h"

/* Bytes queued for one destination: at most a flow-control window and a frame. */
struct byte_queue {
  uint8_t *data;
  size_t len, cap;
};

struct vm {
  const struct oci_config *cfg;
  struct vmm_machine *machine; /* NULL in tests: a stop is then reported without detail */
  int agent;                   /* host end of the agent channel, nonblocking */
  int stopped;                 /* the machine's eventfd */
  int console_log;
  struct agent_reader *reader;
  struct byte_queue to_agent; /* encoded frames not yet written */
  /* stdio: the container's own (fds 0-2), or the pty's slave for a terminal */
  int in_fd, out_fd[2];
  int tty;
  bool in_eof;
  uint32_t stdin_in_flight;
  struct byte_queue out[2];   /* STDOUT, STDERR data not yet written */
  uint32_t out_uncredited[2]; /* written out, not yet credited */
  uint32_t out_in_flight[2];  /* received and not yet credited: at most a window */
  bool exited;
  struct agent_exit exit;
  struct rc_vmctl *ctl;  /* the control socket: exec, ps (src/microvm_control.c) */
  bool console_in_error; /* append_console_tail has run (once is enough) */
  bool agent_eof;        /* the relay read the end of the agent channel */
  struct pollfd *pfd;    /* the relay's: six of its own, then the control side's */
};

/* A vm with its reader and queues allocated, every descriptor -1 (the caller sets them). */
void rc_microvm_host_init(struct vm *vm, const struct oci_config *cfg, int console_log);
/* Frees what rc_microvm_host_init and rc_microvm_host_control allocated; closes none of
 * the vm's descriptors (tests: the VMM exits instead). */
void rc_microvm_host_release(struct vm *vm);
/* From the agent's HELLO to its CONFIGURED: NETWORK (net, when not NULL) and config (an
 * encoded CONFIG) are sent in between. *t_hello: when HELLO came (now_ns). Fails at the
 * deadline (rc_now_ms), when the guest stops, or on anything but the expected frame, an
 * ERROR included, with the console's tail. */
int rc_microvm_host_configure(struct vm *vm, const struct agent_network *net,
                              struct agent_msg *config, uint64_t deadline, uint64_t *t_hello,
                              struct rc_error *err);
/* START, then the agent's STARTED with the workload's guest pid. */
int rc_microvm_host_start(struct vm *vm, uint64_t deadline, uint32_t *guest_pid,
                          struct rc_error *err);
/* The control side on control_fd (-1: none), reaching the agent through vm's queue. */
void rc_microvm_host_control(struct vm *vm, int control_fd);
/* One turn of the relay: the frames read so far, queued writes, one poll (of at most
 * wait_ms, -1: until something happens or the control side's next deadline) and what it
 * reported. 1 when the workload's EXIT is in and its output written (vm->exit), 0 to go
 * on, <0 when the guest broke the protocol or stopped without reporting the exit. */
int rc_microvm_host_relay_turn(struct vm *vm, int sigfd, int wait_ms, struct rc_error *err);

#endif
