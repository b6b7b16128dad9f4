#include <stdio.h>
#include <stdlib.h>

#include "runcell/cli.h"
#include "runcell/container.h"

static int run_state(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_state = {"state", "<container-id>",
                                        "output the state of a container", NULL, run_state};

static int run_state(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  char **pos = NULL;
  int n_pos = 0;
  int r = rc_cli_command_args(&rc_cmd_state, NULL, 0, argc - 1, argv + 1, &pos, &n_pos, err);
  if (r != 0) return r < 0 ? -1 : 0;
  if (rc_cli_expect_args("state", n_pos, 1, 1, err) < 0) {
    free(pos);
    return -1;
  }
  struct oci_state *st = NULL;
  r = rc_container_state(g->root, pos[0], &st, err);
  free(pos);
  if (r < 0) return -1;
  char *json = oci_state_to_runc_json(st);
  printf("%s\n", json);
  free(json);
  oci_state_free(st);
  return 0;
}
