/* The container's pids limit inside the guest. Under runc linux.resources.pids.limit caps
 * the processes of the container's cgroup, so a fork bomb fails its forks at the limit;
 * the host's limit on the VMM's cgroup counts only the VMM's threads, so the guest needs
 * its own: a cgroup (cgroup v2, mounted where only the agent sees it) with that pids.max,
 * which the container's process and every exec'd one join before anything else. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "agent.h"

#define CGROUP_MOUNT "/run/agent-cgroup"
#define CGROUP_DIR CGROUP_MOUNT "/container"

static bool configured;

int agent_setup_cgroup(const struct agent_config *cfg, struct rc_error *err) {
  if (cfg->pids_limit == 0) return 0;
  if (mkdir(CGROUP_MOUNT, 0700) < 0 && errno != EEXIST)
    return rc_err(err, errno, "pids limit: create %s", CGROUP_MOUNT);
  if (mount("cgroup2", CGROUP_MOUNT, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    return rc_err(err, errno, "pids limit: mount cgroup2 on %s", CGROUP_MOUNT);
  if (agent_write_text(CGROUP_MOUNT "/cgroup.subtree_control", "+pids", 0) < 0)
    return rc_err(err, errno, "pids limit: enable the pids controller");
  if (mkdir(CGROUP_DIR, 0755) < 0 && errno != EEXIST)
    return rc_err(err, errno, "pids limit: create %s", CGROUP_DIR);
  char limit[32];
  snprintf(limit, sizeof(limit), "%" PRIu64, cfg->pids_limit);
  if (agent_write_text(CGROUP_DIR "/pids.max", limit, 0) < 0)
    return rc_err(err, errno, "pids limit: write pids.max %s", limit);
  configured = true;
  return 0;
}

bool agent_cgroup_limited(void) {
  return configured;
}

int agent_join_cgroup(void) {
  if (!configured) return 0;
  return agent_write_text(CGROUP_DIR "/cgroup.procs", "0", 0);
}
