/* Mode selection: runtime handler name, then annotations, then the sandbox rule. */
#include "runcell/mode.h"

#include <stdio.h>
#include <string.h>

#include "runcell/log.h"

static char invocation[64] = "runcell";

void rc_mode_set_invocation(const char *argv0) {
  if (!argv0 || !*argv0) return;
  const char *base = strrchr(argv0, '/');
  snprintf(invocation, sizeof(invocation), "%s", base ? base + 1 : argv0);
}

const char *rc_mode_name(enum rc_mode mode) {
  return mode == RC_MODE_MICROVM ? "microvm" : "cell";
}

/* The handler: containerd's runc v2 shim can only be given a binary name, so each CRI
 * runtime handler points at its own name for the same binary (a symlink).
 *
 * runcell-cell and runcell-microvm are also floors: an annotation may ask for more
 * isolation than they give, never for less. Under the CRI plugin runcell cannot tell a
 * pod author's annotation from the operator's, so whether a pod may switch the gate off or
 * leave the microVM would otherwise hang on the handler's pod_annotations list alone; with
 * a floor, a RuntimeClass named for a boundary keeps it whatever that list lets through.
 * Plain runcell and runcell-native take every annotation (runcell-native has nothing left
 * to lower; plain runcell is what ctr and the command line use, where the bundle's author
 * is the operator). */
struct handler {
  const char *name;
  enum rc_mode mode;
  bool gate;
  bool floor;
};

static const struct handler handlers[] = {
    {"runcell-cell", RC_MODE_CELL, true, true},
    {"runcell-native", RC_MODE_CELL, false, false},
    {"runcell-microvm", RC_MODE_MICROVM, true, true},
};

static const struct handler *invoked_handler(void) {
  for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
    if (strcmp(invocation, handlers[i].name) == 0) return &handlers[i];
  return NULL;
}

/* A name that looks like a handler's but is none of them (a renamed copy, a hardlink
 * "runcell-cell.new") runs as plain runcell, which takes every annotation: the operator
 * should hear that the floor they may have meant is not there. */
static void warn_unknown_handler(void) {
  if (invoked_handler() || strncmp(invocation, "runcell-", 8) != 0) return;
  rc_warn(
      "invoked as %s, which is no runtime handler's name (runcell-cell, runcell-native, "
      "runcell-microvm): plain runcell's defaults apply, and annotations may choose "
      "anything",
      invocation);
}

static void from_handler(struct rc_mode_choice *c) {
  const struct handler *h = invoked_handler();
  if (!h) return;
  c->mode = h->mode;
  c->gate = h->gate;
  snprintf(c->source, sizeof(c->source), "handler %s", invocation);
  snprintf(c->gate_source, sizeof(c->gate_source), "handler %s", invocation);
}

/* How much isolation a choice gives: a cell without its gate, a cell, a microVM. */
static int strength(enum rc_mode mode, bool gate) {
  if (mode == RC_MODE_MICROVM) return 2;
  return gate ? 1 : 0;
}

static const char *describe(enum rc_mode mode, bool gate) {
  if (mode == RC_MODE_MICROVM) return "a microVM";
  return gate ? "a cell with the gate on" : "a cell with the gate off";
}

/* Refuses a choice the annotations lowered below a floor handler's. A sandbox container is
 * a cell under every handler (see below), so under runcell-microvm its floor is a cell with
 * the gate on. */
static int check_floor(const struct rc_mode_choice *c, bool sandbox, struct rc_error *err) {
  const struct handler *h = invoked_handler();
  if (!h || !h->floor) return 0;
  int floor = strength(h->mode, h->gate);
  if (sandbox && floor > 1) floor = 1;
  if (strength(c->mode, c->gate) >= floor) return 0;
  /* the handler's gate is on, so a gate that is off came from the annotation */
  bool mode_lowered = !sandbox && c->mode != h->mode;
  bool gate_lowered = c->mode == RC_MODE_CELL && !c->gate;
  const char *what = mode_lowered && gate_lowered ? "annotations " RC_ANNOTATION_MODE
                                                    " and " RC_ANNOTATION_GATE " ask"
                     : mode_lowered ? "annotation " RC_ANNOTATION_MODE " asks"
                                    : "annotation " RC_ANNOTATION_GATE " asks";
  return rc_err(err, 0,
                "config.json: annotations: %s for %s, less isolation than the %s handler "
                "gives (%s): it lets an annotation ask only for more (the runcell-native "
                "handler is the one for cells with the gate off)",
                what, describe(c->mode, c->gate), h->name, describe(h->mode, h->gate));
}

bool rc_state_gate_on(const struct oci_state *st) {
  for (size_t i = 0; i < st->n_annotations; i++)
    if (!strcmp(st->annotations[i].key, RC_ANNOTATION_GATE))
      return !strcmp(st->annotations[i].value, "on");
  return false;
}

bool rc_state_xgate(const struct oci_state *st) {
  for (size_t i = 0; i < st->n_annotations; i++)
    if (!strcmp(st->annotations[i].key, RC_ANNOTATION_PLACEMENT))
      return !strcmp(st->annotations[i].value, "xgate");
  return false;
}

bool rc_state_is_microvm(const struct oci_state *st) {
  for (size_t i = 0; i < st->n_annotations; i++)
    if (!strcmp(st->annotations[i].key, RC_ANNOTATION_MODE))
      return !strcmp(st->annotations[i].value, "microvm");
  return false;
}

/* A sandbox only when every CRI's key present says so. Each CRI writes its own key over
 * whatever a pod passed (containerd: io.kubernetes.cri.container-type; CRI-O:
 * io.kubernetes.cri-o.ContainerType), but pod annotations pass through, so under containerd
 * a pod can add CRI-O's key and under CRI-O containerd's: "either key" let a workload
 * container declare itself a sandbox and leave a runcell-microvm floor for a cell (red
 * team, session 18). A pod can only make its own sandbox a non-sandbox this way, which
 * asks for more isolation, not less. */
static bool is_sandbox(const struct oci_config *cfg) {
  const char *cri = oci_config_annotation(cfg, "io.kubernetes.cri.container-type");
  const char *crio = oci_config_annotation(cfg, "io.kubernetes.cri-o.ContainerType");
  if (!cri && !crio) return false;
  return (!cri || !strcmp(cri, "sandbox")) && (!crio || !strcmp(crio, "sandbox"));
}

int rc_mode_choose(const struct oci_config *cfg, struct rc_mode_choice *out, struct rc_error *err) {
  *out = (struct rc_mode_choice){.mode = RC_MODE_CELL, .gate = true};
  snprintf(out->source, sizeof(out->source), "default");
  snprintf(out->gate_source, sizeof(out->gate_source), "default");
  snprintf(out->placement_source, sizeof(out->placement_source), "default");
  warn_unknown_handler();
  from_handler(out);

  const char *mode = oci_config_annotation(cfg, RC_ANNOTATION_MODE);
  if (mode) {
    if (!strcmp(mode, "cell"))
      out->mode = RC_MODE_CELL;
    else if (!strcmp(mode, "microvm"))
      out->mode = RC_MODE_MICROVM;
    else
      return rc_err(err, 0,
                    "config.json: annotations: " RC_ANNOTATION_MODE
                    ": must be \"cell\" or \"microvm\", got \"%s\"",
                    mode);
    snprintf(out->source, sizeof(out->source), "annotation " RC_ANNOTATION_MODE);
  }
  const char *gate = oci_config_annotation(cfg, RC_ANNOTATION_GATE);
  if (gate) {
    if (!strcmp(gate, "on"))
      out->gate = true;
    else if (!strcmp(gate, "off"))
      out->gate = false;
    else
      return rc_err(err, 0,
                    "config.json: annotations: " RC_ANNOTATION_GATE
                    ": must be \"on\" or \"off\", got \"%s\"",
                    gate);
    snprintf(out->gate_source, sizeof(out->gate_source), "annotation " RC_ANNOTATION_GATE);
  }
  const char *placement = oci_config_annotation(cfg, RC_ANNOTATION_PLACEMENT);
  if (placement) {
    if (!strcmp(placement, "xgate"))
      out->xgate = true;
    else if (!strcmp(placement, "notify"))
      out->xgate = false;
    else
      return rc_err(err, 0,
                    "config.json: annotations: " RC_ANNOTATION_PLACEMENT
                    ": must be \"notify\" or \"xgate\", got \"%s\"",
                    placement);
    snprintf(out->placement_source, sizeof(out->placement_source),
             "annotation " RC_ANNOTATION_PLACEMENT);
  }
  /* A pod's sandbox only holds its namespaces: it is always a cell, whatever the handler
   * chose for the pod's workload containers. */
  bool sandbox = is_sandbox(cfg);
  if (out->mode != RC_MODE_CELL && sandbox) {
    out->mode = RC_MODE_CELL;
    snprintf(out->source, sizeof(out->source), "Kubernetes sandbox container");
  }
  return check_floor(out, sandbox, err);
}
