#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runcell/cgroups.h"
#include "runcell/cli.h"
#include "runcell/oci.h"
#include "runcell/util.h"

static int run_spec(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_spec = {
    "spec", "", "create a new specification file (config.json)",
    "   Writes a default config.json for a bundle whose rootfs is ./rootfs.", run_spec};

static int run_spec(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  (void)g;
  const char *bundle = NULL;
  bool rootless = false;
  const struct rc_opt opts[] = {
      {"bundle", 'b', RC_OPT_STRING, &bundle, "DIR", "directory to write config.json in"},
      {"rootless", 0, RC_OPT_BOOL, &rootless, NULL, "generate a config for a rootless container"},
  };
  char **pos = NULL;
  int n_pos = 0;
  int r = rc_cli_command_args(&rc_cmd_spec, opts, RC_ARRAY_SIZE(opts), argc - 1, argv + 1, &pos,
                              &n_pos, err);
  if (r != 0) return r < 0 ? -1 : 0;
  r = rc_cli_expect_args("spec", n_pos, 0, 0, err);
  free(pos);
  if (r < 0) return -1;
  cleanup_free char *path =
      bundle ? rc_xasprintf("%s/config.json", bundle) : rc_xstrdup("config.json");
  cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return rc_err(err, 0, "File %s exists. Remove it first", path);
    return rc_err(err, errno, "create %s", path);
  }
  cleanup_free char *json = oci_default_spec(rootless, rc_cgroup_mode() == RC_CGROUP_UNIFIED);
  if (rc_write_all(fd, json, strlen(json)) < 0 || rc_write_all(fd, "\n", 1) < 0)
    return rc_err(err, errno, "write %s", path);
  return 0;
}
