/* Starting the VMM's threads (vCPUs, device I/O) without privilege. */
#ifndef RUNCELL_VMM_THREAD_H
#define RUNCELL_VMM_THREAD_H

#include <pthread.h>

#include "runcell/error.h"

/* pthread_create for a VMM thread: the new thread gives up every capability (they are per
 * thread: the VMM's main thread keeps its own until its jail) before fn runs, and the call
 * returns only once it has — so no VMM thread holds a capability once the jail is entered,
 * however the threads are scheduled. Fails, with the thread joined, if it could not. The
 * thread's signal mask is the caller's, as with pthread_create. */
int vmm_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg, struct rc_error *err);

#endif
