/* cgroup v2 resource files. OCI's resources are shaped after v1, so several values are
 * converted the way runc converts them (shares to weight, memory+swap to swap, blkio
 * weight to io weight), so that one config limits alike under both runtimes. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroups_internal.h"
#include "runcell/log.h"
#include "runcell/util.h"

/* A v2 control file is missing when its controller is not enabled for the cgroup (the
 * parent's cgroup.subtree_control lacks it, often because the parent holds processes)
 * or when the kernel lacks the feature. */
#define NOT_ENABLED(ctrl)                                     \
  "the " ctrl                                                 \
  " controller is not enabled for this cgroup (its parent's " \
  "cgroup.subtree_control lacks it) or the kernel does not have it"

static int write_num_or_max(const struct rc_cg_dir *d, const char *file, int64_t v,
                            const char *hint, struct rc_error *err) {
  char buf[32];
  if (v < 0)
    snprintf(buf, sizeof(buf), "max");
  else
    snprintf(buf, sizeof(buf), "%" PRId64, v);
  return rc_cg_write(d, file, buf, hint, err);
}

static int unsupported(const struct rc_cg_dir *d, const char *what, struct rc_error *err) {
  return rc_err(err, ENOTSUP, "cgroup %s: %s is not supported on cgroup v2", d->path, what);
}

int rc_cg_v2_swap_value(const struct oci_memory *m, char *out, size_t len, struct rc_error *err) {
  /* 0 means unset for both, as in runc (a zero limit could never be meant). */
  int64_t limit = m->has_limit ? m->limit : 0, swap = m->has_swap ? m->swap : 0;
  out[0] = '\0';
  /* Unlimited memory without a swap value: unlimited swap too, as v1's memsw would be. */
  if (limit == -1 && swap == 0) {
    snprintf(out, len, "max");
    return 0;
  }
  if (swap == 0) return 0;
  if (swap == -1) {
    snprintf(out, len, "max");
    return 0;
  }
  if (limit == 0)
    return rc_err(err, EINVAL,
                  "memory.swap (%" PRId64
                  ") is set without memory.limit: OCI's swap counts "
                  "memory plus swap, so v2's swap-only limit needs the memory limit",
                  swap);
  if (limit < 0)
    return rc_err(err, EINVAL,
                  "memory.swap (%" PRId64
                  ") cannot be bounded while memory.limit is "
                  "unlimited (-1): OCI's swap counts memory plus swap",
                  swap);
  if (swap < limit)
    return rc_err(err, EINVAL,
                  "memory.swap (%" PRId64 ") must be at least memory.limit (%" PRId64
                  "): it counts memory plus swap",
                  swap, limit);
  snprintf(out, len, "%" PRId64, swap - limit);
  return 0;
}

int rc_cg_v2_memory(const struct rc_cg_dir *d, const struct oci_memory *m, struct rc_error *err) {
  /* v2 has no file for these; runc ignores them there without a word, we warn. (kernel
   * and kernelTCP are warned about by the caller, for v1 too.) */
  if (m->has_swappiness)
    rc_warn("cgroup %s: memory.swappiness is ignored: cgroup v2 has no per-cgroup swappiness",
            d->path);
  if (m->has_disable_oom_killer && m->disable_oom_killer)
    rc_warn(
        "cgroup %s: memory.disableOOMKiller is ignored: cgroup v2 cannot disable the OOM "
        "killer",
        d->path);
  if (m->has_use_hierarchy && !m->use_hierarchy)
    rc_warn("cgroup %s: memory.useHierarchy false is ignored: cgroup v2 is always hierarchical",
            d->path);
  bool limits = (m->has_limit && m->limit) || (m->has_reservation && m->reservation) ||
                (m->has_swap && m->swap);
  if (!limits) return 0;
  if (!rc_cg_has_file(d, "memory.max"))
    return rc_err(err, ENOENT, "cgroup %s: set memory limits: %s", d->path, NOT_ENABLED("memory"));

  char swap[32];
  if (rc_cg_v2_swap_value(m, swap, sizeof(swap), err) < 0)
    return rc_err_wrap(err, "cgroup %s", d->path);
  if (m->has_check_before_update && m->check_before_update && m->has_limit && m->limit > 0) {
    /* Lowering memory.max under the usage makes the kernel reclaim or OOM-kill; the
     * caller asked to refuse instead. */
    cleanup_free char *cur = NULL;
    if (rc_cg_read(d, "memory.current", &cur, err) < 0) return -1;
    if (strtoll(cur, NULL, 10) > m->limit)
      return rc_err(err, EBUSY, "cgroup %s: memory.limit %" PRId64 " is below the current usage %s",
                    d->path, m->limit, cur);
  }
  if (swap[0]) {
    struct rc_error swap_err;
    if (rc_cg_write(d, "memory.swap.max", swap,
                    "the host does not support swap accounting (CONFIG_MEMCG_SWAP, "
                    "swapaccount)",
                    &swap_err) < 0) {
      /* Unlimited or no swap already holds where the kernel keeps no swap account. */
      bool holds = swap_err.code == ENOENT && (strcmp(swap, "max") == 0 || strcmp(swap, "0") == 0);
      if (!holds) {
        *err = swap_err;
        return -1;
      }
    }
  }
  if (m->has_limit && m->limit != 0 && write_num_or_max(d, "memory.max", m->limit, NULL, err) < 0)
    return -1;
  if (m->has_reservation && m->reservation != 0 &&
      write_num_or_max(d, "memory.low", m->reservation, NULL, err) < 0)
    return -1;
  /* memory.kernel: deprecated by the spec and meaningless on v2 (kernel memory is
   * charged to memory.max); ignored, as runc does. */
  return 0;
}

uint64_t rc_cg_v2_shares_to_weight(uint64_t shares) {
  /* Maps v1's 2..262144 linearly onto v2's 1..10000. */
  if (shares == 0) return 0;
  if (shares < 2) shares = 2;
  if (shares > 262144) shares = 262144;
  return 1 + ((shares - 2) * 9999) / 262142;
}

uint64_t rc_cg_v2_blkio_weight_to_io(uint64_t weight) {
  /* Maps blkio's 10..1000 linearly onto io's 1..10000. */
  if (weight == 0) return 0;
  if (weight < 10) weight = 10;
  if (weight > 1000) weight = 1000;
  return 1 + ((weight - 10) * 9999) / 990;
}

int rc_cg_v2_cpu(const struct rc_cg_dir *d, const struct oci_cpu *c, struct rc_error *err) {
  if ((c->has_realtime_period && c->realtime_period != 0) ||
      (c->has_realtime_runtime && c->realtime_runtime != 0))
    return unsupported(d, "cpu.realtimePeriod/realtimeRuntime", err);
  if (c->has_shares && c->shares != 0) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRIu64, rc_cg_v2_shares_to_weight(c->shares));
    if (rc_cg_write(d, "cpu.weight", buf, NOT_ENABLED("cpu"), err) < 0) return -1;
  }
  bool quota = c->has_quota && c->quota != 0, period = c->has_period && c->period != 0;
  if (quota || period) {
    /* cpu.max is "quota period"; a value given alone keeps the other one as it is. */
    char q[32] = "max";
    if (quota && c->quota > 0) {
      snprintf(q, sizeof(q), "%" PRId64, c->quota);
    } else if (!quota) {
      cleanup_free char *cur = NULL;
      if (rc_cg_read(d, "cpu.max", &cur, err) < 0)
        return rc_err_wrap(err, "%s", NOT_ENABLED("cpu"));
      snprintf(q, sizeof(q), "%.*s", (int)strcspn(cur, " "), cur);
    }
    char buf[64];
    if (period)
      snprintf(buf, sizeof(buf), "%s %" PRIu64, q, c->period);
    else
      snprintf(buf, sizeof(buf), "%s", q);
    if (rc_cg_write(d, "cpu.max", buf, NOT_ENABLED("cpu"), err) < 0) return -1;
  }
  if (c->has_burst) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRIu64, c->burst);
    if (rc_cg_write(d, "cpu.max.burst", buf, "the host's kernel has no CFS burst", err) < 0)
      return -1;
  }
  if (c->has_idle) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, c->idle);
    if (rc_cg_write(d, "cpu.idle", buf, "the host's kernel has no SCHED_IDLE groups", err) < 0)
      return -1;
  }
  return 0;
}

int rc_cg_v2_cpuset(const struct rc_cg_dir *d, const struct oci_cpu *c, struct rc_error *err) {
  if (c->cpus && *c->cpus && rc_cg_write(d, "cpuset.cpus", c->cpus, NOT_ENABLED("cpuset"), err) < 0)
    return -1;
  if (c->mems && *c->mems && rc_cg_write(d, "cpuset.mems", c->mems, NOT_ENABLED("cpuset"), err) < 0)
    return -1;
  return 0;
}

int rc_cg_v2_pids(const struct rc_cg_dir *d, int64_t limit, struct rc_error *err) {
  return write_num_or_max(d, "pids.max", limit <= 0 ? -1 : limit, NOT_ENABLED("pids"), err);
}

static int write_io_max(const struct rc_cg_dir *d, const char *key,
                        const struct oci_throttle_device *t, size_t n, struct rc_error *err) {
  for (size_t i = 0; i < n; i++) {
    /* v1 read a zero rate as "no limit"; v2 spells that "max". */
    char rate[32] = "max";
    if (t[i].rate) snprintf(rate, sizeof(rate), "%" PRIu64, t[i].rate);
    char line[128];
    snprintf(line, sizeof(line), "%" PRId64 ":%" PRId64 " %s=%s", t[i].major, t[i].minor, key,
             rate);
    if (rc_cg_write(d, "io.max", line, NOT_ENABLED("io"), err) < 0) return -1;
  }
  return 0;
}

int rc_cg_v2_io(const struct rc_cg_dir *d, const struct oci_blkio *b, struct rc_error *err) {
  bool leaf = b->has_leaf_weight;
  for (size_t i = 0; i < b->n_weight_device; i++)
    leaf = leaf || b->weight_device[i].has_leaf_weight;
  /* CFQ's leaf weights died with CFQ; runc ignores them on v2 without a word. */
  if (leaf)
    rc_warn("cgroup %s: blockIO leafWeight is ignored: cgroup v2 has no leaf weights", d->path);
  /* BFQ takes blkio's own 10..1000 scale; io.weight (for other schedulers) its own. */
  bool bfq = rc_cg_has_file(d, "io.bfq.weight");
  const char *wfile = bfq ? "io.bfq.weight" : "io.weight";
  const char *whint =
      "the io controller is not enabled for this cgroup or the host's I/O "
      "scheduler offers no weights";
  if (b->has_weight && b->weight != 0) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRIu64,
             bfq ? (uint64_t)b->weight : rc_cg_v2_blkio_weight_to_io(b->weight));
    if (rc_cg_write(d, wfile, buf, whint, err) < 0) return -1;
  }
  for (size_t i = 0; i < b->n_weight_device; i++) {
    const struct oci_weight_device *w = &b->weight_device[i];
    if (!w->has_weight) continue;
    char line[96];
    snprintf(line, sizeof(line), "%" PRId64 ":%" PRId64 " %" PRIu64, w->major, w->minor,
             bfq ? (uint64_t)w->weight : rc_cg_v2_blkio_weight_to_io(w->weight));
    if (rc_cg_write(d, wfile, line, whint, err) == 0) continue;
    /* A device weight takes a disk whose scheduler weighs cgroups (iocost enabled, or
     * BFQ); elsewhere the kernel refuses it. A weight is a share, not a limit, and runc
     * 1.1.5 leaves weightDevice out on v2 altogether: warn and go on rather than fail a
     * config that runs under runc. */
    if (err->code != EOPNOTSUPP) return -1;
    rc_warn("cgroup %s: blockIO.weightDevice %" PRId64 ":%" PRId64 " is not applied: %s", d->path,
            w->major, w->minor, err->msg);
  }
  if (write_io_max(d, "rbps", b->throttle_read_bps, b->n_throttle_read_bps, err) < 0 ||
      write_io_max(d, "wbps", b->throttle_write_bps, b->n_throttle_write_bps, err) < 0 ||
      write_io_max(d, "riops", b->throttle_read_iops, b->n_throttle_read_iops, err) < 0 ||
      write_io_max(d, "wiops", b->throttle_write_iops, b->n_throttle_write_iops, err) < 0)
    return -1;
  return 0;
}

int rc_cg_v2_hugetlb(const struct rc_cg_dir *d, const struct oci_hugepage_limit *l, size_t n,
                     struct rc_error *err) {
  for (size_t i = 0; i < n; i++) {
    const char *size = l[i].page_size ? l[i].page_size : "";
    bool ok = *size != '\0';
    for (const char *c = size; *c; c++)
      if (!isalnum((unsigned char)*c)) ok = false;
    if (!ok)
      return rc_err(err, EINVAL, "cgroup %s: hugepage size \"%s\" is not valid", d->path, size);
    char file[96], value[32];
    snprintf(file, sizeof(file), "hugetlb.%s.max", size);
    snprintf(value, sizeof(value), "%" PRIu64, l[i].limit);
    cleanup_free char *hint = rc_xasprintf(
        "the host has no %s huge pages, or the hugetlb controller is not enabled for this "
        "cgroup",
        size);
    if (rc_cg_write(d, file, value, hint, err) < 0) return -1;
  }
  return 0;
}

int rc_cg_v2_unified(const struct rc_cg_dir *d, const struct oci_key_value *kv, size_t n,
                     struct rc_error *err) {
  for (size_t i = 0; i < n; i++) {
    const char *key = kv[i].key ? kv[i].key : "";
    /* The key names a file in the container's own directory, nothing else. */
    if (!*key || strchr(key, '/') || strcmp(key, ".") == 0 || strcmp(key, "..") == 0)
      return rc_err(err, EINVAL,
                    "cgroup %s: linux.resources.unified key \"%s\" is not a cgroup file name",
                    d->path, key);
    char hint[160];
    snprintf(hint, sizeof(hint),
             "no such cgroup v2 file (is the \"%.*s\" controller enabled for this cgroup?)",
             (int)strcspn(key, "."), key);
    if (rc_cg_write(d, key, kv[i].value ? kv[i].value : "", hint, err) < 0) return -1;
  }
  return 0;
}

int rc_cg_v2_freeze(const struct rc_cg_dir *d, bool freeze, struct rc_error *err) {
  return rc_cg_write(d, "cgroup.freeze", freeze ? "1" : "0",
                     "the host's kernel has no cgroup v2 freezer (it needs Linux 5.2)", err);
}

int rc_cg_v2_type(const struct rc_cg_dir *d, enum rc_cg_v2_type *out) {
  *out = RC_CG_V2_DOMAIN;
  cleanup_free char *type = NULL;
  struct rc_error ignore;
  /* No cgroup.type before Linux 4.14: no threaded mode either. */
  if (rc_cg_read(d, "cgroup.type", &type, &ignore) < 0) return -1;
  if (strcmp(type, "domain invalid") == 0)
    *out = RC_CG_V2_DOMAIN_INVALID;
  else if (strcmp(type, "domain threaded") == 0)
    *out = RC_CG_V2_DOMAIN_THREADED;
  else if (strcmp(type, "threaded") == 0)
    *out = RC_CG_V2_THREADED;
  return 0;
}

int rc_cg_v2_join_threaded(const struct rc_cg_dir *d, struct rc_error *err) {
  enum rc_cg_v2_type type;
  if (rc_cg_v2_type(d, &type) < 0 || type != RC_CG_V2_DOMAIN_INVALID) return 0;
  return rc_cg_write(d, "cgroup.type", "threaded", NULL, err);
}

void rc_cg_v2_enable_controllers(const struct rc_cg_dir *d) {
  struct rc_error ignore;
  cleanup_free char *avail = NULL, *enabled = NULL;
  if (rc_cg_read(d, "cgroup.controllers", &avail, &ignore) < 0) return;
  if (rc_cg_read(d, "cgroup.subtree_control", &enabled, &ignore) < 0) return;
  for (char *save = NULL, *c = strtok_r(avail, " ", &save); c; c = strtok_r(NULL, " ", &save)) {
    if (rc_cg_list_has(enabled, c)) continue;
    /* One per write: a refusal (EBUSY from a cgroup holding processes, or a threaded
     * subtree) must not keep the others from being enabled. */
    cleanup_free char *op = rc_xasprintf("+%s", c);
    (void)rc_cg_write(d, "cgroup.subtree_control", op, NULL, &ignore);
  }
}
