#include <stdlib.h>

#include "runcell/cli.h"
#include "runcell/container.h"
#include "runcell/util.h"

static int run_delete(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_delete = {
    "delete", "<container-id>", "delete any resources held by the container",
    "   A running container is deleted only with --force, which kills it first.", run_delete};

static int run_delete(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  bool force = false;
  const struct rc_opt opts[] = {
      {"force", 'f', RC_OPT_BOOL, &force, NULL, "kill the container first if it is running"},
  };
  char **pos = NULL;
  int n_pos = 0;
  int r = rc_cli_command_args(&rc_cmd_delete, opts, RC_ARRAY_SIZE(opts), argc - 1, argv + 1, &pos,
                              &n_pos, err);
  if (r != 0) return r < 0 ? -1 : 0;
  if (rc_cli_expect_args("delete", n_pos, 1, 1, err) < 0) {
    free(pos);
    return -1;
  }
  r = rc_container_delete(g->root, pos[0], force, err);
  free(pos);
  return r < 0 ? -1 : 0;
}
