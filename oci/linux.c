/* The "linux" object of config.json, except resources and seccomp which have their own
 * files. */
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>

#include "internal.h"
#include "runcell/util.h"

static const char *const propagations[] = {
    "shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable",
};

static int parse_namespaces(const struct oci_pctx *c, const json_t *arr, const char *path,
                            struct oci_linux *l) {
  if (!json_is_array(arr)) return oci_perr(c, path, "must be an array");
  size_t n = json_array_size(arr);
  l->namespaces = rc_xcalloc(n + 1, sizeof(*l->namespaces));
  l->n_namespaces = n;
  bool seen[OCI_NS_COUNT] = {false};
  for (size_t i = 0; i < n; i++) {
    char ep[OCI_PATH_MAX], tp[OCI_PATH_MAX];
    oci_path_idx(ep, sizeof(ep), path, i);
    oci_path_key(tp, sizeof(tp), ep, "type");
    json_t *o = json_array_get(arr, i);
    struct oci_namespace *ns = &l->namespaces[i];
    if (oci_want_object(c, o, ep) < 0) return -1;
    cleanup_free char *type = NULL;
    if (oci_get_string(c, o, ep, "type", true, &type) < 0) return -1;
    int t = oci_ns_type_from_name(type);
    if (t < 0) return oci_perr(c, tp, "unknown namespace type \"%s\"", type);
    /* Two entries for one type would leave it unclear which one to create or join. */
    if (seen[t]) return oci_perr(c, tp, "duplicate namespace type \"%s\"", type);
    seen[t] = true;
    ns->type = (enum oci_ns_type)t;
    if (oci_get_string(c, o, ep, "path", false, &ns->path) < 0) return -1;
    if (ns->path && !oci_is_abs(ns->path)) {
      char pp[OCI_PATH_MAX];
      oci_path_key(pp, sizeof(pp), ep, "path");
      return oci_perr(c, pp, "must be an absolute path, got \"%s\"", ns->path);
    }
  }
  return 0;
}

int oci_parse_id_mappings(const struct oci_pctx *c, const json_t *obj, const char *parent,
                          const char *key, struct oci_id_mapping **out, size_t *n) {
  char path[OCI_PATH_MAX];
  oci_path_key(path, sizeof(path), parent, key);
  json_t *arr = oci_member(obj, key);
  if (!arr) return 0;
  if (!json_is_array(arr)) return oci_perr(c, path, "must be an array");
  size_t count = json_array_size(arr);
  *out = rc_xcalloc(count + 1, sizeof(**out));
  *n = count;
  for (size_t i = 0; i < count; i++) {
    char ep[OCI_PATH_MAX];
    oci_path_idx(ep, sizeof(ep), path, i);
    json_t *o = json_array_get(arr, i);
    if (oci_want_object(c, o, ep) < 0) return -1;
    int64_t cid = 0, hid = 0, size = 0;
    if (oci_get_int(c, o, ep, "containerID", true, 0, UINT32_MAX, &cid, NULL) < 0 ||
        oci_get_int(c, o, ep, "hostID", true, 0, UINT32_MAX, &hid, NULL) < 0 ||
        oci_get_int(c, o, ep, "size", true, 1, UINT32_MAX, &size, NULL) < 0)
      return -1;
    /* The kernel refuses ranges that wrap around the 32-bit id space. */
    if (cid + size - 1 > (int64_t)UINT32_MAX || hid + size - 1 > (int64_t)UINT32_MAX) {
      char sp[OCI_PATH_MAX];
      oci_path_key(sp, sizeof(sp), ep, "size");
      return oci_perr(c, sp, "range exceeds the 32-bit id space");
    }
    (*out)[i] = (struct oci_id_mapping){(uint32_t)cid, (uint32_t)hid, (uint32_t)size};
  }
  return 0;
}

static int parse_time_offsets(const struct oci_pctx *c, const json_t *obj, const char *path,
                              struct oci_linux *l) {
  if (oci_want_object(c, obj, path) < 0) return -1;
  l->time_offsets = rc_xcalloc(json_object_size(obj) + 1, sizeof(*l->time_offsets));
  const char *clock;
  json_t *o;
  json_object_foreach((json_t *)obj, clock, o) {
    char ep[OCI_PATH_MAX];
    oci_path_key(ep, sizeof(ep), path, clock);
    if (strcmp(clock, "monotonic") != 0 && strcmp(clock, "boottime") != 0)
      return oci_perr(c, ep, "unknown clock (expected \"monotonic\" or \"boottime\")");
    struct oci_time_offset *t = &l->time_offsets[l->n_time_offsets++];
    t->clock = rc_xstrdup(clock);
    if (oci_want_object(c, o, ep) < 0) return -1;
    int64_t ns = 0;
    if (oci_get_int(c, o, ep, "secs", false, INT64_MIN, INT64_MAX, &t->secs, NULL) < 0 ||
        oci_get_int(c, o, ep, "nanosecs", false, 0, 999999999, &ns, NULL) < 0)
      return -1;
    t->nanosecs = (uint32_t)ns;
  }
  return 0;
}

static int parse_devices(const struct oci_pctx *c, const json_t *arr, const char *path,
                         struct oci_linux *l) {
  if (!json_is_array(arr)) return oci_perr(c, path, "must be an array");
  size_t n = json_array_size(arr);
  l->devices = rc_xcalloc(n + 1, sizeof(*l->devices));
  l->n_devices = n;
  for (size_t i = 0; i < n; i++) {
    char ep[OCI_PATH_MAX], sp[OCI_PATH_MAX];
    oci_path_idx(ep, sizeof(ep), path, i);
    json_t *o = json_array_get(arr, i);
    struct oci_device *d = &l->devices[i];
    if (oci_want_object(c, o, ep) < 0) return -1;
    cleanup_free char *type = NULL;
    if (oci_get_string(c, o, ep, "type", true, &type) < 0) return -1;
    if (strlen(type) != 1 || !strchr("cbup", type[0])) {
      oci_path_key(sp, sizeof(sp), ep, "type");
      return oci_perr(c, sp, "unknown device type \"%s\" (expected c, b, u or p)", type);
    }
    d->type = type[0];
    if (oci_get_string(c, o, ep, "path", true, &d->path) < 0) return -1;
    if (!oci_is_abs(d->path)) {
      oci_path_key(sp, sizeof(sp), ep, "path");
      return oci_perr(c, sp, "must be an absolute path, got \"%s\"", d->path);
    }
    if (!oci_path_fits(d->path)) {
      oci_path_key(sp, sizeof(sp), ep, "path");
      return oci_perr(c, sp, OCI_PATH_TOO_LONG);
    }
    /* FIFOs have no device number; character and block devices need both, within what the
     * kernel's dev_t holds (12-bit major, 20-bit minor): a larger number would wrap into
     * another device's in mknod. */
    bool need_nums = d->type != 'p';
    if (oci_get_int(c, o, ep, "major", need_nums, 0, 0xfff, &d->major, NULL) < 0 ||
        oci_get_int(c, o, ep, "minor", need_nums, 0, 0xfffff, &d->minor, NULL) < 0)
      return -1;
    int64_t v = 0;
    if (oci_get_int(c, o, ep, "fileMode", false, 0, 07777, &v, &d->has_file_mode) < 0) return -1;
    d->file_mode = (mode_t)v;
    if (oci_get_int(c, o, ep, "uid", false, 0, UINT32_MAX - 1, &v, &d->has_uid) < 0) return -1;
    d->uid = (uid_t)v;
    if (oci_get_int(c, o, ep, "gid", false, 0, UINT32_MAX - 1, &v, &d->has_gid) < 0) return -1;
    d->gid = (gid_t)v;
  }
  return 0;
}

static int parse_abs_paths(const struct oci_pctx *c, const json_t *obj, const char *parent,
                           const char *key, char ***out, size_t *n) {
  if (oci_get_string_array(c, obj, parent, key, false, false, out, n) < 0) return -1;
  for (size_t i = 0; i < *n; i++)
    if (!oci_is_abs((*out)[i])) {
      char path[OCI_PATH_MAX], ep[OCI_PATH_MAX];
      oci_path_key(path, sizeof(path), parent, key);
      oci_path_idx(ep, sizeof(ep), path, i);
      return oci_perr(c, ep, "must be an absolute path, got \"%s\"", (*out)[i]);
    }
  return 0;
}

static int parse_personality(const struct oci_pctx *c, const json_t *obj, const char *path,
                             struct oci_linux *l) {
  if (oci_want_object(c, obj, path) < 0) return -1;
  cleanup_free char *domain = NULL;
  if (oci_get_string(c, obj, path, "domain", true, &domain) < 0) return -1;
  if (strcmp(domain, "LINUX") == 0)
    l->personality_domain = PER_LINUX;
  else if (strcmp(domain, "LINUX32") == 0)
    l->personality_domain = PER_LINUX32;
  else {
    char dp[OCI_PATH_MAX];
    oci_path_key(dp, sizeof(dp), path, "domain");
    return oci_perr(c, dp, "unknown domain \"%s\" (expected LINUX or LINUX32)", domain);
  }
  /* The spec defines no flag values yet; any given are only type-checked. */
  char **flags = NULL;
  size_t n_flags = 0;
  int r = oci_get_string_array(c, obj, path, "flags", false, false, &flags, &n_flags);
  oci_free_strv(flags, n_flags);
  if (r < 0) return -1;
  l->has_personality = true;
  return 0;
}

int oci_parse_linux(const struct oci_pctx *c, const json_t *obj, const char *parent,
                    struct oci_linux *l) {
  char path[OCI_PATH_MAX];
  if (oci_want_object(c, obj, parent) < 0) return -1;

  json_t *v = oci_member(obj, "namespaces");
  if (v) {
    oci_path_key(path, sizeof(path), parent, "namespaces");
    if (parse_namespaces(c, v, path, l) < 0) return -1;
  }
  if (oci_parse_id_mappings(c, obj, parent, "uidMappings", &l->uid_mappings, &l->n_uid_mappings) <
          0 ||
      oci_parse_id_mappings(c, obj, parent, "gidMappings", &l->gid_mappings, &l->n_gid_mappings) <
          0)
    return -1;
  if ((v = oci_member(obj, "timeOffsets"))) {
    oci_path_key(path, sizeof(path), parent, "timeOffsets");
    if (parse_time_offsets(c, v, path, l) < 0) return -1;
  }
  if ((v = oci_member(obj, "devices"))) {
    oci_path_key(path, sizeof(path), parent, "devices");
    if (parse_devices(c, v, path, l) < 0) return -1;
  }
  if (oci_get_string(c, obj, parent, "cgroupsPath", false, &l->cgroups_path) < 0) return -1;
  if ((v = oci_member(obj, "resources"))) {
    oci_path_key(path, sizeof(path), parent, "resources");
    if (oci_parse_resources(c, v, path, &l->resources) < 0) return -1;
    l->has_resources = true;
  }

  if (oci_get_string(c, obj, parent, "rootfsPropagation", false, &l->rootfs_propagation) < 0)
    return -1;
  if (l->rootfs_propagation) {
    bool known = false;
    for (size_t i = 0; i < RC_ARRAY_SIZE(propagations) && !known; i++)
      known = strcmp(propagations[i], l->rootfs_propagation) == 0;
    if (!known) {
      oci_path_key(path, sizeof(path), parent, "rootfsPropagation");
      return oci_perr(c, path,
                      "unknown propagation \"%s\" (expected shared, slave, private, "
                      "unbindable or their r-prefixed forms)",
                      l->rootfs_propagation);
    }
  }

  if ((v = oci_member(obj, "seccomp"))) {
    oci_path_key(path, sizeof(path), parent, "seccomp");
    if (oci_parse_seccomp(c, v, path, &l->seccomp) < 0) return -1;
    l->has_seccomp = true;
  }
  if (oci_get_string_map(c, obj, parent, "sysctl", &l->sysctl, &l->n_sysctl) < 0) return -1;
  if (parse_abs_paths(c, obj, parent, "maskedPaths", &l->masked_paths, &l->n_masked_paths) < 0 ||
      parse_abs_paths(c, obj, parent, "readonlyPaths", &l->readonly_paths, &l->n_readonly_paths) <
          0)
    return -1;
  if (oci_get_string(c, obj, parent, "mountLabel", false, &l->mount_label) < 0) return -1;
  if ((v = oci_member(obj, "personality"))) {
    oci_path_key(path, sizeof(path), parent, "personality");
    if (parse_personality(c, v, path, l) < 0) return -1;
  }
  if ((v = oci_member(obj, "intelRdt"))) {
    oci_path_key(path, sizeof(path), parent, "intelRdt");
    if (oci_want_object(c, v, path) < 0) return -1;
    if (oci_get_string(c, v, path, "closID", false, &l->intel_rdt_clos_id) < 0) return -1;
    /* Present but without a closID still asks for Intel RDT: "" keeps that visible to
     * the lifecycle code, which refuses it. */
    if (!l->intel_rdt_clos_id) l->intel_rdt_clos_id = rc_xstrdup("");
  }
  return 0;
}

void oci_linux_free_fields(struct oci_linux *l) {
  for (size_t i = 0; i < l->n_namespaces; i++) free(l->namespaces[i].path);
  free(l->namespaces);
  free(l->uid_mappings);
  free(l->gid_mappings);
  for (size_t i = 0; i < l->n_time_offsets; i++) free(l->time_offsets[i].clock);
  free(l->time_offsets);
  for (size_t i = 0; i < l->n_devices; i++) free(l->devices[i].path);
  free(l->devices);
  free(l->cgroups_path);
  oci_resources_free_fields(&l->resources);
  free(l->rootfs_propagation);
  oci_seccomp_free_fields(&l->seccomp);
  oci_free_kv(l->sysctl, l->n_sysctl);
  oci_free_strv(l->masked_paths, l->n_masked_paths);
  oci_free_strv(l->readonly_paths, l->n_readonly_paths);
  free(l->mount_label);
  free(l->intel_rdt_clos_id);
  memset(l, 0, sizeof(*l));
}
