/* linux.resources: cgroup limits. Values are only checked for type and range here; the
 * cgroup drivers decide what each cgroup version can express. */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "runcell/util.h"

/* Memory and CPU quantities use -1 for "unlimited". */
#define NO_LIMIT_MIN (-1)

static int parse_device_rules(const struct oci_pctx *c, const json_t *arr, const char *path,
                              struct oci_resources *r) {
  if (!json_is_array(arr)) return oci_perr(c, path, "must be an array");
  size_t n = json_array_size(arr);
  r->devices = rc_xcalloc(n + 1, sizeof(*r->devices));
  r->n_devices = n;
  for (size_t i = 0; i < n; i++) {
    char ep[OCI_PATH_MAX], sp[OCI_PATH_MAX];
    oci_path_idx(ep, sizeof(ep), path, i);
    json_t *o = json_array_get(arr, i);
    struct oci_device_cgroup *d = &r->devices[i];
    if (oci_want_object(c, o, ep) < 0) return -1;
    bool has_allow = false;
    if (oci_get_bool(c, o, ep, "allow", &d->allow, &has_allow) < 0) return -1;
    if (!has_allow) {
      oci_path_key(sp, sizeof(sp), ep, "allow");
      return oci_perr(c, sp, "is required");
    }
    cleanup_free char *type = NULL;
    if (oci_get_string(c, o, ep, "type", false, &type) < 0) return -1;
    /* Without a type the rule covers all devices, as in runc. */
    d->type = 'a';
    if (type) {
      if (strlen(type) != 1 || !strchr("acb", type[0])) {
        oci_path_key(sp, sizeof(sp), ep, "type");
        return oci_perr(c, sp, "unknown device type \"%s\" (expected a, c or b)", type);
      }
      d->type = type[0];
    }
    d->major = d->minor = -1;
    if (oci_get_int(c, o, ep, "major", false, -1, INT64_MAX, &d->major, &d->has_major) < 0 ||
        oci_get_int(c, o, ep, "minor", false, -1, INT64_MAX, &d->minor, &d->has_minor) < 0)
      return -1;
    if (oci_get_string(c, o, ep, "access", false, &d->access) < 0) return -1;
    if (d->access) {
      bool ok = d->access[0] != '\0';
      for (const char *a = d->access; *a && ok; a++) ok = strchr("rwm", *a) != NULL;
      if (!ok) {
        oci_path_key(sp, sizeof(sp), ep, "access");
        return oci_perr(c, sp, "must be a non-empty combination of r, w and m, got \"%s\"",
                        d->access);
      }
    }
  }
  return 0;
}

static int parse_memory(const struct oci_pctx *c, const json_t *o, const char *path,
                        struct oci_memory *m) {
  if (oci_want_object(c, o, path) < 0) return -1;
  if (oci_get_int(c, o, path, "limit", false, NO_LIMIT_MIN, INT64_MAX, &m->limit, &m->has_limit) <
          0 ||
      oci_get_int(c, o, path, "reservation", false, NO_LIMIT_MIN, INT64_MAX, &m->reservation,
                  &m->has_reservation) < 0 ||
      oci_get_int(c, o, path, "swap", false, NO_LIMIT_MIN, INT64_MAX, &m->swap, &m->has_swap) < 0 ||
      oci_get_int(c, o, path, "kernel", false, NO_LIMIT_MIN, INT64_MAX, &m->kernel,
                  &m->has_kernel) < 0 ||
      oci_get_int(c, o, path, "kernelTCP", false, NO_LIMIT_MIN, INT64_MAX, &m->kernel_tcp,
                  &m->has_kernel_tcp) < 0 ||
      oci_get_uint(c, o, path, "swappiness", false, 100, &m->swappiness, &m->has_swappiness) < 0 ||
      oci_get_bool(c, o, path, "disableOOMKiller", &m->disable_oom_killer,
                   &m->has_disable_oom_killer) < 0 ||
      oci_get_bool(c, o, path, "useHierarchy", &m->use_hierarchy, &m->has_use_hierarchy) < 0 ||
      oci_get_bool(c, o, path, "checkBeforeUpdate", &m->check_before_update,
                   &m->has_check_before_update) < 0)
    return -1;
  return 0;
}

static int parse_cpu(const struct oci_pctx *c, const json_t *o, const char *path,
                     struct oci_cpu *cpu) {
  if (oci_want_object(c, o, path) < 0) return -1;
  if (oci_get_uint(c, o, path, "shares", false, UINT64_MAX, &cpu->shares, &cpu->has_shares) < 0 ||
      oci_get_int(c, o, path, "quota", false, NO_LIMIT_MIN, INT64_MAX, &cpu->quota,
                  &cpu->has_quota) < 0 ||
      oci_get_uint(c, o, path, "burst", false, UINT64_MAX, &cpu->burst, &cpu->has_burst) < 0 ||
      oci_get_uint(c, o, path, "period", false, UINT64_MAX, &cpu->period, &cpu->has_period) < 0 ||
      oci_get_int(c, o, path, "realtimeRuntime", false, INT64_MIN, INT64_MAX,
                  &cpu->realtime_runtime, &cpu->has_realtime_runtime) < 0 ||
      oci_get_uint(c, o, path, "realtimePeriod", false, UINT64_MAX, &cpu->realtime_period,
                   &cpu->has_realtime_period) < 0 ||
      oci_get_int(c, o, path, "idle", false, INT64_MIN, INT64_MAX, &cpu->idle, &cpu->has_idle) <
          0 ||
      oci_get_string(c, o, path, "cpus", false, &cpu->cpus) < 0 ||
      oci_get_string(c, o, path, "mems", false, &cpu->mems) < 0)
    return -1;
  return 0;
}

static int parse_weight(const struct oci_pctx *c, const json_t *o, const char *path,
                        const char *key, uint16_t *out, bool *has) {
  uint64_t v = 0;
  if (oci_get_uint(c, o, path, key, false, UINT16_MAX, &v, has) < 0) return -1;
  if (*has) *out = (uint16_t)v;
  return 0;
}

static int parse_throttle(const struct oci_pctx *c, const json_t *o, const char *parent,
                          const char *key, struct oci_throttle_device **out, size_t *n) {
  char path[OCI_PATH_MAX];
  oci_path_key(path, sizeof(path), parent, key);
  json_t *arr = oci_member(o, key);
  if (!arr) return 0;
  if (!json_is_array(arr)) return oci_perr(c, path, "must be an array");
  size_t count = json_array_size(arr);
  *out = rc_xcalloc(count + 1, sizeof(**out));
  *n = count;
  for (size_t i = 0; i < count; i++) {
    char ep[OCI_PATH_MAX];
    oci_path_idx(ep, sizeof(ep), path, i);
    json_t *e = json_array_get(arr, i);
    struct oci_throttle_device *t = &(*out)[i];
    if (oci_want_object(c, e, ep) < 0 ||
        oci_get_int(c, e, ep, "major", true, 0, INT64_MAX, &t->major, NULL) < 0 ||
        oci_get_int(c, e, ep, "minor", true, 0, INT64_MAX, &t->minor, NULL) < 0 ||
        oci_get_uint(c, e, ep, "rate", true, UINT64_MAX, &t->rate, NULL) < 0)
      return -1;
  }
  return 0;
}

static int parse_blkio(const struct oci_pctx *c, const json_t *o, const char *path,
                       struct oci_blkio *b) {
  if (oci_want_object(c, o, path) < 0) return -1;
  if (parse_weight(c, o, path, "weight", &b->weight, &b->has_weight) < 0 ||
      parse_weight(c, o, path, "leafWeight", &b->leaf_weight, &b->has_leaf_weight) < 0)
    return -1;

  char wp[OCI_PATH_MAX];
  oci_path_key(wp, sizeof(wp), path, "weightDevice");
  json_t *arr = oci_member(o, "weightDevice");
  if (arr) {
    if (!json_is_array(arr)) return oci_perr(c, wp, "must be an array");
    size_t n = json_array_size(arr);
    b->weight_device = rc_xcalloc(n + 1, sizeof(*b->weight_device));
    b->n_weight_device = n;
    for (size_t i = 0; i < n; i++) {
      char ep[OCI_PATH_MAX];
      oci_path_idx(ep, sizeof(ep), wp, i);
      json_t *e = json_array_get(arr, i);
      struct oci_weight_device *w = &b->weight_device[i];
      if (oci_want_object(c, e, ep) < 0 ||
          oci_get_int(c, e, ep, "major", true, 0, INT64_MAX, &w->major, NULL) < 0 ||
          oci_get_int(c, e, ep, "minor", true, 0, INT64_MAX, &w->minor, NULL) < 0 ||
          parse_weight(c, e, ep, "weight", &w->weight, &w->has_weight) < 0 ||
          parse_weight(c, e, ep, "leafWeight", &w->leaf_weight, &w->has_leaf_weight) < 0)
        return -1;
    }
  }
  if (parse_throttle(c, o, path, "throttleReadBpsDevice", &b->throttle_read_bps,
                     &b->n_throttle_read_bps) < 0 ||
      parse_throttle(c, o, path, "throttleWriteBpsDevice", &b->throttle_write_bps,
                     &b->n_throttle_write_bps) < 0 ||
      parse_throttle(c, o, path, "throttleReadIOPSDevice", &b->throttle_read_iops,
                     &b->n_throttle_read_iops) < 0 ||
      parse_throttle(c, o, path, "throttleWriteIOPSDevice", &b->throttle_write_iops,
                     &b->n_throttle_write_iops) < 0)
    return -1;
  return 0;
}

static int parse_hugepages(const struct oci_pctx *c, const json_t *arr, const char *path,
                           struct oci_resources *r) {
  if (!json_is_array(arr)) return oci_perr(c, path, "must be an array");
  size_t n = json_array_size(arr);
  r->hugepage_limits = rc_xcalloc(n + 1, sizeof(*r->hugepage_limits));
  r->n_hugepage_limits = n;
  for (size_t i = 0; i < n; i++) {
    char ep[OCI_PATH_MAX];
    oci_path_idx(ep, sizeof(ep), path, i);
    json_t *e = json_array_get(arr, i);
    struct oci_hugepage_limit *h = &r->hugepage_limits[i];
    if (oci_want_object(c, e, ep) < 0 ||
        oci_get_string(c, e, ep, "pageSize", true, &h->page_size) < 0 ||
        oci_get_uint(c, e, ep, "limit", true, UINT64_MAX, &h->limit, NULL) < 0)
      return -1;
  }
  return 0;
}

static int parse_network(const struct oci_pctx *c, const json_t *o, const char *path,
                         struct oci_resources *r) {
  if (oci_want_object(c, o, path) < 0) return -1;
  uint64_t v = 0;
  if (oci_get_uint(c, o, path, "classID", false, UINT32_MAX, &v, &r->has_class_id) < 0) return -1;
  r->class_id = (uint32_t)v;
  r->has_network = true;

  char pp[OCI_PATH_MAX];
  oci_path_key(pp, sizeof(pp), path, "priorities");
  json_t *arr = oci_member(o, "priorities");
  if (!arr) return 0;
  if (!json_is_array(arr)) return oci_perr(c, pp, "must be an array");
  size_t n = json_array_size(arr);
  r->net_priorities = rc_xcalloc(n + 1, sizeof(*r->net_priorities));
  r->n_net_priorities = n;
  for (size_t i = 0; i < n; i++) {
    char ep[OCI_PATH_MAX];
    oci_path_idx(ep, sizeof(ep), pp, i);
    json_t *e = json_array_get(arr, i);
    struct oci_key_value *kv = &r->net_priorities[i];
    uint64_t prio = 0;
    if (oci_want_object(c, e, ep) < 0 || oci_get_string(c, e, ep, "name", true, &kv->key) < 0 ||
        oci_get_uint(c, e, ep, "priority", true, UINT32_MAX, &prio, NULL) < 0)
      return -1;
    kv->value = rc_xasprintf("%llu", (unsigned long long)prio);
  }
  return 0;
}

static int parse_rdma(const struct oci_pctx *c, const json_t *o, const char *path,
                      struct oci_resources *r) {
  if (oci_want_object(c, o, path) < 0) return -1;
  r->rdma = rc_xcalloc(json_object_size(o) + 1, sizeof(*r->rdma));
  const char *dev;
  json_t *e;
  json_object_foreach((json_t *)o, dev, e) {
    char ep[OCI_PATH_MAX];
    oci_path_map(ep, sizeof(ep), path, dev);
    struct oci_key_value *kv = &r->rdma[r->n_rdma++];
    kv->key = rc_xstrdup(dev);
    uint64_t handles = 0, objects = 0;
    bool has_h = false, has_o = false;
    if (oci_want_object(c, e, ep) < 0 ||
        oci_get_uint(c, e, ep, "hcaHandles", false, UINT32_MAX, &handles, &has_h) < 0 ||
        oci_get_uint(c, e, ep, "hcaObjects", false, UINT32_MAX, &objects, &has_o) < 0)
      return -1;
    /* Already in the rdma.max syntax, with only the limits that were given. */
    if (has_h && has_o)
      kv->value = rc_xasprintf("hca_handle=%llu hca_object=%llu", (unsigned long long)handles,
                               (unsigned long long)objects);
    else if (has_h)
      kv->value = rc_xasprintf("hca_handle=%llu", (unsigned long long)handles);
    else if (has_o)
      kv->value = rc_xasprintf("hca_object=%llu", (unsigned long long)objects);
    else
      kv->value = rc_xstrdup("");
  }
  return 0;
}

int oci_parse_resources(const struct oci_pctx *c, const json_t *obj, const char *parent,
                        struct oci_resources *r) {
  char path[OCI_PATH_MAX];
  if (oci_want_object(c, obj, parent) < 0) return -1;
  json_t *v;
  if ((v = oci_member(obj, "devices"))) {
    oci_path_key(path, sizeof(path), parent, "devices");
    if (parse_device_rules(c, v, path, r) < 0) return -1;
  }
  if ((v = oci_member(obj, "memory"))) {
    oci_path_key(path, sizeof(path), parent, "memory");
    if (parse_memory(c, v, path, &r->memory) < 0) return -1;
    r->has_memory = true;
  }
  if ((v = oci_member(obj, "cpu"))) {
    oci_path_key(path, sizeof(path), parent, "cpu");
    if (parse_cpu(c, v, path, &r->cpu) < 0) return -1;
    r->has_cpu = true;
  }
  if ((v = oci_member(obj, "pids"))) {
    oci_path_key(path, sizeof(path), parent, "pids");
    if (oci_want_object(c, v, path) < 0) return -1;
    /* The spec marks limit required, but runtimes (runc included) read a missing one as
     * "no limit"; has_pids_limit stays false then. */
    if (oci_get_int(c, v, path, "limit", false, INT64_MIN, INT64_MAX, &r->pids_limit,
                    &r->has_pids_limit) < 0)
      return -1;
  }
  if ((v = oci_member(obj, "blockIO"))) {
    oci_path_key(path, sizeof(path), parent, "blockIO");
    if (parse_blkio(c, v, path, &r->blkio) < 0) return -1;
    r->has_blkio = true;
  }
  if ((v = oci_member(obj, "hugepageLimits"))) {
    oci_path_key(path, sizeof(path), parent, "hugepageLimits");
    if (parse_hugepages(c, v, path, r) < 0) return -1;
  }
  if ((v = oci_member(obj, "network"))) {
    oci_path_key(path, sizeof(path), parent, "network");
    if (parse_network(c, v, path, r) < 0) return -1;
  }
  if ((v = oci_member(obj, "rdma"))) {
    oci_path_key(path, sizeof(path), parent, "rdma");
    if (parse_rdma(c, v, path, r) < 0) return -1;
  }
  if (oci_get_string_map(c, obj, parent, "unified", &r->unified, &r->n_unified) < 0) return -1;
  /* The core files that move processes or reshape the tree are the runtime's: a config
   * writing cgroup.procs could pull any host process into the container's cgroup, where
   * kill --all and delete would signal it (runc 1.1.5 writes them all). */
  static const char *const runtime_files[] = {"cgroup.procs", "cgroup.threads",
                                              "cgroup.type",  "cgroup.subtree_control",
                                              "cgroup.kill",  "cgroup.freeze"};
  for (size_t i = 0; i < r->n_unified; i++)
    for (size_t j = 0; j < RC_ARRAY_SIZE(runtime_files); j++)
      if (strcmp(r->unified[i].key, runtime_files[j]) == 0) {
        char up[OCI_PATH_MAX];
        oci_path_key(up, sizeof(up), parent, "unified");
        oci_path_map(path, sizeof(path), up, r->unified[i].key);
        return oci_perr(c, path,
                        "the runtime's to write (it moves processes or changes the cgroup "
                        "tree), not a resource");
      }
  return 0;
}

void oci_resources_free_fields(struct oci_resources *r) {
  for (size_t i = 0; i < r->n_devices; i++) free(r->devices[i].access);
  free(r->devices);
  free(r->cpu.cpus);
  free(r->cpu.mems);
  free(r->blkio.weight_device);
  free(r->blkio.throttle_read_bps);
  free(r->blkio.throttle_write_bps);
  free(r->blkio.throttle_read_iops);
  free(r->blkio.throttle_write_iops);
  for (size_t i = 0; i < r->n_hugepage_limits; i++) free(r->hugepage_limits[i].page_size);
  free(r->hugepage_limits);
  oci_free_kv(r->net_priorities, r->n_net_priorities);
  oci_free_kv(r->unified, r->n_unified);
  oci_free_kv(r->rdma, r->n_rdma);
  memset(r, 0, sizeof(*r));
}

int oci_resources_parse(const char *json_text, size_t len, const char *what,
                        struct oci_resources *out, struct rc_error *err) {
  struct oci_pctx c = {what ? what : "resources", err};
  memset(out, 0, sizeof(*out));
  json_error_t je;
  json_t *root = oci_json_load(json_text, len, &je);
  if (!root)
    return rc_err(err, 0, "%s: invalid JSON at line %d column %d: %s", c.file, je.line, je.column,
                  je.text);
  int r = oci_parse_resources(&c, root, "", out);
  json_decref(root);
  if (r < 0) oci_resources_free_fields(out);
  return r;
}
