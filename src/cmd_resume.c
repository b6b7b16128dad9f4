#include <stdlib.h>

#include "runcell/cli.h"
#include "runcell/container.h"

static int run_resume(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_resume = {
    "resume", "<container-id>", "resume resumes all processes that have been previously paused",
    "   Thaws the processes of a paused container.", run_resume};

static int run_resume(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  char **pos = NULL;
  int n_pos = 0;
  int r = rc_cli_command_args(&rc_cmd_resume, NULL, 0, argc - 1, argv + 1, &pos, &n_pos, err);
  if (r != 0) return r < 0 ? -1 : 0;
  if (rc_cli_expect_args("resume", n_pos, 1, 1, err) < 0) {
    free(pos);
    return -1;
  }
  r = rc_container_resume(g->root, pos[0], err);
  free(pos);
  return r < 0 ? -1 : 0;
}
