#include <stdlib.h>
#include <string.h>

#include "runcell/cli.h"
#include "runcell/container.h"
#include "runcell/log.h"
#include "runcell/util.h"

void rc_create_opt_table(struct rc_create_opts *o, struct rc_opt out[RC_CREATE_OPT_COUNT]) {
  const struct rc_opt table[RC_CREATE_OPT_COUNT] = {
      {"bundle", 'b', RC_OPT_STRING, &o->bundle, "DIR", "path to the bundle (default: .)"},
      {"console-socket", 0, RC_OPT_STRING, &o->console_socket, "PATH",
       "unix socket that receives the pty master of a terminal container"},
      {"pid-file", 0, RC_OPT_STRING, &o->pid_file, "FILE", "write the init's pid to FILE"},
      {"no-pivot", 0, RC_OPT_BOOL, &o->no_pivot, NULL, "use chroot instead of pivot_root"},
      {"no-new-keyring", 0, RC_OPT_BOOL, &o->no_new_keyring, NULL,
       "keep the caller's session keyring"},
      {"preserve-fds", 0, RC_OPT_INT, &o->preserve_fds, "N",
       "pass N more fds (from 3) to the container"},
  };
  memcpy(out, table, sizeof(table));
}

int rc_create_opts_check(const char *cmd, const struct rc_create_opts *o, struct rc_error *err) {
  if (o->preserve_fds < 0) return rc_err(err, 0, "%s: --preserve-fds must not be negative", cmd);
  return rc_check_preserved_fds(cmd, o->preserve_fds, rc_log_fd(), err);
}

static int run_create(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_create = {
    "create", "<container-id>", "create a container",
    "   The create command creates an instance of a container for a bundle. The container\n"
    "   process waits just before executing the user program until `runcell start`.",
    run_create};

static int run_create(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  struct rc_create_opts o = {.root = g->root, .bundle = ".", .systemd_cgroup = g->systemd_cgroup};
  struct rc_opt opts[RC_CREATE_OPT_COUNT];
  rc_create_opt_table(&o, opts);
  char **pos = NULL;
  int n_pos = 0;
  int r = rc_cli_command_args(&rc_cmd_create, opts, RC_ARRAY_SIZE(opts), argc - 1, argv + 1, &pos,
                              &n_pos, err);
  if (r != 0) return r < 0 ? -1 : 0;
  if (rc_cli_expect_args("create", n_pos, 1, 1, err) < 0 ||
      rc_create_opts_check("create", &o, err) < 0) {
    free(pos);
    return -1;
  }
  o.id = pos[0];
  struct rc_created c;
  r = rc_container_create(&o, &c, err);
  free(pos);
  if (r < 0) return -1;
  if (c.pidfd >= 0) close(c.pidfd);
  return 0;
}
