/* ps: the processes of a container are the processes in its cgroup. --format json prints
 * their pids (what containerd reads); the table is the host's ps output (ps -ef, or the
 * given ps options) restricted to those pids, as runc does. A microVM's processes are the
 * guest's, listed by its agent: their pids are guest pids (the host has no such
 * processes), in the same JSON, and in a table laid out like ps -ef's. */
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
#include "runcell/microvm_control.h"
#include "runcell/mode.h"
#include "runcell/state_store.h"
#include "runcell/util.h"

static int run_ps(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_ps = {
    "ps", "<container-id> [ps options]", "ps displays the processes running inside a container",
    "   With --format json, prints a JSON array of the pids; otherwise runs the host's ps\n"
    "   (default: ps -ef) and keeps the lines of the container's processes. For a microVM\n"
    "   the processes are the guest's, as its agent lists them: the pids are guest pids,\n"
    "   the table has ps -ef's columns, and ps options are refused.",
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

static void print_json_pids(const pid_t *pids, size_t n) {
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(arr, json_integer(pids[i]));
  char *text = json_dumps(arr, JSON_COMPACT);
  json_decref(arr);
  printf("%s\n", text);
  free(text);
}

/* A guest tty_nr as ps names it: pts/N (Unix98 ptys are majors 136-143), else "?". */
static void tty_name(uint32_t tty_nr, char *out, size_t size) {
  unsigned major = (tty_nr >> 8) & 0xfff;
  unsigned minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
  if (major >= 136 && major <= 143)
    snprintf(out, size, "pts/%u", (major - 136) * 256 + minor);
  else
    snprintf(out, size, "?");
}

/* ps -ef's columns for the guest's processes. C and STIME are not kept by the agent. */
static void print_guest_table(const struct agent_ps_reply *ps) {
  printf("%-8s %7s %7s %2s %5s %-8s %8s %s\n", "UID", "PID", "PPID", "C", "STIME", "TTY", "TIME",
         "CMD");
  for (uint32_t i = 0; i < ps->n; i++) {
    const struct agent_ps_entry *e = &ps->entries[i];
    char uid[16], tty[16], cmd[AGENT_MAX_PS_CMD + 1];
    if (e->uid == 0)
      snprintf(uid, sizeof(uid), "root");
    else
      snprintf(uid, sizeof(uid), "%u", e->uid);
    tty_name(e->tty_nr, tty, sizeof(tty));
    unsigned long long secs = e->cpu_ticks / 100; /* USER_HZ */
    snprintf(cmd, sizeof(cmd), "%s", e->cmd);
    agent_make_printable(cmd); /* the guest's words: nothing for the terminal to obey */
    printf("%-8s %7u %7u %2d %5s %-8s %02llu:%02llu:%02llu %s\n", uid, e->pid, e->ppid, 0, "-", tty,
           secs / 3600, secs / 60 % 60, secs % 60, cmd);
  }
  if (ps->truncated) fprintf(stderr, "ps: more processes in the guest than one answer holds\n");
}

static int microvm_ps(struct rc_global *g, const struct oci_state *st, bool json, int n_opts,
                      struct rc_error *err) {
  if (n_opts > 0)
    return rc_err(err, 0,
                  "ps options are not supported for microVM container %s: its processes are "
                  "in the guest",
                  st->id);
  struct agent_ps_reply ps = {0};
  /* before start nothing runs in the guest yet; after the end nothing does any more */
  if (st->status == OCI_STATUS_RUNNING && rc_microvm_ps(g->root, st->id, &ps, err) < 0) {
    if (strcmp(err->msg, "ps: container is not running") != 0) return -1;
    ps.n = 0;
  }
  if (json) {
    pid_t *pids = rc_xcalloc(ps.n + 1, sizeof(pid_t));
    for (uint32_t i = 0; i < ps.n; i++) pids[i] = (pid_t)ps.entries[i].pid;
    print_json_pids(pids, ps.n);
    free(pids);
  } else {
    print_guest_table(&ps);
  }
  agent_ps_reply_free(&ps);
  return 0;
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
  struct oci_state *st = NULL;
  if (rc_state_read(g->root, pos[0], &st, err) < 0) {
    free(pos);
    return -1;
  }
  if (rc_state_is_microvm(st)) {
    r = microvm_ps(g, st, strcmp(format, "json") == 0, n_pos - 1, err);
    oci_state_free(st);
    free(pos);
    return r < 0 ? -1 : 0;
  }
  oci_state_free(st);
  pid_t *pids = NULL;
  size_t n = 0;
  r = rc_container_pids(g->root, pos[0], &pids, &n, err);
  if (r == 0 && strcmp(format, "json") == 0) {
    print_json_pids(pids, n);
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
