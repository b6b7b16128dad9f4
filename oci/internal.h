/* Shared by the files of the oci/ module only: the typed JSON readers that produce
 * "<file>: <json path>: <what was expected>" messages, and the name tables each section
 * parser needs. Nothing here is part of the public API in include/runcell/oci.h. */
#ifndef RUNCELL_OCI_INTERNAL_H
#define RUNCELL_OCI_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runcell/oci.h"

/* Room for a JSON path in messages; longer paths (huge map keys) are truncated, which
 * only shortens a message. */
#define OCI_PATH_MAX 512

/* Where errors go and which file name starts them ("config.json", "process.json"). */
struct oci_pctx {
  const char *file;
  struct rc_error *err;
};

/* json_loadb for the spec's documents, whose uint64 fields (rlimits, cpu shares and
 * periods, hugepage limits) may hold values jansson's int64 cannot: Docker writes
 * RLIM_INFINITY as 18446744073709551615. When jansson refuses one, such literals
 * (INT64_MAX < n <= UINT64_MAX, outside strings) are kept as marked strings that only
 * oci_get_uint takes (as the number); any other field refuses them as it would the
 * number. Larger ones stay errors. */
json_t *oci_json_load(const char *text, size_t len, json_error_t *je);

/* Fills err with "<file>: <path>: <message>" (or "<file>: <message>" for an empty path).
 * Returns -1. */
int oci_perr(const struct oci_pctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Child paths: "parent.key" ("key" when parent is empty), "parent[i]" and
 * "parent[\"key\"]" for keys of free-form maps (annotations, sysctl), whose dots would
 * otherwise read like nesting. */
void oci_path_key(char *buf, size_t len, const char *parent, const char *key);
void oci_path_idx(char *buf, size_t len, const char *parent, size_t i);
void oci_path_map(char *buf, size_t len, const char *parent, const char *key);

/* JSON null counts as absent everywhere, as it does for Go's encoding/json that runc and
 * the spec's reference bindings use. */
json_t *oci_member(const json_t *obj, const char *key);

/* Value readers; path names the value itself. */
int oci_want_object(const struct oci_pctx *c, const json_t *v, const char *path);
int oci_want_array(const struct oci_pctx *c, const json_t *v, const char *path);
int oci_value_int(const struct oci_pctx *c, const json_t *v, const char *path, int64_t min,
                  int64_t max, int64_t *out);
int oci_value_string(const struct oci_pctx *c, const json_t *v, const char *path, char **out);

/* Member readers: obj is an object, parent its path. Absent members leave the outputs
 * untouched and set *has to false (has may be NULL); required ones fail with
 * "<path>: is required". */
int oci_get_string(const struct oci_pctx *c, const json_t *obj, const char *parent, const char *key,
                   bool required, char **out);
int oci_get_bool(const struct oci_pctx *c, const json_t *obj, const char *parent, const char *key,
                 bool *out, bool *has);
int oci_get_int(const struct oci_pctx *c, const json_t *obj, const char *parent, const char *key,
                bool required, int64_t min, int64_t max, int64_t *out, bool *has);
/* Unsigned: jansson keeps integers as int64, so the largest accepted is INT64_MAX. */
int oci_get_uint(const struct oci_pctx *c, const json_t *obj, const char *parent, const char *key,
                 bool required, uint64_t max, uint64_t *out, bool *has);
/* An array of strings into a NULL-terminated heap array (always allocated when the member
 * is present, even if empty). nonempty rejects []. */
int oci_get_string_array(const struct oci_pctx *c, const json_t *obj, const char *parent,
                         const char *key, bool required, bool nonempty, char ***out, size_t *n);
/* An object of string values into key/value pairs, in document order. */
int oci_get_string_map(const struct oci_pctx *c, const json_t *obj, const char *parent,
                       const char *key, struct oci_key_value **out, size_t *n);

void oci_free_strv(char **v, size_t n);
void oci_free_kv(struct oci_key_value *kv, size_t n);

/* true when p is an absolute path (starts with '/'). */
static inline bool oci_is_abs(const char *p) {
  return p && p[0] == '/';
}

/* true when the kernel can take path p: shorter than PATH_MAX, no component longer than
 * NAME_MAX. (The runtime's path buffers are PATH_MAX long, so a longer one could only be
 * cut.) */
bool oci_path_fits(const char *p);
#define OCI_PATH_TOO_LONG "is too long for the kernel (at most 4095 bytes, 255 per component)"

/* ---- section parsers (one file each) ---- */

/* process object; parent is "process" for config.json and "" for process.json. */
int oci_parse_process(const struct oci_pctx *c, const json_t *obj, const char *parent,
                      struct oci_process *p);
int oci_parse_linux(const struct oci_pctx *c, const json_t *obj, const char *parent,
                    struct oci_linux *l);
void oci_linux_free_fields(struct oci_linux *l);
int oci_parse_resources(const struct oci_pctx *c, const json_t *obj, const char *parent,
                        struct oci_resources *r);
int oci_parse_seccomp(const struct oci_pctx *c, const json_t *obj, const char *parent,
                      struct oci_seccomp *s);
void oci_seccomp_free_fields(struct oci_seccomp *s);
/* uidMappings/gidMappings entries (linux.* and mounts[].*). */
int oci_parse_id_mappings(const struct oci_pctx *c, const json_t *obj, const char *parent,
                          const char *key, struct oci_id_mapping **out, size_t *n);

/* ---- mount options (mount_options.c) ---- */

/* Derives flags, clear_flags, propagation, data, bind, recursive and idmap from
 * m->options and m->type. Never fails: unknown options are filesystem data. */
void oci_mount_apply_options(struct oci_mount *m);

/* The i-th option name the translation recognizes (sorted), NULL past the end; for the
 * features document. */
const char *oci_mount_option_name_at(size_t i);

/* ---- seccomp names (seccomp_names.c) ---- */

/* 0 and the libseccomp value (ERRNO and TRACE without data) if known, else -1. */
int oci_seccomp_action_from_name(const char *name, uint32_t *action);
/* 0 and the SCMP_ARCH_* token if known to this libseccomp, else -1. */
int oci_seccomp_arch_from_name(const char *name, uint32_t *token);
/* enum scmp_compare value, or -1. */
int oci_seccomp_op_from_name(const char *name);
bool oci_seccomp_flag_known(const char *name);

/* The i-th known action / operator name (sorted), NULL past the end. */
const char *oci_seccomp_action_name_at(size_t i);
const char *oci_seccomp_op_name_at(size_t i);
extern const char *const oci_seccomp_arch_names[];
extern const size_t oci_n_seccomp_arch_names;
extern const char *const oci_seccomp_flag_names[];
extern const size_t oci_n_seccomp_flag_names;

/* ---- namespaces (namespaces.c) ---- */

/* OCI_NS_* for a type name ("pid", "network", ...), or -1. */
int oci_ns_type_from_name(const char *name);

#endif
