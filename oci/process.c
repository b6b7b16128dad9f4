/* The process object: config.json's "process" and the process.json that `exec --process`
 * reads. Both go through oci_parse_process so they accept and refuse the same things. */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "internal.h"
#include "runcell/log.h"
#include "runcell/util.h"

/* linux/ioprio.h is missing on older systems; these values are kernel ABI. */
enum { RC_IOPRIO_CLASS_RT = 1, RC_IOPRIO_CLASS_BE = 2, RC_IOPRIO_CLASS_IDLE = 3 };

/* uid_t/gid_t -1 means "unchanged" to the kernel, so it cannot name a user. */
#define OCI_ID_MAX 4294967294LL

static const struct {
  const char *name;
  int resource;
} rlimit_names[] = {
    {"RLIMIT_CPU", RLIMIT_CPU},           {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_DATA", RLIMIT_DATA},         {"RLIMIT_STACK", RLIMIT_STACK},
    {"RLIMIT_CORE", RLIMIT_CORE},         {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_NPROC", RLIMIT_NPROC},       {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},   {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},       {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},     {"RLIMIT_RTTIME", RLIMIT_RTTIME},
};

/* Indexed by the kernel's policy numbers (SCHED_ISO, 4, is reserved: the kernel refuses it). */
static const char *const sched_policies[] = {
    "SCHED_OTHER", "SCHED_FIFO", "SCHED_RR",       "SCHED_BATCH",
    "SCHED_ISO",   "SCHED_IDLE", "SCHED_DEADLINE",
};

static const struct {
  const char *name;
  uint64_t flag;
} sched_flags[] = {
    {"SCHED_FLAG_RESET_ON_FORK", 0x01},  {"SCHED_FLAG_RECLAIM", 0x02},
    {"SCHED_FLAG_DL_OVERRUN", 0x04},     {"SCHED_FLAG_KEEP_POLICY", 0x08},
    {"SCHED_FLAG_KEEP_PARAMS", 0x10},    {"SCHED_FLAG_UTIL_CLAMP_MIN", 0x20},
    {"SCHED_FLAG_UTIL_CLAMP_MAX", 0x40},
};

static int parse_user(const struct oci_pctx *c, const json_t *obj, const char *path,
                      struct oci_user *u) {
  if (oci_want_object(c, obj, path) < 0) return -1;
  int64_t v = 0;
  if (oci_get_int(c, obj, path, "uid", false, 0, OCI_ID_MAX, &v, NULL) < 0) return -1;
  u->uid = (uid_t)v;
  v = 0;
  if (oci_get_int(c, obj, path, "gid", false, 0, OCI_ID_MAX, &v, NULL) < 0) return -1;
  u->gid = (gid_t)v;
  /* Only the permission bits mean anything to umask(2). */
  if (oci_get_int(c, obj, path, "umask", false, 0, 0777, &v, &u->has_umask) < 0) return -1;
  if (u->has_umask) u->umask = (mode_t)v;
  if (oci_get_string(c, obj, path, "username", false, &u->username) < 0) return -1;

  char ap[OCI_PATH_MAX];
  oci_path_key(ap, sizeof(ap), path, "additionalGids");
  json_t *gids = oci_member(obj, "additionalGids");
  if (!gids) return 0;
  if (!json_is_array(gids)) return oci_perr(c, ap, "must be an array of integers");
  size_t n = json_array_size(gids);
  u->additional_gids = rc_xcalloc(n + 1, sizeof(gid_t));
  u->n_additional_gids = n;
  for (size_t i = 0; i < n; i++) {
    char ep[OCI_PATH_MAX];
    oci_path_idx(ep, sizeof(ep), ap, i);
    if (oci_value_int(c, json_array_get(gids, i), ep, 0, OCI_ID_MAX, &v) < 0) return -1;
    u->additional_gids[i] = (gid_t)v;
  }
  return 0;
}

static int parse_cap_set(const struct oci_pctx *c, const json_t *obj, const char *parent,
                         const char *key, uint64_t *mask, bool *has) {
  char path[OCI_PATH_MAX];
  oci_path_key(path, sizeof(path), parent, key);
  json_t *v = oci_member(obj, key);
  *has = false;
  if (!v) return 0;
  if (!json_is_array(v)) return oci_perr(c, path, "must be an array of strings");
  *mask = 0;
  /* Unknown names are left out with a warning, as runc does: containerd and Docker build
   * "every capability" lists from their own tables, which may know newer ones. */
  char unknown[512] = "";
  size_t used = 0;
  for (size_t i = 0; i < json_array_size(v); i++) {
    char ep[OCI_PATH_MAX];
    oci_path_idx(ep, sizeof(ep), path, i);
    json_t *e = json_array_get(v, i);
    if (!json_is_string(e)) return oci_perr(c, ep, "must be a string");
    int cap = oci_cap_from_name(json_string_value(e));
    if (cap < 0) {
      if (used < sizeof(unknown))
        used += (size_t)snprintf(unknown + used, sizeof(unknown) - used, "%s%s", used ? " " : "",
                                 json_string_value(e));
      continue;
    }
    *mask |= 1ULL << cap;
  }
  if (used)
    rc_warn("%s: %s: ignoring unknown or unavailable capabilities: [%s]", c->file, path, unknown);
  *has = true;
  return 0;
}

static int parse_capabilities(const struct oci_pctx *c, const json_t *obj, const char *path,
                              struct oci_capabilities *caps) {
  if (oci_want_object(c, obj, path) < 0) return -1;
  if (parse_cap_set(c, obj, path, "bounding", &caps->bounding, &caps->has_bounding) < 0 ||
      parse_cap_set(c, obj, path, "effective", &caps->effective, &caps->has_effective) < 0 ||
      parse_cap_set(c, obj, path, "inheritable", &caps->inheritable, &caps->has_inheritable) < 0 ||
      parse_cap_set(c, obj, path, "permitted", &caps->permitted, &caps->has_permitted) < 0 ||
      parse_cap_set(c, obj, path, "ambient", &caps->ambient, &caps->has_ambient) < 0)
    return -1;
  return 0;
}

static int rlimit_from_name(const char *name) {
  for (size_t i = 0; i < RC_ARRAY_SIZE(rlimit_names); i++)
    if (strcmp(rlimit_names[i].name, name) == 0) return rlimit_names[i].resource;
  return -1;
}

static int parse_rlimits(const struct oci_pctx *c, const json_t *arr, const char *path,
                         struct oci_process *p) {
  if (!json_is_array(arr)) return oci_perr(c, path, "must be an array");
  size_t n = json_array_size(arr);
  p->rlimits = rc_xcalloc(n + 1, sizeof(*p->rlimits));
  p->n_rlimits = n;
  for (size_t i = 0; i < n; i++) {
    char ep[OCI_PATH_MAX], tp[OCI_PATH_MAX];
    oci_path_idx(ep, sizeof(ep), path, i);
    oci_path_key(tp, sizeof(tp), ep, "type");
    json_t *o = json_array_get(arr, i);
    struct oci_rlimit *r = &p->rlimits[i];
    if (oci_want_object(c, o, ep) < 0) return -1;
    if (oci_get_string(c, o, ep, "type", true, &r->name) < 0) return -1;
    r->type = rlimit_from_name(r->name);
    if (r->type < 0)
      return oci_perr(c, tp, "unknown rlimit \"%s\" (expected RLIMIT_CPU ... RLIMIT_RTTIME)",
                      r->name);
    for (size_t j = 0; j < i; j++)
      if (p->rlimits[j].type == r->type) return oci_perr(c, tp, "duplicate rlimit %s", r->name);
    if (oci_get_uint(c, o, ep, "soft", true, UINT64_MAX, &r->soft, NULL) < 0 ||
        oci_get_uint(c, o, ep, "hard", true, UINT64_MAX, &r->hard, NULL) < 0)
      return -1;
    if (r->soft > r->hard) {
      char sp[OCI_PATH_MAX];
      oci_path_key(sp, sizeof(sp), ep, "soft");
      return oci_perr(c, sp, "must not exceed hard (%llu > %llu)", (unsigned long long)r->soft,
                      (unsigned long long)r->hard);
    }
  }
  return 0;
}

static int parse_io_priority(const struct oci_pctx *c, const json_t *obj, const char *path,
                             struct oci_process *p) {
  if (oci_want_object(c, obj, path) < 0) return -1;
  cleanup_free char *cls = NULL;
  if (oci_get_string(c, obj, path, "class", true, &cls) < 0) return -1;
  if (strcmp(cls, "IOPRIO_CLASS_RT") == 0)
    p->io_priority_class = RC_IOPRIO_CLASS_RT;
  else if (strcmp(cls, "IOPRIO_CLASS_BE") == 0)
    p->io_priority_class = RC_IOPRIO_CLASS_BE;
  else if (strcmp(cls, "IOPRIO_CLASS_IDLE") == 0)
    p->io_priority_class = RC_IOPRIO_CLASS_IDLE;
  else {
    char cp[OCI_PATH_MAX];
    oci_path_key(cp, sizeof(cp), path, "class");
    return oci_perr(c, cp,
                    "unknown class \"%s\" (expected IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or "
                    "IOPRIO_CLASS_IDLE)",
                    cls);
  }
  int64_t prio = 0;
  if (oci_get_int(c, obj, path, "priority", false, 0, 7, &prio, NULL) < 0) return -1;
  p->io_priority = (int)prio;
  p->has_io_priority = true;
  return 0;
}

static int parse_scheduler(const struct oci_pctx *c, const json_t *obj, const char *path,
                           struct oci_process *p) {
  if (oci_want_object(c, obj, path) < 0) return -1;
  if (oci_get_string(c, obj, path, "policy", true, &p->scheduler_policy) < 0) return -1;
  p->sched_policy = -1;
  for (size_t i = 0; i < RC_ARRAY_SIZE(sched_policies) && p->sched_policy < 0; i++)
    if (strcmp(sched_policies[i], p->scheduler_policy) == 0) p->sched_policy = (int)i;
  if (p->sched_policy < 0) {
    char pp[OCI_PATH_MAX];
    oci_path_key(pp, sizeof(pp), path, "policy");
    return oci_perr(c, pp, "unknown scheduling policy \"%s\"", p->scheduler_policy);
  }
  /* The numbers go to sched_setattr as they are: the kernel judges them against the
   * policy (a priority for SCHED_FIFO/RR, runtime <= deadline <= period, ...). */
  int64_t nice = 0, prio = 0;
  char **flags = NULL;
  size_t n_flags = 0;
  int r = 0;
  if (oci_get_int(c, obj, path, "nice", false, -20, 19, &nice, NULL) < 0 ||
      oci_get_int(c, obj, path, "priority", false, 0, 99, &prio, NULL) < 0 ||
      oci_get_uint(c, obj, path, "runtime", false, UINT64_MAX, &p->sched_runtime, NULL) < 0 ||
      oci_get_uint(c, obj, path, "deadline", false, UINT64_MAX, &p->sched_deadline, NULL) < 0 ||
      oci_get_uint(c, obj, path, "period", false, UINT64_MAX, &p->sched_period, NULL) < 0 ||
      oci_get_string_array(c, obj, path, "flags", false, false, &flags, &n_flags) < 0)
    r = -1;
  p->sched_nice = (int)nice;
  p->sched_priority = (uint32_t)prio;
  for (size_t i = 0; r == 0 && i < n_flags; i++) {
    uint64_t f = 0;
    for (size_t k = 0; k < RC_ARRAY_SIZE(sched_flags) && !f; k++)
      if (strcmp(sched_flags[k].name, flags[i]) == 0) f = sched_flags[k].flag;
    if (!f) {
      char pp[OCI_PATH_MAX], ep[OCI_PATH_MAX];
      oci_path_key(pp, sizeof(pp), path, "flags");
      oci_path_idx(ep, sizeof(ep), pp, i);
      r = oci_perr(c, ep, "unknown scheduler flag \"%s\"", flags[i]);
    }
    p->sched_flags |= f;
  }
  oci_free_strv(flags, n_flags);
  return r;
}

static int check_env(const struct oci_pctx *c, const char *parent, char **env, size_t n) {
  char path[OCI_PATH_MAX];
  oci_path_key(path, sizeof(path), parent, "env");
  for (size_t i = 0; i < n; i++) {
    /* execve takes anything, but an entry without a name is never what was meant. */
    const char *eq = strchr(env[i], '=');
    if (!eq || eq == env[i]) {
      char ep[OCI_PATH_MAX];
      oci_path_idx(ep, sizeof(ep), path, i);
      return oci_perr(c, ep, "must be of the form NAME=value, got \"%s\"", env[i]);
    }
  }
  return 0;
}

int oci_parse_process(const struct oci_pctx *c, const json_t *obj, const char *parent,
                      struct oci_process *p) {
  char path[OCI_PATH_MAX];
  if (oci_want_object(c, obj, parent) < 0) return -1;

  if (oci_get_bool(c, obj, parent, "terminal", &p->terminal, NULL) < 0) return -1;
  json_t *cs = oci_member(obj, "consoleSize");
  if (cs) {
    oci_path_key(path, sizeof(path), parent, "consoleSize");
    if (oci_want_object(c, cs, path) < 0) return -1;
    int64_t h = 0, w = 0;
    if (oci_get_int(c, cs, path, "height", true, 0, UINT16_MAX, &h, NULL) < 0 ||
        oci_get_int(c, cs, path, "width", true, 0, UINT16_MAX, &w, NULL) < 0)
      return -1;
    p->console_height = (unsigned)h;
    p->console_width = (unsigned)w;
    p->has_console_size = true;
  }

  json_t *user = oci_member(obj, "user");
  if (user) {
    oci_path_key(path, sizeof(path), parent, "user");
    if (parse_user(c, user, path, &p->user) < 0) return -1;
  }

  if (oci_get_string_array(c, obj, parent, "args", true, true, &p->args, &p->n_args) < 0) return -1;
  if (oci_get_string_array(c, obj, parent, "env", false, false, &p->env, &p->n_env) < 0) return -1;
  /* Consumers hand env to execve directly, so it is never NULL. */
  if (!p->env) p->env = rc_xcalloc(1, sizeof(char *));
  if (check_env(c, parent, p->env, p->n_env) < 0) return -1;

  if (oci_get_string(c, obj, parent, "cwd", true, &p->cwd) < 0) return -1;
  if (!oci_is_abs(p->cwd)) {
    oci_path_key(path, sizeof(path), parent, "cwd");
    return oci_perr(c, path, "must be an absolute path, got \"%s\"", p->cwd);
  }

  json_t *caps = oci_member(obj, "capabilities");
  if (caps) {
    oci_path_key(path, sizeof(path), parent, "capabilities");
    if (parse_capabilities(c, caps, path, &p->capabilities) < 0) return -1;
    p->has_capabilities = true;
  }

  json_t *rl = oci_member(obj, "rlimits");
  if (rl) {
    oci_path_key(path, sizeof(path), parent, "rlimits");
    if (parse_rlimits(c, rl, path, p) < 0) return -1;
  }

  if (oci_get_bool(c, obj, parent, "noNewPrivileges", &p->no_new_privileges, NULL) < 0 ||
      oci_get_string(c, obj, parent, "apparmorProfile", false, &p->apparmor_profile) < 0 ||
      oci_get_string(c, obj, parent, "selinuxLabel", false, &p->selinux_label) < 0)
    return -1;

  int64_t adj = 0;
  if (oci_get_int(c, obj, parent, "oomScoreAdj", false, -1000, 1000, &adj, &p->has_oom_score_adj) <
      0)
    return -1;
  p->oom_score_adj = (int)adj;

  json_t *io = oci_member(obj, "ioPriority");
  if (io) {
    oci_path_key(path, sizeof(path), parent, "ioPriority");
    if (parse_io_priority(c, io, path, p) < 0) return -1;
  }
  json_t *sched = oci_member(obj, "scheduler");
  if (sched) {
    oci_path_key(path, sizeof(path), parent, "scheduler");
    if (parse_scheduler(c, sched, path, p) < 0) return -1;
  }
  return 0;
}

void oci_process_free_fields(struct oci_process *p) {
  if (!p) return;
  free(p->user.additional_gids);
  free(p->user.username);
  oci_free_strv(p->args, p->n_args);
  oci_free_strv(p->env, p->n_env);
  free(p->cwd);
  for (size_t i = 0; i < p->n_rlimits; i++) free(p->rlimits[i].name);
  free(p->rlimits);
  free(p->apparmor_profile);
  free(p->selinux_label);
  free(p->scheduler_policy);
  memset(p, 0, sizeof(*p));
}

int oci_process_parse(const char *json_text, size_t len, const char *what, struct oci_process *out,
                      struct rc_error *err) {
  struct oci_pctx c = {what ? what : "process.json", err};
  memset(out, 0, sizeof(*out));
  json_error_t je;
  json_t *root = oci_json_load(json_text, len, &je);
  if (!root)
    return rc_err(err, 0, "%s: invalid JSON at line %d column %d: %s", c.file, je.line, je.column,
                  je.text);
  int r = 0;
  if (!json_is_object(root))
    r = oci_perr(&c, "", "must be a JSON object");
  else
    r = oci_parse_process(&c, root, "", out);
  json_decref(root);
  if (r < 0) oci_process_free_fields(out);
  return r;
}
