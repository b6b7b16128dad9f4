/* The parent <-> container init protocol, over a SOCK_SEQPACKET socketpair: one message
 * per step, so a failure inside the child (bad cwd, missing binary, mount error) reaches
 * the parent with its real message and errno, never as a bare exit status. */
#ifndef RUNCELL_SYNC_H
#define RUNCELL_SYNC_H

#include <stdint.h>

#include "runcell/error.h"

enum rc_sync_type {
  RC_SYNC_GO = 1,   /* parent -> child: continue (maps written, hooks done) */
  RC_SYNC_HOOKS,    /* child -> parent: run prestart/createRuntime hooks now */
  RC_SYNC_CREATED,  /* child -> parent: ready, waiting for start */
  RC_SYNC_ERROR,    /* either way: errno + message */
  RC_SYNC_START,    /* start -> init over the start socket */
  RC_SYNC_PID,      /* exec helper -> runtime: the new process's pid in code */
  RC_SYNC_LISTENER, /* child -> parent, then parent -> cell kernel: the gate's seccomp
                     * listener fd (cells whose routed syscalls the cell kernel serves) */
  RC_SYNC_VIEWS,    /* init -> cell kernel: the views filesystem is mounted; its root */
};

struct rc_sync_msg {
  uint32_t type;
  int32_t code;
  char msg[RC_ERROR_MAX];
};

/* What a receive says when the peer hung up without a message (it died): callers that can
 * tell how it ended add that to the message, finding it by this text. */
#define RC_SYNC_HUNG_UP "container init exited unexpectedly"
int rc_sync_send(int fd, enum rc_sync_type type, struct rc_error *err);
int rc_sync_send_error(int fd, const struct rc_error *e);
#define RC_SYNC_PEER_ERROR (-2)

/* Receives the next message. Returns -1 with a message on EOF ("init exited before ...")
 * or a receive error, RC_SYNC_PEER_ERROR when the peer sent RC_SYNC_ERROR (err gets the
 * peer's error); otherwise the message type. */
int rc_sync_recv(int fd, const char *while_doing, struct rc_error *err);
/* Sends a message carrying one file descriptor. */
int rc_sync_send_fd(int fd, enum rc_sync_type type, int passfd, struct rc_error *err);
/* Like rc_sync_recv, and *passfd gets the descriptor a message carried (else -1). */
int rc_sync_recv_fd(int fd, const char *while_doing, int *passfd, struct rc_error *err);
/* Receives and expects a given type. */
int rc_sync_expect(int fd, enum rc_sync_type type, const char *while_doing, struct rc_error *err);

#endif
