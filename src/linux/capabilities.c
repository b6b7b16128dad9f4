/* Capabilities and identity of the container process: the bounding-set drop, the
 * user/group switch and the four other capability sets (effective, permitted,
 * inheritable, ambient), in the order the kernel's rules require. */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "runcell/log.h"
#include "runcell/process_attrs.h"
#include "runcell/util.h"

/* Writes the capability's name as the spec spells it (CAP_KILL). libcap gives lowercase
 * names, and a bare number for capabilities newer than itself. */
static void cap_name(int cap, char *buf, size_t len) {
  char *n = cap_to_name((cap_value_t)cap);
  if (!n || !isalpha((unsigned char)n[0])) {
    snprintf(buf, len, "capability %d", cap);
  } else {
    snprintf(buf, len, "%s", n);
    for (char *c = buf; *c; c++) *c = (char)toupper((unsigned char)*c);
  }
  if (n) cap_free(n);
}

/* The highest capability the running kernel knows. The compile-time CAP_LAST_CAP may be
 * newer or older than the kernel: dropping a capability the kernel does not know fails
 * with EINVAL, and one it knows but our headers do not would silently stay. The bounding
 * set answers EINVAL past the last capability; /proc/sys/kernel/cap_last_cap is not asked:
 * this runs after pivot_root, and in exec inside the container, where /proc is the
 * container's and a file of its choosing there ("0") would keep the bounding set whole. */
static int kernel_last_cap(void) {
  int last = 0;
  while (last < 63 && prctl(PR_CAPBSET_READ, (unsigned long)last + 1, 0, 0, 0) >= 0) last++;
  return last;
}

static uint64_t known_caps_mask(int last) {
  return last >= 63 ? UINT64_MAX : (UINT64_C(1) << (last + 1)) - 1;
}

/* The first capability in mask, or -1. */
static int first_cap(uint64_t mask) {
  return mask ? __builtin_ctzll(mask) : -1;
}

/* Drops from the bounding set every capability the kernel knows that keep lacks. */
static int drop_bounding_except(uint64_t keep, struct rc_error *err) {
  int last = kernel_last_cap();
  for (int cap = 0; cap <= last; cap++) {
    if (keep & (UINT64_C(1) << cap)) continue;
    int r = prctl(PR_CAPBSET_READ, (unsigned long)cap, 0, 0, 0);
    /* Already absent: skipping keeps this working without CAP_SETPCAP when the runtime
     * was started with a reduced bounding set. */
    if (r == 0) continue;
    if (r > 0 && prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0, 0, 0) == 0) continue;
    char name[64];
    cap_name(cap, name, sizeof(name));
    return rc_err(err, errno, "drop %s from the bounding set", name);
  }
  return 0;
}

int rc_caps_drop_bounding(const struct oci_process *p, struct rc_error *err) {
  const struct oci_capabilities *c = &p->capabilities;
  /* An absent capabilities object or bounding set is an empty set (spec), so everything
   * goes. */
  return drop_bounding_except(p->has_capabilities && c->has_bounding ? c->bounding : 0, err);
}

struct cap_sets {
  uint64_t effective, permitted, inheritable, ambient;
};

static int capset_raw(const struct cap_sets *s, struct rc_error *err) {
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
  memset(data, 0, sizeof(data));
  data[0].effective = (uint32_t)s->effective;
  data[1].effective = (uint32_t)(s->effective >> 32);
  data[0].permitted = (uint32_t)s->permitted;
  data[1].permitted = (uint32_t)(s->permitted >> 32);
  data[0].inheritable = (uint32_t)s->inheritable;
  data[1].inheritable = (uint32_t)(s->inheritable >> 32);
  if (capset(&hdr, data) == 0) return 0;
  int e = errno;

  /* EPERM alone does not say which capability is at fault: compare with what the
   * process holds now to name it. */
  struct __user_cap_data_struct cur[_LINUX_CAPABILITY_U32S_3];
  memset(cur, 0, sizeof(cur));
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  if (e == EPERM && capget(&hdr, cur) == 0) {
    uint64_t cur_prm = (uint64_t)cur[1].permitted << 32 | cur[0].permitted;
    uint64_t cur_inh = (uint64_t)cur[1].inheritable << 32 | cur[0].inheritable;
    uint64_t bset = 0;
    for (int cap = 0; cap < 64; cap++)
      if (prctl(PR_CAPBSET_READ, (unsigned long)cap, 0, 0, 0) > 0) bset |= UINT64_C(1) << cap;
    char name[64];
    int bad = first_cap(s->permitted & ~cur_prm);
    if (bad >= 0) {
      cap_name(bad, name, sizeof(name));
      return rc_err(err, e, "set capabilities: permitted %s is not held by the runtime", name);
    }
    bad = first_cap(s->inheritable & ~(cur_inh | bset));
    if (bad >= 0) {
      cap_name(bad, name, sizeof(name));
      return rc_err(err, e, "set capabilities: inheritable %s is not in the bounding set", name);
    }
  }
  return rc_err(err, e,
                "set capabilities effective=0x%" PRIx64 " permitted=0x%" PRIx64
                " inheritable=0x%" PRIx64,
                s->effective, s->permitted, s->inheritable);
}

static int held_sets(uint64_t *effective, uint64_t *permitted, struct rc_error *err) {
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct cur[_LINUX_CAPABILITY_U32S_3];
  memset(cur, 0, sizeof(cur));
  if (capget(&hdr, cur) < 0) return rc_err(err, errno, "read the capability sets");
  *effective = (uint64_t)cur[1].effective << 32 | cur[0].effective;
  *permitted = (uint64_t)cur[1].permitted << 32 | cur[0].permitted;
  return 0;
}

/* The bounding set cut to bounding, ambient and inheritable emptied, effective and
 * permitted cut to held. */
static int reduce(uint64_t bounding, uint64_t held, struct rc_error *err) {
  if (drop_bounding_except(bounding, err) < 0) return -1;
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return rc_err(err, errno, "clear the ambient capabilities");
  struct cap_sets s = {0};
  if (held_sets(&s.effective, &s.permitted, err) < 0) return -1;
  s.effective &= held;
  s.permitted &= held;
  return capset_raw(&s, err);
}

int rc_caps_reduce_to(uint64_t keep, struct rc_error *err) {
  return reduce(keep, keep, err);
}

/* Checks what the kernel would refuse later, before anything is changed, so that the
 * error names the capability rather than saying "Operation not permitted". */
static int check_sets(const struct cap_sets *s, struct rc_error *err) {
  char name[64];
  int bad = first_cap(s->effective & ~s->permitted);
  if (bad >= 0) {
    cap_name(bad, name, sizeof(name));
    return rc_err(err, 0, "capability %s is in the effective set but not in the permitted set",
                  name);
  }
  return 0;
}

static int set_keepcaps(int on, struct rc_error *err) {
  if (prctl(PR_SET_KEEPCAPS, (unsigned long)on, 0, 0, 0) < 0)
    return rc_err(err, errno, "prctl(PR_SET_KEEPCAPS, %d)", on);
  return 0;
}

static int switch_user(const struct oci_user *u, bool setgroups_allowed, struct rc_error *err) {
  if (setgroups_allowed) {
    /* Always call it, even with no additionalGids: the runtime's own supplementary groups
     * must not leak into the container. */
    if (setgroups(u->n_additional_gids, u->additional_gids) < 0)
      return rc_err(err, errno, "setgroups (%zu additionalGids)", u->n_additional_gids);
  }
  if (setresgid(u->gid, u->gid, u->gid) < 0)
    return rc_err(err, errno, "setresgid to gid %u", (unsigned)u->gid);
  if (setresuid(u->uid, u->uid, u->uid) < 0)
    return rc_err(err, errno, "setresuid to uid %u", (unsigned)u->uid);
  return 0;
}

int rc_caps_drop_this_thread(struct rc_error *err) {
  uint64_t effective = 0, permitted = 0;
  if (held_sets(&effective, &permitted, err) < 0) return -1;
  if (permitted == 0) return 0; /* an unprivileged runcell: nothing to give up */
  return reduce(0, 0, err);
}

static int raise_ambient(uint64_t ambient, struct rc_error *err) {
  /* Clearing first makes the result independent of what the runtime had (the uid change
   * already clears it when leaving root, but not for uid 0). */
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) {
    if (errno == EINVAL && ambient == 0) return 0; /* kernel before 4.3: nothing to clear */
    return rc_err(err, errno, "clear the ambient capability set");
  }
  for (int cap = 0; cap < 64; cap++) {
    if (!(ambient & (UINT64_C(1) << cap))) continue;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (unsigned long)cap, 0, 0) < 0) {
      char name[64];
      cap_name(cap, name, sizeof(name));
      return rc_err(err, errno, "raise ambient capability %s", name);
    }
  }
  return 0;
}

int rc_apply_user_and_caps(const struct oci_process *p, bool setgroups_allowed,
                           struct rc_error *err) {
  const struct oci_capabilities *c = &p->capabilities;
  bool has = p->has_capabilities;
  /* Capabilities the running kernel does not know are left out (as runc does): asking for
   * them could only fail. */
  uint64_t known = known_caps_mask(kernel_last_cap());
  struct cap_sets want = {
      .effective = has && c->has_effective ? c->effective & known : 0,
      .permitted = has && c->has_permitted ? c->permitted & known : 0,
      .inheritable = has && c->has_inheritable ? c->inheritable & known : 0,
      .ambient = has && c->has_ambient ? c->ambient & known : 0,
  };
  if (check_sets(&want, err) < 0) return -1;
  /* The kernel refuses PR_CAP_AMBIENT_RAISE unless the capability is both permitted and
   * inheritable. runc's default spec lists ambient capabilities without an inheritable set
   * and runc only warns about them, so bundles written for runc rely on that: drop them
   * from the ambient set with a warning rather than failing. */
  uint64_t unraisable = want.ambient & ~(want.permitted & want.inheritable);
  for (int cap = 0; unraisable && cap < 64; cap++) {
    if (!(unraisable & (UINT64_C(1) << cap))) continue;
    char name[64];
    cap_name(cap, name, sizeof(name));
    rc_debug("cannot raise ambient capability %s: not in the permitted and inheritable sets", name);
  }
  want.ambient &= ~unraisable;
  if (!setgroups_allowed && p->user.n_additional_gids > 0)
    return rc_err(err, EPERM,
                  "user.additionalGids (%zu) cannot be set: setgroups is denied in this user "
                  "namespace (/proc/self/setgroups)",
                  p->user.n_additional_gids);

  /* Changing uid from 0 to non-zero clears the permitted set unless KEEPCAPS is on; the
   * effective set is cleared either way, which is why capset comes after the switch. */
  if (set_keepcaps(1, err) < 0) return -1;
  if (switch_user(&p->user, setgroups_allowed, err) < 0) return -1;
  if (capset_raw(&want, err) < 0) return -1;
  if (raise_ambient(want.ambient, err) < 0) return -1;
  /* Not inherited across exec anyway, but a later setuid in the runtime must not keep
   * capabilities by accident. */
  return set_keepcaps(0, err);
}
