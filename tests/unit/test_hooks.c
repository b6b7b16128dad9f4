/* Hooks run real shell scripts from a temp directory: state on stdin, args and env as
 * given, failures reported with the status and output, timeouts enforced. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runcell/hooks.h"
#include "runcell/util.h"
#include "unit.h"

static char tmpdir[] = "/tmp/runcell-hooks-XXXXXX";

static char *tpath(const char *name) {
  return rc_xasprintf("%s/%s", tmpdir, name);
}

/* Writes an executable #!/bin/sh script and returns its path. */
static char *script(const char *name, const char *body) {
  char *path = tpath(name);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return path;
  fprintf(f, "#!/bin/sh\n%s\n", body);
  fclose(f);
  chmod(path, 0755);
  return path;
}

static char *slurp(const char *path) {
  char *data = NULL;
  struct rc_error err;
  if (rc_read_file(path, 8 << 20, &data, NULL, &err) < 0) return NULL;
  return data;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The lowest free fd number: equal before and after a call means nothing leaked. */
static int lowest_free_fd(void) {
  int fd = dup(0);
  close(fd);
  return fd;
}

static void test_state_on_stdin(void) {
  char *out = tpath("state.out");
  char *path = script("stdin.sh", "cat > \"$1\"");
  char *args[] = {path, out, NULL};
  struct oci_hook h = {.path = path, .args = args, .n_args = 2};
  const char *state = "{\"ociVersion\":\"1.0.2\",\"id\":\"c1\",\"status\":\"creating\",\"pid\":42}";
  struct rc_error err = {0};
  int before = lowest_free_fd();
  CHECK(rc_hooks_run("prestart", &h, 1, state, &err) == 0);
  CHECK(lowest_free_fd() == before);
  char *got = slurp(out);
  CHECK_STR_EQ(got, state);
  free(got);
  free(path);
  free(out);
}

static void test_args_and_env_exact(void) {
  char *out = tpath("args.out");
  /* sh -c sets $0 from the word after the command string, so argv[0] is observable,
   * which it would not be through a #! script (the kernel replaces it there). */
  char *cmd = rc_xasprintf("echo \"$0 $1\" > %s; echo \"FOO=$FOO HOME=$HOME.\" >> %s", out, out);
  char *args[] = {"sh", "-c", cmd, "zero", "one", NULL};
  char *env[] = {"FOO=bar baz", NULL};
  struct oci_hook h = {.path = "/bin/sh", .args = args, .n_args = 5, .env = env, .n_env = 1};
  struct rc_error err = {0};
  CHECK(rc_hooks_run("createRuntime", &h, 1, "{}", &err) == 0);
  char *got = slurp(out);
  /* HOME is set in the test's own environment; empty here means it did not leak in. */
  CHECK(got != NULL);
  CHECK_CONTAINS(got, "zero one\n");
  CHECK_CONTAINS(got, "FOO=bar baz HOME=.");
  free(got);
  free(cmd);
  free(out);
}

static void test_default_argv0_and_empty_env(void) {
  char *out = tpath("argv0.out");
  /* No args: argv is just the path ($# is 0). No env: the hook sees an empty one. */
  char *body = rc_xasprintf("echo \"$# $0\" > %s; env >> %s", out, out);
  char *path = script("argv0.sh", body);
  struct oci_hook h = {.path = path};
  struct rc_error err = {0};
  CHECK(rc_hooks_run("poststart", &h, 1, "{}", &err) == 0);
  char *got = slurp(out);
  char *want_head = rc_xasprintf("0 %s\n", path);
  CHECK(got != NULL && strncmp(got, want_head, strlen(want_head)) == 0);
  /* Nothing from our environment (the test itself runs with HOME and PATH set). */
  CHECK(got != NULL && !strstr(got, "HOME=") && !strstr(got, "\nPATH=/"));
  free(want_head);
  free(got);
  free(body);
  free(path);
  free(out);
}

static void test_exit_status_and_stderr(void) {
  char *path = script("fail.sh", "echo 'some stdout'; echo 'network setup failed' >&2; exit 3");
  struct oci_hook h = {.path = path};
  struct rc_error err = {0};
  CHECK(rc_hooks_run("prestart", &h, 1, "{}", &err) < 0);
  CHECK_CONTAINS(err.msg, "prestart hook #0 (");
  CHECK_CONTAINS(err.msg, "fail.sh): exit status 3: ");
  CHECK_CONTAINS(err.msg, "network setup failed");
  CHECK_CONTAINS(err.msg, "some stdout");
  /* Trimmed: no trailing newline from the hook's output. */
  CHECK(err.msg[0] && err.msg[strlen(err.msg) - 1] != '\n');
  free(path);
}

static void test_long_output_keeps_the_end(void) {
  char *path = script("long.sh",
                      "i=0; while [ $i -lt 300 ]; do echo \"line $i of noise noise noise\"; "
                      "i=$((i+1)); done; echo 'THE REAL REASON' >&2; exit 1");
  struct oci_hook h = {.path = path};
  struct rc_error err = {0};
  CHECK(rc_hooks_run("prestart", &h, 1, "{}", &err) < 0);
  CHECK_CONTAINS(err.msg, "exit status 1: ...");
  CHECK_CONTAINS(err.msg, "THE REAL REASON");
  CHECK(strlen(err.msg) < sizeof(err.msg));
  free(path);
}

static void test_killed_by_signal(void) {
  char *path = script("sig.sh", "kill -9 $$");
  struct oci_hook h = {.path = path};
  struct rc_error err = {0};
  CHECK(rc_hooks_run("poststop", &h, 1, "{}", &err) < 0);
  CHECK_CONTAINS(err.msg, "killed by signal 9");
  free(path);
}

static void test_timeout(void) {
  char *path = script("slow.sh", "exec sleep 10");
  struct oci_hook h = {.path = path, .has_timeout = true, .timeout = 1};
  struct rc_error err = {0};
  double t0 = now_s();
  CHECK(rc_hooks_run("createContainer", &h, 1, "{}", &err) < 0);
  double took = now_s() - t0;
  CHECK(took >= 0.9 && took < 2.5);
  CHECK_CONTAINS(err.msg, "createContainer hook #0 (");
  CHECK_CONTAINS(err.msg, "timed out after 1s");
  free(path);
}

static void test_timeout_not_hit(void) {
  char *path = script("quick.sh", "exit 0");
  struct oci_hook h = {.path = path, .has_timeout = true, .timeout = 5};
  struct rc_error err = {0};
  double t0 = now_s();
  CHECK(rc_hooks_run("prestart", &h, 1, "{}", &err) == 0);
  CHECK(now_s() - t0 < 1.0);
  free(path);
}

static void test_missing_path(void) {
  struct oci_hook h = {.path = "/nonexistent/runcell-hook"};
  struct rc_error err = {0};
  int before = lowest_free_fd();
  CHECK(rc_hooks_run("prestart", &h, 1, "{}", &err) < 0);
  CHECK(lowest_free_fd() == before);
  CHECK_CONTAINS(err.msg, "prestart hook #0 (/nonexistent/runcell-hook): exec: ");
  CHECK_CONTAINS(err.msg, "No such file or directory");
  CHECK(err.code == ENOENT);
}

static char *big_state(size_t n) {
  char *s = rc_xmalloc(n + 1);
  for (size_t i = 0; i < n; i++) s[i] = (char)('a' + i % 26);
  s[n] = '\0';
  return s;
}

static void test_hook_ignoring_big_state(void) {
  /* 1 MiB does not fit in a pipe; the hook exits without reading, our writes hit EPIPE.
   * Reaching the checks at all means SIGPIPE did not kill us. */
  char *path = script("noread.sh", "exit 0");
  struct oci_hook h = {.path = path};
  char *state = big_state(1 << 20);
  struct rc_error err = {0};
  CHECK(rc_hooks_run("prestart", &h, 1, state, &err) == 0);
  /* And SIGPIPE is not left pending or blocked for the rest of the process. */
  sigset_t set;
  sigemptyset(&set);
  sigpending(&set);
  CHECK(!sigismember(&set, SIGPIPE));
  sigprocmask(SIG_BLOCK, NULL, &set);
  CHECK(!sigismember(&set, SIGPIPE));
  free(state);
  free(path);
}

static void test_hook_reading_big_state(void) {
  char *out = tpath("big.out");
  /* Reads everything while also writing a lot of output: neither pipe may deadlock. */
  char *path = script("bigread.sh", "tee \"$1\"; exit 0");
  char *args[] = {path, out, NULL};
  struct oci_hook h = {.path = path, .args = args, .n_args = 2};
  char *state = big_state(1 << 20);
  struct rc_error err = {0};
  CHECK(rc_hooks_run("prestart", &h, 1, state, &err) == 0);
  char *got = slurp(out);
  CHECK(got != NULL && strcmp(got, state) == 0);
  free(got);
  free(state);
  free(path);
  free(out);
}

static void test_daemon_holding_output_does_not_block(void) {
  /* The background sleep keeps the output pipe open after the hook exits; we must not
   * wait for it. */
  char *path = script("daemon.sh", "sleep 5 & echo started");
  struct oci_hook h = {.path = path};
  struct rc_error err = {0};
  double t0 = now_s();
  CHECK(rc_hooks_run("poststart", &h, 1, "{}", &err) == 0);
  CHECK(now_s() - t0 < 2.0);
  free(path);
}

static void test_order_and_stop_on_failure(void) {
  char *log = tpath("order.log");
  char *marker = tpath("marker");
  char *a = script("a.sh", "printf 1 >> \"$1\"");
  char *b = script("b.sh", "printf 2 >> \"$1\"");
  char *fail = script("f.sh", "exit 1");
  char *touch = script("t.sh", "touch \"$1\"");
  char *args_a[] = {a, log, NULL}, *args_b[] = {b, log, NULL}, *args_t[] = {touch, marker, NULL};
  struct rc_error err = {0};

  struct oci_hook ok[] = {
      {.path = a, .args = args_a, .n_args = 2},
      {.path = b, .args = args_b, .n_args = 2},
      {.path = a, .args = args_a, .n_args = 2},
  };
  CHECK(rc_hooks_run("prestart", ok, 3, "{}", &err) == 0);
  char *got = slurp(log);
  CHECK_STR_EQ(got, "121");
  free(got);

  struct oci_hook failing[] = {
      {.path = fail},
      {.path = touch, .args = args_t, .n_args = 2},
  };
  CHECK(rc_hooks_run("prestart", failing, 2, "{}", &err) < 0);
  CHECK_CONTAINS(err.msg, "prestart hook #0 (");
  CHECK(access(marker, F_OK) != 0);

  /* The index in the message is the failing hook's. */
  struct oci_hook second_fails[] = {
      {.path = touch, .args = args_t, .n_args = 2},
      {.path = fail},
  };
  CHECK(rc_hooks_run("poststart", second_fails, 2, "{}", &err) < 0);
  CHECK_CONTAINS(err.msg, "poststart hook #1 (");
  CHECK(access(marker, F_OK) == 0);

  CHECK(rc_hooks_run("prestart", NULL, 0, "{}", &err) == 0);
  free(a);
  free(b);
  free(fail);
  free(touch);
  free(log);
  free(marker);
}

static void setup(void) {
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    exit(1);
  }
}

static void teardown(void) {
  char *cmd = rc_xasprintf("rm -rf '%s'", tmpdir);
  /* NOLINTNEXTLINE(cert-env33-c): test teardown running a fixed command on a test path */
  (void)!system(cmd);
  free(cmd);
}

static void test_setup(void) {
  setup();
}
static void test_teardown(void) {
  teardown();
}

UNIT_MAIN("hooks", UNIT_CASE(test_setup), UNIT_CASE(test_state_on_stdin),
          UNIT_CASE(test_args_and_env_exact), UNIT_CASE(test_default_argv0_and_empty_env),
          UNIT_CASE(test_exit_status_and_stderr), UNIT_CASE(test_long_output_keeps_the_end),
          UNIT_CASE(test_killed_by_signal), UNIT_CASE(test_timeout),
          UNIT_CASE(test_timeout_not_hit), UNIT_CASE(test_missing_path),
          UNIT_CASE(test_hook_ignoring_big_state), UNIT_CASE(test_hook_reading_big_state),
          UNIT_CASE(test_daemon_holding_output_does_not_block),
          UNIT_CASE(test_order_and_stop_on_failure), UNIT_CASE(test_teardown))
