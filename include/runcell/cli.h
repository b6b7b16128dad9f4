/* The command line: runc's surface. Options take the forms containerd and people use:
 * --name value, --name=value, -name value (Go's flag style, e.g. `-no-subreaper`), and
 * -n value for the short aliases. Options and arguments may be interleaved; "--" ends the
 * options. */
#ifndef RUNCELL_CLI_H
#define RUNCELL_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "runcell/error.h"

enum rc_opt_kind { RC_OPT_BOOL, RC_OPT_STRING, RC_OPT_INT, RC_OPT_STRING_LIST };

struct rc_opt {
  const char *name; /* long name without dashes */
  char short_name;  /* 0 if none */
  enum rc_opt_kind kind;
  void *ptr;       /* bool*, const char**, int*, or struct rc_string_list* */
  const char *arg; /* name of the value in help, e.g. "PATH" */
  const char *help;
};

struct rc_string_list {
  const char **items;
  size_t n;
};

struct rc_global {
  const char *root;
  const char *log;
  const char *log_format;
  const char *criu;
  const char *rootless;
  bool debug;
  bool systemd_cgroup;
  /* what the CLI exits with when the command fails (0: the usual 1); exec sets 255 */
  int failure_status;
};

struct rc_command {
  const char *name;
  const char *args_usage; /* e.g. "<container-id>" */
  const char *summary;
  const char *description;
  /* Returns the process exit status (>= 0) or <0 with err set. */
  int (*run)(struct rc_global *g, int argc, char **argv, struct rc_error *err);
};

/* Parses argv[0..argc) against opts; positional arguments go to pos (allocated, caller
 * frees the array). stop_at_first_positional is for the global options. *help is set
 * when -h/--help was given. */
int rc_cli_parse(const char *cmd, const struct rc_opt *opts, size_t n_opts, int argc, char **argv,
                 bool stop_at_first_positional, char ***pos, int *n_pos, bool *help,
                 struct rc_error *err);

void rc_cli_print_help(const struct rc_command *cmd, const struct rc_opt *opts, size_t n_opts);

/* Checks the count of positional arguments: "<cmd>" requires exactly/at least n. */
int rc_cli_expect_args(const char *cmd, int n_pos, int min, int max, struct rc_error *err);

/* Every command parses its options with this: on --help it prints help and returns 1
 * (the caller returns 0), on error returns -1. */
int rc_cli_command_args(const struct rc_command *cmd, const struct rc_opt *opts, size_t n_opts,
                        int argc, char **argv, char ***pos, int *n_pos, struct rc_error *err);

/* The options create and run share (--bundle, --console-socket, --pid-file, --no-pivot,
 * --no-new-keyring, --preserve-fds), bound to o, and their checks. */
struct rc_create_opts;
#define RC_CREATE_OPT_COUNT 6
void rc_create_opt_table(struct rc_create_opts *o, struct rc_opt out[RC_CREATE_OPT_COUNT]);
int rc_create_opts_check(const char *cmd, const struct rc_create_opts *o, struct rc_error *err);

extern const struct rc_command rc_cmd_create, rc_cmd_start, rc_cmd_run, rc_cmd_state, rc_cmd_kill,
    rc_cmd_delete, rc_cmd_list, rc_cmd_spec, rc_cmd_features, rc_cmd_pause, rc_cmd_resume,
    rc_cmd_ps, rc_cmd_exec, rc_cmd_update;

#endif
