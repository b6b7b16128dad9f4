/* Helpers and the command-line parser. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/cli.h"
#include "runcell/error.h"
#include "runcell/util.h"
#include "unit.h"

static void signals_parse_in_every_spelling(void) {
  CHECK(rc_parse_signal("15") == SIGTERM);
  CHECK(rc_parse_signal("TERM") == SIGTERM);
  CHECK(rc_parse_signal("SIGTERM") == SIGTERM);
  CHECK(rc_parse_signal("sigkill") == SIGKILL);
  CHECK(rc_parse_signal("KILL") == 9);
  CHECK(rc_parse_signal("RTMIN+1") == SIGRTMIN + 1);
  CHECK(rc_parse_signal("SIGRTMAX") == SIGRTMAX);
  CHECK(rc_parse_signal("FOO") < 0);
  CHECK(rc_parse_signal("0") < 0);
  CHECK(rc_parse_signal("") < 0);
  CHECK(rc_parse_signal("15x") < 0);
  CHECK(rc_parse_signal("999") < 0);
}

static void errors_carry_context(void) {
  struct rc_error e = {0};
  CHECK(rc_err(&e, 2, "open %s", "/x") == -1);
  CHECK_STR_EQ(e.msg, "open /x: No such file or directory");
  CHECK(e.code == 2);
  rc_err_wrap(&e, "load %s", "config");
  CHECK_STR_EQ(e.msg, "load config: open /x: No such file or directory");
  rc_err(&e, 0, "plain");
  CHECK_STR_EQ(e.msg, "plain");
}

static void rfc3339_is_well_formed(void) {
  char buf[64];
  rc_rfc3339_now(buf, sizeof(buf));
  /* 2026-11-22T23:31:07.123456789Z */
  CHECK(strlen(buf) == 30);
  CHECK(buf[4] == '-' && buf[7] == '-' && buf[10] == 'T' && buf[13] == ':' && buf[19] == '.');
  CHECK(buf[29] == 'Z');
}

static void atomic_write_replaces_file(void) {
  char dir[] = "/tmp/runcell-unit-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  struct rc_error e;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  CHECK(rc_write_file_atomic(dfd, "f", "one", 3, 0600, &e) == 0);
  CHECK(rc_write_file_atomic(dfd, "f", "second", 6, 0600, &e) == 0);
  char *text = NULL;
  size_t len = 0;
  CHECK(rc_read_file_at(dfd, "f", 100, &text, &len, &e) == 0);
  CHECK_STR_EQ(text, "second");
  free(text);
  CHECK(rc_read_file_at(dfd, "f", 3, &text, &len, &e) < 0);
  CHECK_CONTAINS(e.msg, "larger than 3 bytes");
  unlinkat(dfd, "f", 0);
  close(dfd);
  rmdir(dir);
}

static void cli_parses_runc_styles(void) {
  const char *bundle = NULL, *pidfile = NULL;
  bool detach = false, nosub = false;
  int fds = 0;
  const struct rc_opt opts[] = {
      {"bundle", 'b', RC_OPT_STRING, &bundle, "DIR", ""},
      {"pid-file", 0, RC_OPT_STRING, &pidfile, "F", ""},
      {"detach", 'd', RC_OPT_BOOL, &detach, NULL, ""},
      {"no-subreaper", 0, RC_OPT_BOOL, &nosub, NULL, ""},
      {"preserve-fds", 0, RC_OPT_INT, &fds, "N", ""},
  };
  char *argv[] = {
      "--bundle", "/b", "--pid-file=/p", "-d", "id1", "-no-subreaper", "--preserve-fds", "2",
      "--",       "-x"};
  char **pos = NULL;
  int n = 0;
  bool help = false;
  struct rc_error e;
  CHECK(rc_cli_parse("t", opts, 5, 10, argv, false, &pos, &n, &help, &e) == 0);
  CHECK_STR_EQ(bundle, "/b");
  CHECK_STR_EQ(pidfile, "/p");
  CHECK(detach && nosub && fds == 2 && !help);
  CHECK(n == 2);
  if (n == 2) {
    CHECK_STR_EQ(pos[0], "id1");
    CHECK_STR_EQ(pos[1], "-x");
  }
  free(pos);

  char *bad[] = {"--nope"};
  CHECK(rc_cli_parse("create", opts, 5, 1, bad, false, &pos, &n, &help, &e) < 0);
  CHECK_STR_EQ(e.msg, "create: flag provided but not defined: --nope");
  char *missing[] = {"--bundle"};
  CHECK(rc_cli_parse("create", opts, 5, 1, missing, false, &pos, &n, &help, &e) < 0);
  CHECK_CONTAINS(e.msg, "flag needs an argument");
  char *notint[] = {"--preserve-fds", "x"};
  CHECK(rc_cli_parse("create", opts, 5, 2, notint, false, &pos, &n, &help, &e) < 0);
  CHECK_CONTAINS(e.msg, "must be an integer");
  char *h[] = {"--help"};
  CHECK(rc_cli_parse("create", opts, 5, 1, h, false, &pos, &n, &help, &e) == 0 && help);
  free(pos);

  /* Global options stop at the command name. */
  char *global[] = {"-b", "x", "create", "--bundle", "y"};
  bundle = NULL;
  CHECK(rc_cli_parse("runcell", opts, 5, 5, global, true, &pos, &n, &help, &e) == 0);
  CHECK_STR_EQ(bundle, "x");
  CHECK(n == 3);
  free(pos);
  CHECK(rc_cli_expect_args("start", 0, 1, 1, &e) < 0);
  CHECK_STR_EQ(e.msg, "\"start\" requires exactly 1 argument(s)");
}

/* The VMM's way of dropping what runcell held when it cloned it: only the listed fds
 * stay, in any order, with gaps and duplicates among them. */
static void close_fds_except_keeps_only_the_listed(void) {
  int fds[8];
  for (int i = 0; i < 8; i++) fds[i] = open("/dev/null", O_RDONLY);
  for (int i = 0; i < 8; i++) CHECK(fds[i] > 2);
  bool stdio_open[3];
  for (int fd = 0; fd < 3; fd++) stdio_open[fd] = fcntl(fd, F_GETFD) >= 0;
  /* run in a child: the harness's own descriptors must survive */
  pid_t pid = fork();
  if (pid == 0) {
    int keep[] = {fds[6], -1, fds[1], fds[6], fds[3]};
    rc_close_fds_except(keep, sizeof(keep) / sizeof(keep[0]));
    int bad = 0;
    for (int i = 0; i < 8; i++) {
      bool open_now = fcntl(fds[i], F_GETFD) >= 0;
      if (open_now != (i == 1 || i == 3 || i == 6)) bad = 1;
    }
    /* stdio is never touched, and nothing else is left */
    for (int fd = 0; fd < 3; fd++)
      if ((fcntl(fd, F_GETFD) >= 0) != stdio_open[fd]) bad = 1;
    for (int fd = 3; fd < 1024; fd++)
      if (fd != fds[1] && fd != fds[3] && fd != fds[6] && fcntl(fd, F_GETFD) >= 0) bad = 1;
    _exit(bad);
  }
  int status = -1;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  for (int i = 0; i < 8; i++) CHECK(fcntl(fds[i], F_GETFD) >= 0);
  for (int i = 0; i < 8; i++) close(fds[i]);
}

UNIT_MAIN("util_cli", UNIT_CASE(signals_parse_in_every_spelling), UNIT_CASE(errors_carry_context),
          UNIT_CASE(rfc3339_is_well_formed), UNIT_CASE(atomic_write_replaces_file),
          UNIT_CASE(cli_parses_runc_styles), UNIT_CASE(close_fds_except_keeps_only_the_listed))
