/* The CONFIG a microVM's agent gets: the OCI process, mounts and devices as the guest makes them.
 * Bind mounts' sources become paths on the volumes (the disks holding their snapshots);
 * every other mount is passed through for the agent to make inside the guest. */
#include "runcell/microvm_agent_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linux/rootfs_internal.h"
#include "runcell/process_attrs.h"
#include "runcell/util.h"

static const struct rc_microvm_bind *bind_of(const struct rc_microvm_plan *plan, size_t mount) {
  for (unsigned i = 0; i < plan->n_binds; i++)
    if (plan->binds[i].mount_index == mount) return &plan->binds[i];
  return NULL;
}

void rc_microvm_privileges(const struct oci_process *p, struct agent_privileges *out) {
  const struct oci_capabilities *c = &p->capabilities;
  bool has = p->has_capabilities;
  *out = (struct agent_privileges){
      .bounding = has && c->has_bounding ? c->bounding : 0,
      .effective = has && c->has_effective ? c->effective : 0,
      .permitted = has && c->has_permitted ? c->permitted : 0,
      .inheritable = has && c->has_inheritable ? c->inheritable : 0,
      .ambient = has && c->has_ambient ? c->ambient : 0,
      .no_new_privs = p->no_new_privileges,
  };
}

void rc_microvm_rlimits(const struct oci_process *p, struct agent_rlimit *out) {
  for (size_t i = 0; i < p->n_rlimits; i++)
    out[i] = (struct agent_rlimit){.type = (uint32_t)p->rlimits[i].type,
                                   .soft = p->rlimits[i].soft,
                                   .hard = p->rlimits[i].hard};
}

/* linux.maskedPaths, readonlyPaths, sysctl, process.oomScoreAdj and linux.seccomp, as the
 * agent applies them (the filter compiled here: the guest has no libseccomp). */
static int security(const struct oci_config *cfg, struct agent_security *sec,
                    struct rc_error *err) {
  const struct oci_linux *l = &cfg->linux_;
  if (cfg->has_linux) {
    sec->masked_paths = l->masked_paths;
    sec->n_masked_paths = (uint32_t)l->n_masked_paths;
    sec->readonly_paths = l->readonly_paths;
    sec->n_readonly_paths = (uint32_t)l->n_readonly_paths;
    sec->n_sysctls = (uint32_t)l->n_sysctl;
    sec->sysctls = rc_xcalloc(l->n_sysctl + 1, sizeof(char *));
    for (size_t i = 0; i < l->n_sysctl; i++)
      sec->sysctls[i] = rc_xasprintf("%s=%s", l->sysctl[i].key, l->sysctl[i].value);
  }
  sec->has_oom_score_adj = cfg->process.has_oom_score_adj;
  sec->oom_score_adj = cfg->process.oom_score_adj;
  if (cfg->has_linux && l->has_seccomp &&
      rc_seccomp_export(&l->seccomp, &sec->seccomp_bpf, &sec->seccomp_bpf_len, &sec->seccomp_flags,
                        err) < 0)
    return rc_err_wrap(err, "linux.seccomp for the guest");
  return 0;
}

/* The kernel's dev_t cannot hold a number this large; passed on as the largest u32, it
 * fails the CONFIG's validation by name instead of wrapping into another device. */
static uint32_t device_number(int64_t n) {
  return n < 0 || n > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* linux.devices as the agent makes them, with runc's reading of the entry: the path
 * cleaned as its path join does ("/dev//net/./tun" is /dev/net/tun; a ".." stays, for the
 * validation to refuse), fileMode 0666 and owner root when absent, a FIFO without numbers,
 * and a later entry for a path already listed dropped (runc's mknod of it meets EEXIST and
 * moves on). */
static void devices(const struct oci_config *cfg, struct agent_config *a) {
  const struct oci_linux *l = &cfg->linux_;
  size_t n = cfg->has_linux ? l->n_devices : 0;
  a->devices = rc_xcalloc(n + 1, sizeof(*a->devices));
  for (size_t i = 0; i < n; i++) {
    const struct oci_device *d = &l->devices[i];
    /* the clean path is never longer than the path and a leading slash */
    size_t size = strlen(d->path) + 2;
    char *path = rc_xmalloc(size);
    rc_clean_path(d->path, path, size);
    bool listed = false;
    for (uint32_t j = 0; j < a->n_devices && !listed; j++)
      listed = strcmp(a->devices[j].path, path) == 0;
    if (listed) {
      free(path);
      continue;
    }
    bool fifo = d->type == 'p';
    a->devices[a->n_devices++] = (struct agent_device){
        .path = path,
        .type = (uint8_t)d->type,
        .major = fifo ? 0 : device_number(d->major),
        .minor = fifo ? 0 : device_number(d->minor),
        .mode = d->has_file_mode ? (uint32_t)d->file_mode : 0666,
        .uid = d->has_uid ? (uint32_t)d->uid : 0,
        .gid = d->has_gid ? (uint32_t)d->gid : 0,
    };
  }
}

int rc_microvm_agent_config(const struct oci_config *cfg, const struct rc_microvm_plan *plan,
                            struct agent_config **out, struct rc_error *err) {
  const struct oci_process *p = &cfg->process;
  struct agent_config *a = rc_xcalloc(1, sizeof(*a));
  *out = a; /* freed by the caller whatever happens */
  if (security(cfg, &a->security, err) < 0) return -1;
  /* Borrowed strings are cast: the struct is only encoded, never freed field by field
   * (rc_microvm_agent_config_free frees what this function allocated). */
  a->args = p->args;
  a->n_args = (uint32_t)p->n_args;
  a->env = p->env;
  a->n_env = (uint32_t)p->n_env;
  a->cwd = p->cwd;
  a->uid = p->user.uid;
  a->gid = p->user.gid;
  a->n_additional_gids = (uint32_t)p->user.n_additional_gids;
  a->additional_gids = rc_xcalloc(p->user.n_additional_gids + 1, sizeof(uint32_t));
  for (size_t i = 0; i < p->user.n_additional_gids; i++)
    a->additional_gids[i] = p->user.additional_gids[i];
  rc_microvm_privileges(p, &a->privileges);
  a->has_umask = p->user.has_umask;
  a->umask = p->user.umask;
  a->n_rlimits = (uint32_t)p->n_rlimits;
  a->rlimits = rc_xcalloc(p->n_rlimits + 1, sizeof(*a->rlimits));
  rc_microvm_rlimits(p, a->rlimits);
  a->terminal = p->terminal;
  if (p->has_console_size)
    a->winsize = (struct agent_winsize){.rows = (uint16_t)p->console_height,
                                        .cols = (uint16_t)p->console_width};
  a->hostname = cfg->hostname ? cfg->hostname : (char *)"";
  if (cfg->has_linux && cfg->linux_.has_resources && cfg->linux_.resources.has_pids_limit &&
      cfg->linux_.resources.pids_limit > 0)
    a->pids_limit = (uint64_t)cfg->linux_.resources.pids_limit;
  a->rootfs_device = (char *)"serial:rootfs";
  a->rootfs_fstype = (char *)plan->disks[0].fstype;
  a->rootfs_read_only = cfg->root_readonly;

  a->n_volumes = plan->n_disks - 1;
  a->volumes = rc_xcalloc(plan->n_disks, sizeof(*a->volumes));
  for (unsigned i = 1; i < plan->n_disks; i++) {
    a->volumes[i - 1].device = rc_xasprintf("serial:%s", plan->disks[i].serial);
    a->volumes[i - 1].fstype = (char *)plan->disks[i].fstype;
    a->volumes[i - 1].read_only = plan->disks[i].read_only;
  }

  devices(cfg, a);

  a->n_mounts = (uint32_t)cfg->n_mounts;
  a->mounts = rc_xcalloc(cfg->n_mounts + 1, sizeof(*a->mounts));
  for (size_t i = 0; i < cfg->n_mounts; i++) {
    const struct oci_mount *m = &cfg->mounts[i];
    struct agent_mount *am = &a->mounts[i];
    am->destination = m->destination;
    am->options = m->options;
    am->n_options = (uint32_t)m->n_options;
    const struct rc_microvm_bind *b = bind_of(plan, i);
    if (b) {
      am->type = (char *)"bind";
      am->source = *b->subpath ? rc_xasprintf(AGENT_VOLUMES_DIR "/%u/%s", b->disk - 1, b->subpath)
                               : rc_xasprintf(AGENT_VOLUMES_DIR "/%u", b->disk - 1);
    } else {
      am->type = m->type ? m->type : (char *)"";
      am->source = rc_xstrdup(m->source ? m->source : "");
    }
  }
  return 0;
}

void rc_microvm_agent_config_free(struct agent_config *a) {
  if (!a) return;
  free(a->additional_gids);
  free(a->rlimits);
  for (uint32_t i = 0; i < a->n_volumes; i++) free(a->volumes[i].device);
  free(a->volumes);
  for (uint32_t i = 0; i < a->n_mounts; i++) free(a->mounts[i].source);
  free(a->mounts);
  for (uint32_t i = 0; i < a->security.n_sysctls; i++) free(a->security.sysctls[i]);
  free(a->security.sysctls);
  free(a->security.seccomp_bpf);
  for (uint32_t i = 0; i < a->n_devices; i++) free(a->devices[i].path);
  free(a->devices);
  free(a);
}
