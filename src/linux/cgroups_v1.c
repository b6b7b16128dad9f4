/* cgroup v1 resource files: the OCI values map almost one to one onto v1's files (the
 * spec was shaped after them); what needs care is the order of writes the kernel checks
 * against each other (memory vs memory+swap, CFS period vs quota). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroups_internal.h"
#include "runcell/log.h"
#include "runcell/util.h"

static const char swap_hint[] =
    "the host does not support swap accounting (enable it with swapaccount=1 or a kernel "
    "with CONFIG_MEMCG_SWAP)";

static int write_i64(const struct rc_cg_dir *d, const char *file, int64_t v, const char *hint,
                     struct rc_error *err) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%" PRId64, v);
  return rc_cg_write(d, file, buf, hint, err);
}

static int write_u64(const struct rc_cg_dir *d, const char *file, uint64_t v, const char *hint,
                     struct rc_error *err) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%" PRIu64, v);
  return rc_cg_write(d, file, buf, hint, err);
}

int rc_cg_v1_memory(const struct rc_cg_dir *d, const struct oci_memory *m, struct rc_error *err) {
  /* As in runc, 0 means unset: no one means a container with no memory at all. */
  bool set_limit = m->has_limit && m->limit != 0, set_swap = m->has_swap && m->swap != 0;
  int64_t swap = m->swap;
  /* memory.memsw.* is memory plus swap, like OCI's swap, so no conversion; but the kernel
   * insists that limit <= memsw after every single write. */
  if (set_limit && set_swap && m->limit > 0 && m->swap > 0 && m->swap < m->limit)
    return rc_err(err, EINVAL,
                  "cgroup %s: memory.swap (%" PRId64 ") must be at least memory.limit (%" PRId64
                  "): it counts memory plus swap",
                  d->path, m->swap, m->limit);
  /* Lifting the memory limit with memsw still bounded is refused by the kernel; as in
   * runc, an unlimited memory without a swap value lifts memsw too (where it exists). */
  if (set_limit && m->limit == -1 && !set_swap &&
      rc_cg_has_file(d, "memory.memsw.limit_in_bytes")) {
    set_swap = true;
    swap = -1;
  }
  if (set_limit && set_swap) {
    cleanup_free char *cur_s = NULL;
    if (rc_cg_read(d, "memory.limit_in_bytes", &cur_s, err) < 0) return -1;
    uint64_t cur = strtoull(cur_s, NULL, 10);
    /* A memsw at or above the current limit is always accepted, and then so is the new
     * limit (<= swap); otherwise lowering the limit first keeps limit <= memsw. */
    bool swap_first = swap == -1 || (uint64_t)swap >= cur;
    if (swap_first) {
      if (write_i64(d, "memory.memsw.limit_in_bytes", swap, swap_hint, err) < 0) return -1;
      if (write_i64(d, "memory.limit_in_bytes", m->limit, NULL, err) < 0) return -1;
    } else {
      if (write_i64(d, "memory.limit_in_bytes", m->limit, NULL, err) < 0) return -1;
      if (write_i64(d, "memory.memsw.limit_in_bytes", swap, swap_hint, err) < 0) return -1;
    }
  } else if (set_limit) {
    if (write_i64(d, "memory.limit_in_bytes", m->limit, NULL, err) < 0) return -1;
  } else if (set_swap) {
    if (write_i64(d, "memory.memsw.limit_in_bytes", swap, swap_hint, err) < 0) return -1;
  }
  if (m->has_reservation && m->reservation != 0 &&
      write_i64(d, "memory.soft_limit_in_bytes", m->reservation, NULL, err) < 0)
    return -1;
  /* memory.kernel and kernelTCP (kmem.*) are ignored with a warning by the caller, as
   * runc does: deprecated by the spec, and kmem.limit_in_bytes no longer enforced by
   * kernels since 5.16. */
  if (m->has_swappiness) {
    if (m->swappiness > 100)
      return rc_err(err, EINVAL, "cgroup %s: memory.swappiness %" PRIu64 " is not in 0..100",
                    d->path, m->swappiness);
    if (write_u64(d, "memory.swappiness", m->swappiness, NULL, err) < 0) return -1;
  }
  if (m->has_disable_oom_killer &&
      rc_cg_write(d, "memory.oom_control", m->disable_oom_killer ? "1" : "0", NULL, err) < 0)
    return -1;
  if (m->has_use_hierarchy) {
    struct rc_error hier_err;
    if (rc_cg_write(d, "memory.use_hierarchy", m->use_hierarchy ? "1" : "0", NULL, &hier_err) < 0) {
      /* Kernels since 5.10 are always hierarchical and refuse 0 (runc never writes it). */
      if (m->use_hierarchy || hier_err.code != EINVAL) {
        *err = hier_err;
        return -1;
      }
      rc_warn(
          "cgroup %s: memory.useHierarchy false is ignored: the kernel refuses it (always "
          "hierarchical since Linux 5.10)",
          d->path);
    }
  }
  return 0;
}

int rc_cg_v1_cpu(const struct rc_cg_dir *d, const struct oci_cpu *c, struct rc_error *err) {
  /* As in runc, 0 means unset for every cpu value but burst and idle. */
  bool period = c->has_period && c->period != 0, quota = c->has_quota && c->quota != 0;
  if (c->has_shares && c->shares != 0 && write_u64(d, "cpu.shares", c->shares, NULL, err) < 0)
    return -1;
  /* A smaller period can be refused while the old quota would exceed the parent's
   * bandwidth at the new period; the new quota may fix that, so retry after it. */
  bool period_pending = false;
  if (period && write_u64(d, "cpu.cfs_period_us", c->period,
                          "the host has no CFS bandwidth control", err) < 0) {
    if (!(err->code == EINVAL && quota)) return -1;
    period_pending = true;
  }
  if (quota &&
      write_i64(d, "cpu.cfs_quota_us", c->quota, "the host has no CFS bandwidth control", err) < 0)
    return -1;
  if (period_pending && write_u64(d, "cpu.cfs_period_us", c->period,
                                  "the host has no CFS bandwidth control", err) < 0)
    return -1;
  if (c->has_burst &&
      write_u64(d, "cpu.cfs_burst_us", c->burst, "the host's kernel has no CFS burst", err) < 0)
    return -1;
  /* The realtime budget is checked against the period, so the period goes first. */
  if (c->has_realtime_period && c->realtime_period != 0 &&
      write_u64(d, "cpu.rt_period_us", c->realtime_period,
                "the host's kernel has no realtime group scheduling (CONFIG_RT_GROUP_SCHED)",
                err) < 0)
    return -1;
  if (c->has_realtime_runtime && c->realtime_runtime != 0 &&
      write_i64(d, "cpu.rt_runtime_us", c->realtime_runtime,
                "the host's kernel has no realtime group scheduling (CONFIG_RT_GROUP_SCHED)",
                err) < 0) {
    if (err->code == EINVAL) {
      /* The usual cause: a group's budget comes out of its parent's, which is 0 unless
       * someone gave the parent one. */
      struct rc_cg_dir parent = {.fd = openat(d->fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC),
                                 .path = d->path};
      cleanup_free char *budget = NULL;
      struct rc_error ignore;
      if (parent.fd >= 0 && rc_cg_read(&parent, "cpu.rt_runtime_us", &budget, &ignore) == 0)
        rc_err_wrap(err,
                    "cpu.realtimeRuntime must fit in the parent cgroup's realtime budget "
                    "(its cpu.rt_runtime_us is %s)",
                    budget);
      if (parent.fd >= 0) close(parent.fd);
    }
    return -1;
  }
  if (c->has_idle &&
      write_i64(d, "cpu.idle", c->idle, "the host's kernel has no SCHED_IDLE groups", err) < 0)
    return -1;
  return 0;
}

int rc_cg_v1_cpuset(const struct rc_cg_dir *d, const struct oci_cpu *c, struct rc_error *err) {
  if (c->cpus && *c->cpus && rc_cg_write(d, "cpuset.cpus", c->cpus, NULL, err) < 0) return -1;
  if (c->mems && *c->mems && rc_cg_write(d, "cpuset.mems", c->mems, NULL, err) < 0) return -1;
  return 0;
}

int rc_cg_v1_cpuset_inherit(const struct rc_cg_dir *parent, const struct rc_cg_dir *child,
                            struct rc_error *err) {
  static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
  for (size_t i = 0; i < RC_ARRAY_SIZE(files); i++) {
    cleanup_free char *mine = NULL, *theirs = NULL;
    if (rc_cg_read(child, files[i], &mine, err) < 0) return -1;
    if (*mine) continue;
    if (rc_cg_read(parent, files[i], &theirs, err) < 0) return -1;
    if (*theirs && rc_cg_write(child, files[i], theirs, NULL, err) < 0) return -1;
  }
  return 0;
}

int rc_cg_v1_pids(const struct rc_cg_dir *d, int64_t limit, struct rc_error *err) {
  if (limit <= 0) return rc_cg_write(d, "pids.max", "max", NULL, err);
  return write_i64(d, "pids.max", limit, NULL, err);
}

/* One write to devices.allow or devices.deny. */
static int write_exception(const struct rc_cg_dir *d, bool allow, const struct rc_dev_exception *e,
                           unsigned access, struct rc_error *err) {
  char line[64];
  rc_cg_dev_format(e->type, e->major, e->minor, access, line, sizeof(line));
  return rc_cg_write(d, allow ? "devices.allow" : "devices.deny", line, NULL, err);
}

int rc_cg_v1_devices(const struct rc_cg_dir *d, const struct oci_device_cgroup *rules, size_t n,
                     struct rc_error *err) {
  struct rc_dev_policy want = {0}, have = {0}, after = {0};
  cleanup_free char *list = NULL, *list_after = NULL;
  int ret = -1;
  if (rc_cg_dev_policy_build(rules, n, true, &want, err) < 0)
    return rc_err_wrap(err, "cgroup %s", d->path);
  if (rc_cg_read(d, "devices.list", &list, err) < 0) goto out;
  if (rc_cg_dev_policy_from_list(list, &have, err) < 0) {
    rc_err_wrap(err, "cgroup %s", d->path);
    goto out;
  }
  /* The fewest writes from what the cgroup has to what the rules ask (as runc's
   * transition), so that an update does not cut access to devices it keeps allowing. A
   * deny-list cannot be read back (devices.list shows only "a *:* rwm"), so moving from
   * one always starts over. */
  bool restart = have.default_allow || have.default_allow != want.default_allow;
  if (restart) {
    if (rc_cg_write(d, want.default_allow ? "devices.allow" : "devices.deny", "a", NULL, err) < 0)
      goto out;
    rc_cg_dev_policy_free(&have);
  }
  for (size_t i = 0; i < have.n; i++) {
    const struct rc_dev_exception *e = &have.ex[i];
    unsigned dropped = e->access & ~rc_cg_dev_policy_access(&want, e->type, e->major, e->minor);
    if (dropped && write_exception(d, want.default_allow, e, dropped, err) < 0) goto out;
  }
  for (size_t i = 0; i < want.n; i++) {
    const struct rc_dev_exception *e = &want.ex[i];
    unsigned gained = e->access & ~rc_cg_dev_policy_access(&have, e->type, e->major, e->minor);
    if (gained && write_exception(d, !want.default_allow, e, gained, err) < 0) goto out;
  }
  /* The kernel merges and checks against the parent's list, so make sure what it holds now
   * is what was asked; a deny-list can only be checked for being one. */
  if (rc_cg_read(d, "devices.list", &list_after, err) < 0) goto out;
  if (rc_cg_dev_policy_from_list(list_after, &after, err) < 0) {
    rc_err_wrap(err, "cgroup %s", d->path);
    goto out;
  }
  if (want.default_allow ? !after.default_allow : !rc_cg_dev_policy_equal(&want, &after)) {
    rc_err(err, EPERM,
           "cgroup %s: devices.list does not hold the requested device rules after writing them "
           "(the parent cgroup may not allow them)",
           d->path);
    goto out;
  }
  ret = 0;
out:
  rc_cg_dev_policy_free(&want);
  rc_cg_dev_policy_free(&have);
  rc_cg_dev_policy_free(&after);
  return ret;
}

static const char weight_hint[] =
    "the host's I/O scheduler offers no weights (it needs BFQ, or CFQ on old kernels)";

/* CFQ had blkio.weight; with BFQ the same knob is blkio.bfq.weight. */
static const char *weight_file(const struct rc_cg_dir *d, const char *cfq, const char *bfq) {
  return !rc_cg_has_file(d, cfq) && rc_cg_has_file(d, bfq) ? bfq : cfq;
}

static int write_throttles(const struct rc_cg_dir *d, const char *file,
                           const struct oci_throttle_device *t, size_t n, struct rc_error *err) {
  for (size_t i = 0; i < n; i++) {
    char line[96];
    snprintf(line, sizeof(line), "%" PRId64 ":%" PRId64 " %" PRIu64, t[i].major, t[i].minor,
             t[i].rate);
    if (rc_cg_write(d, file, line, "the host has no block I/O throttling", err) < 0) return -1;
  }
  return 0;
}

int rc_cg_v1_blkio(const struct rc_cg_dir *d, const struct oci_blkio *b, struct rc_error *err) {
  if (b->has_weight && write_u64(d, weight_file(d, "blkio.weight", "blkio.bfq.weight"), b->weight,
                                 weight_hint, err) < 0)
    return -1;
  if (b->has_leaf_weight && write_u64(d, "blkio.leaf_weight", b->leaf_weight,
                                      "the host's kernel has no leaf weights (CFQ only)", err) < 0)
    return -1;
  for (size_t i = 0; i < b->n_weight_device; i++) {
    const struct oci_weight_device *w = &b->weight_device[i];
    char line[96];
    if (w->has_weight) {
      snprintf(line, sizeof(line), "%" PRId64 ":%" PRId64 " %u", w->major, w->minor, w->weight);
      if (rc_cg_write(d, weight_file(d, "blkio.weight_device", "blkio.bfq.weight_device"), line,
                      weight_hint, err) < 0) {
        if (err->code == EOPNOTSUPP)
          rc_err_wrap(err,
                      "blockIO.weightDevice: device %" PRId64 ":%" PRId64
                      " does not use the BFQ I/O scheduler (see its queue/scheduler in sysfs)",
                      w->major, w->minor);
        return -1;
      }
    }
    if (w->has_leaf_weight) {
      snprintf(line, sizeof(line), "%" PRId64 ":%" PRId64 " %u", w->major, w->minor,
               w->leaf_weight);
      if (rc_cg_write(d, "blkio.leaf_weight_device", line,
                      "the host's kernel has no leaf weights (CFQ only)", err) < 0)
        return -1;
    }
  }
  if (write_throttles(d, "blkio.throttle.read_bps_device", b->throttle_read_bps,
                      b->n_throttle_read_bps, err) < 0 ||
      write_throttles(d, "blkio.throttle.write_bps_device", b->throttle_write_bps,
                      b->n_throttle_write_bps, err) < 0 ||
      write_throttles(d, "blkio.throttle.read_iops_device", b->throttle_read_iops,
                      b->n_throttle_read_iops, err) < 0 ||
      write_throttles(d, "blkio.throttle.write_iops_device", b->throttle_write_iops,
                      b->n_throttle_write_iops, err) < 0)
    return -1;
  return 0;
}

/* The page size names a file, so it must stay a plain token like "2MB". */
static bool valid_page_size(const char *s) {
  if (!s || !*s) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s)) return false;
  return true;
}

int rc_cg_v1_hugetlb(const struct rc_cg_dir *d, const struct oci_hugepage_limit *l, size_t n,
                     struct rc_error *err) {
  for (size_t i = 0; i < n; i++) {
    if (!valid_page_size(l[i].page_size))
      return rc_err(err, EINVAL, "cgroup %s: hugepage size \"%s\" is not valid", d->path,
                    l[i].page_size ? l[i].page_size : "");
    char file[96];
    snprintf(file, sizeof(file), "hugetlb.%s.limit_in_bytes", l[i].page_size);
    cleanup_free char *hint = rc_xasprintf("the host has no %s huge pages", l[i].page_size);
    if (write_u64(d, file, l[i].limit, hint, err) < 0) return -1;
  }
  return 0;
}

int rc_cg_v1_net_cls(const struct rc_cg_dir *d, uint32_t class_id, struct rc_error *err) {
  return write_u64(d, "net_cls.classid", class_id, NULL, err);
}

int rc_cg_v1_net_prio(const struct rc_cg_dir *d, const struct oci_key_value *p, size_t n,
                      struct rc_error *err) {
  for (size_t i = 0; i < n; i++) {
    if (!p[i].key || !*p[i].key || strpbrk(p[i].key, " \n"))
      return rc_err(err, EINVAL, "cgroup %s: network interface name \"%s\" is not valid", d->path,
                    p[i].key ? p[i].key : "");
    cleanup_free char *line = rc_xasprintf("%s %s", p[i].key, p[i].value ? p[i].value : "0");
    if (rc_cg_write(d, "net_prio.ifpriomap", line, NULL, err) < 0) return -1;
  }
  return 0;
}

int rc_cg_v1_freeze(const struct rc_cg_dir *d, bool freeze, struct rc_error *err) {
  return rc_cg_write(d, "freezer.state", freeze ? "FROZEN" : "THAWED", NULL, err);
}
