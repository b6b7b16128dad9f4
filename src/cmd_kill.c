#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "runcell/cli.h"
#include "runcell/container.h"
#include "runcell/util.h"

static int run_kill(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_kill = {
    "kill", "<container-id> [signal]",
    "kill sends the specified signal (default: SIGTERM) to the container's init process",
    "   The signal is a number (15), a name (TERM) or a full name (SIGTERM); 0 sends nothing\n"
    "   and only checks that the container runs.",
    run_kill};

static int run_kill(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  bool all = false;
  const struct rc_opt opts[] = {
      {"all", 'a', RC_OPT_BOOL, &all, NULL, "send the signal to every process in the container"},
  };
  char **pos = NULL;
  int n_pos = 0;
  int r = rc_cli_command_args(&rc_cmd_kill, opts, RC_ARRAY_SIZE(opts), argc - 1, argv + 1, &pos,
                              &n_pos, err);
  if (r != 0) return r < 0 ? -1 : 0;
  if (rc_cli_expect_args("kill", n_pos, 1, 2, err) < 0) {
    free(pos);
    return -1;
  }
  int sig = SIGTERM;
  if (n_pos == 2) {
    /* Signal 0 checks that the container runs and sends nothing, as with runc (`runc kill
     * ID 0` is a liveness probe some tools use): "container not running" otherwise. */
    sig = pos[1][0] && strspn(pos[1], "0") == strlen(pos[1]) ? 0 : rc_parse_signal(pos[1]);
    if (sig < 0) {
      rc_err(err, 0, "unknown signal \"%s\"", pos[1]);
      free(pos);
      return -1;
    }
  }
  r = rc_container_kill(g->root, pos[0], sig, all, err);
  free(pos);
  return r < 0 ? -1 : 0;
}
