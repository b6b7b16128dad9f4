/* The device rules of linux.resources.devices, reduced to the policy they leave behind.
 *
 * The rules are read the way the v1 devices controller reads writes to devices.allow and
 * devices.deny (and the way runc emulates it for v1 and v2 alike): a policy is a default
 * (allow or deny) plus a list of exceptions; a rule that goes against the default adds
 * access to an exception for its exact type:major:minor, a rule that agrees with it
 * takes access away from that exception, and an "all devices" rule resets the whole
 * policy. The start is deny-all, so a config that never says "deny all" still gets an
 * allow-list, as with runc. Together this means the last rule that names a device
 * decides, with one refusal: a rule cannot take a device out of an earlier wildcard
 * exception (say "allow c *:* rwm" then "deny c 1:3 rwm"), because the exception list
 * cannot express it; such a config is an error rather than a silent allow. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroups_internal.h"
#include "runcell/util.h"

/* What every container may use, after its own rules: mknod of anything (the nodes still
 * need allowing to be opened), the standard /dev nodes, ptys and tun. The same list as
 * runc's AllowedDevices (which leaves /dev/console out: a terminal's console is a pty). */
const struct oci_device_cgroup rc_cg_default_device_rules[] = {
    {.allow = true, .type = 'c', .major = -1, .minor = -1, .access = "m"},
    {.allow = true, .type = 'b', .major = -1, .minor = -1, .access = "m"},
    {.allow = true, .type = 'c', .has_major = true, .has_minor = true, .major = 1, .minor = 3},
    {.allow = true, .type = 'c', .has_major = true, .has_minor = true, .major = 1, .minor = 8},
    {.allow = true, .type = 'c', .has_major = true, .has_minor = true, .major = 1, .minor = 7},
    {.allow = true, .type = 'c', .has_major = true, .has_minor = true, .major = 5, .minor = 0},
    {.allow = true, .type = 'c', .has_major = true, .has_minor = true, .major = 1, .minor = 5},
    {.allow = true, .type = 'c', .has_major = true, .has_minor = true, .major = 1, .minor = 9},
    {.allow = true, .type = 'c', .has_major = true, .major = 136, .minor = -1},
    {.allow = true, .type = 'c', .has_major = true, .has_minor = true, .major = 5, .minor = 2},
    {.allow = true, .type = 'c', .has_major = true, .has_minor = true, .major = 10, .minor = 200},
};
const size_t rc_cg_n_default_device_rules = RC_ARRAY_SIZE(rc_cg_default_device_rules);

void rc_cg_dev_policy_free(struct rc_dev_policy *p) {
  free(p->ex);
  p->ex = NULL;
  p->n = 0;
}

static void policy_reset(struct rc_dev_policy *p, bool default_allow) {
  p->default_allow = default_allow;
  p->n = 0;
}

int rc_cg_dev_access_bits(const char *access, unsigned *out) {
  unsigned bits = 0;
  if (!access) {
    *out = RC_DEV_ACC_ALL;
    return 0;
  }
  for (const char *a = access; *a; a++) {
    if (*a == 'r')
      bits |= RC_DEV_ACC_READ;
    else if (*a == 'w')
      bits |= RC_DEV_ACC_WRITE;
    else if (*a == 'm')
      bits |= RC_DEV_ACC_MKNOD;
    else
      return -1;
  }
  if (!bits) return -1;
  *out = bits;
  return 0;
}

static void access_string(unsigned bits, char out[4]) {
  size_t i = 0;
  if (bits & RC_DEV_ACC_READ) out[i++] = 'r';
  if (bits & RC_DEV_ACC_WRITE) out[i++] = 'w';
  if (bits & RC_DEV_ACC_MKNOD) out[i++] = 'm';
  out[i] = '\0';
}

static void number_string(int64_t v, char *buf, size_t len) {
  if (v < 0)
    snprintf(buf, len, "*");
  else
    snprintf(buf, len, "%" PRId64, v);
}

void rc_cg_dev_format(char type, int64_t major, int64_t minor, unsigned access, char *buf,
                      size_t len) {
  char maj[24], min[24], acc[4];
  number_string(major, maj, sizeof(maj));
  number_string(minor, min, sizeof(min));
  access_string(access, acc);
  snprintf(buf, len, "%c %s:%s %s", type, maj, min, acc);
}

static struct rc_dev_exception *find(struct rc_dev_policy *p, char type, int64_t major,
                                     int64_t minor) {
  for (size_t i = 0; i < p->n; i++)
    if (p->ex[i].type == type && p->ex[i].major == major && p->ex[i].minor == minor)
      return &p->ex[i];
  return NULL;
}

unsigned rc_cg_dev_policy_access(const struct rc_dev_policy *p, char type, int64_t major,
                                 int64_t minor) {
  for (size_t i = 0; i < p->n; i++)
    if (p->ex[i].type == type && p->ex[i].major == major && p->ex[i].minor == minor)
      return p->ex[i].access;
  return 0;
}

static void add_exception(struct rc_dev_policy *p, char type, int64_t major, int64_t minor,
                          unsigned access) {
  struct rc_dev_exception *e = find(p, type, major, minor);
  if (e) {
    e->access |= access; /* the kernel merges an exception's access the same way */
    return;
  }
  p->ex = rc_xrealloc(p->ex, (p->n + 1) * sizeof(*p->ex));
  p->ex[p->n++] = (struct rc_dev_exception){type, major, minor, access};
}

/* Takes access away from the exception for exactly type:major:minor. A wildcard
 * exception that covers the device keeps applying to it, so removing access it grants
 * would be ignored: refuse instead (runc does the same). */
static int remove_exception(struct rc_dev_policy *p, size_t index, char type, int64_t major,
                            int64_t minor, unsigned access, struct rc_error *err) {
  const int64_t covering[3][2] = {{-1, minor}, {major, -1}, {-1, -1}};
  for (size_t i = 0; i < RC_ARRAY_SIZE(covering); i++) {
    int64_t cmaj = covering[i][0], cmin = covering[i][1];
    if (cmaj == major && cmin == minor) continue;
    const struct rc_dev_exception *w = find(p, type, cmaj, cmin);
    if (!w || !(w->access & access)) continue;
    char rule[64], wild[64];
    rc_cg_dev_format(type, major, minor, access, rule, sizeof(rule));
    rc_cg_dev_format(type, cmaj, cmin, w->access, wild, sizeof(wild));
    return rc_err(err, EINVAL,
                  "linux.resources.devices[%zu] (%s %s) cannot be enforced: it would punch a "
                  "hole in the wildcard rule \"%s\" from an earlier rule, which device "
                  "cgroups cannot express; narrow the wildcard rule instead",
                  index, p->default_allow ? "allow" : "deny", rule, wild);
  }
  struct rc_dev_exception *e = find(p, type, major, minor);
  if (!e) return 0;
  e->access &= ~access;
  if (e->access == 0) *e = p->ex[--p->n];
  return 0;
}

static int apply_typed(struct rc_dev_policy *p, size_t index, bool allow, char type, int64_t major,
                       int64_t minor, unsigned access, struct rc_error *err) {
  /* A rule against the default is an exception; one that agrees with it revokes one. */
  if (allow != p->default_allow) {
    add_exception(p, type, major, minor, access);
    return 0;
  }
  return remove_exception(p, index, type, major, minor, access, err);
}

int rc_cg_dev_policy_apply(struct rc_dev_policy *p, size_t index, const struct oci_device_cgroup *r,
                           struct rc_error *err) {
  unsigned access;
  if (rc_cg_dev_access_bits(r->access, &access) < 0)
    return rc_err(err, EINVAL,
                  "linux.resources.devices[%zu]: access \"%s\" is not a non-empty subset of "
                  "\"rwm\"",
                  index, r->access);
  char type = r->type ? r->type : 'a';
  int64_t major = r->has_major && r->major >= 0 ? r->major : -1;
  int64_t minor = r->has_minor && r->minor >= 0 ? r->minor : -1;
  /* The kernel's exception list, and the eBPF filter's 32-bit compares, stop here. */
  if (major > INT32_MAX || minor > INT32_MAX)
    return rc_err(err, EINVAL,
                  "linux.resources.devices[%zu]: device number %" PRId64 ":%" PRId64
                  " is out of range",
                  index, major, minor);
  if (type == 'a') {
    bool any_number = major < 0 && minor < 0;
    /* "All devices" resets the policy, as the kernel reads an "a" line (whatever follows
     * it). An allow narrower than that would then open everything, so it is split into
     * its char and block halves instead. */
    if (any_number && (!r->allow || access == RC_DEV_ACC_ALL)) {
      policy_reset(p, r->allow);
      return 0;
    }
    if (apply_typed(p, index, r->allow, 'c', major, minor, access, err) < 0) return -1;
    return apply_typed(p, index, r->allow, 'b', major, minor, access, err);
  }
  if (type != 'c' && type != 'b')
    return rc_err(err, EINVAL, "linux.resources.devices[%zu]: type '%c' is not a, c or b", index,
                  type);
  return apply_typed(p, index, r->allow, type, major, minor, access, err);
}

int rc_cg_dev_policy_build(const struct oci_device_cgroup *rules, size_t n, bool with_defaults,
                           struct rc_dev_policy *out, struct rc_error *err) {
  *out = (struct rc_dev_policy){.default_allow = false};
  for (size_t i = 0; i < n; i++)
    if (rc_cg_dev_policy_apply(out, i, &rules[i], err) < 0) goto fail;
  if (with_defaults)
    for (size_t i = 0; i < rc_cg_n_default_device_rules; i++)
      if (rc_cg_dev_policy_apply(out, n + i, &rc_cg_default_device_rules[i], err) < 0) goto fail;
  return 0;
fail:
  rc_cg_dev_policy_free(out);
  return -1;
}

static int parse_number(const char *s, size_t len, int64_t *out) {
  if (len == 1 && s[0] == '*') {
    *out = -1;
    return 0;
  }
  if (len == 0 || len > 10) return -1;
  int64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

int rc_cg_dev_policy_from_list(const char *list, struct rc_dev_policy *out, struct rc_error *err) {
  /* devices.list shows the exceptions of an allow-list, or the single line "a *:* rwm"
   * for a deny-list (whose own exceptions it cannot show). */
  *out = (struct rc_dev_policy){.default_allow = false};
  for (const char *line = list; line && *line;) {
    const char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    if (len > 0) {
      char type = line[0];
      const char *sp = memchr(line, ' ', len);
      const char *colon = sp ? memchr(sp, ':', len - (size_t)(sp - line)) : NULL;
      const char *sp2 = colon ? memchr(colon, ' ', len - (size_t)(colon - line)) : NULL;
      int64_t major = 0, minor = 0;
      unsigned access = 0;
      char acc[8] = "";
      size_t alen = sp2 ? len - (size_t)(sp2 + 1 - line) : 0;
      if (sp2 && alen < sizeof(acc)) {
        memcpy(acc, sp2 + 1, alen);
        acc[alen] = '\0';
      }
      if (!sp2 || (type != 'a' && type != 'b' && type != 'c') ||
          parse_number(sp + 1, (size_t)(colon - sp - 1), &major) < 0 ||
          parse_number(colon + 1, (size_t)(sp2 - colon - 1), &minor) < 0 ||
          rc_cg_dev_access_bits(acc, &access) < 0) {
        rc_cg_dev_policy_free(out);
        return rc_err(err, EINVAL, "devices.list: cannot parse line \"%.*s\"", (int)len, line);
      }
      if (type == 'a')
        policy_reset(out, true);
      else if (!out->default_allow)
        add_exception(out, type, major, minor, access);
    }
    line = nl ? nl + 1 : NULL;
  }
  return 0;
}

bool rc_cg_dev_policy_equal(const struct rc_dev_policy *a, const struct rc_dev_policy *b) {
  if (a->default_allow != b->default_allow || a->n != b->n) return false;
  for (size_t i = 0; i < a->n; i++)
    if (rc_cg_dev_policy_access(b, a->ex[i].type, a->ex[i].major, a->ex[i].minor) !=
        a->ex[i].access)
      return false;
  return true;
}
