/* run: create + start, then (unless --detach) stay in the foreground as the container's
 * supervisor: forward signals to the init, proxy a terminal, reap it, delete it, and exit
 * with its status (128+N when it died of signal N, like a shell). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/cli.h"
#include "runcell/container.h"
#include "runcell/log.h"
#include "runcell/supervise.h"
#include "runcell/terminal.h"
#include "runcell/util.h"

static int run_run(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_run = {
    "run", "<container-id>", "create and run a container",
    "   Creates and starts the container, waits for it and exits with its exit status.\n"
    "   With --detach it returns once the container is running.",
    run_run};

static int run_run(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  struct rc_create_opts o = {.root = g->root, .bundle = ".", .systemd_cgroup = g->systemd_cgroup};
  bool detach = false, keep = false;
  struct rc_opt opts[RC_CREATE_OPT_COUNT + 2] = {
      {"detach", 'd', RC_OPT_BOOL, &detach, NULL, "detach from the container's process"},
      {"keep", 0, RC_OPT_BOOL, &keep, NULL, "do not delete the container after it exits"},
  };
  rc_create_opt_table(&o, opts + 2);
  char **pos = NULL;
  int n_pos = 0;
  int r = rc_cli_command_args(&rc_cmd_run, opts, RC_ARRAY_SIZE(opts), argc - 1, argv + 1, &pos,
                              &n_pos, err);
  if (r != 0) return r < 0 ? -1 : 0;
  if (rc_cli_expect_args("run", n_pos, 1, 1, err) < 0 || rc_create_opts_check("run", &o, err) < 0) {
    free(pos);
    return -1;
  }
  cleanup_free char *id = rc_xstrdup(pos[0]);
  free(pos);
  o.id = id;
  if (detach && keep) return rc_err(err, 0, "run: --detach and --keep cannot be used together");
  o.receive_console = !detach && !o.console_socket;

  struct rc_supervisor sup = {.sfd = -1};
  if (!detach && rc_supervise_begin(&sup, err) < 0) return -1;

  struct rc_created c;
  int rc = -1;
  if (rc_container_create(&o, &c, err) < 0) goto restore;
  if (rc_container_start(g->root, id, err) < 0) {
    /* Kill first: an init that never got the start message would wait forever. */
    if (c.pidfd >= 0) syscall(SYS_pidfd_send_signal, c.pidfd, SIGKILL, NULL, 0);
    if (!detach && c.pid > 0) waitpid(c.pid, NULL, 0);
    struct rc_error derr;
    if (rc_container_delete(g->root, id, true, &derr) < 0) rc_warn("%s", derr.msg);
    if (c.pidfd >= 0) close(c.pidfd);
    if (c.console_master >= 0) close(c.console_master);
    goto restore;
  }
  if (detach) {
    if (c.pidfd >= 0) close(c.pidfd);
    return 0;
  }

  int status = rc_supervise_wait(&sup, c.pid, c.pidfd, c.console_master, err);
  if (c.pidfd >= 0) close(c.pidfd);
  /* The container's status is what the caller waits for: a failing cleanup is reported
   * but does not replace it. */
  struct rc_error derr;
  if (!keep && rc_container_delete(g->root, id, true, &derr) < 0) rc_warn("%s", derr.msg);
  rc = status < 0 ? -1 : rc_exit_status(status);
restore:
  rc_supervise_end(&sup);
  return rc;
}
