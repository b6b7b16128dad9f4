#include "runcell/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runcell/util.h"

static const struct rc_opt *find_long(const struct rc_opt *opts, size_t n, const char *name,
                                      size_t len) {
  for (size_t i = 0; i < n; i++)
    if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0) return &opts[i];
  return NULL;
}

static const struct rc_opt *find_short(const struct rc_opt *opts, size_t n, char c) {
  for (size_t i = 0; i < n; i++)
    if (opts[i].short_name && opts[i].short_name == c) return &opts[i];
  return NULL;
}

static int set_value(const char *cmd, const struct rc_opt *o, const char *value,
                     struct rc_error *err) {
  switch (o->kind) {
    case RC_OPT_BOOL:
      if (!value || !strcmp(value, "true") || !strcmp(value, "1")) {
        *(bool *)o->ptr = true;
      } else if (!strcmp(value, "false") || !strcmp(value, "0")) {
        *(bool *)o->ptr = false;
      } else {
        return rc_err(err, 0, "%s: invalid boolean value \"%s\" for --%s", cmd, value, o->name);
      }
      return 0;
    case RC_OPT_STRING:
      *(const char **)o->ptr = value;
      return 0;
    case RC_OPT_INT: {
      char *end;
      errno = 0;
      long v = strtol(value, &end, 10);
      if (errno || *end || !*value || v < INT_MIN || v > INT_MAX)
        return rc_err(err, 0, "%s: invalid value \"%s\" for --%s: must be an integer", cmd, value,
                      o->name);
      *(int *)o->ptr = (int)v;
      return 0;
    }
    case RC_OPT_STRING_LIST: {
      struct rc_string_list *l = o->ptr;
      l->items = rc_xrealloc(l->items, (l->n + 1) * sizeof(*l->items));
      l->items[l->n++] = value;
      return 0;
    }
  }
  return 0;
}

int rc_cli_parse(const char *cmd, const struct rc_opt *opts, size_t n_opts, int argc, char **argv,
                 bool stop_at_first_positional, char ***pos, int *n_pos, bool *help,
                 struct rc_error *err) {
  char **out = rc_xcalloc((size_t)argc + 1, sizeof(char *));
  int np = 0;
  *help = false;
  int i = 0;
  for (; i < argc; i++) {
    char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (a[0] != '-' || a[1] == '\0') {
      if (stop_at_first_positional) break;
      out[np++] = a;
      continue;
    }
    const char *name = a + 1;
    if (*name == '-') name++;
    size_t len = strcspn(name, "=");
    const char *inline_value = name[len] == '=' ? name + len + 1 : NULL;
    if ((len == 4 && !strncmp(name, "help", 4)) || (a[1] == 'h' && a[2] == '\0')) {
      *help = true;
      continue;
    }
    const struct rc_opt *o = find_long(opts, n_opts, name, len);
    /* Single-dash short forms, possibly bundled with their value: -b DIR, -bDIR, -d. */
    if (!o && a[1] != '-') {
      o = find_short(opts, n_opts, a[1]);
      if (o) {
        inline_value = a[2] ? a + 2 : NULL;
        if (o->kind == RC_OPT_BOOL && inline_value) {
          free(out);
          return rc_err(err, 0, "%s: flag provided but not defined: %s", cmd, a);
        }
      }
    }
    if (!o) {
      free(out);
      return rc_err(err, 0, "%s: flag provided but not defined: %s", cmd, a);
    }
    const char *value = inline_value;
    if (!value && o->kind != RC_OPT_BOOL) {
      if (i + 1 >= argc) {
        free(out);
        return rc_err(err, 0, "%s: flag needs an argument: %s", cmd, a);
      }
      value = argv[++i];
    }
    if (set_value(cmd, o, value, err) < 0) {
      free(out);
      return -1;
    }
  }
  for (; i < argc; i++) out[np++] = argv[i];
  *pos = out;
  *n_pos = np;
  return 0;
}

void rc_cli_print_help(const struct rc_command *cmd, const struct rc_opt *opts, size_t n_opts) {
  printf("NAME:\n   runcell %s - %s\n\nUSAGE:\n   runcell %s [command options] %s\n", cmd->name,
         cmd->summary, cmd->name, cmd->args_usage ? cmd->args_usage : "");
  if (cmd->description) printf("\nDESCRIPTION:\n%s\n", cmd->description);
  printf("\nOPTIONS:\n");
  for (size_t i = 0; i < n_opts; i++) {
    char left[96];
    const struct rc_opt *o = &opts[i];
    if (o->short_name)
      snprintf(left, sizeof(left), "--%s %s, -%c %s", o->name, o->arg ? o->arg : "", o->short_name,
               o->arg ? o->arg : "");
    else
      snprintf(left, sizeof(left), "--%s %s", o->name, o->arg ? o->arg : "");
    printf("   %-36s %s\n", left, o->help);
  }
  printf("   %-36s %s\n", "--help, -h", "show help");
}

int rc_cli_expect_args(const char *cmd, int n_pos, int min, int max, struct rc_error *err) {
  if (n_pos < min) {
    if (min == max) return rc_err(err, 0, "\"%s\" requires exactly %d argument(s)", cmd, min);
    return rc_err(err, 0, "\"%s\" requires a minimum of %d argument(s)", cmd, min);
  }
  if (max >= 0 && n_pos > max) {
    if (min == max) return rc_err(err, 0, "\"%s\" requires exactly %d argument(s)", cmd, min);
    return rc_err(err, 0, "\"%s\" requires a maximum of %d argument(s)", cmd, max);
  }
  return 0;
}

int rc_cli_command_args(const struct rc_command *cmd, const struct rc_opt *opts, size_t n_opts,
                        int argc, char **argv, char ***pos, int *n_pos, struct rc_error *err) {
  bool help = false;
  if (rc_cli_parse(cmd->name, opts, n_opts, argc, argv, false, pos, n_pos, &help, err) < 0)
    return -1;
  if (help) {
    rc_cli_print_help(cmd, opts, n_opts);
    free(*pos);
    *pos = NULL;
    return 1;
  }
  return 0;
}
