/* The agent's CONFIG message built from a container's config and its microVM plan. */
#ifndef RUNCELL_MICROVM_AGENT_CONFIG_H
#define RUNCELL_MICROVM_AGENT_CONFIG_H

#include "runcell/agent_proto.h"
#include "runcell/microvm.h"
#include "runcell/oci.h"

/* Borrows the config's strings: cfg must outlive the result. *out is set even on failure
 * (compiling linux.seccomp can fail); free it with rc_microvm_agent_config_free (not
 * agent_config_free). */
int rc_microvm_agent_config(const struct oci_config *cfg, const struct rc_microvm_plan *plan,
                            struct agent_config **out, struct rc_error *err);
void rc_microvm_agent_config_free(struct agent_config *a);
/* The process's capability sets and no_new_privs as the agent applies them (an absent
 * set is empty). */
void rc_microvm_privileges(const struct oci_process *p, struct agent_privileges *out);
/* The process's rlimits as the agent takes them, into out (room for p->n_rlimits). */
void rc_microvm_rlimits(const struct oci_process *p, struct agent_rlimit *out);

#endif
