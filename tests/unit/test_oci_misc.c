/* The name tables and generated documents of the oci module: mount option translation,
 * seccomp and capability names, namespace helpers, the features document and the
 * default spec (which must parse back with our own parser). */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <unistd.h>

#include "runcell/oci.h"
#include "runcell/util.h"
#include "unit.h"

#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif
#ifndef MS_LAZYTIME
#define MS_LAZYTIME (1 << 25)
#endif

/* Parses a config with one mount; type may be NULL, options is a JSON array or NULL. */
static struct oci_config *with_mount(const char *type, const char *options) {
  char *mount = rc_xasprintf("{\"destination\": \"/m\"%s%s%s%s%s}", type ? ", \"type\": \"" : "",
                             type ? type : "", type ? "\"" : "", options ? ", \"options\": " : "",
                             options ? options : "");
  char *text = rc_xasprintf(
      "{\"ociVersion\": \"1.2.0\", \"root\": {\"path\": \"rootfs\"}, \"mounts\": [%s]}", mount);
  struct rc_error err = {0};
  struct oci_config *cfg = NULL;
  if (oci_config_parse(text, strlen(text), &cfg, &err) < 0) fprintf(stderr, "%s\n", err.msg);
  CHECK(cfg != NULL && cfg->n_mounts == 1);
  free(mount);
  free(text);
  return cfg;
}

struct mount_case {
  const char *type, *options;
  unsigned long flags, clear, propagation;
  const char *data;
  bool bind, recursive, idmap;
};

static void test_mount_options(void) {
  static const struct mount_case cases[] = {
      {"tmpfs", "[\"ro\", \"nosuid\", \"nodev\", \"noexec\"]",
       MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, 0, 0, NULL, false, false, false},
      {"tmpfs", "[\"rw\", \"suid\", \"dev\", \"exec\", \"async\", \"atime\", \"diratime\"]", 0,
       MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_SYNCHRONOUS | MS_NOATIME | MS_NODIRATIME,
       0, NULL, false, false, false},
      {"tmpfs", "[\"nomand\", \"norelatime\", \"nostrictatime\", \"loud\", \"symfollow\"]", 0,
       MS_MANDLOCK | MS_RELATIME | MS_STRICTATIME | MS_SILENT | MS_NOSYMFOLLOW, 0, NULL, false,
       false, false},
      {"tmpfs",
       "[\"sync\", \"dirsync\", \"remount\", \"mand\", \"noatime\", \"nodiratime\", "
       "\"relatime\", \"strictatime\", \"silent\", \"lazytime\", \"nosymfollow\"]",
       MS_SYNCHRONOUS | MS_DIRSYNC | MS_REMOUNT | MS_MANDLOCK | MS_NOATIME | MS_NODIRATIME |
           MS_RELATIME | MS_STRICTATIME | MS_SILENT | MS_LAZYTIME | MS_NOSYMFOLLOW,
       0, 0, NULL, false, false, false},
      /* The later of two contradicting options wins. */
      {"tmpfs", "[\"ro\", \"rw\"]", 0, MS_RDONLY, 0, NULL, false, false, false},
      {"tmpfs", "[\"rw\", \"ro\"]", MS_RDONLY, 0, 0, NULL, false, false, false},
      {"tmpfs", "[\"private\"]", 0, 0, MS_PRIVATE, NULL, false, false, false},
      {"tmpfs", "[\"rshared\"]", 0, 0, MS_SHARED | MS_REC, NULL, false, false, false},
      {"tmpfs", "[\"slave\"]", 0, 0, MS_SLAVE, NULL, false, false, false},
      {"tmpfs", "[\"rslave\", \"runbindable\"]", 0, 0, MS_UNBINDABLE | MS_REC, NULL, false, false,
       false},
      {"tmpfs", "[\"unbindable\"]", 0, 0, MS_UNBINDABLE, NULL, false, false, false},
      {"tmpfs", "[\"rprivate\"]", 0, 0, MS_PRIVATE | MS_REC, NULL, false, false, false},
      {NULL, "[\"bind\"]", MS_BIND, 0, 0, NULL, true, false, false},
      {"none", "[\"rbind\", \"ro\"]", MS_BIND | MS_REC | MS_RDONLY, 0, 0, NULL, true, true, false},
      /* The type alone makes a bind mount. */
      {"bind", NULL, MS_BIND, 0, 0, NULL, true, false, false},
      {"bind", "[\"idmap\"]", MS_BIND, 0, 0, NULL, true, false, true},
      {"bind", "[\"rbind\", \"ridmap\"]", MS_BIND | MS_REC, 0, 0, NULL, true, true, true},
      /* Unknown options are filesystem data, in order. */
      {"devpts", "[\"nosuid\", \"newinstance\", \"ptmxmode=0666\", \"mode=0620\", \"gid=5\"]",
       MS_NOSUID, 0, 0, "newinstance,ptmxmode=0666,mode=0620,gid=5", false, false, false},
      {"tmpfs", "[\"mode=755\", \"defaults\", \"size=65536k\"]", 0, 0, 0, "mode=755,size=65536k",
       false, false, false},
      {"tmpfs", "[]", 0, 0, 0, NULL, false, false, false},
      {"tmpfs", "[\"acl\", \"iversion\"]", MS_POSIXACL | MS_I_VERSION, 0, 0, NULL, false, false,
       false},
      {"tmpfs", "[\"noacl\", \"noiversion\", \"nolazytime\"]", 0,
       MS_POSIXACL | MS_I_VERSION | MS_LAZYTIME, 0, NULL, false, false, false},
  };
  for (size_t i = 0; i < RC_ARRAY_SIZE(cases); i++) {
    const struct mount_case *c = &cases[i];
    struct oci_config *cfg = with_mount(c->type, c->options);
    if (!cfg) continue;
    const struct oci_mount *m = &cfg->mounts[0];
    bool ok = m->flags == c->flags && m->clear_flags == c->clear &&
              m->propagation == c->propagation && m->bind == c->bind &&
              m->recursive == c->recursive && m->idmap == c->idmap &&
              ((!c->data && !m->data) || (c->data && m->data && strcmp(c->data, m->data) == 0));
    if (!ok)
      fprintf(stderr,
              "mount case %zu (%s): flags 0x%lx clear 0x%lx prop 0x%lx data %s bind %d rec %d "
              "idmap %d\n",
              i, c->options ? c->options : "(none)", m->flags, m->clear_flags, m->propagation,
              m->data ? m->data : "(null)", m->bind, m->recursive, m->idmap);
    CHECK(ok);
    oci_config_free(cfg);
  }
}

static void test_mount_mappings(void) {
  const char *text =
      "{\"ociVersion\": \"1.2.0\", \"root\": {\"path\": \"rootfs\"}, \"mounts\": "
      "[{\"destination\": "
      "\"/m\", \"type\": \"bind\", \"source\": \"/s\", \"uidMappings\": [{\"containerID\": 0, "
      "\"hostID\": 1000, \"size\": 1}, {\"containerID\": 1, \"hostID\": 2000, \"size\": 10}], "
      "\"gidMappings\": [{\"containerID\": 0, \"hostID\": 1000, \"size\": 1}]}]}";
  struct rc_error err = {0};
  struct oci_config *cfg = NULL;
  CHECK(oci_config_parse(text, strlen(text), &cfg, &err) == 0);
  if (!cfg) return;
  CHECK(cfg->mounts[0].n_uid_mappings == 2 && cfg->mounts[0].n_gid_mappings == 1);
  oci_config_free(cfg);
}

static uint32_t parse_action(const char *name, bool *ok) {
  char *text = rc_xasprintf(
      "{\"ociVersion\": \"1.2.0\", \"root\": {\"path\": \"r\"}, "
      "\"linux\": {\"seccomp\": {\"defaultAction\": \"%s\"}}}",
      name);
  struct rc_error err = {0};
  struct oci_config *cfg = NULL;
  *ok = oci_config_parse(text, strlen(text), &cfg, &err) == 0;
  uint32_t a = cfg ? cfg->linux_.seccomp.default_action : 0;
  oci_config_free(cfg);
  free(text);
  return a;
}

static void test_seccomp_names(void) {
  static const struct {
    const char *name;
    uint32_t value;
  } actions[] = {
      {"SCMP_ACT_KILL", SCMP_ACT_KILL},
      {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS},
      {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD},
      {"SCMP_ACT_TRAP", SCMP_ACT_TRAP},
      {"SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0)},
      {"SCMP_ACT_TRACE", SCMP_ACT_TRACE(0)},
      {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW},
      {"SCMP_ACT_LOG", SCMP_ACT_LOG},
      {"SCMP_ACT_NOTIFY", SCMP_ACT_NOTIFY},
  };
  for (size_t i = 0; i < RC_ARRAY_SIZE(actions); i++) {
    bool ok = false;
    uint32_t v = parse_action(actions[i].name, &ok);
    CHECK(ok);
    CHECK(v == actions[i].value);
  }
  bool ok = true;
  parse_action("SCMP_ACT_allow", &ok);
  CHECK(!ok);

  /* Architectures and operators, in one profile. */
  const char *text =
      "{\"ociVersion\": \"1.2.0\", \"root\": {\"path\": \"r\"}, \"linux\": {\"seccomp\": "
      "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": [\"SCMP_ARCH_X86\", "
      "\"SCMP_ARCH_X32\", \"SCMP_ARCH_ARM\", \"SCMP_ARCH_MIPSEL64N32\", \"SCMP_ARCH_PPC64LE\", "
      "\"SCMP_ARCH_S390X\", \"SCMP_ARCH_RISCV64\"], \"flags\": [\"SECCOMP_FILTER_FLAG_TSYNC\", "
      "\"SECCOMP_FILTER_FLAG_LOG\", \"SECCOMP_FILTER_FLAG_SPEC_ALLOW\", "
      "\"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV\"], \"syscalls\": [{\"names\": [\"x\"], "
      "\"action\": \"SCMP_ACT_ERRNO\", \"args\": ["
      "{\"index\": 0, \"value\": 1, \"op\": \"SCMP_CMP_NE\"},"
      "{\"index\": 1, \"value\": 1, \"op\": \"SCMP_CMP_LT\"},"
      "{\"index\": 2, \"value\": 1, \"op\": \"SCMP_CMP_LE\"},"
      "{\"index\": 3, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"},"
      "{\"index\": 4, \"value\": 1, \"op\": \"SCMP_CMP_GE\"},"
      "{\"index\": 5, \"value\": 1, \"op\": \"SCMP_CMP_GT\"},"
      "{\"index\": 0, \"value\": 1, \"valueTwo\": 1, \"op\": \"SCMP_CMP_MASKED_EQ\"}]}]}}}";
  struct rc_error err = {0};
  struct oci_config *cfg = NULL;
  int r = oci_config_parse(text, strlen(text), &cfg, &err);
  if (r < 0) fprintf(stderr, "%s\n", err.msg);
  CHECK(r == 0);
  if (!cfg) return;
  const struct oci_seccomp *s = &cfg->linux_.seccomp;
  static const uint32_t archs[] = {SCMP_ARCH_X86,         SCMP_ARCH_X32,     SCMP_ARCH_ARM,
                                   SCMP_ARCH_MIPSEL64N32, SCMP_ARCH_PPC64LE, SCMP_ARCH_S390X,
                                   SCMP_ARCH_RISCV64};
  CHECK(s->n_architectures == RC_ARRAY_SIZE(archs));
  for (size_t i = 0; i < s->n_architectures && i < RC_ARRAY_SIZE(archs); i++)
    CHECK(s->architectures[i] == archs[i]);
  static const int ops[] = {SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE,       SCMP_CMP_EQ,
                            SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ};
  CHECK(s->n_syscalls == 1 && s->syscalls[0].n_args == RC_ARRAY_SIZE(ops));
  for (size_t i = 0; s->n_syscalls == 1 && i < s->syscalls[0].n_args; i++)
    CHECK(s->syscalls[0].args[i].op == ops[i]);
  CHECK(s->n_flags == 4);
  /* Without errnoRet an ERRNO action returns EPERM. */
  CHECK(!s->syscalls[0].has_errno_ret && s->syscalls[0].errno_ret == EPERM);
  oci_config_free(cfg);
}

static void test_cap_names(void) {
  CHECK(oci_cap_from_name("CAP_CHOWN") == 0);
  CHECK(oci_cap_from_name("CAP_SYS_ADMIN") == 21);
  CHECK(oci_cap_from_name("CAP_CHECKPOINT_RESTORE") == 40);
  CHECK(oci_cap_from_name("CAP_NOPE") == -1);
  CHECK(oci_cap_from_name("cap_chown") == -1);
  CHECK(oci_cap_from_name(NULL) == -1);
  CHECK_STR_EQ(oci_cap_name(21), "CAP_SYS_ADMIN");
  CHECK(oci_cap_name(-1) == NULL);
  CHECK(oci_cap_name(oci_cap_last() + 1) == NULL);
  CHECK(oci_cap_last() >= CAP_LAST_CAP);
  /* Our table agrees with libcap's numbering for every capability both know. */
  for (int i = 0; i <= oci_cap_last(); i++) {
    CHECK(oci_cap_from_name(oci_cap_name(i)) == i);
    if (i > CAP_LAST_CAP) continue;
    char *libcap = cap_to_name((cap_value_t)i);
    CHECK(libcap != NULL);
    if (!libcap) continue;
    char upper[64];
    size_t k = 0;
    for (; libcap[k] && k < sizeof(upper) - 1; k++)
      upper[k] = (char)toupper((unsigned char)libcap[k]);
    upper[k] = '\0';
    CHECK_STR_EQ(upper, oci_cap_name(i));
    cap_free(libcap);
  }
}

static void test_namespace_helpers(void) {
  static const struct {
    enum oci_ns_type t;
    const char *name;
    int flag;
  } ns[] = {
      {OCI_NS_PID, "pid", CLONE_NEWPID},          {OCI_NS_NETWORK, "network", CLONE_NEWNET},
      {OCI_NS_MOUNT, "mount", CLONE_NEWNS},       {OCI_NS_IPC, "ipc", CLONE_NEWIPC},
      {OCI_NS_UTS, "uts", CLONE_NEWUTS},          {OCI_NS_USER, "user", CLONE_NEWUSER},
      {OCI_NS_CGROUP, "cgroup", CLONE_NEWCGROUP}, {OCI_NS_TIME, "time", 0x80},
  };
  for (size_t i = 0; i < RC_ARRAY_SIZE(ns); i++) {
    CHECK_STR_EQ(oci_ns_type_name(ns[i].t), ns[i].name);
    CHECK(oci_ns_clone_flag(ns[i].t) == ns[i].flag);
  }
  CHECK(oci_ns_type_name(OCI_NS_COUNT) == NULL);
  CHECK(oci_ns_clone_flag(OCI_NS_COUNT) == 0);
  CHECK(oci_config_namespace(NULL, OCI_NS_PID) == NULL);
}

static bool array_has(const json_t *a, const char *s) {
  size_t i;
  json_t *v;
  json_array_foreach(a, i, v) {
    if (json_is_string(v) && strcmp(json_string_value(v), s) == 0) return true;
  }
  return false;
}

static void test_features(void) {
  char *text = oci_features_json();
  CHECK(text != NULL);
  json_error_t je;
  json_t *f = json_loads(text, 0, &je);
  CHECK(f != NULL);
  free(text);
  if (!f) return;
  CHECK_STR_EQ(json_string_value(json_object_get(f, "ociVersionMin")), OCI_VERSION_MIN);
  CHECK_STR_EQ(json_string_value(json_object_get(f, "ociVersionMax")), OCI_VERSION);
  const json_t *hooks = json_object_get(f, "hooks");
  CHECK(json_array_size(hooks) == 6 && array_has(hooks, "createRuntime"));

  /* Every advertised mount option is one the translation consumes (none leaks to data). */
  const json_t *opts = json_object_get(f, "mountOptions");
  CHECK(array_has(opts, "rbind") && array_has(opts, "nosymfollow"));
  /* runc's recursive attributes are applied (mount_setattr); idmapped mounts are not */
  CHECK(array_has(opts, "rro") && array_has(opts, "rnosymfollow") && !array_has(opts, "idmap"));
  size_t i;
  json_t *v;
  json_array_foreach(opts, i, v) {
    char *arr = rc_xasprintf("[\"%s\"]", json_string_value(v));
    struct oci_config *cfg = with_mount("tmpfs", arr);
    CHECK(cfg && cfg->mounts[0].data == NULL);
    oci_config_free(cfg);
    free(arr);
  }
  /* the recursive attributes: set, cleared, the later one winning; an atime mode clears
   * the whole atime field, as mount_setattr wants */
  struct oci_config *rc =
      with_mount("bind", "[\"rbind\", \"rro\", \"rnosuid\", \"rsuid\", \"rnoatime\"]");
  CHECK(rc && rc->mounts[0].rattr_set == (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME) &&
        rc->mounts[0].rattr_clear == (MOUNT_ATTR_NOSUID | MOUNT_ATTR__ATIME) &&
        !(rc->mounts[0].flags & MS_RDONLY));
  oci_config_free(rc);

  const json_t *l = json_object_get(f, "linux");
  CHECK(json_is_object(l));
  const json_t *ns = json_object_get(l, "namespaces");
  CHECK(json_array_size(ns) == OCI_NS_COUNT && array_has(ns, "time") && array_has(ns, "network"));
  const json_t *caps = json_object_get(l, "capabilities");
  CHECK(json_array_size(caps) == (size_t)oci_cap_last() + 1);
  CHECK_STR_EQ(json_string_value(json_array_get(caps, 0)), "CAP_CHOWN");
  const json_t *cg = json_object_get(l, "cgroup");
  CHECK(json_is_true(json_object_get(cg, "v2")) && json_is_true(json_object_get(cg, "systemd")) &&
        json_is_false(json_object_get(cg, "systemdUser")));
  CHECK(json_is_false(json_object_get(cg, "systemdUser")));

  const json_t *sc = json_object_get(l, "seccomp");
  CHECK(json_is_true(json_object_get(sc, "enabled")));
  const json_t *actions = json_object_get(sc, "actions");
  CHECK(json_array_size(actions) == 9 && array_has(actions, "SCMP_ACT_KILL_THREAD"));
  json_array_foreach(actions, i, v) {
    bool ok = false;
    parse_action(json_string_value(v), &ok);
    CHECK(ok);
  }
  CHECK(json_array_size(json_object_get(sc, "operators")) == 7);
  const json_t *archs = json_object_get(sc, "archs");
  CHECK(array_has(archs, "SCMP_ARCH_X86_64") && array_has(archs, "SCMP_ARCH_AARCH64"));
  const json_t *known = json_object_get(sc, "knownFlags");
  CHECK(json_array_size(known) == 4);
  json_array_foreach(json_object_get(sc, "supportedFlags"), i, v) {
    CHECK(array_has(known, json_string_value(v)));
  }

  CHECK(json_is_false(json_object_get(json_object_get(l, "apparmor"), "enabled")));
  CHECK(json_is_false(json_object_get(json_object_get(l, "selinux"), "enabled")));
  CHECK(json_is_false(json_object_get(json_object_get(l, "intelRdt"), "enabled")));
  const json_t *ann = json_object_get(f, "annotations");
  CHECK(json_is_string(json_object_get(ann, "io.runcell.version")));
  json_decref(f);
}

static struct oci_config *parse_default(bool rootless, bool cgroup_ns) {
  char *text = oci_default_spec(rootless, cgroup_ns);
  CHECK(text != NULL);
  if (!text) return NULL;
  /* Laid out like runc's: one tab per level. */
  CHECK_CONTAINS(text, "{\n\t\"ociVersion\": \"" OCI_VERSION "\",\n\t\"process\": {\n\t\t");
  struct rc_error err = {0};
  struct oci_config *cfg = NULL;
  if (oci_config_parse(text, strlen(text), &cfg, &err) < 0) fprintf(stderr, "%s\n", err.msg);
  CHECK(cfg != NULL);
  free(text);
  return cfg;
}

static void test_default_spec(void) {
  struct oci_config *cfg = parse_default(false, false);
  if (!cfg) return;
  CHECK_STR_EQ(cfg->oci_version, OCI_VERSION);
  CHECK(cfg->has_process && cfg->process.terminal && cfg->process.n_args == 1);
  CHECK_STR_EQ(cfg->process.args[0], "sh");
  CHECK_STR_EQ(cfg->process.cwd, "/");
  CHECK(cfg->process.no_new_privileges);
  uint64_t caps = (1ULL << 29) | (1ULL << 5) | (1ULL << 10);
  CHECK(cfg->process.capabilities.bounding == caps && cfg->process.capabilities.ambient == caps);
  CHECK(!cfg->process.capabilities.has_inheritable);
  CHECK(cfg->process.n_rlimits == 1 && cfg->process.rlimits[0].hard == 1024);
  CHECK_STR_EQ(cfg->root_path, "rootfs");
  CHECK(cfg->root_readonly);
  CHECK(cfg->n_mounts == 7);
  if (cfg->n_mounts == 7) {
    CHECK_STR_EQ(cfg->mounts[2].data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
    CHECK_STR_EQ(cfg->mounts[5].type, "sysfs");
    CHECK(cfg->mounts[5].flags == (MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY));
  }
  CHECK(oci_config_namespace(cfg, OCI_NS_NETWORK) != NULL);
  CHECK(oci_config_namespace(cfg, OCI_NS_USER) == NULL);
  CHECK(cfg->linux_.n_namespaces == 5);
  CHECK(oci_config_namespace(cfg, OCI_NS_CGROUP) == NULL);
  CHECK(cfg->linux_.has_resources && cfg->linux_.resources.n_devices == 1 &&
        !cfg->linux_.resources.devices[0].allow);
  CHECK(cfg->linux_.n_masked_paths == 10 && cfg->linux_.n_readonly_paths == 5);
  CHECK(cfg->linux_.n_uid_mappings == 0);
  oci_config_free(cfg);

  /* a cgroup v2 host's: the same five, then a cgroup namespace (as runc's spec there) */
  cfg = parse_default(false, true);
  if (!cfg) return;
  CHECK(cfg->linux_.n_namespaces == 6);
  if (cfg->linux_.n_namespaces == 6) CHECK(cfg->linux_.namespaces[5].type == OCI_NS_CGROUP);
  oci_config_free(cfg);

  cfg = parse_default(true, true); /* runc's ToRootless appends the user namespace last */
  if (!cfg) return;
  CHECK(cfg->linux_.n_namespaces == 6);
  if (cfg->linux_.n_namespaces == 6)
    CHECK(cfg->linux_.namespaces[4].type == OCI_NS_CGROUP &&
          cfg->linux_.namespaces[5].type == OCI_NS_USER);
  oci_config_free(cfg);

  cfg = parse_default(true, false);
  if (!cfg) return;
  CHECK(oci_config_namespace(cfg, OCI_NS_USER) != NULL);
  CHECK(oci_config_namespace(cfg, OCI_NS_NETWORK) == NULL);
  CHECK(cfg->linux_.n_uid_mappings == 1 && cfg->linux_.uid_mappings[0].host_id == geteuid());
  CHECK(cfg->linux_.n_gid_mappings == 1 && cfg->linux_.gid_mappings[0].host_id == getegid());
  CHECK(!cfg->linux_.has_resources);
  if (cfg->n_mounts == 7) {
    CHECK_STR_EQ(cfg->mounts[2].data, "newinstance,ptmxmode=0666,mode=0620");
    CHECK(cfg->mounts[5].bind && cfg->mounts[5].recursive);
    CHECK_STR_EQ(cfg->mounts[5].source, "/sys");
  }
  oci_config_free(cfg);
}

UNIT_MAIN("oci_misc", UNIT_CASE(test_mount_options), UNIT_CASE(test_mount_mappings),
          UNIT_CASE(test_seccomp_names), UNIT_CASE(test_cap_names),
          UNIT_CASE(test_namespace_helpers), UNIT_CASE(test_features), UNIT_CASE(test_default_spec))
