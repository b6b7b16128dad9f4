/* list: reads every state.json under the root without taking the per-container locks (the
 * files are replaced atomically), so a slow command on one container never stalls it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runcell/cli.h"
#include "runcell/log.h"
#include "runcell/oci.h"
#include "runcell/state_store.h"
#include "runcell/util.h"

static int run_list(struct rc_global *g, int argc, char **argv, struct rc_error *err);

const struct rc_command rc_cmd_list = {
    "list", "", "lists containers started by runcell with the given root", NULL, run_list};

static int cmp_state(const void *a, const void *b) {
  const struct oci_state *x = *(struct oci_state *const *)a, *y = *(struct oci_state *const *)b;
  return strcmp(x->id, y->id);
}

static size_t collect(const char *root, struct oci_state ***out) {
  *out = NULL;
  DIR *d = opendir(root);
  if (!d) return 0;
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    struct rc_error e;
    struct oci_state *st = NULL;
    if (rc_state_read(root, de->d_name, &st, &e) < 0) {
      /* A state that cannot be read is said, not silently left out (runc: "load container
       * ID: ..."); one created or deleted while we list simply is not there. */
      if (!strstr(e.msg, "does not exist")) rc_warn("load container %s: %s", de->d_name, e.msg);
      continue;
    }
    /* runc's list names the owner of the state directory ("#UID" where the passwd file
     * has no name); state.json says "" and `state` prints that. */
    struct stat sb;
    if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
      struct passwd *pw = getpwuid(sb.st_uid);
      free(st->owner);
      st->owner = pw ? rc_xstrdup(pw->pw_name) : rc_xasprintf("#%u", (unsigned)sb.st_uid);
    }
    *out = rc_xrealloc(*out, (n + 1) * sizeof(struct oci_state *));
    (*out)[n++] = st;
  }
  closedir(d);
  if (n) qsort(*out, n, sizeof(struct oci_state *), cmp_state);
  return n;
}

static void print_table(struct oci_state **s, size_t n) {
  /* runc prints with Go's tabwriter (min width 12, padding 3); match its columns. */
  size_t w[5] = {2, 3, 6, 6, 7};
  char pid[32];
  for (size_t i = 0; i < n; i++) {
    snprintf(pid, sizeof(pid), "%d", s[i]->status == OCI_STATUS_STOPPED ? 0 : (int)s[i]->pid);
    size_t l[5] = {strlen(s[i]->id), strlen(pid), strlen(oci_status_name(s[i]->status)),
                   strlen(s[i]->bundle ? s[i]->bundle : ""),
                   strlen(s[i]->created ? s[i]->created : "")};
    for (int k = 0; k < 5; k++)
      if (l[k] > w[k]) w[k] = l[k];
  }
  for (int k = 0; k < 5; k++) w[k] = w[k] + 3 < 12 ? 12 : w[k] + 3;
  printf("%-*s%-*s%-*s%-*s%-*s%s\n", (int)w[0], "ID", (int)w[1], "PID", (int)w[2], "STATUS",
         (int)w[3], "BUNDLE", (int)w[4], "CREATED", "OWNER");
  for (size_t i = 0; i < n; i++) {
    snprintf(pid, sizeof(pid), "%d", s[i]->status == OCI_STATUS_STOPPED ? 0 : (int)s[i]->pid);
    printf("%-*s%-*s%-*s%-*s%-*s%s\n", (int)w[0], s[i]->id, (int)w[1], pid, (int)w[2],
           oci_status_name(s[i]->status), (int)w[3], s[i]->bundle ? s[i]->bundle : "", (int)w[4],
           s[i]->created ? s[i]->created : "", s[i]->owner && *s[i]->owner ? s[i]->owner : "root");
  }
}

static int print_json(struct oci_state **s, size_t n, struct rc_error *err) {
  if (n == 0) {
    printf("null\n"); /* what runc prints for no containers */
    return 0;
  }
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) {
    cleanup_free char *one = oci_state_to_runc_json(s[i]);
    json_error_t je;
    json_t *o = json_loads(one, 0, &je);
    if (!o) {
      json_decref(arr);
      return rc_err(err, 0, "list: serialize state of %s", s[i]->id);
    }
    json_array_append_new(arr, o);
  }
  char *text = json_dumps(arr, JSON_COMPACT);
  json_decref(arr);
  printf("%s\n", text);
  free(text);
  return 0;
}

static int run_list(struct rc_global *g, int argc, char **argv, struct rc_error *err) {
  const char *format = "table";
  bool quiet = false;
  const struct rc_opt opts[] = {
      {"format", 'f', RC_OPT_STRING, &format, "table|json", "output format (default: table)"},
      {"quiet", 'q', RC_OPT_BOOL, &quiet, NULL, "display only container IDs"},
  };
  char **pos = NULL;
  int n_pos = 0;
  int r = rc_cli_command_args(&rc_cmd_list, opts, RC_ARRAY_SIZE(opts), argc - 1, argv + 1, &pos,
                              &n_pos, err);
  if (r != 0) return r < 0 ? -1 : 0;
  r = rc_cli_expect_args("list", n_pos, 0, 0, err);
  free(pos);
  if (r < 0) return -1;
  if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
    return rc_err(err, 0, "invalid format option");
  struct oci_state **s = NULL;
  size_t n = collect(g->root, &s);
  int rc = 0;
  if (quiet) {
    for (size_t i = 0; i < n; i++) printf("%s\n", s[i]->id);
  } else if (!strcmp(format, "json")) {
    rc = print_json(s, n, err);
  } else {
    print_table(s, n);
  }
  for (size_t i = 0; i < n; i++) oci_state_free(s[i]);
  free(s);
  return rc;
}
