/* The CONFIG a microVM's agent gets: the OCI process and mounts as the guest makes them.
 * Bind mounts' sources become paths on the volumes (the disks holding their snapshots);
 * every other mount is passed through for the agent to make inside the guest. */
#include "runcell/microvm_agent_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

struct agent_config *rc_microvm_agent_config(const struct oci_config *cfg,
                                             const struct rc_microvm_plan *plan) {
  const struct oci_process *p = &cfg->process;
  struct agent_config *a = rc_xcalloc(1, sizeof(*a));
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
  for (size_t i = 0; i < p->n_rlimits; i++)
    a->rlimits[i] = (struct agent_rlimit){.type = (uint32_t)p->rlimits[i].type,
                                          .soft = p->rlimits[i].soft,
                                          .hard = p->rlimits[i].hard};
  a->terminal = p->terminal;
  if (p->has_console_size)
    a->winsize = (struct agent_winsize){.rows = (uint16_t)p->console_height,
                                        .cols = (uint16_t)p->console_width};
  a->hostname = cfg->hostname ? cfg->hostname : (char *)"";
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
  return a;
}

void rc_microvm_agent_config_free(struct agent_config *a) {
  if (!a) return;
  free(a->additional_gids);
  free(a->rlimits);
  for (uint32_t i = 0; i < a->n_volumes; i++) free(a->volumes[i].device);
  free(a->volumes);
  for (uint32_t i = 0; i < a->n_mounts; i++) free(a->mounts[i].source);
  free(a->mounts);
  free(a);
}
