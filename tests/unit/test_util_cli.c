/* Helpers and the command-line parser. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
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

UNIT_MAIN("util_cli", UNIT_CASE(signals_parse_in_every_spelling), UNIT_CASE(errors_carry_context),
          UNIT_CASE(rfc3339_is_well_formed), UNIT_CASE(atomic_write_replaces_file),
          UNIT_CASE(cli_parses_runc_styles))
