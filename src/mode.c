/* Mode selection: runtime handler name, then annotations, then the sandbox rule. */
#include "runcell/mode.h"

#include <stdio.h>
#include <string.h>

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
 * runtime handler points at its own name for the same binary (a symlink). */
static void from_handler(struct rc_mode_choice *c) {
  static const struct {
    const char *name;
    enum rc_mode mode;
    bool gate;
  } handlers[] = {
      {"runcell-cell", RC_MODE_CELL, true},
      {"runcell-native", RC_MODE_CELL, false},
      {"runcell-microvm", RC_MODE_MICROVM, true},
  };
  for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
    if (strcmp(invocation, handlers[i].name) != 0) continue;
    c->mode = handlers[i].mode;
    c->gate = handlers[i].gate;
    snprintf(c->source, sizeof(c->source), "handler %s", invocation);
    snprintf(c->gate_source, sizeof(c->gate_source), "handler %s", invocation);
    return;
  }
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

static bool is_sandbox(const struct oci_config *cfg) {
  const char *cri = oci_config_annotation(cfg, "io.kubernetes.cri.container-type");
  const char *crio = oci_config_annotation(cfg, "io.kubernetes.cri-o.ContainerType");
  return (cri && !strcmp(cri, "sandbox")) || (crio && !strcmp(crio, "sandbox"));
}

int rc_mode_choose(const struct oci_config *cfg, struct rc_mode_choice *out, struct rc_error *err) {
  *out = (struct rc_mode_choice){.mode = RC_MODE_CELL, .gate = true};
  snprintf(out->source, sizeof(out->source), "default");
  snprintf(out->gate_source, sizeof(out->gate_source), "default");
  snprintf(out->placement_source, sizeof(out->placement_source), "default");
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
  if (out->mode != RC_MODE_CELL && is_sandbox(cfg)) {
    out->mode = RC_MODE_CELL;
    snprintf(out->source, sizeof(out->source), "Kubernetes sandbox container");
  }
  return 0;
}
