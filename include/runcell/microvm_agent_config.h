/* The agent's CONFIG message built from a container's config and its microVM plan. */
#ifndef RUNCELL_MICROVM_AGENT_CONFIG_H
#define RUNCELL_MICROVM_AGENT_CONFIG_H

#include "runcell/agent_proto.h"
#include "runcell/microvm.h"
#include "runcell/oci.h"

/* Borrows the config's strings: cfg must outlive the result. Free with
 * rc_microvm_agent_config_free (not agent_config_free). */
struct agent_config *rc_microvm_agent_config(const struct oci_config *cfg,
                                             const struct rc_microvm_plan *plan);
void rc_microvm_agent_config_free(struct agent_config *a);

#endif
