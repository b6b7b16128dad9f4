/* Which isolation a container gets: a cell (host kernel behind runcell's syscall gate) or a
 * microVM, and whether a cell's gate is on. Chosen at create time in three steps, each
 * overriding the one before: the runtime handler sets the defaults (the name runcell was
 * invoked as: runcell-native, runcell-cell, runcell-microvm; plain runcell is a cell with
 * the gate on); the bundle's annotations run.runcell.mode / run.runcell.gate override them
 * (under the CRI plugin only those the operator lets through with pod_annotations reach
 * the bundle); and Kubernetes sandbox ("pause") containers are always cells. The handlers
 * named for a boundary (runcell-cell, runcell-microvm) are floors: an annotation asking for
 * less isolation than theirs is an error. */
#ifndef RUNCELL_MODE_H
#define RUNCELL_MODE_H

#include <stdbool.h>

#include "runcell/error.h"
#include "runcell/oci.h"

#define RC_ANNOTATION_MODE "run.runcell.mode"
#define RC_ANNOTATION_GATE "run.runcell.gate"
/* Where a cell's kernel runs: "notify" (a supervisor process answering seccomp user
 * notifications, every host) or "xgate" (inside each process behind protection keys, on
 * CPUs with PKU; elsewhere the cell falls back to notify and the log says so). */
#define RC_ANNOTATION_PLACEMENT "run.runcell.placement"

enum rc_mode { RC_MODE_CELL, RC_MODE_MICROVM };

struct rc_mode_choice {
  enum rc_mode mode;
  bool gate;            /* cells only: the syscall gate is applied */
  char source[96];      /* what decided the mode, for the log and errors */
  char gate_source[96]; /* what decided the gate */
  bool xgate;           /* cells with the gate on: the cell kernel's MPK placement */
  char placement_source[96];
};

/* Remembers the name runcell was invoked as (argv[0]); main calls it first. */
void rc_mode_set_invocation(const char *argv0);

/* Chooses the mode for a container from the handler and the config's annotations. An
 * annotation with a value runcell does not know is an error naming it. */
int rc_mode_choose(const struct oci_config *cfg, struct rc_mode_choice *out, struct rc_error *err);

const char *rc_mode_name(enum rc_mode mode);

/* True if a container's saved state records a cell with its gate on (the annotation
 * create adds); exec uses it so that every process of a cell goes through the gate. */
bool rc_state_gate_on(const struct oci_state *st);
/* Whether a container's state records the xgate placement (exec follows it). */
bool rc_state_xgate(const struct oci_state *st);
/* Whether a container's state says it runs as a microVM (annotation run.runcell.mode). */
bool rc_state_is_microvm(const struct oci_state *st);

#endif
