/* start, kill, delete and state on an existing container. Each holds the container
 * directory's lock for its whole run, so concurrent commands on one id are serialized. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "runcell/cgroups.h"
#include "runcell/cgroups_systemd.h"
#include "runcell/container.h"
#include "runcell/hooks.h"
#include "runcell/log.h"
#include "runcell/microvm.h"
#include "runcell/microvm_control.h"
#include "runcell/microvm_net.h"
#include "runcell/mode.h"
#include "runcell/sync.h"
#include "runcell/util.h"

#define STOP_TIMEOUT_MS 10000

static int load_locked(const char *root, const char *id, struct rc_container_dir *dir,
                       struct oci_state **st, struct rc_error *err) {
  if (rc_state_dir_open(root, id, dir, err) < 0) return -1;
  if (rc_state_load(dir, st, err) < 0) {
    rc_state_dir_close(dir);
    return -1;
  }
  rc_state_refresh(*st);
  return 0;
}

int rc_container_state(const char *root, const char *id, struct oci_state **st,
                       struct rc_error *err) {
  return rc_state_read(root, id, st, err);
}

static int connect_start_socket(int dirfd, struct rc_error *err) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return rc_err(err, errno, "start socket");
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/start.sock", dirfd);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    int e = errno;
    close(fd);
    return rc_err(err, e, "connect to the container init");
  }
  return fd;
}

/* The init closes the start connection by exec'ing (it is close-on-exec) or sends the
 * error that kept it from doing so. Waiting is bounded by the init's life: a start never
 * hangs on an init that died or was stopped (SIGSTOP) before it could exec. */
static int wait_for_exec(int conn, const struct oci_state *st, struct rc_error *err) {
  cleanup_close int pidfd = rc_state_open_pidfd(st);
  for (;;) {
    struct pollfd p[2] = {{.fd = conn, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
    int r = poll(p, pidfd >= 0 ? 2 : 1, 500);
    if (r < 0 && errno != EINTR) return rc_err(err, errno, "start: wait for the container init");
    if (r > 0 && (p[0].revents || (pidfd >= 0 && p[1].revents))) {
      struct rc_error child = {0};
      if (!(p[0].revents) && pidfd >= 0) {
        /* exited: whatever it managed to say is still queued on the connection */
        int fl = fcntl(conn, F_GETFL);
        fcntl(conn, F_SETFL, fl | O_NONBLOCK);
      }
      int t = rc_sync_recv(conn, "start container", &child);
      if (t == RC_SYNC_PEER_ERROR) {
        *err = child;
        return -1;
      }
      /* EOF: exec closed the connection (or the init died, which state shows as stopped) */
      return 0;
    }
    char state = 0;
    if (rc_pid_state(st->pid, &state) == 0 && state == 'T')
      return rc_err(err, 0, "cannot start container %s: its init (pid %d) is stopped", st->id,
                    (int)st->pid);
  }
}

/* The init could not be reached on its start socket (connect or send failed with
 * errno `e`). If it is exiting (a kill or delete, which do not take the lock, got there
 * first; its socket closes before it is gone), start fails as for a container found
 * stopped. If it lives but refuses the connection, nothing listens any more: it has
 * exec'd the program for a start that was killed before it could record it, and the
 * state is brought up to date. */
static void explain_unreachable_init(struct rc_container_dir *dir, struct oci_state *st, int e,
                                     struct rc_error *err) {
  cleanup_close int pidfd = rc_state_open_pidfd(st);
  if (pidfd >= 0) {
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    int r;
    while ((r = poll(&p, 1, 200)) < 0 && errno == EINTR) {
    }
    if (r <= 0) {
      if (e == ECONNREFUSED || e == ENOENT) {
        struct rc_error ignore;
        unlinkat(dir->dirfd, "start.sock", 0);
        st->status = OCI_STATUS_RUNNING;
        (void)rc_state_save(dir, st, &ignore);
        rc_err(err, 0, "cannot start an already running container");
      }
      return;
    }
  }
  rc_err(err, 0, "cannot start a container that has stopped");
}

int rc_container_start(const char *root, const char *id, struct rc_error *err) {
  struct rc_container_dir dir;
  struct oci_state *st = NULL;
  if (load_locked(root, id, &dir, &st, err) < 0) return -1;
  int rc = -1;
  struct oci_config *cfg = NULL;
  cleanup_close int conn = -1;

  switch (st->status) {
    case OCI_STATUS_CREATED:
      break;
    case OCI_STATUS_STOPPED:
      rc_err(err, 0, "cannot start a container that has stopped");
      goto out;
    case OCI_STATUS_RUNNING:
      rc_err(err, 0, "cannot start an already running container");
      goto out;
    default:
      rc_err(err, 0, "cannot start a container in the %s state", oci_status_name(st->status));
      goto out;
  }
  if ((conn = connect_start_socket(dir.dirfd, err)) < 0) {
    explain_unreachable_init(&dir, st, err->code, err);
    goto out;
  }
  struct rc_sync_msg m = {.type = RC_SYNC_START};
  if (send(conn, &m, offsetof(struct rc_sync_msg, msg) + 1, MSG_NOSIGNAL) < 0) {
    rc_err(err, errno, "signal the container init");
    explain_unreachable_init(&dir, st, err->code, err);
    goto out;
  }
  if (wait_for_exec(conn, st, err) < 0) goto out;
  unlinkat(dir.dirfd, "start.sock", 0);
  st->status = OCI_STATUS_RUNNING;
  rc_state_refresh(st); /* it may already have exited */
  if (rc_state_save(&dir, st, err) < 0) goto out;

  if (rc_container_load_config(root, id, &cfg, err) < 0) goto out;
  if (cfg->hooks.n_poststart > 0) {
    st->status = OCI_STATUS_RUNNING;
    cleanup_free char *hs = oci_state_to_hook_json(st);
    struct rc_error herr;
    /* The spec: a failing poststart hook is logged; the container keeps running. */
    if (rc_hooks_run("poststart", cfg->hooks.poststart, cfg->hooks.n_poststart, hs, &herr) < 0)
      rc_warn("%s", herr.msg);
  }
  rc = 0;
out:
  oci_config_free(cfg);
  oci_state_free(st);
  rc_state_dir_close(&dir);
  return rc;
}

int rc_container_kill(const char *root, const char *id, int sig, bool all, struct rc_error *err) {
  /* No lock: the pidfd (checked against the recorded start time) makes the signal go to
   * the right process, and kill must work while another command holds the lock (a start
   * blocked on a stopped init, a slow hook). */
  struct oci_state *st = NULL;
  if (rc_state_read(root, id, &st, err) < 0) return -1;
  int rc = -1;
  if (st->status == OCI_STATUS_CREATING || (st->status == OCI_STATUS_STOPPED && !all)) {
    rc_err(err, 0, "container not running");
    goto out;
  }
  if (all) {
    /* With --all the cgroup is signalled even after the init exited: processes that
     * outlived it (no pid namespace) must still be reachable (containerd's KillAll). */
    if (rc_cgroup_kill_all(st->cgroup_path, sig, err) < 0) goto out;
  } else {
    int pidfd = rc_state_open_pidfd(st);
    if (pidfd < 0) {
      rc_err(err, 0, "container not running");
      goto out;
    }
    int r = (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
    int e = errno;
    close(pidfd);
    if (r < 0) {
      if (e == ESRCH)
        rc_err(err, 0, "container not running");
      else
        rc_err(err, e, "kill container %s with signal %d", id, sig);
      goto out;
    }
    /* A frozen v1 cgroup holds even SIGKILL until thawed: thaw, as runc does, so that a
     * paused container killed this way ends now (other signals wait for resume). */
    if (sig == SIGKILL && st->status == OCI_STATUS_PAUSED && st->cgroup_path) {
      struct rc_error ignore;
      (void)rc_cgroup_freeze(st->cgroup_path, false, &ignore);
    }
  }
  rc = 0;
out:
  oci_state_free(st);
  return rc;
}

/* Waits (bounded) until the process behind pidfd has exited. */
static int wait_exit(int pidfd, int timeout_ms) {
  struct pollfd p = {.fd = pidfd, .events = POLLIN};
  for (;;) {
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    return r > 0 ? 0 : -1;
  }
}

/* Stops every process of the container: SIGKILL to the init (which takes its pid
 * namespace with it) and to whatever else is in the cgroup. */
static int stop_all(struct oci_state *st, struct rc_error *err) {
  int pidfd = rc_state_open_pidfd(st);
  if (pidfd >= 0) {
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    if (wait_exit(pidfd, STOP_TIMEOUT_MS) < 0) {
      close(pidfd);
      return rc_err(err, 0, "container init %d did not exit after SIGKILL", (int)st->pid);
    }
    close(pidfd);
  }
  if (st->cgroup_path && rc_cgroup_exists(st->cgroup_path)) {
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
      pid_t *pids = NULL;
      size_t n = 0;
      /* A cgroup removed under this loop holds no process: reading it fails with ENOENT,
       * or ENODEV for a file opened before. systemd removes the systemd driver's scope on
       * its own once it is empty (delete --force failed with "read cgroup.procs: No such
       * device" when it came in between); whoever removed it, there is nothing to stop. */
      if (rc_cgroup_pids(st->cgroup_path, &pids, &n, err) < 0 ||
          (n > 0 && rc_cgroup_kill_all(st->cgroup_path, SIGKILL, err) < 0)) {
        free(pids);
        if (err->code == ENOENT || err->code == ENODEV) break;
        return -1;
      }
      free(pids);
      if (n == 0) break;
      clock_gettime(CLOCK_MONOTONIC, &now);
      long ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
      if (ms > STOP_TIMEOUT_MS)
        return rc_err(err, 0, "processes of cgroup %s did not exit after SIGKILL", st->cgroup_path);
      usleep(10000);
    }
  }
  return 0;
}

/* delete --force of a container whose state.json cannot be read (truncated, replaced by
 * hand, a disk error): the config.json saved at create still names its cgroup, so its
 * processes (the init among them) are killed and the cgroup and state directory removed,
 * with a warning that says what was wrong. Without a readable config.json nothing is
 * known about the container, and the state directory is kept with both reasons. */
/* The systemd driver's unit, once the cgroup is gone: a failure leaves only a unit that
 * systemd collects itself (it is empty), so it is logged rather than failing the delete. */
static void stop_unit(const char *cgroup_path) {
  struct rc_error e;
  if (rc_systemd_stop(rc_systemd_unit_of(cgroup_path), &e) < 0) rc_warn("delete: %s", e.msg);
}

static int delete_unreadable(const char *root, const char *id, struct rc_container_dir *dir,
                             struct rc_error *err) {
  struct rc_error why = *err;
  struct oci_config *cfg = NULL;
  struct oci_state st = {.id = (char *)id};
  int rc = -1;
  if (rc_container_load_config(root, id, &cfg, err) < 0) {
    char msg[RC_ERROR_MAX];
    snprintf(msg, sizeof(msg), "%s", err->msg);
    rc_err(err, why.code,
           "%s; its config.json cannot be read either (%s): cannot tell what to "
           "remove, the state directory is kept",
           why.msg, msg);
    return -1;
  }
  /* The driver is not known without the state: the marker create leaves with the
   * systemd driver tells it (an empty cgroupsPath is the unit runcell-<id>.scope then,
   * not the cgroup /runcell/<id>: without the marker delete removed the state and left
   * the container running in its unit), as does a systemd-style cgroupsPath. */
  const char *cgroups_path = cfg->has_linux ? cfg->linux_.cgroups_path : NULL;
  struct rc_systemd_unit unit = {0};
  if (rc_cgroup_is_systemd_format(cgroups_path) ||
      faccessat(dir->dirfd, RC_SYSTEMD_STATE_MARKER, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
    if (rc_systemd_resolve(cgroups_path, id, &unit, err) < 0) goto out;
    st.cgroup_path = rc_xstrdup(unit.path);
    st.systemd_cgroup = true;
    rc_systemd_unit_free(&unit);
  } else if (rc_cgroup_resolve_path(cgroups_path, id, &st.cgroup_path, err) < 0) {
    goto out;
  }
  rc_warn("%s: removing container %s by its cgroup %s", why.msg, id, st.cgroup_path);
  bool removed = stop_all(&st, err) == 0 && rc_cgroup_destroy(st.cgroup_path, err) == 0;
  if (removed && st.systemd_cgroup) stop_unit(st.cgroup_path);
  if (!removed || rc_state_dir_remove(dir, err) < 0) {
    /* say which container and why it was removed this way, not only what failed */
    rc_err_wrap(err, "remove container %s (its state.json unreadable) by its cgroup", id);
    goto out;
  }
  rc = 0;
out:
  free(st.cgroup_path);
  oci_config_free(cfg);
  return rc;
}

int rc_container_delete(const char *root, const char *id, bool force, struct rc_error *err) {
  struct rc_container_dir dir;
  struct oci_state *st = NULL;
  if (force) {
    /* Kill the init before waiting for the lock: whatever holds it (a start waiting on a
     * stopped init, a hook) then finishes and lets go. */
    if (rc_state_read(root, id, &st, err) == 0 && st->status != OCI_STATUS_STOPPED) {
      int pidfd = rc_state_open_pidfd(st);
      if (pidfd >= 0) {
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        close(pidfd);
      }
    }
    oci_state_free(st);
    st = NULL;
  }
  if (rc_state_dir_open(root, id, &dir, err) < 0) {
    if (force && strstr(err->msg, "does not exist")) return 0;
    return -1;
  }
  if (rc_state_load(&dir, &st, err) < 0) {
    /* A directory without state.json is the remnant of an aborted create: remove it and
     * report the container as absent, like runc. A state that exists but cannot be read
     * is kept (removing it would orphan whatever it describes), unless --force can find the
     * container's cgroup in its config.json. */
    if (err->code != ENOENT) {
      int r = force ? delete_unreadable(root, id, &dir, err) : -1;
      rc_state_dir_close(&dir);
      return r;
    }
    struct rc_error ignore;
    rc_state_dir_remove(&dir, &ignore);
    return force ? 0 : -1;
  }
  rc_state_refresh(st);
  int rc = -1;
  struct oci_config *cfg = NULL;

  if ((st->status == OCI_STATUS_RUNNING || st->status == OCI_STATUS_PAUSED) && !force) {
    rc_err(err, 0, "cannot delete container %s that is not stopped: %s", id,
           oci_status_name(st->status));
    goto out;
  }
  if (st->status == OCI_STATUS_PAUSED && st->cgroup_path) {
    struct rc_error ignore;
    (void)rc_cgroup_freeze(st->cgroup_path, false, &ignore);
  }
  if (stop_all(st, err) < 0) goto out;
  if (st->cgroup_path && rc_cgroup_destroy(st->cgroup_path, err) < 0) goto out;
  if (st->cgroup_path && st->systemd_cgroup) stop_unit(st->cgroup_path);

  struct rc_error cerr;
  bool have_cfg = rc_container_load_config(root, id, &cfg, &cerr) == 0;
  /* A microVM's tc redirect stays on the interface of a network namespace that outlives
   * the VMM (a CNI one); a failure is logged, like a poststop hook's. */
  if (have_cfg && rc_state_is_microvm(st)) {
    struct rc_error nerr;
    if (rc_microvm_net_release(cfg, &nerr) < 0) rc_warn("%s", nerr.msg);
  }
  if (have_cfg && cfg->hooks.n_poststop > 0) {
    st->status = OCI_STATUS_STOPPED;
    cleanup_free char *hs = oci_state_to_hook_json(st);
    struct rc_error herr;
    /* The spec: a failing poststop hook is logged; delete still completes. */
    if (rc_hooks_run("poststop", cfg->hooks.poststop, cfg->hooks.n_poststop, hs, &herr) < 0)
      rc_warn("%s", herr.msg);
  }
  if (rc_state_dir_remove(&dir, err) < 0) goto out;
  rc = 0;
out:
  oci_config_free(cfg);
  oci_state_free(st);
  rc_state_dir_close(&dir);
  return rc;
}

/* pause/resume freeze and thaw the container's cgroup. The state records "paused", so that
 * status stays right for every reader without asking the freezer. */
static int set_frozen(const char *root, const char *id, bool freeze, struct rc_error *err) {
  struct rc_container_dir dir;
  struct oci_state *st = NULL;
  if (load_locked(root, id, &dir, &st, err) < 0) return -1;
  int rc = -1;
  if (freeze && st->status != OCI_STATUS_RUNNING && st->status != OCI_STATUS_CREATED) {
    rc_err(err, 0, "container not running");
    goto out;
  }
  if (!freeze && st->status != OCI_STATUS_PAUSED) {
    rc_err(err, 0, "container not paused");
    goto out;
  }
  /* A running microVM stops its vCPUs instead (its VMM keeps answering: resume, state,
   * kill); a created one, whose VMM serves no requests yet, is frozen like any other. */
  bool vcpus = rc_state_is_microvm(st) &&
               (freeze ? st->status == OCI_STATUS_RUNNING : !st->paused_from_created);
  if (vcpus) {
    if (rc_microvm_set_paused(root, id, freeze, err) < 0) {
      /* the VMM went away under us (a kill or delete racing this command): the answer in
       * runc's words for a container that is not running (or not paused) any more */
      if (strstr(err->msg, "container is not running"))
        rc_err(err, 0, freeze ? "container not running" : "container not paused");
      goto out;
    }
  } else if (!st->cgroup_path || rc_cgroup_freeze(st->cgroup_path, freeze, err) < 0) {
    if (!st->cgroup_path) rc_err(err, 0, "container %s has no cgroup to freeze", id);
    goto out;
  }
  if (freeze) {
    /* remember what to go back to: a created container stays created when resumed */
    st->paused_from_created = st->status == OCI_STATUS_CREATED;
    st->status = OCI_STATUS_PAUSED;
  } else {
    st->status = st->paused_from_created ? OCI_STATUS_CREATED : OCI_STATUS_RUNNING;
    st->paused_from_created = false;
  }
  if (rc_state_save(&dir, st, err) < 0) goto out;
  rc = 0;
out:
  oci_state_free(st);
  rc_state_dir_close(&dir);
  return rc;
}

int rc_container_pause(const char *root, const char *id, struct rc_error *err) {
  return set_frozen(root, id, true, err);
}

int rc_container_resume(const char *root, const char *id, struct rc_error *err) {
  return set_frozen(root, id, false, err);
}

int rc_container_pids(const char *root, const char *id, pid_t **pids, size_t *n,
                      struct rc_error *err) {
  struct oci_state *st = NULL;
  if (rc_state_read(root, id, &st, err) < 0) return -1;
  int r = 0;
  *pids = NULL;
  *n = 0;
  if (st->cgroup_path && rc_cgroup_exists(st->cgroup_path))
    r = rc_cgroup_pids(st->cgroup_path, pids, n, err);
  if (r < 0 && !rc_cgroup_exists(st->cgroup_path)) {
    /* A concurrent delete removed the cgroup while we read it: report what is true now
     * (the container is gone, or going and has no processes left). */
    struct oci_state *now = NULL;
    r = rc_state_read(root, id, &now, err) < 0 ? -1 : 0;
    oci_state_free(now);
  }
  oci_state_free(st);
  return r;
}

/* `update --memory` of a running microVM also moves its balloon: the guest keeps what
 * create would have given it under the new limit (microvm_plan.c: the limit less the VMM's
 * share), never more than the RAM it booted with. Shrinking goes first (before_limit: the
 * guest gives memory back, then the host limit bites on a guest that already let go);
 * growing goes after the host limit was raised. */
static int microvm_follow_memory_limit(const char *root, const struct oci_state *st, int64_t limit,
                                       bool before_limit, struct rc_error *err) {
  if (st->status != OCI_STATUS_RUNNING) return 0; /* the VMM serves requests once started */
  uint64_t ram = 0, target = 0, actual = 0;
  if (rc_microvm_memory(root, st->id, 0, &ram, &target, &actual, err) < 0) return -1;
  uint64_t keep = ram;
  if (limit > 0 && (uint64_t)limit < ram + RC_MICROVM_VMM_OVERHEAD)
    keep = (uint64_t)limit > RC_MICROVM_MIN_GUEST_MEM + RC_MICROVM_VMM_OVERHEAD
               ? (uint64_t)limit - RC_MICROVM_VMM_OVERHEAD
               : RC_MICROVM_MIN_GUEST_MEM;
  bool shrinking = keep < ram - target;
  if (before_limit != shrinking) return 0;
  if (rc_microvm_memory(root, st->id, keep, &ram, &target, &actual, err) < 0) return -1;
  for (int i = 0; shrinking && actual < target && i < 100; i++) {
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    if (rc_microvm_memory(root, st->id, 0, NULL, &target, &actual, err) < 0) return -1;
  }
  if (shrinking && actual < target)
    rc_warn("microVM %s: the guest gave back %llu of %llu MiB within 10 s", st->id,
            (unsigned long long)(actual >> 20), (unsigned long long)(target >> 20));
  return 0;
}

/* `update --pids-limit` of a microVM: the limit is the guest's, on the cgroup its agent
 * keeps for the container's processes (the host cgroup holds the VMM: see make_cgroup in
 * container_create.c). runc's values as the host cgroup code reads them: a number > 0 is
 * pids.max, -1 (or 0) is no limit. The VMM serves requests once the container runs: before
 * `start` it waits for start alone and the agent for START, so the limit of a created
 * microVM cannot change; that is refused, not skipped, since nothing else would apply it. */
static int microvm_set_pids_limit(const char *root, const struct oci_state *st, int64_t limit,
                                  struct rc_error *err) {
  if (st->status == OCI_STATUS_CREATED)
    return rc_err(err, 0,
                  "cannot change the pids limit of microVM %s before it is started: its guest "
                  "applies it once running",
                  st->id);
  if (rc_microvm_pids_limit(root, st->id, limit > 0 ? (uint64_t)limit : 0, err) < 0)
    return rc_err_wrap(err, "microVM %s", st->id);
  return 0;
}

/* systemd keeps a CPU quota as a rate (CPUQuotaPerSecUSec, the quota over the period) and
 * writes the cgroup's quota back from it on every realize (a property change, a
 * daemon-reload). An update that names only one of quota and period must give systemd the
 * rate with the other as the cgroup has it now: rc_systemd_update would otherwise take the
 * default period (`--cpu-quota` of a container with another period: the rate is wrong and
 * the next realize changes the quota) or no quota at all (`--cpu-period` alone: systemd
 * made the quota "infinity" and wrote cfs_quota_us -1, removing the limit). runc merges the
 * update into the container's resources, which does the same. Only for systemd's
 * properties: the cgroupfs files are written from the update as given. */
static void systemd_cpu_rate(const char *cgpath, struct oci_resources *r) {
  /* 0 leaves either as it is (runc's flags) */
  bool quota_given = r->cpu.has_quota && r->cpu.quota != 0,
       period_given = r->cpu.has_period && r->cpu.period != 0;
  if (!r->has_cpu || quota_given == period_given) return;
  struct rc_error ignore;
  cleanup_free char *quota = NULL, *period = NULL;
  /* v1: cpu.cfs_quota_us ("-1" or a number), cpu.cfs_period_us; v2: cpu.max
   * ("max PERIOD" or "QUOTA PERIOD") */
  if (rc_cgroup_read_control(cgpath, "cpu", "cpu.cfs_quota_us", "cpu.max", &quota, &ignore) < 0)
    return;
  const char *space = strchr(quota, ' ');
  if (!space &&
      rc_cgroup_read_control(cgpath, "cpu", "cpu.cfs_period_us", NULL, &period, &ignore) < 0)
    return;
  long long q = strncmp(quota, "max", 3) == 0 ? -1 : strtoll(quota, NULL, 10);
  unsigned long long p = strtoull(space ? space + 1 : period, NULL, 10);
  if (!quota_given) {
    r->cpu.has_quota = true;
    r->cpu.quota = q > 0 ? q : -1;
  }
  if (!period_given && p > 0) {
    r->cpu.has_period = true;
    r->cpu.period = p;
  }
}

/* With the systemd driver the cgroupfs side comes after systemd has taken the update (and
 * written its own files from it): what the cgroupfs side then refuses, unified keys on a
 * host without (their controller on) cgroup v2, a cpuset the machine has not, left the
 * update failed with systemd's limits (memory, pids...) already changed. Those parts go
 * first, as the cgroupfs driver's own apply does cpuset first, so that a refusal leaves
 * everything as it was (runc refuses unified on v1 before anything changes too); they
 * are written again with the rest after systemd. */
static int apply_refusable_first(const char *cgpath, const struct oci_resources *r,
                                 struct rc_error *err) {
  bool cpus = r->has_cpu && r->cpu.cpus && *r->cpu.cpus,
       mems = r->has_cpu && r->cpu.mems && *r->cpu.mems;
  if (!cpus && !mems && !r->n_unified) return 0;
  struct oci_resources first = {
      .has_cpu = cpus || mems, .unified = r->unified, .n_unified = r->n_unified};
  first.cpu.cpus = cpus ? r->cpu.cpus : NULL;
  first.cpu.mems = mems ? r->cpu.mems : NULL;
  return rc_cgroup_apply(cgpath, &first, err);
}

int rc_container_update(const char *root, const char *id, const struct oci_resources *r,
                        struct rc_error *err) {
  struct rc_container_dir dir;
  struct oci_state *st = NULL;
  if (load_locked(root, id, &dir, &st, err) < 0) return -1;
  int rc = -1;
  if (st->status == OCI_STATUS_STOPPED || st->status == OCI_STATUS_CREATING) {
    rc_err(err, 0, "container not running");
    goto out;
  }
  if (!st->cgroup_path) {
    rc_err(err, 0, "container %s has no cgroup", id);
    goto out;
  }
  bool microvm = rc_state_is_microvm(st);
  bool vm_memory = microvm && r->has_memory && r->memory.has_limit;
  /* The host cgroup of a microVM gets everything but the pids limit, which is the guest's
   * (first: a value the guest refuses fails the update before anything has changed). */
  struct oci_resources host = *r;
  if (microvm && r->has_pids_limit) {
    if (microvm_set_pids_limit(root, st, r->pids_limit, err) < 0) goto out;
    host.has_pids_limit = false;
  }
  if (vm_memory && microvm_follow_memory_limit(root, st, r->memory.limit, true, err) < 0) goto out;
  /* systemd first, as runc: it writes the files from its properties on the way */
  if (st->systemd_cgroup) {
    if (apply_refusable_first(st->cgroup_path, &host, err) < 0) goto out;
    struct oci_resources for_systemd = host;
    systemd_cpu_rate(st->cgroup_path, &for_systemd);
    if (rc_systemd_update(rc_systemd_unit_of(st->cgroup_path), &for_systemd, err) < 0) goto out;
  }
  if (rc_cgroup_apply(st->cgroup_path, &host, err) < 0) goto out;
  if (vm_memory && microvm_follow_memory_limit(root, st, r->memory.limit, false, err) < 0) goto out;
  rc = 0;
out:
  oci_state_free(st);
  rc_state_dir_close(&dir);
  return rc;
}
