/* restore: runc's command and flags. The runtime becomes a child subreaper (unless
 * --no-subreaper) so the restored init is its child; without --detach it then stays as
 * the container's supervisor like `run`: forwards signals, waits, deletes the container
 * and exits with its status. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/cgroups.h"
#include "runcell/checkpoint.h"
#include "runcell/cli.h"
#include "runcell/container.h"
#include "runcell/log.h"
#include "runcell/supervise.h"
#include "runcell/util.h"

static int run_restore(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_restore = {
    "restore", "<container-id>", "restore a container from a previous checkpoint",
    "   Restores the saved state of the container instance that was previously saved\n"
    "   using the checkpoint command, with criu (--criu PATH names the binary). Without\n"
    "   --work-path, criu's log (restore.log) is written next to the images.",
    run_restore};

/* Stops and reaps a restored init that nobody will supervise, and deletes it. */
static void abandon(struct rc_global *g, const char *id, struct rc_restored *c) {
  if (c->pidfd >= 0) syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
  while (c->pid > 0 && waitpid(c->pid, NULL, 0) < 0 && errno == EINTR) {
  }
  struct rc_error derr;
  if (rc_container_delete(g->root, id, true, &derr) < 0) rc_warn("%s", derr.msg);
  if (c->pidfd >= 0) close(c->pidfd);
  c->pidfd = -1;
}

static int run_restore(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  /* criu runs runcell as its action script to have the hooks run (see checkpoint.h) */
  if (argc == 3 && strcmp(argv[1], RC_CRIU_HOOK_FLAG) == 0)
    return rc_criu_action_hook(g->root, argv[2], err) < 0 ? -1 : 0;

  struct rc_restore_opts o = {.root = g->root, .criu.criu = g->criu};
  bool detach = false, no_subreaper = false, no_pivot = false, lazy_pages = false;
  const char *pid_file = NULL, *console_socket = NULL;
  struct rc_string_list empty_ns = {0};
  const struct rc_opt opts[] = {
      {"console-socket", 0, RC_OPT_STRING, &console_socket, "PATH",
       "unix socket that receives the pty master (not supported: no terminals)"},
      {"image-path", 0, RC_OPT_STRING, &o.criu.image_path, "PATH",
       "path to criu image files for restoring (default: ./checkpoint)"},
      {"work-path", 0, RC_OPT_STRING, &o.criu.work_path, "PATH",
       "path for saving work files and logs"},
      {"tcp-established", 0, RC_OPT_BOOL, &o.criu.tcp_established, NULL,
       "allow open tcp connections"},
      {"ext-unix-sk", 0, RC_OPT_BOOL, &o.criu.ext_unix_sk, NULL, "allow external unix sockets"},
      {"shell-job", 0, RC_OPT_BOOL, &o.criu.shell_job, NULL, "allow shell jobs"},
      {"file-locks", 0, RC_OPT_BOOL, &o.criu.file_locks, NULL, "handle file locks, for safety"},
      {"manage-cgroups-mode", 0, RC_OPT_STRING, &o.criu.manage_cgroups_mode, "MODE",
       "cgroups mode: soft (default), full, strict or ignore"},
      {"bundle", 'b', RC_OPT_STRING, &o.bundle, "DIR", "path to the root of the bundle directory"},
      {"detach", 'd', RC_OPT_BOOL, &detach, NULL, "detach from the container's process"},
      {"pid-file", 0, RC_OPT_STRING, &pid_file, "FILE",
       "specify the file to write the process id to"},
      {"no-subreaper", 0, RC_OPT_BOOL, &no_subreaper, NULL,
       "disable the use of the subreaper used to reap reparented processes"},
      {"no-pivot", 0, RC_OPT_BOOL, &no_pivot, NULL,
       "accepted for runc compatibility (criu sets up the root itself)"},
      {"empty-ns", 0, RC_OPT_STRING_LIST, &empty_ns, "NAMESPACE",
       "create a namespace, but don't restore its properties (network)"},
      {"auto-dedup", 0, RC_OPT_BOOL, &o.criu.auto_dedup, NULL,
       "enable auto deduplication of memory images"},
      {"lazy-pages", 0, RC_OPT_BOOL, &lazy_pages, NULL,
       "use userfaultfd to lazily restore memory pages (not supported)"},
      {"lsm-profile", 0, RC_OPT_STRING, &o.lsm_profile, "TYPE:NAME",
       "LSM profile to be used during restore"},
      {"lsm-mount-context", 0, RC_OPT_STRING, &o.lsm_mount_context, "CTX",
       "LSM mount context to be used during restore"},
  };
  char **pos = NULL;
  int n_pos = 0;
  int r = rc_cli_command_args(&rc_cmd_restore, opts, RC_ARRAY_SIZE(opts), argc - 1, argv + 1, &pos,
                              &n_pos, err);
  if (r != 0) {
    free(empty_ns.items);
    return r < 0 ? -1 : 0;
  }
  (void)no_pivot;
  int rc = -1;
  cleanup_free char *default_images = NULL;
  cleanup_free char *id = NULL;
  struct rc_supervisor sup = {.sfd = -1};
  if (rc_cli_expect_args("restore", n_pos, 1, 1, err) < 0) goto out;
  id = rc_xstrdup(pos[0]);
  o.id = id;
  if (lazy_pages) {
    rc_err(err, 0,
           "restore: --lazy-pages is not supported: it needs criu's lazy-pages daemon, which "
           "runcell does not drive");
    goto out;
  }
  if (console_socket) {
    rc_err(err, 0,
           "restore: --console-socket: containers with a terminal cannot be restored by "
           "runcell (the pty master is handed over only through criu's RPC mode)");
    goto out;
  }
  for (size_t i = 0; i < empty_ns.n; i++)
    if (strcmp(empty_ns.items[i], "network") != 0) {
      rc_err(err, 0, "namespace \"%s\" is not supported", empty_ns.items[i]);
      goto out;
    }
  if (g->systemd_cgroup) {
    rc_err(err, 0,
           "restore: --systemd-cgroup is not supported for restore yet (create, run, update and "
           "delete are); restore without it to use the cgroupfs driver");
    goto out;
  }
  if (!o.criu.image_path) {
    char cwd[4096];
    if (!getcwd(cwd, sizeof(cwd))) {
      rc_err(err, 0, "restore: cannot get the current directory for the default image path");
      goto out;
    }
    default_images = rc_xasprintf("%s/checkpoint", cwd);
    o.criu.image_path = default_images;
  }
  /* The restored init is criu's sibling, so our child; as a subreaper we also inherit
   * whatever criu leaves behind. */
  if (!no_subreaper && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
    rc_err(err, errno, "restore: set child subreaper");
    goto out;
  }
  /* Blocked from before the process exists, so a signal meant for it is not lost. */
  if (!detach && rc_supervise_begin(&sup, err) < 0) goto out;

  struct rc_restored c;
  if (rc_container_restore(&o, &c, err) < 0) goto out;
  if (pid_file && rc_write_pid_file(pid_file, c.pid, err) < 0) {
    abandon(g, id, &c);
    goto out;
  }
  if (detach) {
    if (c.pidfd >= 0) close(c.pidfd);
    rc = 0;
    goto out;
  }
  int status = rc_supervise_wait(&sup, c.pid, c.pidfd, -1, err);
  if (c.pidfd >= 0) close(c.pidfd);
  struct rc_error derr;
  if (rc_container_delete(g->root, id, true, &derr) < 0) rc_warn("%s", derr.msg);
  rc = status < 0 ? -1 : rc_exit_status(status);
out:
  rc_supervise_end(&sup);
  free(empty_ns.items);
  free(pos);
  return rc;
}
