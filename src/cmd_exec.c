/* exec: runs a new process in a running container. Without --process, the process is the
 * container's own (config.json's process) with the given args and the overrides below, as
 * runc does. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
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
#include "runcell/util.h"

static int run_exec(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_exec = {
    "exec", "<container-id> <command> [command options]",
    "execute new process inside the container",
    "   The process joins every namespace and the cgroup of the container and gets its\n"
    "   seccomp filter. --process FILE gives a whole OCI process object instead.",
    run_exec};

static int parse_user(const char *s, struct oci_user *u, struct rc_error *err) {
  char *end;
  errno = 0;
  unsigned long uid = strtoul(s, &end, 10);
  if (errno || end == s || (*end && *end != ':'))
    return rc_err(err, 0, "exec: invalid --user \"%s\": want UID[:GID]", s);
  u->uid = (uid_t)uid;
  if (*end == ':') {
    const char *g = end + 1;
    unsigned long gid = strtoul(g, &end, 10);
    if (errno || end == g || *end)
      return rc_err(err, 0, "exec: invalid --user \"%s\": want UID[:GID]", s);
    u->gid = (gid_t)gid;
  }
  return 0;
}

static int run_exec(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  const char *process_file = NULL, *console_socket = NULL, *pid_file = NULL, *cwd = NULL,
             *user = NULL, *apparmor = NULL, *process_label = NULL;
  bool detach = false, tty = false, no_new_privs = false;
  int preserve_fds = 0;
  struct rc_string_list env = {0}, caps = {0}, gids = {0};
  const struct rc_opt opts[] = {
      {"process", 'p', RC_OPT_STRING, &process_file, "FILE", "an OCI process JSON to run"},
      {"console-socket", 0, RC_OPT_STRING, &console_socket, "PATH",
       "unix socket that receives the pty master"},
      {"detach", 'd', RC_OPT_BOOL, &detach, NULL, "detach from the process"},
      {"pid-file", 0, RC_OPT_STRING, &pid_file, "FILE", "write the process's pid to FILE"},
      {"tty", 't', RC_OPT_BOOL, &tty, NULL, "allocate a pseudo-TTY"},
      {"cwd", 0, RC_OPT_STRING, &cwd, "DIR", "working directory in the container"},
      {"env", 'e', RC_OPT_STRING_LIST, &env, "NAME=VALUE", "add an environment variable"},
      {"user", 'u', RC_OPT_STRING, &user, "UID[:GID]", "user to run as"},
      {"additional-gids", 'g', RC_OPT_STRING_LIST, &gids, "GID", "add a supplementary group"},
      {"cap", 'c', RC_OPT_STRING_LIST, &caps, "CAP", "add a capability"},
      {"no-new-privs", 0, RC_OPT_BOOL, &no_new_privs, NULL, "set no_new_privileges"},
      {"preserve-fds", 0, RC_OPT_INT, &preserve_fds, "N", "pass N more fds (from 3)"},
      {"apparmor", 0, RC_OPT_STRING, &apparmor, "PROFILE", "AppArmor profile for the process"},
      {"process-label", 0, RC_OPT_STRING, &process_label, "LABEL", "SELinux label for the process"},
  };
  char **pos = NULL;
  int n_pos = 0;
  /* Options end at the container id: what follows is the command and its arguments. */
  bool help = false;
  int rc = -1;
  struct oci_config *cfg = NULL;
  struct oci_process proc_from_file = {0};
  bool from_file = false, exec_failure = false;
  char **args = NULL, **envs = NULL;
  gid_t *gid_list = NULL;
  if (rc_cli_parse("exec", opts, RC_ARRAY_SIZE(opts), argc - 1, argv + 1, true, &pos, &n_pos, &help,
                   err) < 0)
    goto out;
  if (help) {
    rc_cli_print_help(&rc_cmd_exec, opts, RC_ARRAY_SIZE(opts));
    rc = 0;
    goto out;
  }
  /* A group that is not a number is a usage error, as runc's flag parsing makes it (exit
   * status 1), never group 0. */
  gid_list = rc_xcalloc(gids.n ? gids.n : 1, sizeof(gid_t));
  for (size_t i = 0; i < gids.n; i++) {
    char *end;
    errno = 0;
    unsigned long gid = strtoul(gids.items[i], &end, 10);
    if (errno || end == gids.items[i] || *end || gids.items[i][0] == '-' || gid > UINT32_MAX) {
      rc_err(err, 0, "invalid value \"%s\" for flag -g: not a group id", gids.items[i]);
      goto out;
    }
    gid_list[i] = (gid_t)gid;
  }
  if (n_pos < 1) {
    rc_err(err, 0, "\"exec\" requires a minimum of 2 argument(s)");
    goto out;
  }
  /* From here (a container named) a failure is the exec's, not the command line's: 255,
   * as runc, so that it cannot be mistaken for the exit status of a process that ran. */
  exec_failure = true;
  if (!process_file && n_pos < 2) {
    rc_err(err, 0, "\"exec\" requires a minimum of 2 argument(s)");
    goto out;
  }
  if (preserve_fds < 0) {
    rc_err(err, 0, "exec: --preserve-fds must not be negative");
    goto out;
  }
  if (rc_check_preserved_fds("exec", preserve_fds, rc_log_fd(), err) < 0) goto out;
  const char *id = pos[0];
  if (rc_container_load_config(g->root, id, &cfg, err) < 0) goto out;

  struct oci_process p;
  if (process_file) {
    cleanup_free char *text = NULL;
    size_t len = 0;
    if (rc_read_file(process_file, 16 << 20, &text, &len, err) < 0) goto out;
    if (oci_process_parse(text, len, "process.json", &proc_from_file, err) < 0) goto out;
    from_file = true;
    p = proc_from_file;
  } else {
    /* the container's process, with these args and overrides */
    p = cfg->process;
    args = rc_xcalloc((size_t)n_pos, sizeof(char *));
    for (int i = 1; i < n_pos; i++) args[i - 1] = pos[i];
    p.args = args;
    p.n_args = (size_t)n_pos - 1;
    envs = rc_xcalloc(p.n_env + env.n + 1, sizeof(char *));
    for (size_t i = 0; i < p.n_env; i++) envs[i] = p.env[i];
    for (size_t i = 0; i < env.n; i++) envs[p.n_env + i] = (char *)env.items[i];
    p.env = envs;
    p.n_env += env.n;
    p.terminal = tty;
    if (cwd && *cwd) {
      /* runc checks the process it builds: a relative --cwd is refused, not resolved
       * against the container's root. */
      if (cwd[0] != '/') {
        rc_err(err, 0, "Cwd must be an absolute path");
        goto out;
      }
      p.cwd = (char *)cwd;
    }
    if (apparmor) p.apparmor_profile = (char *)apparmor;
    if (process_label) p.selinux_label = (char *)process_label;
    if (user && parse_user(user, &p.user, err) < 0) goto out;
    if (gids.n) {
      p.user.additional_gids = gid_list;
      p.user.n_additional_gids = gids.n;
    }
    for (size_t i = 0; i < env.n; i++) {
      const char *eq = strchr(env.items[i], '=');
      if (!eq || eq == env.items[i]) {
        rc_err(err, 0, "exec: invalid environment variable: \"%s\"", env.items[i]);
        goto out;
      }
    }
    /* --cap adds to the bounding, effective and permitted sets only: never inheritable
     * (runc's CVE-2022-29162: an inheritable set survives exec into programs with file
     * capabilities), and ambient only for a capability the process already inherits (the
     * kernel raises no other; through ambient it would reach a non-root --user). */
    for (size_t i = 0; i < caps.n; i++) {
      int cap = oci_cap_from_name(caps.items[i]);
      if (cap < 0) {
        rc_warn("exec: ignoring unknown or unavailable capability \"%s\"", caps.items[i]);
        continue;
      }
      uint64_t bit = UINT64_C(1) << cap;
      p.has_capabilities = true;
      p.capabilities.bounding |= bit;
      p.capabilities.effective |= bit;
      p.capabilities.permitted |= bit;
      p.capabilities.has_bounding = p.capabilities.has_effective = true;
      p.capabilities.has_permitted = true;
      if (p.capabilities.has_inheritable && (p.capabilities.inheritable & bit)) {
        p.capabilities.ambient |= bit;
        p.capabilities.has_ambient = true;
      }
    }
    if (no_new_privs) p.no_new_privileges = true;
  }

  struct rc_supervisor sup = {.sfd = -1};
  if (!detach && rc_supervise_begin(&sup, err) < 0) goto out;
  struct rc_exec_opts eo = {.root = g->root,
                            .id = id,
                            .cfg = cfg,
                            .process = &p,
                            .console_socket = console_socket,
                            .detach = detach,
                            .preserve_fds = preserve_fds};
  struct rc_exec_result res;
  if (rc_container_exec(&eo, &res, err) < 0) {
    rc_supervise_end(&sup);
    goto out;
  }
  if (pid_file && rc_write_pid_file(pid_file, res.pid, err) < 0) {
    /* the process runs but nobody could find it: stop it rather than leak it */
    kill(res.pid, SIGKILL);
    waitpid(res.pid, NULL, 0);
    rc_supervise_end(&sup);
    goto out;
  }
  if (detach) {
    rc = 0;
    goto out;
  }
  int pidfd = (int)syscall(SYS_pidfd_open, res.pid, 0);
  int status = rc_supervise_wait(&sup, res.pid, pidfd, res.console_master, err);
  if (pidfd >= 0) close(pidfd);
  rc_supervise_end(&sup);
  rc = status < 0 ? -1 : rc_exit_status(status);
out:
  if (rc < 0 && exec_failure) g->failure_status = 255;
  if (from_file) oci_process_free_fields(&proc_from_file);
  free(args);
  free(envs);
  free(gid_list);
  free(env.items);
  free(caps.items);
  free(gids.items);
  oci_config_free(cfg);
  free(pos);
  return rc;
}
