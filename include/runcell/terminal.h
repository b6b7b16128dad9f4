/* Terminals: creating the container's pty, handing its master to the console socket in
 * one SCM_RIGHTS message carrying one fd (what containerd's shim expects), and, for a
 * foreground `run` with a terminal, proxying between the caller's tty and the pty. */
#ifndef RUNCELL_TERMINAL_H
#define RUNCELL_TERMINAL_H

#include <stdbool.h>

#include "runcell/error.h"

/* Connects to the unix socket at path (the --console-socket). Returns the fd. */
int rc_console_socket_connect(const char *path, struct rc_error *err);

/* Opens a new pty from /dev/ptmx (in the current mount namespace, so inside the
 * container after pivot_root), unlocks it, and returns master and slave fds.
 * When width/height are non-zero the window size is set. */
int rc_pty_open(int *master, int *slave, unsigned width, unsigned height, struct rc_error *err);

/* Makes slave the controlling terminal of the calling process (which must have called
 * setsid) and dups it to fds 0, 1 and 2. */
int rc_pty_make_controlling(int slave, struct rc_error *err);

/* Sends fd over the connected unix socket in exactly one SCM_RIGHTS message with one fd;
 * the message payload is the pty's name (as runc sends). */
int rc_send_fd(int sock, int fd, const char *name, struct rc_error *err);

/* Receives one fd sent with rc_send_fd. */
int rc_recv_fd(int sock, int *fd, struct rc_error *err);

/* Foreground run with a terminal: puts the caller's stdin tty (if it is one) in raw mode,
 * copies stdin -> master and master -> stdout until the master hangs up or stop_fd
 * becomes readable, forwards window size changes (SIGWINCH), then restores the tty.
 * Returns 0 when the pty closed. */
int rc_pty_proxy(int master, int stop_fd, struct rc_error *err);

#endif
