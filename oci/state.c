/* Container state in three shapes: the full record runcell keeps in state.json, the
 * object `runcell state` prints (byte-for-byte runc's format, which scripts parse), and
 * the OCI state given to hooks on stdin. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "runcell/util.h"

static const char *const status_names[] = {
    [OCI_STATUS_CREATING] = "creating", [OCI_STATUS_CREATED] = "created",
    [OCI_STATUS_RUNNING] = "running",   [OCI_STATUS_STOPPED] = "stopped",
    [OCI_STATUS_PAUSED] = "paused",
};

const char *oci_status_name(enum oci_status s) {
  if ((unsigned)s >= RC_ARRAY_SIZE(status_names)) return "unknown";
  return status_names[s];
}

int oci_status_from_name(const char *name) {
  if (!name) return -1;
  for (size_t i = 0; i < RC_ARRAY_SIZE(status_names); i++)
    if (strcmp(status_names[i], name) == 0) return (int)i;
  return -1;
}

/* jansson refuses strings that are not UTF-8 (a bundle path may be anything); like Go,
 * replace each invalid byte with U+FFFD rather than lose the field. */
static json_t *utf8_string(const char *v) {
  json_t *j = json_string(v);
  if (j) return j;
  size_t n = strlen(v);
  char *fixed = rc_xmalloc(n * 3 + 1);
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    unsigned char ch = (unsigned char)v[i];
    size_t len = ch < 0x80 ? 1 : (ch >> 5) == 6 ? 2 : (ch >> 4) == 14 ? 3 : (ch >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)v[i + k] >> 6) == 2;
    /* Let jansson judge overlong forms and surrogates on the candidate sequence. */
    if (ok && len > 1) {
      json_t *probe = json_stringn(v + i, len);
      ok = probe != NULL;
      json_decref(probe);
    }
    if (ok) {
      memcpy(fixed + o, v + i, len);
      o += len;
      i += len;
    } else {
      memcpy(fixed + o, "\xef\xbf\xbd", 3);
      o += 3;
      i++;
    }
  }
  fixed[o] = '\0';
  j = json_string(fixed);
  free(fixed);
  return j ? j : json_string("");
}

static void set_str(json_t *o, const char *key, const char *v) {
  json_object_set_new(o, key, utf8_string(v ? v : ""));
}

static void set_opt_str(json_t *o, const char *key, const char *v) {
  if (v) json_object_set_new(o, key, utf8_string(v));
}

static int cmp_kv(const void *a, const void *b) {
  return strcmp(((const struct oci_key_value *)a)->key, ((const struct oci_key_value *)b)->key);
}

/* Go's encoding/json writes map keys sorted; runc's outputs come from Go maps. */
static json_t *annotations_object(const struct oci_key_value *kv, size_t n, bool sorted) {
  json_t *o = json_object();
  if (n == 0) return o;
  struct oci_key_value *copy = rc_xcalloc(n, sizeof(*copy));
  memcpy(copy, kv, n * sizeof(*copy));
  if (sorted) qsort(copy, n, sizeof(*copy), cmp_kv);
  for (size_t i = 0; i < n; i++)
    json_object_set_new(o, copy[i].key, utf8_string(copy[i].value ? copy[i].value : ""));
  free(copy);
  return o;
}

static char *dump(json_t *o, size_t flags) {
  char *s = json_dumps(o, flags);
  json_decref(o);
  /* json_dumps fails only on allocation failure, which is fatal here as everywhere. */
  if (!s) abort();
  return s;
}

char *oci_state_to_json(const struct oci_state *st) {
  json_t *o = json_object();
  set_str(o, "ociVersion", st->oci_version);
  set_str(o, "id", st->id);
  set_str(o, "status", oci_status_name(st->status));
  json_object_set_new(o, "pid", json_integer(st->pid));
  json_object_set_new(o, "pidStartTime", json_integer((json_int_t)st->pid_start_time));
  set_opt_str(o, "bundle", st->bundle);
  set_opt_str(o, "rootfs", st->rootfs);
  set_opt_str(o, "created", st->created);
  set_opt_str(o, "owner", st->owner);
  set_opt_str(o, "cgroupPath", st->cgroup_path);
  set_opt_str(o, "mode", st->mode);
  json_object_set_new(o, "annotations",
                      annotations_object(st->annotations, st->n_annotations, false));
  json_object_set_new(o, "systemdCgroup", json_boolean(st->systemd_cgroup));
  json_object_set_new(o, "useTerminal", json_boolean(st->use_terminal));
  json_object_set_new(o, "pausedFromCreated", json_boolean(st->paused_from_created));
  return dump(o, JSON_INDENT(2));
}

/* Rewrites jansson's string escapes the way Go's encoding/json writes them, so that
 * output compares equal to runc's byte for byte: Go escapes <, > and & (HTML safety) and
 * U+2028/U+2029, writes \b and \f as \u0008 and \u000c, and uses lowercase hex. Only
 * string contents change; JSON structure never contains these characters. */
static char *go_escape(char *s) {
  size_t n = strlen(s), extra = 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] == '<' || s[i] == '>' || s[i] == '&' || s[i] == '\\' || (unsigned char)s[i] == 0xe2)
      extra += 6;
  char *out = rc_xmalloc(n + extra + 1);
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\\' && i + 1 < n) {
      char e = s[i + 1];
      if (e == 'b' || e == 'f') {
        o += (size_t)sprintf(out + o, "\\u%04x", e == 'b' ? 0x08 : 0x0c);
        i++;
      } else if (e == 'u' && i + 5 < n) {
        out[o++] = '\\';
        out[o++] = 'u';
        for (size_t k = 2; k < 6; k++)
          out[o++] = (s[i + k] >= 'A' && s[i + k] <= 'F') ? (char)(s[i + k] - 'A' + 'a') : s[i + k];
        i += 5;
      } else {
        out[o++] = '\\';
        out[o++] = e;
        i++;
      }
    } else if (ch == '<' || ch == '>' || ch == '&') {
      o += (size_t)sprintf(out + o, "\\u%04x", ch);
    } else if (ch == 0xe2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
               ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9)) {
      o += (size_t)sprintf(out + o, "\\u%04x", (unsigned char)s[i + 2] == 0xa8 ? 0x2028 : 0x2029);
      i += 2;
    } else {
      out[o++] = (char)ch;
    }
  }
  out[o] = '\0';
  free(s);
  return out;
}

/* Go formats time.Time as RFC 3339 with the fraction's trailing zeros removed; the stored
 * timestamp always carries nine digits. */
static char *go_time(const char *t) {
  char *s = rc_xstrdup(t ? t : "0001-01-01T00:00:00Z");
  char *dot = strchr(s, '.');
  if (!dot) return s;
  char *end = dot + 1;
  while (*end >= '0' && *end <= '9') end++;
  char *last = end;
  while (last > dot + 1 && last[-1] == '0') last--;
  if (last == dot + 1) last = dot; /* all zeros: no fraction at all */
  memmove(last, end, strlen(end) + 1);
  return s;
}

char *oci_state_to_runc_json(const struct oci_state *st) {
  json_t *o = json_object();
  set_str(o, "ociVersion", st->oci_version);
  set_str(o, "id", st->id);
  /* runc reports no pid for a stopped container: the number may already be reused. */
  json_object_set_new(o, "pid", json_integer(st->status == OCI_STATUS_STOPPED ? 0 : st->pid));
  set_str(o, "status", oci_status_name(st->status));
  set_str(o, "bundle", st->bundle);
  set_str(o, "rootfs", st->rootfs);
  cleanup_free char *created = go_time(st->created);
  set_str(o, "created", created);
  if (st->n_annotations)
    json_object_set_new(o, "annotations",
                        annotations_object(st->annotations, st->n_annotations, true));
  set_str(o, "owner", st->owner);
  return go_escape(dump(o, JSON_INDENT(2)));
}

char *oci_state_to_hook_json(const struct oci_state *st) {
  /* runtime-spec's State: pid and annotations are omitted when empty. */
  json_t *o = json_object();
  set_str(o, "ociVersion", st->oci_version);
  set_str(o, "id", st->id);
  set_str(o, "status", oci_status_name(st->status));
  if (st->pid > 0) json_object_set_new(o, "pid", json_integer(st->pid));
  set_str(o, "bundle", st->bundle);
  if (st->n_annotations)
    json_object_set_new(o, "annotations",
                        annotations_object(st->annotations, st->n_annotations, true));
  return go_escape(dump(o, JSON_COMPACT));
}

int oci_state_parse(const char *json_text, size_t len, struct oci_state **out,
                    struct rc_error *err) {
  struct oci_pctx c = {"state.json", err};
  *out = NULL;
  json_error_t je;
  json_t *doc = oci_json_load(json_text, len, &je);
  if (!doc)
    return rc_err(err, 0, "state.json: invalid JSON at line %d column %d: %s", je.line, je.column,
                  je.text);
  struct oci_state *st = rc_xcalloc(1, sizeof(*st));
  int r = -1;
  cleanup_free char *status = NULL;
  int64_t pid = 0;
  uint64_t start = 0;
  if (!json_is_object(doc)) {
    oci_perr(&c, "", "must be a JSON object");
    goto out;
  }
  if (oci_get_string(&c, doc, "", "ociVersion", true, &st->oci_version) < 0 ||
      oci_get_string(&c, doc, "", "id", true, &st->id) < 0 ||
      oci_get_string(&c, doc, "", "status", true, &status) < 0)
    goto out;
  int s = oci_status_from_name(status);
  if (s < 0) {
    oci_perr(&c, "status", "unknown status \"%s\"", status);
    goto out;
  }
  st->status = (enum oci_status)s;
  if (oci_get_int(&c, doc, "", "pid", false, 0, INT32_MAX, &pid, NULL) < 0 ||
      oci_get_uint(&c, doc, "", "pidStartTime", false, UINT64_MAX, &start, NULL) < 0 ||
      oci_get_string(&c, doc, "", "bundle", false, &st->bundle) < 0 ||
      oci_get_string(&c, doc, "", "rootfs", false, &st->rootfs) < 0 ||
      oci_get_string(&c, doc, "", "created", false, &st->created) < 0 ||
      oci_get_string(&c, doc, "", "owner", false, &st->owner) < 0 ||
      oci_get_string(&c, doc, "", "cgroupPath", false, &st->cgroup_path) < 0 ||
      oci_get_string(&c, doc, "", "mode", false, &st->mode) < 0 ||
      oci_get_string_map(&c, doc, "", "annotations", &st->annotations, &st->n_annotations) < 0 ||
      oci_get_bool(&c, doc, "", "systemdCgroup", &st->systemd_cgroup, NULL) < 0 ||
      oci_get_bool(&c, doc, "", "useTerminal", &st->use_terminal, NULL) < 0 ||
      oci_get_bool(&c, doc, "", "pausedFromCreated", &st->paused_from_created, NULL) < 0)
    goto out;
  st->pid = (pid_t)pid;
  st->pid_start_time = start;
  r = 0;
out:
  json_decref(doc);
  if (r < 0)
    oci_state_free(st);
  else
    *out = st;
  return r;
}

void oci_state_free(struct oci_state *st) {
  if (!st) return;
  free(st->oci_version);
  free(st->id);
  free(st->bundle);
  free(st->rootfs);
  free(st->created);
  free(st->owner);
  free(st->cgroup_path);
  free(st->mode);
  oci_free_kv(st->annotations, st->n_annotations);
  free(st);
}
