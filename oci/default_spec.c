/* The config.json `runcell spec` writes: the same container as `runc spec` (and
 * `runc spec --rootless`), so that a bundle made for one runtime runs on the other, with
 * runcell's own spec version and hostname. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "runcell/util.h"

struct default_mount {
  const char *destination, *type, *source;
  const char *options[8]; /* NULL-terminated */
};

static const struct default_mount mounts[] = {
    {"/proc", "proc", "proc", {NULL}},
    {"/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k", NULL}},
    {"/dev/pts",
     "devpts",
     "devpts",
     {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5", NULL}},
    {"/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k", NULL}},
    {"/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev", NULL}},
    {"/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro", NULL}},
    {"/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro", NULL}},
};

/* A user namespace without privileges cannot mount sysfs or pick the tty group, so the
 * rootless variant binds the host's /sys and drops gid=5. */
static const struct default_mount rootless_sys = {
    "/sys", "none", "/sys", {"rbind", "nosuid", "noexec", "nodev", "ro", NULL}};

static const char *const masked_paths[] = {
    "/proc/acpi",          "/proc/asound",     "/proc/kcore",       "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/sys/firmware",       "/proc/scsi",
};

static const char *const readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static const char *const default_caps[] = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"};

static json_t *strings(const char *const *v, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n && v[i]; i++) json_array_append_new(a, json_string(v[i]));
  return a;
}

static json_t *mount_json(const struct default_mount *m, bool rootless) {
  json_t *o = json_object();
  json_object_set_new(o, "destination", json_string(m->destination));
  json_object_set_new(o, "type", json_string(m->type));
  json_object_set_new(o, "source", json_string(m->source));
  if (!m->options[0]) return o;
  json_t *opts = json_array();
  for (size_t i = 0; m->options[i]; i++) {
    if (rootless && strcmp(m->options[i], "gid=5") == 0) continue;
    json_array_append_new(opts, json_string(m->options[i]));
  }
  json_object_set_new(o, "options", opts);
  return o;
}

static json_t *process_json(void) {
  json_t *p = json_object();
  json_object_set_new(p, "terminal", json_true());
  json_t *user = json_object();
  json_object_set_new(user, "uid", json_integer(0));
  json_object_set_new(user, "gid", json_integer(0));
  json_object_set_new(p, "user", user);
  static const char *const args[] = {"sh"};
  json_object_set_new(p, "args", strings(args, RC_ARRAY_SIZE(args)));
  static const char *const env[] = {
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"};
  json_object_set_new(p, "env", strings(env, RC_ARRAY_SIZE(env)));
  json_object_set_new(p, "cwd", json_string("/"));

  json_t *caps = json_object();
  static const char *const sets[] = {"bounding", "effective", "permitted", "ambient"};
  for (size_t i = 0; i < RC_ARRAY_SIZE(sets); i++)
    json_object_set_new(caps, sets[i], strings(default_caps, RC_ARRAY_SIZE(default_caps)));
  json_object_set_new(p, "capabilities", caps);

  json_t *nofile = json_object();
  json_object_set_new(nofile, "type", json_string("RLIMIT_NOFILE"));
  json_object_set_new(nofile, "hard", json_integer(1024));
  json_object_set_new(nofile, "soft", json_integer(1024));
  json_t *rlimits = json_array();
  json_array_append_new(rlimits, nofile);
  json_object_set_new(p, "rlimits", rlimits);
  json_object_set_new(p, "noNewPrivileges", json_true());
  return p;
}

static json_t *id_mapping(unsigned long host_id) {
  json_t *a = json_array();
  json_t *m = json_object();
  json_object_set_new(m, "containerID", json_integer(0));
  json_object_set_new(m, "hostID", json_integer((json_int_t)host_id));
  json_object_set_new(m, "size", json_integer(1));
  json_array_append_new(a, m);
  return a;
}

static json_t *linux_json(bool rootless, bool cgroup_ns) {
  json_t *l = json_object();
  if (rootless) {
    /* Maps container root to the user running `spec`, the only id an unprivileged user
     * may map. */
    json_object_set_new(l, "uidMappings", id_mapping(geteuid()));
    json_object_set_new(l, "gidMappings", id_mapping(getegid()));
  } else {
    json_t *deny_all = json_object();
    json_object_set_new(deny_all, "allow", json_false());
    json_object_set_new(deny_all, "access", json_string("rwm"));
    json_t *devices = json_array();
    json_array_append_new(devices, deny_all);
    json_t *res = json_object();
    json_object_set_new(res, "devices", devices);
    json_object_set_new(l, "resources", res);
  }
  /* runc's order: pid, network, ipc, uts, mount; then a cgroup namespace on a cgroup v2
   * host (the container's /sys/fs/cgroup is then its own cgroup, not the host's tree).
   * Rootless drops the network namespace (it cannot set one up, so it shares the host's)
   * and appends a user namespace, as runc's ToRootless. */
  const char *names[7];
  size_t n = 0;
  names[n++] = "pid";
  if (!rootless) names[n++] = "network";
  names[n++] = "ipc";
  names[n++] = "uts";
  names[n++] = "mount";
  if (cgroup_ns) names[n++] = "cgroup";
  if (rootless) names[n++] = "user";
  json_t *namespaces = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string(names[i]));
    json_array_append_new(namespaces, o);
  }
  json_object_set_new(l, "namespaces", namespaces);
  json_object_set_new(l, "maskedPaths", strings(masked_paths, RC_ARRAY_SIZE(masked_paths)));
  json_object_set_new(l, "readonlyPaths", strings(readonly_paths, RC_ARRAY_SIZE(readonly_paths)));
  return l;
}

/* jansson indents with spaces; runc's spec file uses one tab per level. JSON strings
 * cannot hold raw newlines, so every line's leading spaces are indentation. */
static char *tabs_for_spaces(const char *s) {
  char *out = rc_xmalloc(strlen(s) + 1);
  size_t o = 0;
  bool line_start = true;
  for (; *s; s++) {
    if (line_start && *s == ' ') {
      out[o++] = '\t';
      continue;
    }
    line_start = *s == '\n';
    out[o++] = *s;
  }
  out[o] = '\0';
  return out;
}

char *oci_default_spec(bool rootless, bool cgroup_ns) {
  json_t *spec = json_object();
  json_object_set_new(spec, "ociVersion", json_string(OCI_VERSION));
  json_object_set_new(spec, "process", process_json());
  json_t *root = json_object();
  json_object_set_new(root, "path", json_string("rootfs"));
  json_object_set_new(root, "readonly", json_true());
  json_object_set_new(spec, "root", root);
  json_object_set_new(spec, "hostname", json_string("runcell"));

  json_t *ms = json_array();
  for (size_t i = 0; i < RC_ARRAY_SIZE(mounts); i++) {
    const struct default_mount *m = &mounts[i];
    if (rootless && strcmp(m->destination, "/sys") == 0) m = &rootless_sys;
    json_array_append_new(ms, mount_json(m, rootless));
  }
  json_object_set_new(spec, "mounts", ms);
  json_object_set_new(spec, "linux", linux_json(rootless, cgroup_ns));

  char *text = json_dumps(spec, JSON_INDENT(1));
  json_decref(spec);
  if (!text) abort();
  char *out = tabs_for_spaces(text);
  free(text);
  return out;
}
