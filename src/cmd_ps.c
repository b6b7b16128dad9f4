/* ps: the processes of a container are the processes in its cgroup. --format json prints
 * their pids (what containerd reads); the table is the host's ps output (ps -ef, or the
 * given ps options) restricted to those pids, as runc does. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/cli.h"
#include "runcell/container.h"
#include "runcell/util.h"

static int run_ps(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_ps = {
    "ps", "<container-id> [ps options]", "ps displays the processes running inside a container",
    "   With --format json, prints a JSON array of the pids; otherwise runs the host's ps\n"
    "   (default: ps -ef) and keeps the lines of the container's processes.",
    run_ps};

static bool has_pid(const pid_t *pids, size_t n, long pid) {
  for (size_t i = 0; i < n; i++)
    if (pids[i] == pid) return true;
  return false;
}

static int print_table(const pid_t *pids, size_t n, char **ps_args, int n_args,
                       struct rc_error *err) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) < 0) return rc_err(err, errno, "ps: pipe");
  char **argv = rc_xcalloc((size_t)n_args + 3, sizeof(char *));
  argv[0] = "ps";
  int k = 1;
  if (n_args == 0) argv[k++] = "-ef";
  for (int i = 0; i < n_args; i++) argv[k++] = ps_args[i];
  pid_t child = fork();
  if (child < 0) {
    free(argv);
    close(out[0]);
    close(out[1]);
    return rc_err(err, errno, "ps: fork");
  }
  if (child == 0) {
    dup2(out[1], 1);
    execvp("ps", argv);
    _exit(127);
  }
  free(argv);
  close(out[1]);
  FILE *f = fdopen(out[0], "r");
  if (!f) {
    close(out[0]);
    waitpid(child, NULL, 0);
    return rc_err(err, errno, "ps: read output");
  }
  char *line = NULL;
  size_t cap = 0;
  int pid_col = -1;
  int rc = 0;
  for (bool header = true; getline(&line, &cap, f) > 0; header = false) {
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s", line);
    char *save = NULL;
    int col = 0;
    char *field = strtok_r(copy, " \t\n", &save);
    if (header) {
      for (; field; field = strtok_r(NULL, " \t\n", &save), col++)
        if (strcmp(field, "PID") == 0) pid_col = col;
      if (pid_col < 0) {
        rc = rc_err(err, 0, "ps: no PID column in the output of ps");
        break;
      }
      fputs(line, stdout);
      continue;
    }
    for (; field && col < pid_col; col++) field = strtok_r(NULL, " \t\n", &save);
    if (field && has_pid(pids, n, strtol(field, NULL, 10))) fputs(line, stdout);
  }
  free(line);
  fclose(f);
  int status = 0;
  waitpid(child, &status, 0);
  if (rc == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
    rc = rc_err(err, 0, "ps: the host's ps failed (exit status %d)",
                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return rc;
}

static int run_ps(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  const char *format = "table";
  const struct rc_opt opts[] = {
      {"format", 'f', RC_OPT_STRING, &format, "table|json", "output format (default: table)"},
  };
  char **pos = NULL;
  int n_pos = 0;
  /* Options end at the container id: what follows belongs to ps (`ps ID -o pid,comm`). */
  bool help = false;
  int r = rc_cli_parse("ps", opts, RC_ARRAY_SIZE(opts), argc - 1, argv + 1, true, &pos, &n_pos,
                       &help, err);
  if (r < 0) return -1;
  if (help) {
    rc_cli_print_help(&rc_cmd_ps, opts, RC_ARRAY_SIZE(opts));
    free(pos);
    return 0;
  }
  if (rc_cli_expect_args("ps", n_pos, 1, -1, err) < 0) {
    free(pos);
    return -1;
  }
  if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0) {
    free(pos);
    return rc_err(err, 0, "invalid format option");
  }
  pid_t *pids = NULL;
  size_t n = 0;
  r = rc_container_pids(g->root, pos[0], &pids, &n, err);
  if (r == 0 && strcmp(format, "json") == 0) {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, json_integer(pids[i]));
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    printf("%s\n", text);
    free(text);
  } else if (r == 0) {
    if (n_pos > 1 && strcmp(format, "json") == 0)
      r = rc_err(err, 0, "ps options need the table format");
    else
      r = print_table(pids, n, pos + 1, n_pos - 1, err);
  }
  free(pids);
  free(pos);
  return r < 0 ? -1 : 0;
}
