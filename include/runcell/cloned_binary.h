/* Running from a sealed memfd copy of the runtime binary (the CVE-2019-5736 defence). */
#ifndef RUNCELL_CLONED_BINARY_H
#define RUNCELL_CLONED_BINARY_H

#include <stdbool.h>

#include "runcell/error.h"

/* True when /proc/self/exe is a memfd with write, grow, shrink and seal seals. */
bool rc_running_from_sealed_copy(void);

/* Unless already running from one, copies the binary into a sealed memfd and execs it
 * with the same argv and environment. Returns only on failure (or 0 if already sealed). */
int rc_reexec_from_sealed_copy(char **argv, struct rc_error *err);

#endif
