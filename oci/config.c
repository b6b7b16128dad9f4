/* config.json: parsing into struct oci_config and validation of the top-level sections
 * (ociVersion, root, mounts, hooks, annotations). process and linux have their own files.
 * Every error names the JSON path of the offending value so that a user can fix the
 * bundle without guessing. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "runcell/util.h"

/* config.json files are small; a bigger one is a mistake, not something to load. */
#define CONFIG_MAX_SIZE (16u << 20)

static const char *const hook_names[] = {
    "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop",
};

/* Parses the leading number of s; returns the position after it or NULL if none. */
static const char *parse_num(const char *s, unsigned long *out) {
  if (!isdigit((unsigned char)*s)) return NULL;
  /* SemVer forbids leading zeros in version numbers. */
  if (s[0] == '0' && isdigit((unsigned char)s[1])) return NULL;
  unsigned long v = 0;
  while (isdigit((unsigned char)*s)) {
    if (v > 1000000) return NULL;
    v = v * 10 + (unsigned long)(*s - '0');
    s++;
  }
  *out = v;
  return s;
}

static bool semver_ident_chars(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.') return false;
  return true;
}

/* MAJOR.MINOR.PATCH with optional -prerelease and +build parts. */
static bool parse_semver(const char *v, unsigned long *major) {
  unsigned long minor, patch;
  const char *p = parse_num(v, major);
  if (!p || *p++ != '.') return false;
  if (!(p = parse_num(p, &minor)) || *p++ != '.') return false;
  if (!(p = parse_num(p, &patch))) return false;
  if (*p == '\0') return true;
  if (*p != '-' && *p != '+') return false;
  /* The rest is the prerelease and build metadata; only the character set matters. */
  char rest[128];
  snprintf(rest, sizeof(rest), "%s", p + 1);
  char *plus = *p == '-' ? strchr(rest, '+') : NULL;
  if (plus) {
    *plus = '\0';
    if (!semver_ident_chars(plus + 1)) return false;
  }
  return semver_ident_chars(rest);
}

static int check_version(const struct oci_pctx *c, const char *v) {
  unsigned long major = 0;
  if (!parse_semver(v, &major))
    return oci_perr(c, "ociVersion", "must be a SemVer version such as \"%s\", got \"%s\"",
                    OCI_VERSION, v);
  /* The spec keeps compatibility within a major version only. */
  if (major != 1)
    return oci_perr(c, "ociVersion", "unsupported version \"%s\": runcell supports 1.x (%s to %s)",
                    v, OCI_VERSION_MIN, OCI_VERSION);
  return 0;
}

static int parse_root(const struct oci_pctx *c, const json_t *obj, struct oci_config *cfg) {
  json_t *root = oci_member(obj, "root");
  /* Optional in the spec in general, but a Linux container needs a root filesystem. */
  if (!root) return oci_perr(c, "root", "is required");
  if (oci_want_object(c, root, "root") < 0) return -1;
  if (oci_get_string(c, root, "root", "path", true, &cfg->root_path) < 0 ||
      oci_get_bool(c, root, "root", "readonly", &cfg->root_readonly, NULL) < 0)
    return -1;
  if (cfg->root_path[0] == '\0') return oci_perr(c, "root.path", "must not be empty");
  return 0;
}

static int parse_mount(const struct oci_pctx *c, const json_t *o, const char *path,
                       struct oci_mount *m) {
  if (oci_want_object(c, o, path) < 0) return -1;
  char dp[OCI_PATH_MAX];
  oci_path_key(dp, sizeof(dp), path, "destination");
  if (oci_get_string(c, o, path, "destination", true, &m->destination) < 0) return -1;
  if (!oci_is_abs(m->destination))
    return oci_perr(c, dp, "must be an absolute path, got \"%s\"", m->destination);
  if (!oci_path_fits(m->destination)) return oci_perr(c, dp, OCI_PATH_TOO_LONG);
  if (oci_get_string(c, o, path, "type", false, &m->type) < 0 ||
      oci_get_string(c, o, path, "source", false, &m->source) < 0 ||
      oci_get_string_array(c, o, path, "options", false, false, &m->options, &m->n_options) < 0)
    return -1;
  /* Mapping contents are validated, but only their presence is kept: idmapped mounts are
   * refused by the mount code, which needs nothing more to say so. */
  struct oci_id_mapping *maps = NULL;
  size_t n = 0;
  int r = oci_parse_id_mappings(c, o, path, "uidMappings", &maps, &n);
  free(maps);
  m->n_uid_mappings = n;
  if (r < 0) return -1;
  maps = NULL;
  n = 0;
  r = oci_parse_id_mappings(c, o, path, "gidMappings", &maps, &n);
  free(maps);
  m->n_gid_mappings = n;
  if (r < 0) return -1;
  oci_mount_apply_options(m);
  return 0;
}

static int parse_mounts(const struct oci_pctx *c, const json_t *obj, struct oci_config *cfg) {
  json_t *arr = oci_member(obj, "mounts");
  if (!arr) return 0;
  if (!json_is_array(arr)) return oci_perr(c, "mounts", "must be an array");
  size_t n = json_array_size(arr);
  cfg->mounts = rc_xcalloc(n + 1, sizeof(*cfg->mounts));
  cfg->n_mounts = n;
  for (size_t i = 0; i < n; i++) {
    char ep[OCI_PATH_MAX];
    oci_path_idx(ep, sizeof(ep), "mounts", i);
    if (parse_mount(c, json_array_get(arr, i), ep, &cfg->mounts[i]) < 0) return -1;
  }
  return 0;
}

static int parse_hook_list(const struct oci_pctx *c, const json_t *arr, const char *path,
                           struct oci_hook **out, size_t *n) {
  if (!json_is_array(arr)) return oci_perr(c, path, "must be an array");
  size_t count = json_array_size(arr);
  *out = rc_xcalloc(count + 1, sizeof(**out));
  *n = count;
  for (size_t i = 0; i < count; i++) {
    char ep[OCI_PATH_MAX], sp[OCI_PATH_MAX];
    oci_path_idx(ep, sizeof(ep), path, i);
    json_t *o = json_array_get(arr, i);
    struct oci_hook *h = &(*out)[i];
    if (oci_want_object(c, o, ep) < 0) return -1;
    if (oci_get_string(c, o, ep, "path", true, &h->path) < 0) return -1;
    if (!oci_is_abs(h->path)) {
      oci_path_key(sp, sizeof(sp), ep, "path");
      return oci_perr(c, sp, "must be an absolute path, got \"%s\"", h->path);
    }
    if (oci_get_string_array(c, o, ep, "args", false, false, &h->args, &h->n_args) < 0 ||
        oci_get_string_array(c, o, ep, "env", false, false, &h->env, &h->n_env) < 0)
      return -1;
    for (size_t j = 0; j < h->n_env; j++) {
      const char *eq = strchr(h->env[j], '=');
      if (!eq || eq == h->env[j]) {
        char envp[OCI_PATH_MAX];
        oci_path_key(sp, sizeof(sp), ep, "env");
        oci_path_idx(envp, sizeof(envp), sp, j);
        return oci_perr(c, envp, "must be of the form NAME=value, got \"%s\"", h->env[j]);
      }
    }
    int64_t t = 0;
    if (oci_get_int(c, o, ep, "timeout", false, 1, INT32_MAX, &t, &h->has_timeout) < 0) return -1;
    h->timeout = (int)t;
  }
  return 0;
}

static int parse_hooks(const struct oci_pctx *c, const json_t *obj, struct oci_hooks *hooks) {
  json_t *o = oci_member(obj, "hooks");
  if (!o) return 0;
  if (oci_want_object(c, o, "hooks") < 0) return -1;
  struct oci_hook **lists[] = {&hooks->prestart,         &hooks->create_runtime,
                               &hooks->create_container, &hooks->start_container,
                               &hooks->poststart,        &hooks->poststop};
  size_t *counts[] = {&hooks->n_prestart,         &hooks->n_create_runtime,
                      &hooks->n_create_container, &hooks->n_start_container,
                      &hooks->n_poststart,        &hooks->n_poststop};
  for (size_t i = 0; i < RC_ARRAY_SIZE(hook_names); i++) {
    json_t *arr = oci_member(o, hook_names[i]);
    if (!arr) continue;
    char path[OCI_PATH_MAX];
    oci_path_key(path, sizeof(path), "hooks", hook_names[i]);
    if (parse_hook_list(c, arr, path, lists[i], counts[i]) < 0) return -1;
  }
  return 0;
}

static void free_hook_list(struct oci_hook *h, size_t n) {
  if (!h) return;
  for (size_t i = 0; i < n; i++) {
    free(h[i].path);
    oci_free_strv(h[i].args, h[i].n_args);
    oci_free_strv(h[i].env, h[i].n_env);
  }
  free(h);
}

static int parse_document(const struct oci_pctx *c, const json_t *doc, struct oci_config *cfg) {
  if (!json_is_object(doc)) return oci_perr(c, "", "must be a JSON object");
  if (oci_get_string(c, doc, "", "ociVersion", true, &cfg->oci_version) < 0 ||
      check_version(c, cfg->oci_version) < 0)
    return -1;
  if (parse_root(c, doc, cfg) < 0) return -1;

  json_t *p = oci_member(doc, "process");
  if (p) {
    if (oci_parse_process(c, p, "process", &cfg->process) < 0) return -1;
    cfg->has_process = true;
  }
  if (oci_get_string(c, doc, "", "hostname", false, &cfg->hostname) < 0 ||
      oci_get_string(c, doc, "", "domainname", false, &cfg->domainname) < 0)
    return -1;
  if (parse_mounts(c, doc, cfg) < 0 || parse_hooks(c, doc, &cfg->hooks) < 0) return -1;
  if (oci_get_string_map(c, doc, "", "annotations", &cfg->annotations, &cfg->n_annotations) < 0)
    return -1;

  json_t *l = oci_member(doc, "linux");
  if (l) {
    if (oci_parse_linux(c, l, "linux", &cfg->linux_) < 0) return -1;
    cfg->has_linux = true;
  }
  return 0;
}

int oci_config_parse(const char *json_text, size_t len, struct oci_config **out,
                     struct rc_error *err) {
  struct oci_pctx c = {"config.json", err};
  *out = NULL;
  json_error_t je;
  json_t *doc = oci_json_load(json_text, len, &je);
  if (!doc)
    return rc_err(err, 0, "config.json: invalid JSON at line %d column %d: %s", je.line, je.column,
                  je.text);
  struct oci_config *cfg = rc_xcalloc(1, sizeof(*cfg));
  int r = parse_document(&c, doc, cfg);
  json_decref(doc);
  if (r < 0) {
    oci_config_free(cfg);
    return -1;
  }
  cfg->raw = rc_xmalloc(len + 1);
  memcpy(cfg->raw, json_text, len);
  cfg->raw[len] = '\0';
  *out = cfg;
  return 0;
}

int oci_config_load(const char *bundle_dir, struct oci_config **out, struct rc_error *err) {
  *out = NULL;
  cleanup_free char *path = rc_xasprintf("%s/config.json", bundle_dir);
  cleanup_free char *text = NULL;
  size_t len = 0;
  if (rc_read_file(path, CONFIG_MAX_SIZE, &text, &len, err) < 0) return -1;
  return oci_config_parse(text, len, out, err);
}

void oci_config_free(struct oci_config *cfg) {
  if (!cfg) return;
  free(cfg->oci_version);
  free(cfg->root_path);
  oci_process_free_fields(&cfg->process);
  free(cfg->hostname);
  free(cfg->domainname);
  for (size_t i = 0; i < cfg->n_mounts; i++) {
    struct oci_mount *m = &cfg->mounts[i];
    free(m->destination);
    free(m->type);
    free(m->source);
    oci_free_strv(m->options, m->n_options);
    free(m->data);
  }
  free(cfg->mounts);
  free_hook_list(cfg->hooks.prestart, cfg->hooks.n_prestart);
  free_hook_list(cfg->hooks.create_runtime, cfg->hooks.n_create_runtime);
  free_hook_list(cfg->hooks.create_container, cfg->hooks.n_create_container);
  free_hook_list(cfg->hooks.start_container, cfg->hooks.n_start_container);
  free_hook_list(cfg->hooks.poststart, cfg->hooks.n_poststart);
  free_hook_list(cfg->hooks.poststop, cfg->hooks.n_poststop);
  oci_free_kv(cfg->annotations, cfg->n_annotations);
  oci_linux_free_fields(&cfg->linux_);
  free(cfg->raw);
  free(cfg);
}

const char *oci_config_annotation(const struct oci_config *cfg, const char *key) {
  if (!cfg || !key) return NULL;
  for (size_t i = 0; i < cfg->n_annotations; i++)
    if (strcmp(cfg->annotations[i].key, key) == 0) return cfg->annotations[i].value;
  return NULL;
}
