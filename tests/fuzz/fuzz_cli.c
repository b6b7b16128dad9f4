/* libFuzzer target: the command-line parser with create's option table. The input is
 * argv, its arguments separated by NUL bytes. Each argv is parsed both as a command's
 * arguments and as global options (stopping at the first positional). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runcell/cli.h"
#include "runcell/container.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse(int argc, char **argv, bool stop_at_first_positional) {
  struct rc_create_opts o = {.bundle = "."};
  struct rc_opt opts[RC_CREATE_OPT_COUNT];
  rc_create_opt_table(&o, opts);
  char **pos = NULL;
  int n_pos = 0;
  bool help = false;
  struct rc_error err = {0};
  if (rc_cli_parse("create", opts, RC_CREATE_OPT_COUNT, argc, argv, stop_at_first_positional, &pos,
                   &n_pos, &help, &err) < 0)
    return;
  if (n_pos < 0 || n_pos > argc) abort(); /* more positionals than arguments: a parser bug */
  for (int i = 0; i < n_pos; i++)
    if (!pos[i]) abort();
  (void)rc_cli_expect_args("create", n_pos, 1, 1, &err);
  (void)rc_create_opts_check("create", &o, &err);
  free(pos);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* a private, NUL-terminated copy: the parser gets char ** like main's */
  char *text = malloc(size + 1);
  char **argv = malloc((size + 1) * sizeof(char *));
  if (!text || !argv) abort();
  memcpy(text, data, size);
  text[size] = '\0';
  int argc = 0;
  for (size_t start = 0; start < size;) {
    argv[argc++] = text + start;
    start += strlen(text + start) + 1;
  }
  argv[argc] = NULL;
  parse(argc, argv, false);
  parse(argc, argv, true);
  free(argv);
  free(text);
  return 0;
}
