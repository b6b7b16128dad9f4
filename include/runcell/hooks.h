/* OCI lifecycle hooks: each runs with the container state JSON on stdin, its own args
 * and env, and an optional timeout (the hook is killed when it runs past it). */
#ifndef RUNCELL_HOOKS_H
#define RUNCELL_HOOKS_H

#include <stddef.h>

#include "runcell/error.h"
#include "runcell/oci.h"

/* Runs hooks[0..n) in order, stopping at the first failure. `stage` names the hook list
 * in errors ("prestart", "createRuntime", ...). state_json goes to each hook's stdin.
 * A failure reads e.g. "createRuntime hook #0 (/usr/bin/foo): exit status 3: <the end of
 * its stdout and stderr>" or "... timed out after 5s" (hooks are numbered from 0). */
int rc_hooks_run(const char *stage, const struct oci_hook *hooks, size_t n, const char *state_json,
                 struct rc_error *err);

#endif
