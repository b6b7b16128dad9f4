/* runcell's entry point: global options, then one command, each in its own file. An
 * error is printed once to stderr and written to the log (containerd's shim reads the
 * last error line of the JSON log). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runcell/checkpoint.h"
#include "runcell/cli.h"
#include "runcell/cloned_binary.h"
#include "runcell/events.h"
#include "runcell/log.h"
#include "runcell/mode.h"
#include "runcell/oci.h"
#include "runcell/state_store.h"
#include "runcell/util.h"

static const struct rc_command *const commands[] = {
    &rc_cmd_checkpoint, &rc_cmd_create, &rc_cmd_delete, &rc_cmd_events, &rc_cmd_exec,
    &rc_cmd_features,   &rc_cmd_kill,   &rc_cmd_list,   &rc_cmd_pause,  &rc_cmd_ps,
    &rc_cmd_restore,    &rc_cmd_resume, &rc_cmd_run,    &rc_cmd_spec,   &rc_cmd_start,
    &rc_cmd_state,      &rc_cmd_update,
};

static void print_version(void) {
  printf("runcell version %s\nspec: %s\n", RUNCELL_VERSION, OCI_VERSION);
}

static void print_usage(const struct rc_opt *opts, size_t n) {
  printf(
      "NAME:\n   runcell - an OCI container runtime: containers as cells or microVMs\n\n"
      "USAGE:\n   runcell [global options] command [command options] [arguments...]\n\n"
      "VERSION:\n   %s\n\nCOMMANDS:\n",
      RUNCELL_VERSION);
  for (size_t i = 0; i < RC_ARRAY_SIZE(commands); i++)
    printf("   %-11s %s\n", commands[i]->name, commands[i]->summary);
  printf("   %-11s %s\n\nGLOBAL OPTIONS:\n", "help, h", "shows a list of commands or help for one");
  for (size_t i = 0; i < n; i++) {
    char left[64];
    snprintf(left, sizeof(left), "--%s %s", opts[i].name, opts[i].arg ? opts[i].arg : "");
    printf("   %-28s %s\n", left, opts[i].help);
  }
  printf("   %-28s %s\n   %-28s %s\n", "--help, -h", "show help", "--version, -v",
         "print the version");
}

/* A --root that exists but is no directory is a misconfiguration to report, as runc does
 * ("mkdir ROOT: not a directory"): read as an empty root, every container would "not
 * exist", which containerd takes for an already deleted one. */
static int check_root(const char *root, struct rc_error *err) {
  struct stat st;
  if (stat(root, &st) == 0 && !S_ISDIR(st.st_mode))
    return rc_err(err, ENOTDIR, "state root %s", root);
  return 0;
}

static bool asks_for_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return true;
  return false;
}

int main(int argc, char **argv) {
  rc_mode_set_invocation(argv[0]);
  struct rc_global g = {.root = RC_DEFAULT_ROOT, .log_format = "text"};
  bool version = false;
  const struct rc_opt opts[] = {
      {"debug", 0, RC_OPT_BOOL, &g.debug, NULL, "enable debug logging"},
      {"log", 0, RC_OPT_STRING, &g.log, "FILE", "write the runtime's log to FILE"},
      {"log-format", 0, RC_OPT_STRING, &g.log_format, "text|json", "log format (default: text)"},
      {"root", 0, RC_OPT_STRING, &g.root, "DIR",
       "root directory for container state (default: " RC_DEFAULT_ROOT ")"},
      {"criu", 0, RC_OPT_STRING, &g.criu, "PATH", "path to the criu binary (default: criu)"},
      {"systemd-cgroup", 0, RC_OPT_BOOL, &g.systemd_cgroup, NULL,
       "enable systemd cgroup support: each container's cgroup is a transient systemd unit "
       "(cgroupsPath \"slice:prefix:name\")"},
      {"rootless", 0, RC_OPT_STRING, &g.rootless, "true|false|auto",
       "rootless mode (only \"false\" and \"auto\" as root are supported)"},
      {"version", 'v', RC_OPT_BOOL, &version, NULL, "print the version"},
  };
  struct rc_error err = {0};
  char **pos = NULL;
  int n_pos = 0;
  bool help = false;
  if (rc_cli_parse("runcell", opts, RC_ARRAY_SIZE(opts), argc - 1, argv + 1, true, &pos, &n_pos,
                   &help, &err) < 0) {
    fprintf(stderr, "runcell: %s\n", err.msg);
    return 1;
  }
  if (version) {
    print_version();
    free(pos);
    return 0;
  }
  if (strcmp(g.log_format, "text") != 0 && strcmp(g.log_format, "json") != 0) {
    fprintf(stderr, "runcell: invalid log-format: %s\n", g.log_format);
    free(pos);
    return 1;
  }
  if (n_pos == 0 || help) {
    print_usage(opts, RC_ARRAY_SIZE(opts));
    free(pos);
    return 0;
  }
  /* pos points into argv: the command and everything after it. */
  int cmd_argc = n_pos;
  char **cmd_argv = pos;
  const char *name = cmd_argv[0];
  if (!strcmp(name, "help") || !strcmp(name, "h")) {
    print_usage(opts, RC_ARRAY_SIZE(opts));
    free(pos);
    return 0;
  }
  const struct rc_command *cmd = NULL;
  for (size_t i = 0; i < RC_ARRAY_SIZE(commands); i++)
    if (!strcmp(commands[i]->name, name)) cmd = commands[i];
  if (rc_log_init(g.log, g.log_format, g.debug) < 0) {
    fprintf(stderr, "runcell: open log file %s: %m\n", g.log);
    free(pos);
    return 1;
  }
  if (!cmd) {
    rc_err(&err, 0, "No help topic for '%s'", name);
    rc_log(RC_LOG_ERROR, "%s", err.msg);
    fprintf(stderr, "runcell: %s\n", err.msg);
    free(pos);
    return 1;
  }
  if (g.rootless && strcmp(g.rootless, "false") != 0 && strcmp(g.rootless, "auto") != 0) {
    rc_err(&err, 0, "--rootless=%s: rootless mode is not supported yet", g.rootless);
    rc_log(RC_LOG_ERROR, "%s", err.msg);
    fprintf(stderr, "runcell: %s\n", err.msg);
    free(pos);
    return 1;
  }
  if (cmd != &rc_cmd_spec && cmd != &rc_cmd_features && !asks_for_help(cmd_argc, cmd_argv) &&
      check_root(g.root, &err) < 0) {
    rc_log(RC_LOG_ERROR, "%s", err.msg);
    fprintf(stderr, "runcell: %s\n", err.msg);
    free(pos);
    return 1;
  }
  rc_debug("runcell %s: %s", RUNCELL_VERSION, name);
  /* Commands that start a process inside a container run from a sealed copy of the
   * binary (CVE-2019-5736). The others never enter a container and skip the copy. */
  if (cmd == &rc_cmd_create || cmd == &rc_cmd_run || cmd == &rc_cmd_exec) {
    if (rc_reexec_from_sealed_copy(argv, &err) < 0) {
      rc_log(RC_LOG_ERROR, "%s", err.msg);
      fprintf(stderr, "runcell: %s\n", err.msg);
      free(pos);
      return 1;
    }
  }
  int status = cmd->run(&g, cmd_argc, cmd_argv, &err);
  free(pos);
  if (status < 0) {
    rc_log(RC_LOG_ERROR, "%s", err.msg);
    fprintf(stderr, "runcell: %s\n", err.msg);
    return g.failure_status ? g.failure_status : 1;
  }
  return status;
}
