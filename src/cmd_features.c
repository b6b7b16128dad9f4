#include <stdio.h>
#include <stdlib.h>

#include "runcell/cli.h"
#include "runcell/oci.h"

static int run_features(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_features = {
    "features", "", "show the enabled features (the OCI features document)", NULL, run_features};

static int run_features(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  (void)g;
  char **pos = NULL;
  int n_pos = 0;
  int r = rc_cli_command_args(&rc_cmd_features, NULL, 0, argc - 1, argv + 1, &pos, &n_pos, err);
  if (r != 0) return r < 0 ? -1 : 0;
  r = rc_cli_expect_args("features", n_pos, 0, 0, err);
  free(pos);
  if (r < 0) return -1;
  char *json = oci_features_json();
  printf("%s\n", json);
  free(json);
  return 0;
}
