/* checkpoint: runc's command and flags. criu writes the images; without --leave-running
 * (or --pre-dump) the container is gone afterwards, as with runc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runcell/checkpoint.h"
#include "runcell/cli.h"
#include "runcell/util.h"

static int run_checkpoint(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_checkpoint = {
    "checkpoint", "<container-id>", "checkpoint a running container",
    "   The checkpoint command saves the state of the container instance with criu\n"
    "   (--criu PATH names the binary). Without --work-path, criu's log (dump.log) is\n"
    "   written next to the images.",
    run_checkpoint};

/* The --empty-ns values runc accepts: network only (criu restores nothing else empty). */
static int check_empty_ns(const struct rc_string_list *l, struct rc_error *err) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->items[i], "network") != 0)
      return rc_err(err, 0, "namespace \"%s\" is not supported", l->items[i]);
  return 0;
}

static int run_checkpoint(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  struct rc_checkpoint_opts o = {.root = g->root, .criu.criu = g->criu};
  bool lazy_pages = false;
  int status_fd = -1;
  struct rc_string_list empty_ns = {0};
  const struct rc_opt opts[] = {
      {"image-path", 0, RC_OPT_STRING, &o.criu.image_path, "PATH",
       "path for saving criu image files (default: ./checkpoint)"},
      {"work-path", 0, RC_OPT_STRING, &o.criu.work_path, "PATH",
       "path for saving work files and logs"},
      {"parent-path", 0, RC_OPT_STRING, &o.parent_path, "PATH",
       "path for previous criu image files in pre-dump"},
      {"leave-running", 0, RC_OPT_BOOL, &o.leave_running, NULL,
       "leave the process running after checkpointing"},
      {"tcp-established", 0, RC_OPT_BOOL, &o.criu.tcp_established, NULL,
       "allow open tcp connections"},
      {"ext-unix-sk", 0, RC_OPT_BOOL, &o.criu.ext_unix_sk, NULL, "allow external unix sockets"},
      {"shell-job", 0, RC_OPT_BOOL, &o.criu.shell_job, NULL, "allow shell jobs"},
      {"lazy-pages", 0, RC_OPT_BOOL, &lazy_pages, NULL,
       "use userfaultfd to lazily restore memory pages (not supported)"},
      {"status-fd", 0, RC_OPT_INT, &status_fd, "FD",
       "criu writes \\0 to this FD once lazy-pages is ready (not supported)"},
      {"page-server", 0, RC_OPT_STRING, &o.page_server, "ADDRESS:PORT",
       "ADDRESS:PORT of the page server"},
      {"file-locks", 0, RC_OPT_BOOL, &o.criu.file_locks, NULL, "handle file locks, for safety"},
      {"pre-dump", 0, RC_OPT_BOOL, &o.pre_dump, NULL,
       "dump container's memory information only, leave the container running after this"},
      {"manage-cgroups-mode", 0, RC_OPT_STRING, &o.criu.manage_cgroups_mode, "MODE",
       "cgroups mode: soft (default), full, strict or ignore"},
      {"empty-ns", 0, RC_OPT_STRING_LIST, &empty_ns, "NAMESPACE",
       "create a namespace, but don't restore its properties (network)"},
      {"auto-dedup", 0, RC_OPT_BOOL, &o.criu.auto_dedup, NULL,
       "enable auto deduplication of memory images"},
  };
  char **pos = NULL;
  int n_pos = 0;
  int r = rc_cli_command_args(&rc_cmd_checkpoint, opts, RC_ARRAY_SIZE(opts), argc - 1, argv + 1,
                              &pos, &n_pos, err);
  if (r != 0) {
    free(empty_ns.items);
    return r < 0 ? -1 : 0;
  }
  int rc = -1;
  cleanup_free char *default_images = NULL;
  if (rc_cli_expect_args("checkpoint", n_pos, 1, 1, err) < 0) goto out;
  o.id = pos[0];
  if (lazy_pages) {
    rc_err(err, 0,
           "checkpoint: --lazy-pages is not supported: it needs criu's lazy-pages daemon and "
           "page server, which runcell does not drive");
    goto out;
  }
  if (status_fd != -1) {
    rc_err(err, 0,
           "checkpoint: --status-fd is only used with --lazy-pages, which runcell does not "
           "support");
    goto out;
  }
  if (check_empty_ns(&empty_ns, err) < 0) goto out;
  if (!o.criu.image_path) {
    char cwd[4096];
    if (!getcwd(cwd, sizeof(cwd))) {
      rc_err(err, 0, "checkpoint: cannot get the current directory for the default image path");
      goto out;
    }
    default_images = rc_xasprintf("%s/checkpoint", cwd);
    o.criu.image_path = default_images;
  }
  rc = rc_container_checkpoint(&o, err) < 0 ? -1 : 0;
out:
  free(empty_ns.items);
  free(pos);
  return rc;
}
