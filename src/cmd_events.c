#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "runcell/cli.h"
#include "runcell/events.h"
#include "runcell/util.h"

static int run_events(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_events = {
    "events", "<container-id>",
    "display container events such as OOM notifications, cpu, memory, and IO usage statistics",
    "   The events command displays information about the container. By default the\n"
    "   information is displayed once every 5 seconds. Each event is one JSON line:\n"
    "   {\"type\":\"stats\",\"id\":ID,\"data\":{...}} or {\"type\":\"oom\",\"id\":ID}. The stream "
    "ends\n"
    "   when the container's cgroup goes away.",
    run_events};

static int run_events(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  const char *interval = "5s";
  bool stats = false;
  const struct rc_opt opts[] = {
      {"interval", 0, RC_OPT_STRING, &interval, "DURATION",
       "set the stats collection interval (default: 5s)"},
      {"stats", 0, RC_OPT_BOOL, &stats, NULL, "display the container's stats then exit"},
  };
  char **pos = NULL;
  int n_pos = 0;
  int r = rc_cli_command_args(&rc_cmd_events, opts, RC_ARRAY_SIZE(opts), argc - 1, argv + 1, &pos,
                              &n_pos, err);
  if (r != 0) return r < 0 ? -1 : 0;
  /* Flag values are checked before the arguments, as runc's CLI library does. */
  int64_t ns = 0;
  if (rc_parse_go_duration(interval, &ns) < 0) {
    free(pos);
    return rc_err(err, 0, "invalid value \"%s\" for flag -interval: parse error", interval);
  }
  if (rc_cli_expect_args("events", n_pos, 1, 1, err) < 0) {
    free(pos);
    return -1;
  }
  r = rc_container_events(g->root, pos[0], ns, stats, err);
  free(pos);
  return r < 0 ? -1 : 0;
}
