/* linux.seccomp: names become libseccomp values here, so a profile that names an unknown
 * action, architecture or operator fails at parse time with its JSON path, long before a
 * filter is built. Syscall names are not checked: profiles routinely list syscalls newer
 * than the host's libseccomp, and the filter builder skips those as runc does. */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "runcell/util.h"

/* The kernel hands seccomp filters six syscall arguments. */
#define SECCOMP_ARGS 6
/* SECCOMP_RET_DATA is 16 bits wide. */
#define ERRNO_RET_MAX 0xffff

static bool takes_errno(uint32_t action) {
  return action == SCMP_ACT_ERRNO(0) || action == SCMP_ACT_TRACE(0);
}

/* Reads an action name and its optional errno return; without one, ERRNO and TRACE
 * return EPERM, as in runc (has_ret stays false so the caller can tell). */
static int parse_action(const struct oci_pctx *c, const json_t *o, const char *parent,
                        const char *action_key, const char *ret_key, char **name, uint32_t *action,
                        bool *has_ret, uint32_t *ret) {
  char path[OCI_PATH_MAX];
  oci_path_key(path, sizeof(path), parent, action_key);
  if (oci_get_string(c, o, parent, action_key, true, name) < 0) return -1;
  if (oci_seccomp_action_from_name(*name, action) < 0)
    return oci_perr(c, path, "unknown action \"%s\"", *name);
  uint64_t v = 0;
  if (oci_get_uint(c, o, parent, ret_key, false, ERRNO_RET_MAX, &v, has_ret) < 0) return -1;
  /* An errnoRet on an action that returns nothing is ignored rather than refused:
   * runc accepts such profiles, and they exist in the wild. */
  *ret = *has_ret ? (uint32_t)v : takes_errno(*action) ? EPERM : 0;
  return 0;
}

static int parse_args(const struct oci_pctx *c, const json_t *arr, const char *path,
                      struct oci_seccomp_syscall *sc) {
  if (!json_is_array(arr)) return oci_perr(c, path, "must be an array");
  size_t n = json_array_size(arr);
  sc->args = rc_xcalloc(n + 1, sizeof(*sc->args));
  sc->n_args = n;
  for (size_t i = 0; i < n; i++) {
    char ep[OCI_PATH_MAX];
    oci_path_idx(ep, sizeof(ep), path, i);
    json_t *e = json_array_get(arr, i);
    struct oci_seccomp_arg *a = &sc->args[i];
    uint64_t index = 0;
    if (oci_want_object(c, e, ep) < 0 ||
        oci_get_uint(c, e, ep, "index", true, SECCOMP_ARGS - 1, &index, NULL) < 0 ||
        oci_get_uint(c, e, ep, "value", true, UINT64_MAX, &a->value, NULL) < 0 ||
        oci_get_uint(c, e, ep, "valueTwo", false, UINT64_MAX, &a->value_two, NULL) < 0)
      return -1;
    a->index = (unsigned)index;
    cleanup_free char *op = NULL;
    if (oci_get_string(c, e, ep, "op", true, &op) < 0) return -1;
    a->op = oci_seccomp_op_from_name(op);
    if (a->op < 0) {
      char op_path[OCI_PATH_MAX];
      oci_path_key(op_path, sizeof(op_path), ep, "op");
      return oci_perr(c, op_path, "unknown operator \"%s\"", op);
    }
  }
  return 0;
}

static int parse_syscalls(const struct oci_pctx *c, const json_t *arr, const char *path,
                          struct oci_seccomp *s) {
  if (!json_is_array(arr)) return oci_perr(c, path, "must be an array");
  size_t n = json_array_size(arr);
  s->syscalls = rc_xcalloc(n + 1, sizeof(*s->syscalls));
  s->n_syscalls = n;
  for (size_t i = 0; i < n; i++) {
    char ep[OCI_PATH_MAX];
    oci_path_idx(ep, sizeof(ep), path, i);
    json_t *e = json_array_get(arr, i);
    struct oci_seccomp_syscall *sc = &s->syscalls[i];
    if (oci_want_object(c, e, ep) < 0 ||
        oci_get_string_array(c, e, ep, "names", true, true, &sc->names, &sc->n_names) < 0 ||
        parse_action(c, e, ep, "action", "errnoRet", &sc->action_name, &sc->action,
                     &sc->has_errno_ret, &sc->errno_ret) < 0)
      return -1;
    json_t *args = oci_member(e, "args");
    if (args) {
      char ap[OCI_PATH_MAX];
      oci_path_key(ap, sizeof(ap), ep, "args");
      if (parse_args(c, args, ap, sc) < 0) return -1;
    }
  }
  return 0;
}

int oci_parse_seccomp(const struct oci_pctx *c, const json_t *obj, const char *parent,
                      struct oci_seccomp *s) {
  if (oci_want_object(c, obj, parent) < 0) return -1;
  if (parse_action(c, obj, parent, "defaultAction", "defaultErrnoRet", &s->default_action_name,
                   &s->default_action, &s->has_default_errno_ret, &s->default_errno_ret) < 0)
    return -1;

  char path[OCI_PATH_MAX];
  oci_path_key(path, sizeof(path), parent, "architectures");
  json_t *archs = oci_member(obj, "architectures");
  if (archs) {
    if (!json_is_array(archs)) return oci_perr(c, path, "must be an array of strings");
    size_t n = json_array_size(archs);
    s->architectures = rc_xcalloc(n + 1, sizeof(uint32_t));
    s->n_architectures = n;
    for (size_t i = 0; i < n; i++) {
      char ep[OCI_PATH_MAX];
      oci_path_idx(ep, sizeof(ep), path, i);
      json_t *e = json_array_get(archs, i);
      if (!json_is_string(e)) return oci_perr(c, ep, "must be a string");
      if (oci_seccomp_arch_from_name(json_string_value(e), &s->architectures[i]) < 0)
        return oci_perr(c, ep, "unknown architecture \"%s\"", json_string_value(e));
    }
  }

  if (oci_get_string_array(c, obj, parent, "flags", false, false, &s->flags, &s->n_flags) < 0)
    return -1;
  for (size_t i = 0; i < s->n_flags; i++)
    if (!oci_seccomp_flag_known(s->flags[i])) {
      char fp[OCI_PATH_MAX], ep[OCI_PATH_MAX];
      oci_path_key(fp, sizeof(fp), parent, "flags");
      oci_path_idx(ep, sizeof(ep), fp, i);
      return oci_perr(c, ep, "unknown flag \"%s\"", s->flags[i]);
    }

  if (oci_get_string(c, obj, parent, "listenerPath", false, &s->listener_path) < 0 ||
      oci_get_string(c, obj, parent, "listenerMetadata", false, &s->listener_metadata) < 0)
    return -1;
  if (s->listener_path && !oci_is_abs(s->listener_path)) {
    oci_path_key(path, sizeof(path), parent, "listenerPath");
    return oci_perr(c, path, "must be an absolute path, got \"%s\"", s->listener_path);
  }

  json_t *syscalls = oci_member(obj, "syscalls");
  if (syscalls) {
    oci_path_key(path, sizeof(path), parent, "syscalls");
    if (parse_syscalls(c, syscalls, path, s) < 0) return -1;
  }
  return 0;
}

void oci_seccomp_free_fields(struct oci_seccomp *s) {
  free(s->default_action_name);
  free(s->architectures);
  oci_free_strv(s->flags, s->n_flags);
  free(s->listener_path);
  free(s->listener_metadata);
  for (size_t i = 0; i < s->n_syscalls; i++) {
    struct oci_seccomp_syscall *sc = &s->syscalls[i];
    oci_free_strv(sc->names, sc->n_names);
    free(sc->action_name);
    free(sc->args);
  }
  free(s->syscalls);
  memset(s, 0, sizeof(*s));
}
