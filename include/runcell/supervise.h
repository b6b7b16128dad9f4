/* Staying in the foreground for a container process (`run`, `exec` without --detach):
 * the signals runcell receives are blocked from before the process exists and forwarded
 * to it, a terminal is proxied, and the caller gets its exit status. */
#ifndef RUNCELL_SUPERVISE_H
#define RUNCELL_SUPERVISE_H

#include <signal.h>
#include <sys/types.h>

#include "runcell/error.h"

struct rc_supervisor {
  int sfd; /* signalfd of the forwarded signals, -1 when not supervising */
  sigset_t old_mask;
};

/* Blocks the forwarded signals and opens their signalfd. */
int rc_supervise_begin(struct rc_supervisor *s, struct rc_error *err);
/* Forwards signals to pid (through pidfd) and proxies console_master (if >= 0, closed
 * here) until the process exits; reaps it and returns its wait status. */
int rc_supervise_wait(struct rc_supervisor *s, pid_t pid, int pidfd, int console_master,
                      struct rc_error *err);
/* Closes the signalfd and restores the signal mask. */
void rc_supervise_end(struct rc_supervisor *s);
/* A wait status as a shell exit status: the code, or 128+N for signal N. */
int rc_exit_status(int status);

#endif
