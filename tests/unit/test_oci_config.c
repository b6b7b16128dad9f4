/* config.json parsing: a full document with every section lands in the typed structs,
 * and each kind of invalid value is refused with the exact JSON path in the message. */
#include <errno.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/resource.h>

#include "runcell/oci.h"
#include "runcell/util.h"
#include "unit.h"

/* Data files live next to this source; ctest also passes the directory explicitly. */
static char *data_path(const char *name) {
  const char *dir = getenv("RUNCELL_TEST_DATA");
  if (dir) return rc_xasprintf("%s/oci/%s", dir, name);
  char *src = rc_xstrdup(__FILE__);
  char *slash = strrchr(src, '/');
  if (slash) *slash = '\0';
  char *p = rc_xasprintf("%s/data/oci/%s", slash ? src : ".", name);
  free(src);
  return p;
}

static struct oci_config *load_full(void) {
  char *path = data_path("full_config.json");
  char *text = NULL;
  size_t len = 0;
  struct rc_error err = {0};
  struct oci_config *cfg = NULL;
  if (rc_read_file(path, 1 << 20, &text, &len, &err) < 0 ||
      oci_config_parse(text, len, &cfg, &err) < 0) {
    fprintf(stderr, "%s\n", err.msg);
  } else {
    /* raw must be the exact input, for hooks and the copy kept in the state dir. */
    CHECK(cfg->raw && strlen(cfg->raw) == len && memcmp(cfg->raw, text, len) == 0);
  }
  free(text);
  free(path);
  return cfg;
}

static void test_full_top_level(void) {
  struct oci_config *cfg = load_full();
  CHECK(cfg != NULL);
  if (!cfg) return;
  CHECK_STR_EQ(cfg->oci_version, "1.1.0-rc.1");
  CHECK_STR_EQ(cfg->root_path, "rootfs");
  CHECK(cfg->root_readonly);
  CHECK_STR_EQ(cfg->hostname, "box");
  CHECK_STR_EQ(cfg->domainname, "example.org");
  CHECK(cfg->n_annotations == 2);
  CHECK_STR_EQ(oci_config_annotation(cfg, "io.example.b"), "two");
  CHECK(oci_config_annotation(cfg, "io.example.c") == NULL);

  CHECK(cfg->n_mounts == 3);
  if (cfg->n_mounts == 3) {
    const struct oci_mount *m = &cfg->mounts[1];
    CHECK_STR_EQ(m->destination, "/data");
    CHECK_STR_EQ(m->source, "/srv/data");
    CHECK(m->n_options == 4 && m->options[4] == NULL);
    CHECK(m->bind && m->recursive);
    CHECK(m->flags == (MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID));
    CHECK(m->propagation == (MS_SLAVE | MS_REC));
    CHECK(m->data == NULL);
    const struct oci_mount *t = &cfg->mounts[2];
    CHECK_STR_EQ(t->data, "mode=1777,size=10m");
    CHECK(t->flags == MS_NODEV);
    CHECK(t->clear_flags == (MS_RDONLY | MS_NOEXEC));
    CHECK(!t->bind);
    CHECK(cfg->mounts[0].type && !cfg->mounts[0].options && cfg->mounts[0].flags == 0);
  }

  CHECK(cfg->hooks.n_prestart == 1 && cfg->hooks.n_create_runtime == 2);
  CHECK(cfg->hooks.n_poststop == 1 && cfg->hooks.n_poststart == 0);
  CHECK(cfg->hooks.n_create_container == 0 && cfg->hooks.n_start_container == 0);
  if (cfg->hooks.n_prestart == 1) {
    const struct oci_hook *h = &cfg->hooks.prestart[0];
    CHECK_STR_EQ(h->path, "/usr/bin/net-setup");
    CHECK(h->n_args == 2 && h->args[2] == NULL);
    CHECK_STR_EQ(h->args[1], "up");
    CHECK(h->n_env == 1);
    CHECK(h->has_timeout && h->timeout == 5);
  }
  if (cfg->hooks.n_create_runtime == 2) {
    CHECK(cfg->hooks.create_runtime[0].args == NULL);
    CHECK(!cfg->hooks.create_runtime[0].has_timeout);
  }
  oci_config_free(cfg);
}

static void test_full_process(void) {
  struct oci_config *cfg = load_full();
  CHECK(cfg != NULL);
  if (!cfg) return;
  const struct oci_process *p = &cfg->process;
  CHECK(cfg->has_process);
  CHECK(p->terminal);
  CHECK(p->has_console_size && p->console_height == 24 && p->console_width == 80);
  CHECK(p->user.uid == 1000 && p->user.gid == 1001);
  CHECK(p->user.has_umask && p->user.umask == 022);
  CHECK(p->user.n_additional_gids == 2 && p->user.additional_gids[1] == 27);
  CHECK(p->n_args == 3 && p->args[3] == NULL);
  CHECK_STR_EQ(p->args[2], "echo hi");
  CHECK(p->n_env == 2 && p->env[2] == NULL);
  CHECK_STR_EQ(p->env[1], "EMPTY=");
  CHECK_STR_EQ(p->cwd, "/work");
  CHECK(p->has_capabilities);
  CHECK(p->capabilities.has_bounding &&
        p->capabilities.bounding == ((1ULL << 0) | (1ULL << 21) | (1ULL << 40)));
  CHECK(p->capabilities.effective == (1ULL << 5));
  CHECK(p->capabilities.has_permitted && p->capabilities.permitted == 0);
  CHECK(!p->capabilities.has_inheritable);
  CHECK(p->capabilities.ambient == (1ULL << 10));
  CHECK(p->n_rlimits == 2);
  if (p->n_rlimits == 2) {
    CHECK(p->rlimits[0].type == RLIMIT_NOFILE);
    CHECK_STR_EQ(p->rlimits[0].name, "RLIMIT_NOFILE");
    CHECK(p->rlimits[0].soft == 1024 && p->rlimits[0].hard == 4096);
    CHECK(p->rlimits[1].type == RLIMIT_RTTIME);
  }
  CHECK(p->no_new_privileges);
  CHECK_STR_EQ(p->apparmor_profile, "unconfined");
  CHECK_STR_EQ(p->selinux_label, "system_u:system_r:container_t:s0");
  CHECK(p->has_oom_score_adj && p->oom_score_adj == -500);
  CHECK(p->has_io_priority && p->io_priority_class == 2 && p->io_priority == 4);
  CHECK_STR_EQ(p->scheduler_policy, "SCHED_BATCH");
  CHECK(p->sched_policy == 3 && p->sched_nice == 5 && p->sched_flags == 0x01);
  oci_config_free(cfg);
}

static void test_full_linux(void) {
  struct oci_config *cfg = load_full();
  CHECK(cfg != NULL);
  if (!cfg) return;
  const struct oci_linux *l = &cfg->linux_;
  CHECK(cfg->has_linux);
  CHECK(l->n_namespaces == 8);
  const struct oci_namespace *net = oci_config_namespace(cfg, OCI_NS_NETWORK);
  CHECK(net && net->path && strcmp(net->path, "/proc/1/ns/net") == 0);
  const struct oci_namespace *tns = oci_config_namespace(cfg, OCI_NS_TIME);
  CHECK(tns && tns->path == NULL);
  CHECK(l->n_uid_mappings == 1 && l->uid_mappings[0].host_id == 100000 &&
        l->uid_mappings[0].size == 65536);
  CHECK(l->n_gid_mappings == 1 && l->gid_mappings[0].host_id == 200000);
  CHECK(l->n_time_offsets == 2);
  for (size_t i = 0; i < l->n_time_offsets; i++) {
    const struct oci_time_offset *t = &l->time_offsets[i];
    if (strcmp(t->clock, "monotonic") == 0)
      CHECK(t->secs == -3600 && t->nanosecs == 500);
    else
      CHECK(strcmp(t->clock, "boottime") == 0 && t->secs == 86400 && t->nanosecs == 0);
  }
  CHECK(l->n_devices == 2);
  if (l->n_devices == 2) {
    CHECK(l->devices[0].type == 'c' && l->devices[0].major == 10 && l->devices[0].minor == 229);
    CHECK(l->devices[0].has_file_mode && l->devices[0].file_mode == 0666);
    CHECK(l->devices[0].has_uid && l->devices[0].has_gid);
    CHECK(l->devices[1].type == 'p' && !l->devices[1].has_file_mode);
  }
  CHECK_STR_EQ(l->cgroups_path, "/runcell/test");
  CHECK_STR_EQ(l->rootfs_propagation, "rslave");
  CHECK(l->n_sysctl == 2);
  CHECK_STR_EQ(l->sysctl[0].key, "net.ipv4.ip_forward");
  CHECK(l->n_masked_paths == 2 && l->n_readonly_paths == 1);
  CHECK_STR_EQ(l->masked_paths[1], "/sys/firmware");
  CHECK_STR_EQ(l->mount_label, "system_u:object_r:container_file_t:s0");
  CHECK(l->has_personality && l->personality_domain == PER_LINUX32);
  CHECK(l->intel_rdt_clos_id == NULL);
  oci_config_free(cfg);
}

static void test_full_resources(void) {
  struct oci_config *cfg = load_full();
  CHECK(cfg != NULL);
  if (!cfg) return;
  const struct oci_resources *r = &cfg->linux_.resources;
  CHECK(cfg->linux_.has_resources);
  CHECK(r->n_devices == 2);
  if (r->n_devices == 2) {
    CHECK(!r->devices[0].allow && r->devices[0].type == 'a');
    CHECK(!r->devices[0].has_major && r->devices[0].major == -1);
    CHECK(r->devices[1].allow && r->devices[1].type == 'c' && r->devices[1].minor == 229);
    CHECK_STR_EQ(r->devices[1].access, "rw");
  }
  CHECK(r->has_memory && r->memory.has_limit && r->memory.limit == 536870912);
  CHECK(r->memory.has_swap && r->memory.swap == -1);
  CHECK(r->memory.has_swappiness && r->memory.swappiness == 10);
  CHECK(r->memory.has_disable_oom_killer && r->memory.disable_oom_killer);
  CHECK(r->memory.has_check_before_update && !r->memory.check_before_update);
  CHECK(!r->memory.has_kernel && !r->memory.has_use_hierarchy);
  CHECK(r->has_cpu && r->cpu.shares == 512 && r->cpu.quota == 50000 && r->cpu.period == 100000);
  CHECK(r->cpu.has_burst && r->cpu.burst == 1000 && r->cpu.has_idle && r->cpu.idle == 1);
  CHECK(r->cpu.realtime_runtime == 950 && r->cpu.realtime_period == 1000);
  CHECK_STR_EQ(r->cpu.cpus, "0-1");
  CHECK_STR_EQ(r->cpu.mems, "0");
  CHECK(r->has_pids_limit && r->pids_limit == 128);
  CHECK(r->has_blkio && r->blkio.weight == 500 && r->blkio.leaf_weight == 300);
  CHECK(r->blkio.n_weight_device == 1 && r->blkio.weight_device[0].has_weight &&
        r->blkio.weight_device[0].weight == 600 && !r->blkio.weight_device[0].has_leaf_weight);
  CHECK(r->blkio.n_throttle_read_bps == 1 && r->blkio.throttle_read_bps[0].rate == 1048576);
  CHECK(r->blkio.n_throttle_write_iops == 1 && r->blkio.throttle_write_iops[0].minor == 16);
  CHECK(r->blkio.n_throttle_write_bps == 0 && r->blkio.n_throttle_read_iops == 0);
  CHECK(r->n_hugepage_limits == 1);
  CHECK_STR_EQ(r->hugepage_limits[0].page_size, "2MB");
  CHECK(r->has_network && r->has_class_id && r->class_id == 1048577);
  CHECK(r->n_net_priorities == 1);
  CHECK_STR_EQ(r->net_priorities[0].key, "eth0");
  CHECK_STR_EQ(r->net_priorities[0].value, "500");
  CHECK(r->n_rdma == 2);
  if (r->n_rdma == 2) {
    CHECK_STR_EQ(r->rdma[0].key, "mlx5_1");
    CHECK_STR_EQ(r->rdma[0].value, "hca_handle=3 hca_object=10000");
    CHECK_STR_EQ(r->rdma[1].value, "hca_object=7");
  }
  CHECK(r->n_unified == 2);
  CHECK_STR_EQ(r->unified[1].value, "default 50");
  oci_config_free(cfg);
}

static void test_full_seccomp(void) {
  struct oci_config *cfg = load_full();
  CHECK(cfg != NULL);
  if (!cfg) return;
  const struct oci_seccomp *s = &cfg->linux_.seccomp;
  CHECK(cfg->linux_.has_seccomp);
  CHECK(s->default_action == SCMP_ACT_ERRNO(0));
  CHECK_STR_EQ(s->default_action_name, "SCMP_ACT_ERRNO");
  CHECK(s->has_default_errno_ret && s->default_errno_ret == 38);
  CHECK(s->n_architectures == 3);
  if (s->n_architectures == 3) {
    CHECK(s->architectures[0] == SCMP_ARCH_X86_64);
    CHECK(s->architectures[1] == SCMP_ARCH_X86);
    CHECK(s->architectures[2] == SCMP_ARCH_AARCH64);
  }
  CHECK(s->n_flags == 2);
  CHECK_STR_EQ(s->flags[1], "SECCOMP_FILTER_FLAG_SPEC_ALLOW");
  CHECK(s->n_syscalls == 5);
  if (s->n_syscalls == 5) {
    CHECK(s->syscalls[0].n_names == 3 && s->syscalls[0].names[3] == NULL);
    CHECK(s->syscalls[0].action == SCMP_ACT_ALLOW && !s->syscalls[0].has_errno_ret);
    const struct oci_seccomp_syscall *p = &s->syscalls[1];
    CHECK(p->n_args == 2);
    if (p->n_args == 2) {
      CHECK(p->args[0].index == 0 && p->args[0].value == 8 && p->args[0].op == SCMP_CMP_EQ);
      CHECK(p->args[1].index == 1 && p->args[1].value == 255 && p->args[1].value_two == 4);
      CHECK(p->args[1].op == SCMP_CMP_MASKED_EQ);
    }
    /* TRACE and ERRNO without errnoRet return EPERM, as in runc. */
    CHECK(s->syscalls[2].action == SCMP_ACT_TRACE(0));
    CHECK(!s->syscalls[2].has_errno_ret && s->syscalls[2].errno_ret == EPERM);
    CHECK(s->syscalls[3].action == SCMP_ACT_KILL_PROCESS);
    CHECK(s->syscalls[4].action == SCMP_ACT_ERRNO(0));
    CHECK(s->syscalls[4].has_errno_ret && s->syscalls[4].errno_ret == 1);
  }
  oci_config_free(cfg);
}

/* ---- errors ---- */

/* Parses text expecting failure; returns the message in a static buffer. */
static const char *parse_error(const char *text) {
  static struct rc_error err;
  memset(&err, 0, sizeof(err));
  struct oci_config *cfg = (struct oci_config *)1;
  int r = oci_config_parse(text, strlen(text), &cfg, &err);
  CHECK(r < 0);
  CHECK(cfg == NULL);
  if (r == 0) {
    oci_config_free(cfg);
    return "(parsed successfully)";
  }
  return err.msg;
}

/* A minimal valid document with extra top-level members. */
static const char *with_top(const char *extra) {
  static char buf[4096];
  snprintf(buf, sizeof(buf), "{\"ociVersion\": \"1.2.0\", \"root\": {\"path\": \"rootfs\"}%s%s}",
           *extra ? ", " : "", extra);
  return buf;
}

/* ... with a valid process object plus extra process members. */
static const char *with_process(const char *extra) {
  char tmp[3072];
  snprintf(tmp, sizeof(tmp), "\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\"%s%s}",
           *extra ? ", " : "", extra);
  return with_top(tmp);
}

static const char *with_linux(const char *extra) {
  char tmp[3072];
  snprintf(tmp, sizeof(tmp), "\"linux\": {%s}", extra);
  return with_top(tmp);
}

static void test_minimal_is_valid(void) {
  struct rc_error err = {0};
  struct oci_config *cfg = NULL;
  const char *text = with_top("");
  CHECK(oci_config_parse(text, strlen(text), &cfg, &err) == 0);
  if (!cfg) return;
  CHECK(!cfg->has_process && !cfg->has_linux && cfg->n_mounts == 0);
  CHECK(oci_config_namespace(cfg, OCI_NS_PID) == NULL);
  oci_config_free(cfg);

  /* JSON null reads as absent, and unknown members are ignored. */
  text = with_process("\"env\": null, \"terminal\": null, \"futureField\": {\"a\": 1}");
  CHECK(oci_config_parse(text, strlen(text), &cfg, &err) == 0);
  if (!cfg) return;
  CHECK(cfg->process.env != NULL && cfg->process.n_env == 0 && cfg->process.env[0] == NULL);
  CHECK(!cfg->process.terminal);
  oci_config_free(cfg);
}

static void test_invalid_json(void) {
  const char *msg = parse_error("{\n  \"ociVersion\": \"1.2.0\",\n  \"root\": {\"path\": }\n}");
  CHECK_CONTAINS(msg, "config.json: invalid JSON at line 3 column ");
  CHECK(strncmp(msg, "config.json: invalid JSON at line 3 column ", 43) == 0);
  CHECK_STR_EQ(parse_error("[1, 2]"), "config.json: must be a JSON object");
  CHECK_CONTAINS(parse_error(""), "config.json: invalid JSON at line ");
}

static void test_version_errors(void) {
  CHECK_STR_EQ(parse_error("{\"root\": {\"path\": \"r\"}}"),
               "config.json: ociVersion: is required");
  CHECK_STR_EQ(parse_error("{\"ociVersion\": 1, \"root\": {\"path\": \"r\"}}"),
               "config.json: ociVersion: must be a string");
  CHECK_STR_EQ(parse_error("{\"ociVersion\": \"2.0.0\", \"root\": {\"path\": \"r\"}}"),
               "config.json: ociVersion: unsupported version \"2.0.0\": runcell supports 1.x "
               "(1.0.0 to 1.2.0)");
  CHECK_STR_EQ(parse_error("{\"ociVersion\": \"0.5.0\", \"root\": {\"path\": \"r\"}}"),
               "config.json: ociVersion: unsupported version \"0.5.0\": runcell supports 1.x "
               "(1.0.0 to 1.2.0)");
  CHECK_STR_EQ(parse_error("{\"ociVersion\": \"latest\", \"root\": {\"path\": \"r\"}}"),
               "config.json: ociVersion: must be a SemVer version such as \"1.2.0\", got "
               "\"latest\"");
  CHECK_CONTAINS(parse_error("{\"ociVersion\": \"1.0\", \"root\": {\"path\": \"r\"}}"),
                 "must be a SemVer version");
  CHECK_CONTAINS(parse_error("{\"ociVersion\": \"1.0.0-\", \"root\": {\"path\": \"r\"}}"),
                 "must be a SemVer version");

  static const char *const good[] = {"1.0.0", "1.0.2-dev",     "1.1.0-rc.1",     "1.2.0",
                                     "1.2.1", "1.0.0+build.5", "1.1.0-rc.2+meta"};
  for (size_t i = 0; i < RC_ARRAY_SIZE(good); i++) {
    char text[256];
    snprintf(text, sizeof(text), "{\"ociVersion\": \"%s\", \"root\": {\"path\": \"r\"}}", good[i]);
    struct rc_error err = {0};
    struct oci_config *cfg = NULL;
    int r = oci_config_parse(text, strlen(text), &cfg, &err);
    if (r < 0) fprintf(stderr, "version %s: %s\n", good[i], err.msg);
    CHECK(r == 0);
    oci_config_free(cfg);
  }
}

static void test_root_errors(void) {
  CHECK_STR_EQ(parse_error("{\"ociVersion\": \"1.2.0\"}"), "config.json: root: is required");
  CHECK_STR_EQ(parse_error("{\"ociVersion\": \"1.2.0\", \"root\": {}}"),
               "config.json: root.path: is required");
  CHECK_STR_EQ(parse_error("{\"ociVersion\": \"1.2.0\", \"root\": []}"),
               "config.json: root: must be an object");
  CHECK_STR_EQ(parse_error("{\"ociVersion\": \"1.2.0\", \"root\": {\"path\": \"r\", "
                           "\"readonly\": \"yes\"}}"),
               "config.json: root.readonly: must be a boolean");
}

static void test_process_errors(void) {
  CHECK_STR_EQ(parse_error(with_top("\"process\": {\"cwd\": \"/\"}")),
               "config.json: process.args: must be a non-empty array of strings");
  CHECK_STR_EQ(parse_error(with_top("\"process\": {\"args\": [], \"cwd\": \"/\"}")),
               "config.json: process.args: must be a non-empty array of strings");
  CHECK_STR_EQ(parse_error(with_top("\"process\": {\"args\": [\"sh\", 2], \"cwd\": \"/\"}")),
               "config.json: process.args[1]: must be a string");
  CHECK_STR_EQ(parse_error(with_top("\"process\": {\"args\": [\"sh\"]}")),
               "config.json: process.cwd: is required");
  CHECK_STR_EQ(parse_error(with_top("\"process\": {\"args\": [\"sh\"], \"cwd\": \"tmp\"}")),
               "config.json: process.cwd: must be an absolute path, got \"tmp\"");
  CHECK_STR_EQ(parse_error(with_process("\"env\": [\"A=1\", \"NOEQUALS\"]")),
               "config.json: process.env[1]: must be of the form NAME=value, got \"NOEQUALS\"");
  CHECK_STR_EQ(parse_error(with_process("\"env\": [\"=x\"]")),
               "config.json: process.env[0]: must be of the form NAME=value, got \"=x\"");
  CHECK_STR_EQ(parse_error(with_process("\"terminal\": 1")),
               "config.json: process.terminal: must be a boolean");
  CHECK_STR_EQ(parse_error(with_process("\"consoleSize\": \"80x24\"")),
               "config.json: process.consoleSize: must be an object");
  CHECK_STR_EQ(parse_error(with_process("\"consoleSize\": {\"height\": 24}")),
               "config.json: process.consoleSize.width: is required");
  CHECK_STR_EQ(parse_error(with_process("\"oomScoreAdj\": 1001")),
               "config.json: process.oomScoreAdj: must be an integer between -1000 and 1000");
  CHECK_STR_EQ(parse_error(with_process("\"ioPriority\": {\"class\": \"IOPRIO_CLASS_X\"}")),
               "config.json: process.ioPriority.class: unknown class \"IOPRIO_CLASS_X\" "
               "(expected IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE)");
  CHECK_STR_EQ(parse_error(with_process(
                   "\"ioPriority\": {\"class\": \"IOPRIO_CLASS_RT\", \"priority\": 8}")),
               "config.json: process.ioPriority.priority: must be an integer between 0 and 7");
  CHECK_STR_EQ(parse_error(with_process("\"scheduler\": {\"policy\": \"SCHED_FAST\"}")),
               "config.json: process.scheduler.policy: unknown scheduling policy \"SCHED_FAST\"");
}

static void test_user_errors(void) {
  CHECK_STR_EQ(parse_error(with_process("\"user\": {\"uid\": -1, \"gid\": 0}")),
               "config.json: process.user.uid: must be an integer between 0 and 4294967294");
  /* Floats are refused even though JSON has no separate integer type. */
  CHECK_STR_EQ(parse_error(with_process("\"user\": {\"uid\": 0, \"gid\": 1.5}")),
               "config.json: process.user.gid: must be an integer between 0 and 4294967294");
  CHECK_STR_EQ(parse_error(with_process("\"user\": {\"uid\": 1.0}")),
               "config.json: process.user.uid: must be an integer between 0 and 4294967294");
  CHECK_STR_EQ(parse_error(with_process("\"user\": {\"uid\": 4294967296}")),
               "config.json: process.user.uid: must be an integer between 0 and 4294967294");
  CHECK_STR_EQ(parse_error(with_process("\"user\": {\"additionalGids\": [1, \"2\"]}")),
               "config.json: process.user.additionalGids[1]: must be an integer between 0 and "
               "4294967294");
  CHECK_STR_EQ(parse_error(with_process("\"user\": {\"umask\": 512}")),
               "config.json: process.user.umask: must be an integer between 0 and 511");
}

static void test_rlimit_and_cap_errors(void) {
  CHECK_STR_EQ(parse_error(with_process(
                   "\"rlimits\": [{\"type\": \"RLIMIT_FOO\", \"soft\": 1, \"hard\": 1}]")),
               "config.json: process.rlimits[0].type: unknown rlimit \"RLIMIT_FOO\" (expected "
               "RLIMIT_CPU ... RLIMIT_RTTIME)");
  CHECK_STR_EQ(parse_error(with_process("\"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"soft\": "
                                        "1, \"hard\": 1}, {\"type\": \"RLIMIT_NOFILE\", "
                                        "\"soft\": 2, \"hard\": 2}]")),
               "config.json: process.rlimits[1].type: duplicate rlimit RLIMIT_NOFILE");
  CHECK_STR_EQ(parse_error(with_process(
                   "\"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"soft\": 10, \"hard\": 5}]")),
               "config.json: process.rlimits[0].soft: must not exceed hard (10 > 5)");
  CHECK_STR_EQ(
      parse_error(with_process("\"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"soft\": 10}]")),
      "config.json: process.rlimits[0].hard: is required");
  /* Unknown names are left out (with a warning), as runc does; names are exact: libcap's
   * lowercase spelling is not the spec's. */
  struct rc_error err = {0};
  struct oci_config *cfg = NULL;
  const char *text = with_process(
      "\"capabilities\": {\"effective\": [\"CAP_KILL\", \"CAP_FOO\"], \"bounding\": "
      "[\"cap_kill\", \"CAP_CHOWN\"]}");
  CHECK(oci_config_parse(text, strlen(text), &cfg, &err) == 0);
  if (cfg) {
    CHECK(cfg->process.capabilities.has_effective &&
          cfg->process.capabilities.effective == UINT64_C(1) << 5 /* CAP_KILL */);
    CHECK(cfg->process.capabilities.has_bounding &&
          cfg->process.capabilities.bounding == UINT64_C(1) << 0 /* CAP_CHOWN */);
    oci_config_free(cfg);
  }
  CHECK_STR_EQ(parse_error(with_process("\"capabilities\": {\"ambient\": \"CAP_KILL\"}")),
               "config.json: process.capabilities.ambient: must be an array of strings");
}

/* Docker writes RLIM_INFINITY as the uint64 18446744073709551615, beyond jansson's int64. */
static void test_uint64_beyond_int64(void) {
  struct rc_error err = {0};
  struct oci_config *cfg = NULL;
  const char *text = with_process(
      "\"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"soft\": 9223372036854775808, \"hard\": "
      "18446744073709551615}], \"env\": [\"BIG=18446744073709551615\"]");
  CHECK(oci_config_parse(text, strlen(text), &cfg, &err) == 0);
  if (cfg) {
    CHECK(cfg->process.n_rlimits == 1);
    CHECK(cfg->process.rlimits[0].soft == UINT64_C(9223372036854775808));
    CHECK(cfg->process.rlimits[0].hard == UINT64_MAX);
    /* strings are not numbers: left as written */
    CHECK_STR_EQ(cfg->process.env[0], "BIG=18446744073709551615");
    /* the raw text kept with the state is the original */
    CHECK(strstr(cfg->raw, "18446744073709551615}") != NULL);
    oci_config_free(cfg);
  }
  /* a negative number is no uint64 value, not even beside a big one; nor does a big one
   * fit an int64 field */
  CHECK_STR_EQ(parse_error(with_process("\"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"soft\": "
                                        "-1, \"hard\": 18446744073709551615}]")),
               "config.json: process.rlimits[0].soft: must be an integer between 0 and "
               "9223372036854775807");
  CHECK_CONTAINS(parse_error(with_process("\"oomScoreAdj\": 18446744073709551615")),
                 "process.oomScoreAdj");
  /* past uint64: still an error; and negative numbers are not uint64 values */
  CHECK_CONTAINS(parse_error(with_process("\"rlimits\": [{\"type\": \"RLIMIT_CORE\", "
                                          "\"soft\": 1, \"hard\": 18446744073709551616}]")),
                 "too big integer");
  CHECK_STR_EQ(parse_error(with_process("\"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"soft\": "
                                        "-1, \"hard\": 1}]")),
               "config.json: process.rlimits[0].soft: must be an integer between 0 and "
               "9223372036854775807");
}

static void test_mount_and_hook_errors(void) {
  CHECK_STR_EQ(parse_error(with_top("\"mounts\": [{\"destination\": \"/proc\", \"type\": "
                                    "\"proc\"}, {\"destination\": \"proc\"}]")),
               "config.json: mounts[1].destination: must be an absolute path, got \"proc\"");
  CHECK_STR_EQ(parse_error(with_top("\"mounts\": [{\"type\": \"tmpfs\"}]")),
               "config.json: mounts[0].destination: is required");
  CHECK_STR_EQ(parse_error(with_top("\"mounts\": [{\"destination\": \"/x\", \"options\": "
                                    "[\"ro\", false]}]")),
               "config.json: mounts[0].options[1]: must be a string");
  CHECK_STR_EQ(parse_error(with_top("\"mounts\": {}")), "config.json: mounts: must be an array");
  CHECK_STR_EQ(parse_error(with_top("\"mounts\": [{\"destination\": \"/x\", \"uidMappings\": "
                                    "[{\"containerID\": 0, \"hostID\": 1}]}]")),
               "config.json: mounts[0].uidMappings[0].size: is required");
  CHECK_STR_EQ(parse_error(with_top("\"hooks\": {\"prestart\": [{\"path\": \"hook\"}]}")),
               "config.json: hooks.prestart[0].path: must be an absolute path, got \"hook\"");
  CHECK_STR_EQ(
      parse_error(with_top("\"hooks\": {\"poststop\": [{\"path\": \"/h\", \"timeout\": 0}]}")),
      "config.json: hooks.poststop[0].timeout: must be an integer between 1 and 2147483647");
  CHECK_STR_EQ(parse_error(with_top("\"hooks\": {\"createContainer\": [{\"path\": \"/h\", "
                                    "\"env\": [\"X\"]}]}")),
               "config.json: hooks.createContainer[0].env[0]: must be of the form NAME=value, "
               "got \"X\"");
  CHECK_STR_EQ(parse_error(with_top("\"annotations\": {\"a\": \"1\", \"b\": 2}")),
               "config.json: annotations[\"b\"]: must be a string");
}

static void test_linux_errors(void) {
  CHECK_STR_EQ(parse_error(with_linux("\"namespaces\": [{\"type\": \"pid\"}, {\"type\": "
                                      "\"mount\"}, {\"type\": \"foo\"}]")),
               "config.json: linux.namespaces[2].type: unknown namespace type \"foo\"");
  CHECK_STR_EQ(
      parse_error(with_linux("\"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"pid\"}]")),
      "config.json: linux.namespaces[1].type: duplicate namespace type \"pid\"");
  CHECK_STR_EQ(parse_error(with_linux("\"namespaces\": [{\"type\": \"net\", \"path\": "
                                      "\"ns/net\"}]")),
               "config.json: linux.namespaces[0].type: unknown namespace type \"net\"");
  CHECK_STR_EQ(parse_error(with_linux("\"namespaces\": [{\"type\": \"network\", \"path\": "
                                      "\"ns/net\"}]")),
               "config.json: linux.namespaces[0].path: must be an absolute path, got \"ns/net\"");
  CHECK_STR_EQ(parse_error(with_linux("\"uidMappings\": [{\"containerID\": 0, \"hostID\": "
                                      "1000, \"size\": 0}]")),
               "config.json: linux.uidMappings[0].size: must be an integer between 1 and "
               "4294967295");
  CHECK_STR_EQ(parse_error(with_linux("\"gidMappings\": [{\"containerID\": 4294967295, "
                                      "\"hostID\": 0, \"size\": 2}]")),
               "config.json: linux.gidMappings[0].size: range exceeds the 32-bit id space");
  CHECK_STR_EQ(parse_error(with_linux("\"devices\": [{\"type\": \"x\", \"path\": \"/dev/x\"}]")),
               "config.json: linux.devices[0].type: unknown device type \"x\" (expected c, b, u "
               "or p)");
  CHECK_STR_EQ(parse_error(with_linux("\"devices\": [{\"type\": \"c\", \"path\": \"dev/x\", "
                                      "\"major\": 1, \"minor\": 3}]")),
               "config.json: linux.devices[0].path: must be an absolute path, got \"dev/x\"");
  CHECK_STR_EQ(parse_error(with_linux("\"devices\": [{\"type\": \"b\", \"path\": \"/dev/x\", "
                                      "\"minor\": 3}]")),
               "config.json: linux.devices[0].major: is required");
  {
    /* a component longer than NAME_MAX: the runtime's path buffers would have cut it */
    char *long_dest = rc_xasprintf(
        "\"mounts\": [{\"destination\": \"/a/%0300d/b\", \"type\": "
        "\"tmpfs\", \"source\": \"tmpfs\"}]",
        0);
    CHECK_STR_EQ(parse_error(with_top(long_dest)),
                 "config.json: mounts[0].destination: is too long "
                 "for the kernel (at most 4095 bytes, 255 per "
                 "component)");
    free(long_dest);
    char *long_dev = rc_xasprintf(
        "\"devices\": [{\"type\": \"c\", \"path\": \"/dev/%0300d/fuse\", "
        "\"major\": 10, \"minor\": 229}]",
        0);
    CHECK_STR_EQ(parse_error(with_linux(long_dev)),
                 "config.json: linux.devices[0].path: is too "
                 "long for the kernel (at most 4095 bytes, 255 "
                 "per component)");
    free(long_dev);
  }
  /* 2^32 + 1 would reach mknod as major 1 */
  CHECK_CONTAINS(parse_error(with_linux("\"devices\": [{\"type\": \"c\", \"path\": \"/dev/x\", "
                                        "\"major\": 4294967297, \"minor\": 3}]")),
                 "config.json: linux.devices[0].major:");
  CHECK_CONTAINS(parse_error(with_linux("\"devices\": [{\"type\": \"c\", \"path\": \"/dev/x\", "
                                        "\"major\": 1, \"minor\": 1048576}]")),
                 "config.json: linux.devices[0].minor:");
  CHECK_STR_EQ(parse_error(with_linux("\"sysctl\": {\"net.ipv4.ip_forward\": 1}")),
               "config.json: linux.sysctl[\"net.ipv4.ip_forward\"]: must be a string");
  CHECK_STR_EQ(parse_error(with_linux("\"maskedPaths\": [\"/proc/kcore\", \"proc/keys\"]")),
               "config.json: linux.maskedPaths[1]: must be an absolute path, got \"proc/keys\"");
  CHECK_STR_EQ(parse_error(with_linux("\"readonlyPaths\": \"/proc/sys\"")),
               "config.json: linux.readonlyPaths: must be an array of strings");
  CHECK_STR_EQ(parse_error(with_linux("\"rootfsPropagation\": \"recursive\"")),
               "config.json: linux.rootfsPropagation: unknown propagation \"recursive\" (expected "
               "shared, slave, private, unbindable or their r-prefixed forms)");
  CHECK_STR_EQ(parse_error(with_linux("\"personality\": {\"domain\": \"BSD\"}")),
               "config.json: linux.personality.domain: unknown domain \"BSD\" (expected LINUX or "
               "LINUX32)");
  CHECK_STR_EQ(parse_error(with_linux("\"timeOffsets\": {\"realtime\": {\"secs\": 1}}")),
               "config.json: linux.timeOffsets.realtime: unknown clock (expected \"monotonic\" or "
               "\"boottime\")");
  CHECK_STR_EQ(
      parse_error(with_linux("\"timeOffsets\": {\"boottime\": {\"nanosecs\": 1000000000}}")),
      "config.json: linux.timeOffsets.boottime.nanosecs: must be an integer between 0 and "
      "999999999");
  CHECK_STR_EQ(parse_error(with_top("\"linux\": []")), "config.json: linux: must be an object");
}

static void test_resources_errors(void) {
  CHECK_STR_EQ(parse_error(with_linux("\"resources\": {\"memory\": {\"limit\": -2}}")),
               "config.json: linux.resources.memory.limit: must be an integer between -1 and "
               "9223372036854775807");
  CHECK_STR_EQ(parse_error(with_linux("\"resources\": {\"memory\": {\"swappiness\": 101}}")),
               "config.json: linux.resources.memory.swappiness: must be an integer between 0 "
               "and 100");
  CHECK_STR_EQ(parse_error(with_linux("\"resources\": {\"cpu\": {\"shares\": 1.5}}")),
               "config.json: linux.resources.cpu.shares: must be an integer between 0 and "
               "9223372036854775807");
  CHECK_STR_EQ(parse_error(with_linux("\"resources\": {\"devices\": [{\"allow\": true, "
                                      "\"access\": \"rwx\"}]}")),
               "config.json: linux.resources.devices[0].access: must be a non-empty combination "
               "of r, w and m, got \"rwx\"");
  CHECK_STR_EQ(parse_error(with_linux("\"resources\": {\"devices\": [{\"access\": \"r\"}]}")),
               "config.json: linux.resources.devices[0].allow: is required");
  CHECK_STR_EQ(parse_error(with_linux("\"resources\": {\"devices\": [{\"allow\": true, "
                                      "\"type\": \"u\"}]}")),
               "config.json: linux.resources.devices[0].type: unknown device type \"u\" "
               "(expected a, c or b)");
  CHECK_STR_EQ(parse_error(with_linux("\"resources\": {\"blockIO\": {\"weight\": 70000}}")),
               "config.json: linux.resources.blockIO.weight: must be an integer between 0 and "
               "65535");
  CHECK_STR_EQ(parse_error(with_linux("\"resources\": {\"blockIO\": {\"throttleReadBpsDevice\": "
                                      "[{\"major\": 8, \"minor\": 0}]}}")),
               "config.json: linux.resources.blockIO.throttleReadBpsDevice[0].rate: is required");
  CHECK_STR_EQ(parse_error(with_linux("\"resources\": {\"hugepageLimits\": [{\"limit\": 1}]}")),
               "config.json: linux.resources.hugepageLimits[0].pageSize: is required");
  CHECK_STR_EQ(parse_error(with_linux("\"resources\": {\"network\": {\"priorities\": "
                                      "[{\"name\": \"eth0\", \"priority\": -1}]}}")),
               "config.json: linux.resources.network.priorities[0].priority: must be an integer "
               "between 0 and 4294967295");
  CHECK_STR_EQ(parse_error(with_linux("\"resources\": {\"rdma\": {\"mlx\": "
                                      "{\"hcaHandles\": \"3\"}}}")),
               "config.json: linux.resources.rdma[\"mlx\"].hcaHandles: must be an integer "
               "between 0 and 4294967295");
  CHECK_STR_EQ(parse_error(with_linux("\"resources\": {\"unified\": {\"memory.max\": 5}}")),
               "config.json: linux.resources.unified[\"memory.max\"]: must be a string");
  CHECK_STR_EQ(parse_error(with_linux("\"resources\": {\"unified\": {\"cgroup.procs\": \"1\"}}")),
               "config.json: linux.resources.unified[\"cgroup.procs\"]: the runtime's to write "
               "(it moves processes or changes the cgroup tree), not a resource");
  CHECK_CONTAINS(parse_error(with_linux("\"resources\": {\"unified\": {\"cgroup.subtree_control\": "
                                        "\"+cpu\"}}")),
                 "unified[\"cgroup.subtree_control\"]: the runtime's to write");
  CHECK_STR_EQ(parse_error(with_linux("\"resources\": {\"pids\": {\"limit\": \"max\"}}")),
               "config.json: linux.resources.pids.limit: must be an integer between "
               "-9223372036854775808 and 9223372036854775807");
}

static void test_seccomp_errors(void) {
  CHECK_STR_EQ(parse_error(with_linux("\"seccomp\": {}")),
               "config.json: linux.seccomp.defaultAction: is required");
  CHECK_STR_EQ(parse_error(with_linux("\"seccomp\": {\"defaultAction\": \"SCMP_ACT_FOO\"}")),
               "config.json: linux.seccomp.defaultAction: unknown action \"SCMP_ACT_FOO\"");
  CHECK_STR_EQ(parse_error(with_linux("\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ERRNO\", "
                                      "\"defaultErrnoRet\": 70000}")),
               "config.json: linux.seccomp.defaultErrnoRet: must be an integer between 0 and "
               "65535");
  CHECK_STR_EQ(parse_error(with_linux("\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", "
                                      "\"architectures\": [\"SCMP_ARCH_X86_64\", "
                                      "\"SCMP_ARCH_VAX\"]}")),
               "config.json: linux.seccomp.architectures[1]: unknown architecture "
               "\"SCMP_ARCH_VAX\"");
  CHECK_STR_EQ(parse_error(with_linux("\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", "
                                      "\"architectures\": [\"x86_64\"]}")),
               "config.json: linux.seccomp.architectures[0]: unknown architecture \"x86_64\"");
  CHECK_STR_EQ(parse_error(with_linux("\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", "
                                      "\"flags\": [\"SECCOMP_FILTER_FLAG_FAST\"]}")),
               "config.json: linux.seccomp.flags[0]: unknown flag \"SECCOMP_FILTER_FLAG_FAST\"");
  CHECK_STR_EQ(parse_error(with_linux("\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", "
                                      "\"syscalls\": [{\"names\": [], \"action\": "
                                      "\"SCMP_ACT_ERRNO\"}]}")),
               "config.json: linux.seccomp.syscalls[0].names: must be a non-empty array of "
               "strings");
  CHECK_STR_EQ(parse_error(with_linux("\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", "
                                      "\"syscalls\": [{\"names\": [\"read\"]}]}")),
               "config.json: linux.seccomp.syscalls[0].action: is required");
  CHECK_STR_EQ(parse_error(with_linux("\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", "
                                      "\"syscalls\": [{\"names\": [\"read\"], \"action\": "
                                      "\"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 6, \"value\": "
                                      "1, \"op\": \"SCMP_CMP_EQ\"}]}]}")),
               "config.json: linux.seccomp.syscalls[0].args[0].index: must be an integer between "
               "0 and 5");
  CHECK_STR_EQ(parse_error(with_linux("\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", "
                                      "\"syscalls\": [{\"names\": [\"read\"], \"action\": "
                                      "\"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 0, \"value\": "
                                      "1, \"op\": \"SCMP_CMP_APPROX\"}]}]}")),
               "config.json: linux.seccomp.syscalls[0].args[0].op: unknown operator "
               "\"SCMP_CMP_APPROX\"");
  CHECK_STR_EQ(parse_error(with_linux("\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", "
                                      "\"listenerPath\": \"agent.sock\"}")),
               "config.json: linux.seccomp.listenerPath: must be an absolute path, got "
               "\"agent.sock\"");
}

static void test_load(void) {
  struct rc_error err = {0};
  struct oci_config *cfg = (struct oci_config *)1;
  CHECK(oci_config_load("/nonexistent-runcell-bundle", &cfg, &err) < 0);
  CHECK(cfg == NULL);
  CHECK_STR_EQ(err.msg, "open /nonexistent-runcell-bundle/config.json: No such file or directory");
  CHECK(err.code == ENOENT);

  char dir[] = "/tmp/runcell-oci-load-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char *path = rc_xasprintf("%s/config.json", dir);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (f) {
    fputs(with_process("\"env\": [\"A=b\"]"), f);
    fclose(f);
  }
  cfg = NULL;
  int r = oci_config_load(dir, &cfg, &err);
  if (r < 0) fprintf(stderr, "%s\n", err.msg);
  CHECK(r == 0);
  if (cfg) {
    CHECK(cfg->has_process);
    CHECK_STR_EQ(cfg->process.env[0], "A=b");
  }
  oci_config_free(cfg);

  /* Errors from the parser keep their config.json prefix. */
  f = fopen(path, "w");
  if (f) {
    fputs("{\"ociVersion\": \"1.2.0\"}", f);
    fclose(f);
  }
  cfg = NULL;
  CHECK(oci_config_load(dir, &cfg, &err) < 0);
  CHECK_STR_EQ(err.msg, "config.json: root: is required");
  unlink(path);
  rmdir(dir);
  free(path);
}

static void test_process_json(void) {
  struct rc_error err = {0};
  struct oci_process p;
  const char *good =
      "{\"args\": [\"ls\", \"-l\"], \"cwd\": \"/tmp\", \"env\": [\"A=1\"], \"user\": {\"uid\": "
      "5, \"gid\": 6}, \"capabilities\": {\"bounding\": [\"CAP_SYS_ADMIN\"]}}";
  CHECK(oci_process_parse(good, strlen(good), "process.json", &p, &err) == 0);
  CHECK(p.n_args == 2 && p.user.uid == 5 && p.user.gid == 6);
  CHECK(p.capabilities.has_bounding && p.capabilities.bounding == (1ULL << 21));
  oci_process_free_fields(&p);
  CHECK(p.args == NULL && p.n_args == 0);

  const char *bad = "{\"args\": [], \"cwd\": \"/\"}";
  CHECK(oci_process_parse(bad, strlen(bad), "process.json", &p, &err) < 0);
  CHECK_STR_EQ(err.msg, "process.json: args: must be a non-empty array of strings");
  CHECK(p.args == NULL);

  bad =
      "{\"args\": [\"ls\"], \"cwd\": \"/\", \"rlimits\": [{\"type\": \"RLIMIT_AS\", \"soft\": "
      "-1, \"hard\": 1}]}";
  CHECK(oci_process_parse(bad, strlen(bad), "process.json", &p, &err) < 0);
  CHECK_STR_EQ(err.msg,
               "process.json: rlimits[0].soft: must be an integer between 0 and "
               "9223372036854775807");

  CHECK(oci_process_parse("[]", 2, "process.json", &p, &err) < 0);
  CHECK_STR_EQ(err.msg, "process.json: must be a JSON object");
  CHECK(oci_process_parse("{", 1, "exec --process", &p, &err) < 0);
  CHECK_CONTAINS(err.msg, "exec --process: invalid JSON at line 1 column ");
}

UNIT_MAIN("oci_config", UNIT_CASE(test_full_top_level), UNIT_CASE(test_full_process),
          UNIT_CASE(test_full_linux), UNIT_CASE(test_full_resources), UNIT_CASE(test_full_seccomp),
          UNIT_CASE(test_minimal_is_valid), UNIT_CASE(test_invalid_json),
          UNIT_CASE(test_version_errors), UNIT_CASE(test_root_errors),
          UNIT_CASE(test_process_errors), UNIT_CASE(test_user_errors),
          UNIT_CASE(test_rlimit_and_cap_errors), UNIT_CASE(test_uint64_beyond_int64),
          UNIT_CASE(test_mount_and_hook_errors), UNIT_CASE(test_linux_errors),
          UNIT_CASE(test_resources_errors), UNIT_CASE(test_seccomp_errors), UNIT_CASE(test_load),
          UNIT_CASE(test_process_json))
