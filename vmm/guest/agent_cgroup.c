/* The container's pids limit inside the guest. Under runc linux.resources.pids.limit caps
 * the processes of the container's cgroup, so a fork bomb fails its forks at the limit;
 * the VMM's cgroup on the host counts only the VMM's threads (and gets no pids limit: see
 * make_cgroup in src/container_create.c), so the guest needs its own: a cgroup (cgroup v2,
 * mounted where only the agent sees it) with that pids.max, which the container's process
 * and every exec'd one join before anything else.
 *
 * The cgroup is made for every container, with pids.max "max" when the bundle sets no
 * limit, because `runcell update --pids-limit` may set one later (PIDS_LIMIT) and processes
 * cannot be gathered into a cgroup after the fact (a fork in flight escapes a sweep). It
 * costs a mount, a mkdir and two small writes at CONFIG, and a write per process started.
 * A guest kernel without cgroup2 or its pids controller (a kernel of the user's own) runs
 * a container without a limit as before; one with a limit is refused, as runc refuses a
 * limit its host cannot apply. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "agent.h"

#define CGROUP_MOUNT "/run/agent-cgroup"
#define CGROUP_DIR CGROUP_MOUNT "/container"

static bool configured;

/* pids.max as the kernel takes it: a number, or "max" for 0 (no limit). */
static int write_pids_max(uint64_t limit) {
  char text[32];
  if (limit == 0)
    snprintf(text, sizeof(text), "max");
  else
    snprintf(text, sizeof(text), "%" PRIu64, limit);
  return agent_write_text(CGROUP_DIR "/pids.max", text, 0);
}

/* Mounts cgroup2 and makes the container's cgroup with the pids controller; -1 with errno
 * and what failed in *step. */
static int make_cgroup(const char **step) {
  *step = "create " CGROUP_MOUNT;
  if (mkdir(CGROUP_MOUNT, 0700) < 0 && errno != EEXIST) return -1;
  *step = "mount cgroup2 on " CGROUP_MOUNT;
  if (mount("cgroup2", CGROUP_MOUNT, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    return -1;
  *step = "enable the pids controller";
  if (agent_write_text(CGROUP_MOUNT "/cgroup.subtree_control", "+pids", 0) < 0) return -1;
  *step = "create " CGROUP_DIR;
  if (mkdir(CGROUP_DIR, 0755) < 0 && errno != EEXIST) return -1;
  return 0;
}

int agent_setup_cgroup(const struct agent_config *cfg, struct rc_error *err) {
  const char *step = "";
  if (make_cgroup(&step) < 0) {
    int e = errno;
    if (cfg->pids_limit == 0) {
      /* nothing asked of it yet: a later PIDS_LIMIT is refused with this reason */
      agent_log("no pids cgroup (%s: %s): a pids limit cannot be set", step, strerror(e));
      umount2(CGROUP_MOUNT, MNT_DETACH);
      return 0;
    }
    return rc_err(err, e, "pids limit: %s", step);
  }
  if (write_pids_max(cfg->pids_limit) < 0)
    return rc_err(err, errno, "pids limit: write pids.max %" PRIu64, cfg->pids_limit);
  configured = true;
  return 0;
}

bool agent_has_pids_cgroup(void) {
  return configured;
}

int agent_join_cgroup(void) {
  if (!configured) return 0;
  return agent_write_text(CGROUP_DIR "/cgroup.procs", "0", 0);
}

uint64_t agent_pids_limit(void) {
  char text[32] = "";
  if (!configured || agent_read_text(CGROUP_DIR "/pids.max", text, sizeof(text)) < 0) return 0;
  return strncmp(text, "max", 3) == 0 ? 0 : strtoull(text, NULL, 10);
}

int agent_set_pids_limit(uint64_t limit, struct rc_error *err) {
  if (!configured)
    return rc_err(err, ENOTSUP,
                  "the guest has no pids cgroup (its kernel lacks cgroup2 or the pids controller)");
  if (write_pids_max(limit) < 0) {
    if (limit == 0) return rc_err(err, errno, "write the guest's pids.max max");
    return rc_err(err, errno, "write the guest's pids.max %" PRIu64, limit);
  }
  return 0;
}
