/* The OCI features document (runtime-spec features.md): what this build recognizes.
 * Per the spec it describes the runtime, not the host, so it is mostly static; only
 * seccomp.supportedFlags asks the kernel, as the spec allows. */
#include <errno.h>
#include <jansson.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "runcell/util.h"

#ifndef RUNCELL_VERSION
#define RUNCELL_VERSION "unknown"
#endif

/* Flag values are kernel ABI; older headers lack the newer ones. */
#ifndef SECCOMP_FILTER_FLAG_TSYNC
#define SECCOMP_FILTER_FLAG_TSYNC (1UL << 0)
#endif
#ifndef SECCOMP_FILTER_FLAG_LOG
#define SECCOMP_FILTER_FLAG_LOG (1UL << 1)
#endif
#ifndef SECCOMP_FILTER_FLAG_SPEC_ALLOW
#define SECCOMP_FILTER_FLAG_SPEC_ALLOW (1UL << 2)
#endif

static json_t *string_array(const char *const *names, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(names[i]));
  return a;
}

static json_t *bool_object(const char *key, bool v) {
  json_t *o = json_object();
  json_object_set_new(o, key, json_boolean(v));
  return o;
}

/* Whether the kernel accepts a filter flag. A NULL program makes the kernel fail with
 * EFAULT after it has checked the flags (EINVAL for unknown ones), so nothing is ever
 * installed. */
static bool kernel_accepts(unsigned long flags) {
  long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, NULL);
  return r < 0 && errno == EFAULT;
}

static json_t *supported_flags(void) {
  json_t *a = json_array();
  const struct {
    const char *name;
    unsigned long probe;
  } flags[] = {
      {"SECCOMP_FILTER_FLAG_TSYNC", SECCOMP_FILTER_FLAG_TSYNC},
      {"SECCOMP_FILTER_FLAG_LOG", SECCOMP_FILTER_FLAG_LOG},
      {"SECCOMP_FILTER_FLAG_SPEC_ALLOW", SECCOMP_FILTER_FLAG_SPEC_ALLOW},
      /* SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is known but never listed: it only
       * changes how a notification listener waits, and runcell does not support
       * listeners, so the flag is accepted without effect. */
  };
  for (size_t i = 0; i < RC_ARRAY_SIZE(flags); i++)
    if (kernel_accepts(flags[i].probe)) json_array_append_new(a, json_string(flags[i].name));
  return a;
}

static json_t *seccomp_features(void) {
  json_t *s = json_object();
  json_object_set_new(s, "enabled", json_true());
  json_t *actions = json_array();
  for (size_t i = 0; oci_seccomp_action_name_at(i); i++)
    json_array_append_new(actions, json_string(oci_seccomp_action_name_at(i)));
  json_object_set_new(s, "actions", actions);
  json_t *ops = json_array();
  for (size_t i = 0; oci_seccomp_op_name_at(i); i++)
    json_array_append_new(ops, json_string(oci_seccomp_op_name_at(i)));
  json_object_set_new(s, "operators", ops);
  /* Only the architectures this libseccomp can build filters for. */
  json_t *archs = json_array();
  for (size_t i = 0; i < oci_n_seccomp_arch_names; i++) {
    uint32_t token;
    if (oci_seccomp_arch_from_name(oci_seccomp_arch_names[i], &token) == 0)
      json_array_append_new(archs, json_string(oci_seccomp_arch_names[i]));
  }
  json_object_set_new(s, "archs", archs);
  json_object_set_new(s, "knownFlags",
                      string_array(oci_seccomp_flag_names, oci_n_seccomp_flag_names));
  json_object_set_new(s, "supportedFlags", supported_flags());
  return s;
}

static json_t *linux_features(void) {
  json_t *l = json_object();
  json_t *ns = json_array();
  /* Sorted, as the spec's example and runc list them. */
  static const char *const ns_names[] = {"cgroup", "ipc",  "mount", "network",
                                         "pid",    "time", "user",  "uts"};
  for (size_t i = 0; i < RC_ARRAY_SIZE(ns_names); i++)
    if (oci_ns_type_from_name(ns_names[i]) >= 0)
      json_array_append_new(ns, json_string(ns_names[i]));
  json_object_set_new(l, "namespaces", ns);

  json_t *caps = json_array();
  for (int i = 0; i <= oci_cap_last(); i++)
    json_array_append_new(caps, json_string(oci_cap_name(i)));
  json_object_set_new(l, "capabilities", caps);

  json_t *cg = json_object();
  json_object_set_new(cg, "v1", json_true());
  json_object_set_new(cg, "v2", json_true());
  /* --systemd-cgroup: the system instance's transient units; rootless (a user's systemd)
   * is not supported. */
  json_object_set_new(cg, "systemd", json_true());
  json_object_set_new(cg, "systemdUser", json_false());
  json_object_set_new(cg, "rdma", json_true());
  json_object_set_new(l, "cgroup", cg);

  json_object_set_new(l, "seccomp", seccomp_features());
  json_object_set_new(l, "apparmor", bool_object("enabled", false));
  json_object_set_new(l, "selinux", bool_object("enabled", false));
  json_object_set_new(l, "intelRdt", bool_object("enabled", false));
  /* Mount uidMappings/gidMappings are parsed but refused when used. */
  json_t *ext = json_object();
  json_object_set_new(ext, "idmap", bool_object("enabled", false));
  json_object_set_new(l, "mountExtensions", ext);
  return l;
}

char *oci_features_json(void) {
  json_t *f = json_object();
  json_object_set_new(f, "ociVersionMin", json_string(OCI_VERSION_MIN));
  json_object_set_new(f, "ociVersionMax", json_string(OCI_VERSION));
  static const char *const hooks[] = {"prestart",       "createRuntime", "createContainer",
                                      "startContainer", "poststart",     "poststop"};
  json_object_set_new(f, "hooks", string_array(hooks, RC_ARRAY_SIZE(hooks)));
  json_t *opts = json_array();
  for (size_t i = 0; oci_mount_option_name_at(i); i++)
    json_array_append_new(opts, json_string(oci_mount_option_name_at(i)));
  json_object_set_new(f, "mountOptions", opts);
  json_object_set_new(f, "linux", linux_features());

  json_t *ann = json_object();
  const struct scmp_version *v = seccomp_version();
  if (v) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%u.%u.%u", v->major, v->minor, v->micro);
    json_object_set_new(ann, "io.github.seccomp.libseccomp.version", json_string(buf));
  }
  json_object_set_new(ann, "io.runcell.version", json_string(RUNCELL_VERSION));
  json_object_set_new(f, "annotations", ann);

  char *s = json_dumps(f, JSON_INDENT(4));
  json_decref(f);
  if (!s) abort();
  return s;
}
