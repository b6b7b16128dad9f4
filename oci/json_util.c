/* Typed readers over jansson values. Each one checks the JSON type and range and, on a
 * mismatch, names the exact JSON path, so a user can find the offending field without
 * reading the parser. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "runcell/util.h"

/* What a literal past INT64_MAX becomes (oci_json_load): a string no config holds by
 * chance (it starts with a control character), which only oci_get_uint reads back as the
 * number. */
#define BIG_UINT_MARK "\x01uint64:"

int oci_perr(const struct oci_pctx *c, const char *path, const char *fmt, ...) {
  char msg[RC_ERROR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (path && *path) return rc_err(c->err, 0, "%s: %s: %s", c->file, path, msg);
  return rc_err(c->err, 0, "%s: %s", c->file, msg);
}

void oci_path_key(char *buf, size_t len, const char *parent, const char *key) {
  if (parent && *parent)
    snprintf(buf, len, "%s.%s", parent, key);
  else
    snprintf(buf, len, "%s", key);
}

void oci_path_idx(char *buf, size_t len, const char *parent, size_t i) {
  snprintf(buf, len, "%s[%zu]", parent ? parent : "", i);
}

void oci_path_map(char *buf, size_t len, const char *parent, const char *key) {
  snprintf(buf, len, "%s[\"%s\"]", parent ? parent : "", key);
}

json_t *oci_member(const json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  return json_is_null(v) ? NULL : v;
}

int oci_want_object(const struct oci_pctx *c, const json_t *v, const char *path) {
  if (!json_is_object(v)) return oci_perr(c, path, "must be an object");
  return 0;
}

int oci_want_array(const struct oci_pctx *c, const json_t *v, const char *path) {
  if (!json_is_array(v)) return oci_perr(c, path, "must be an array");
  return 0;
}

int oci_value_int(const struct oci_pctx *c, const json_t *v, const char *path, int64_t min,
                  int64_t max, int64_t *out) {
  /* Floats are refused even when integral ("1.0"): the spec types these as integers and
   * a float usually means a unit mistake. */
  if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
    return oci_perr(c, path, "must be an integer between %" PRId64 " and %" PRId64, min, max);
  *out = json_integer_value(v);
  return 0;
}

int oci_value_string(const struct oci_pctx *c, const json_t *v, const char *path, char **out) {
  if (!json_is_string(v)) return oci_perr(c, path, "must be a string");
  *out = rc_xstrdup(json_string_value(v));
  return 0;
}

bool oci_path_fits(const char *p) {
  if (strlen(p) >= 4096) return false;
  for (const char *c = p; *c;) {
    size_t n = strcspn(c, "/");
    if (n > 255) return false;
    c += n;
    while (*c == '/') c++;
  }
  return true;
}

int oci_get_string(const struct oci_pctx *c, const json_t *obj, const char *parent, const char *key,
                   bool required, char **out) {
  char path[OCI_PATH_MAX];
  oci_path_key(path, sizeof(path), parent, key);
  json_t *v = oci_member(obj, key);
  if (!v) return required ? oci_perr(c, path, "is required") : 0;
  free(*out);
  *out = NULL;
  return oci_value_string(c, v, path, out);
}

int oci_get_bool(const struct oci_pctx *c, const json_t *obj, const char *parent, const char *key,
                 bool *out, bool *has) {
  char path[OCI_PATH_MAX];
  oci_path_key(path, sizeof(path), parent, key);
  if (has) *has = false;
  json_t *v = oci_member(obj, key);
  if (!v) return 0;
  if (!json_is_boolean(v)) return oci_perr(c, path, "must be a boolean");
  *out = json_is_true(v);
  if (has) *has = true;
  return 0;
}

int oci_get_int(const struct oci_pctx *c, const json_t *obj, const char *parent, const char *key,
                bool required, int64_t min, int64_t max, int64_t *out, bool *has) {
  char path[OCI_PATH_MAX];
  oci_path_key(path, sizeof(path), parent, key);
  if (has) *has = false;
  json_t *v = oci_member(obj, key);
  if (!v) return required ? oci_perr(c, path, "is required") : 0;
  if (oci_value_int(c, v, path, min, max, out) < 0) return -1;
  if (has) *has = true;
  return 0;
}

int oci_get_uint(const struct oci_pctx *c, const json_t *obj, const char *parent, const char *key,
                 bool required, uint64_t max, uint64_t *out, bool *has) {
  int64_t v = 0;
  int64_t imax = max > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)max;
  bool h = false;
  json_t *m = oci_member(obj, key);
  const char *big = json_is_string(m) ? json_string_value(m) : NULL;
  if (big && strncmp(big, BIG_UINT_MARK, strlen(BIG_UINT_MARK)) == 0) {
    /* an unsigned literal above INT64_MAX, as oci_json_load kept it */
    unsigned long long n = strtoull(big + strlen(BIG_UINT_MARK), NULL, 10);
    char path[OCI_PATH_MAX];
    oci_path_key(path, sizeof(path), parent, key);
    if (n > max) return oci_perr(c, path, "must be an integer between 0 and %" PRIu64, max);
    if (has) *has = true;
    *out = n;
    return 0;
  }
  if (oci_get_int(c, obj, parent, key, required, 0, imax, &v, &h) < 0) return -1;
  if (has) *has = h;
  if (h) *out = (uint64_t)v;
  return 0;
}

/* The end of the JSON number starting at text[i], or of the run of digits for a plain
 * unsigned integer (then *plain is set). */
static size_t number_end(const char *text, size_t len, size_t i, bool *plain) {
  size_t j = i;
  *plain = true;
  while (j < len && ((text[j] >= '0' && text[j] <= '9') || text[j] == '.' || text[j] == 'e' ||
                     text[j] == 'E' || text[j] == '+' || text[j] == '-')) {
    if (text[j] < '0' || text[j] > '9') *plain = false;
    j++;
  }
  return j;
}

json_t *oci_json_load(const char *text, size_t len, json_error_t *je) {
  /* the usual case, with jansson's own error positions */
  json_t *doc = json_loadb(text, len, 0, je);
  if (doc || !strstr(je->text, "too big integer")) return doc;
  char *copy = NULL;
  size_t used = 0, from = 0, cap = 0;
  bool in_string = false;
  for (size_t i = 0; i < len; i++) {
    char ch = text[i];
    if (in_string) {
      if (ch == '\\')
        i++;
      else if (ch == '"')
        in_string = false;
      continue;
    }
    if (ch == '"') {
      in_string = true;
      continue;
    }
    if (ch < '0' || ch > '9') continue;
    bool plain = false;
    size_t end = number_end(text, len, i, &plain);
    bool negative = i > 0 && text[i - 1] == '-';
    /* 19 or 20 digits, no sign, no fraction or exponent, no leading zero */
    if (plain && !negative && end - i >= 19 && end - i <= 20 && ch != '0') {
      char digits[21];
      memcpy(digits, text + i, end - i);
      digits[end - i] = '\0';
      errno = 0;
      char *stop = NULL;
      unsigned long long n = strtoull(digits, &stop, 10);
      if (errno == 0 && *stop == '\0' && n > (unsigned long long)INT64_MAX) {
        /* each literal grows by the quotes and the JSON-escaped mark */
        size_t grow = 2 + strlen("\\u0001uint64:");
        if (!copy) {
          cap = len + (len / 19 + 1) * grow + 1;
          copy = rc_xmalloc(cap);
        }
        memcpy(copy + used, text + from, i - from);
        used += i - from;
        used += (size_t)snprintf(copy + used, cap - used, "\"\\u0001uint64:%s\"", digits);
        from = end;
      }
    }
    i = end - 1;
  }
  if (!copy) return NULL; /* too big even for uint64: jansson's error stands */
  memcpy(copy + used, text + from, len - from);
  used += len - from;
  doc = json_loadb(copy, used, 0, je);
  free(copy);
  return doc;
}

void oci_free_strv(char **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

void oci_free_kv(struct oci_key_value *kv, size_t n) {
  if (!kv) return;
  for (size_t i = 0; i < n; i++) {
    free(kv[i].key);
    free(kv[i].value);
  }
  free(kv);
}

int oci_get_string_array(const struct oci_pctx *c, const json_t *obj, const char *parent,
                         const char *key, bool required, bool nonempty, char ***out, size_t *n) {
  char path[OCI_PATH_MAX];
  oci_path_key(path, sizeof(path), parent, key);
  json_t *v = oci_member(obj, key);
  const char *what =
      nonempty ? "must be a non-empty array of strings" : "must be an array of strings";
  if (!v) return required ? oci_perr(c, path, "%s", what) : 0;
  if (!json_is_array(v) || (nonempty && json_array_size(v) == 0))
    return oci_perr(c, path, "%s", what);
  oci_free_strv(*out, *n);
  size_t count = json_array_size(v);
  /* The count is published before the elements are filled so that a failure half-way
   * leaves a structure the free functions handle. */
  *out = rc_xcalloc(count + 1, sizeof(char *));
  *n = count;
  for (size_t i = 0; i < count; i++) {
    json_t *e = json_array_get(v, i);
    if (!json_is_string(e)) {
      char ep[OCI_PATH_MAX];
      oci_path_idx(ep, sizeof(ep), path, i);
      return oci_perr(c, ep, "must be a string");
    }
    (*out)[i] = rc_xstrdup(json_string_value(e));
  }
  return 0;
}

int oci_get_string_map(const struct oci_pctx *c, const json_t *obj, const char *parent,
                       const char *key, struct oci_key_value **out, size_t *n) {
  char path[OCI_PATH_MAX];
  oci_path_key(path, sizeof(path), parent, key);
  json_t *v = oci_member(obj, key);
  if (!v) return 0;
  if (!json_is_object(v)) return oci_perr(c, path, "must be an object of strings");
  oci_free_kv(*out, *n);
  *out = rc_xcalloc(json_object_size(v) + 1, sizeof(**out));
  *n = 0;
  const char *k;
  json_t *e;
  json_object_foreach(v, k, e) {
    if (!json_is_string(e)) {
      char ep[OCI_PATH_MAX];
      oci_path_map(ep, sizeof(ep), path, k);
      return oci_perr(c, ep, "must be a string");
    }
    (*out)[*n].key = rc_xstrdup(k);
    (*out)[*n].value = rc_xstrdup(json_string_value(e));
    (*n)++;
  }
  return 0;
}
