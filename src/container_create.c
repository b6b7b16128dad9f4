/* The create path in the runtime process: validate the bundle, make the state directory
 * and cgroup, clone the container init into its namespaces and walk it through the sync
 * protocol. On any failure everything made so far is undone. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container_internal.h"
#include "runcell/cell_floor.h"
#include "runcell/cell_kernel.h"
#include "runcell/cgroups.h"
#include "runcell/cgroups_systemd.h"
#include "runcell/container.h"
#include "runcell/gate.h"
#include "runcell/hooks.h"
#include "runcell/log.h"
#include "runcell/microvm.h"
#include "runcell/microvm_control.h"
#include "runcell/microvm_net.h"
#include "runcell/mode.h"
#include "runcell/namespaces.h"
#include "runcell/process_attrs.h"
#include "runcell/procfs.h"
#include "runcell/sync.h"
#include "runcell/terminal.h"
#include "runcell/util.h"
#include "runcell/views.h"
#include "runcell/vmm/machine.h"
#include "runcell/xgate.h"

static int resolve_rootfs(const struct oci_config *cfg, const char *bundle, char **out,
                          struct rc_error *err) {
  cleanup_free char *joined = cfg->root_path[0] == '/'
                                  ? rc_xstrdup(cfg->root_path)
                                  : rc_xasprintf("%s/%s", bundle, cfg->root_path);
  char real[PATH_MAX];
  if (!realpath(joined, real)) return rc_err(err, errno, "invalid rootfs: stat %s", joined);
  struct stat st;
  if (stat(real, &st) < 0) return rc_err(err, errno, "invalid rootfs: stat %s", real);
  if (!S_ISDIR(st.st_mode)) return rc_err(err, ENOTDIR, "invalid rootfs: %s", real);
  *out = rc_xstrdup(real);
  return 0;
}

static bool maps_zero(const struct oci_id_mapping *m, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (m[i].container_id == 0 && m[i].size > 0) return true;
  return false;
}

static int validate_for_create(const struct rc_create_opts *o, const struct oci_config *cfg,
                               struct rc_error *err) {
  if (!cfg->has_process) return rc_err(err, 0, "config.json: process: is required to create");
  if (!oci_config_namespace(cfg, OCI_NS_MOUNT))
    return rc_err(err, 0, "config.json: linux.namespaces: a mount namespace is required");
  const struct oci_namespace *mnt = oci_config_namespace(cfg, OCI_NS_MOUNT);
  if (mnt->path)
    return rc_err(err, 0,
                  "config.json: linux.namespaces: joining an existing mount namespace is not "
                  "supported");
  if (cfg->process.terminal && !o->console_socket && !o->receive_console)
    return rc_err(err, 0,
                  "cannot allocate tty if runcell will detach without setting console socket");
  if (!cfg->process.terminal && o->console_socket)
    return rc_err(err, 0, "cannot use console socket if runcell will not detach or allocate tty");
  const struct oci_namespace *uns = oci_config_namespace(cfg, OCI_NS_USER);
  /* New namespaces are made by clone(2) before the init could join a user namespace, so
   * they would belong to the host's user namespace instead of the joined one. */
  if (uns && uns->path)
    return rc_err(err, 0,
                  "config.json: linux.namespaces: joining a user namespace by path (%s) while "
                  "creating new namespaces is not supported yet",
                  uns->path);
  if (uns && !uns->path && (cfg->linux_.n_uid_mappings == 0 || cfg->linux_.n_gid_mappings == 0))
    return rc_err(err, 0,
                  "config.json: linux.uidMappings: a new user namespace needs uid and gid "
                  "mappings");
  /* The init becomes the namespace's root to set the container up (as runc's does): a map
   * without container id 0 would fail there, after GO, where the views' descriptors the
   * runtime sends could hide the init's message behind a reset socket. */
  if (uns && !uns->path && !maps_zero(cfg->linux_.uid_mappings, cfg->linux_.n_uid_mappings))
    return rc_err(err, 0,
                  "config.json: linux.uidMappings: no root user mapping found (a new user "
                  "namespace needs container uid 0 mapped)");
  if (uns && !uns->path && !maps_zero(cfg->linux_.gid_mappings, cfg->linux_.n_gid_mappings))
    return rc_err(err, 0,
                  "config.json: linux.gidMappings: no root group mapping found (a new user "
                  "namespace needs container gid 0 mapped)");
  if (cfg->has_linux && cfg->linux_.has_seccomp && rc_seccomp_check(&cfg->linux_.seccomp, err) < 0)
    return rc_err_wrap(err, "config.json: linux.seccomp");
  /* The state keeps them: a container whose state.json no later command could read
   * (state, kill, start: "File too large"; only delete --force recovered it) is not made. */
  size_t bytes = 0;
  for (size_t i = 0; i < cfg->n_annotations; i++)
    bytes += strlen(cfg->annotations[i].key) + strlen(cfg->annotations[i].value);
  if (bytes > RC_STATE_ANNOTATIONS_MAX)
    return rc_err(err, 0,
                  "config.json: annotations: %zu bytes in all, more than runcell keeps in a "
                  "container's state (%d)",
                  bytes, RC_STATE_ANNOTATIONS_MAX);
  return 0;
}

/* A listening socket bound inside the state directory (start.sock, or a microVM's
 * control.sock). Bound through /proc/self/fd so that long --root paths do not overflow
 * sun_path. */
static int make_state_socket(int dirfd, const char *name, struct rc_error *err) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return rc_err(err, errno, "create %s", name);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dirfd, name);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
    int e = errno;
    close(fd);
    return rc_err(err, e, "bind %s", name);
  }
  return fd;
}

/* The annotations the state shows: the config's, with the mode and gate in force (the
 * config's own values for those keys are replaced by what was decided). The array is the
 * caller's to free; its strings are borrowed. */
struct oci_key_value *rc_state_annotations(const struct oci_config *cfg,
                                           const struct rc_mode_choice *mode, size_t *n) {
  struct oci_key_value *a = rc_xcalloc(cfg->n_annotations + 3, sizeof(*a));
  size_t k = 0;
  for (size_t i = 0; i < cfg->n_annotations; i++) {
    const char *key = cfg->annotations[i].key;
    if (!strcmp(key, RC_ANNOTATION_MODE) || !strcmp(key, RC_ANNOTATION_GATE) ||
        !strcmp(key, RC_ANNOTATION_PLACEMENT))
      continue;
    a[k++] = cfg->annotations[i];
  }
  a[k++] = (struct oci_key_value){(char *)RC_ANNOTATION_MODE, (char *)rc_mode_name(mode->mode)};
  if (mode->mode == RC_MODE_CELL)
    a[k++] = (struct oci_key_value){(char *)RC_ANNOTATION_GATE, mode->gate ? "on" : "off"};
  if (mode->mode == RC_MODE_CELL && mode->gate)
    a[k++] =
        (struct oci_key_value){(char *)RC_ANNOTATION_PLACEMENT, mode->xgate ? "xgate" : "notify"};
  *n = k;
  return a;
}

/* A cell's file views need FUSE: a staging directory in the state directory (the init
 * mounts on it in the container's mount namespace only) and the socket on which the cell
 * kernel started for the views will get the gate's listener. Without /dev/fuse the cell
 * runs without file views, and the log says so. */
static int prepare_views(struct rc_container_dir *dir, bool in_userns, int *views_dirfd,
                         int *views_fuse, int control_pair[2], struct rc_error *err) {
  /* Inherited across clone (nothing is exec'd in between): the init mounts with it. In a
   * user namespace of the cell's own the init needs one opened there, after clone
   * (rc_views_open_fuse_in): this one only says whether there is a /dev/fuse. */
  *views_fuse = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (*views_fuse < 0) {
    rc_warn("no usable /dev/fuse (%s): the cell's /proc and /sys views are not served",
            strerror(errno));
    return 0;
  }
  if (in_userns) {
    close(*views_fuse);
    *views_fuse = -1;
  }
  if (mkdirat(dir->dirfd, "views", 0700) < 0 && errno != EEXIST)
    return rc_err(err, errno, "create the views staging directory");
  *views_dirfd = openat(dir->dirfd, "views", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (*views_dirfd < 0) return rc_err(err, errno, "open the views staging directory");
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, control_pair) < 0)
    return rc_err(err, errno, "socketpair for the cell kernel");
  return 0;
}

/* Decides the mode and checks that it can run here (before anything exists). */
static int choose_mode(const char *id, const struct oci_config *cfg, struct rc_mode_choice *mode,
                       struct rc_error *err) {
  if (rc_mode_choose(cfg, mode, err) < 0) return -1;
  if (mode->mode == RC_MODE_MICROVM) {
    /* The gate is a cell's; a microVM's boundary is the VM. */
    mode->gate = false;
    if (vmm_kvm_check(err) < 0)
      return rc_err_wrap(err, "container %s: microvm mode (chosen by %s)", id, mode->source);
    rc_info("container %s: microvm mode (%s)", id, mode->source);
    return 0;
  }
  if (mode->gate && mode->xgate && !rc_xgate_supported()) {
    rc_warn(
        "container %s: the xgate placement (%s) needs protection keys (PKU), which this "
        "machine does not offer: the cell kernel runs in the notify placement",
        id, mode->placement_source);
    mode->xgate = false;
  }
  const char *placement = !mode->gate   ? ""
                          : mode->xgate ? ", cell kernel placement xgate"
                                        : ", cell kernel placement notify";
  rc_info("container %s: %s mode (%s), gate %s (%s)%s", id, rc_mode_name(mode->mode), mode->source,
          mode->gate ? "on" : "off", mode->gate_source, placement);
  return 0;
}

static void write_state(struct rc_container_dir *dir, struct oci_state *st) {
  struct rc_error ignore;
  (void)rc_state_save(dir, st, &ignore);
}

/* The cgroup device rules: the config's, plus an allow rule for every linux.devices entry
 * (as runc does), so a device the bundle asks to create is also usable. The returned struct
 * shares everything with cfg except its own devices array (*owned, to free). */
const struct oci_resources *rc_effective_resources(const struct oci_config *cfg,
                                                   struct oci_resources *copy,
                                                   struct oci_device_cgroup **owned) {
  *owned = NULL;
  if (!cfg->has_linux) return NULL;
  const struct oci_linux *l = &cfg->linux_;
  if (l->n_devices == 0) return l->has_resources ? &l->resources : NULL;
  if (l->has_resources)
    *copy = l->resources;
  else
    memset(copy, 0, sizeof(*copy));
  size_t n = copy->n_devices + l->n_devices;
  struct oci_device_cgroup *rules = rc_xcalloc(n, sizeof(*rules));
  if (copy->n_devices) memcpy(rules, copy->devices, copy->n_devices * sizeof(*rules));
  for (size_t i = 0; i < l->n_devices; i++) {
    const struct oci_device *d = &l->devices[i];
    if (d->type == 'p') continue; /* FIFOs are not governed by the device controller */
    struct oci_device_cgroup *r = &rules[copy->n_devices++];
    *r = (struct oci_device_cgroup){.allow = true,
                                    .type = d->type == 'b' ? 'b' : 'c',
                                    .has_major = true,
                                    .has_minor = true,
                                    .major = d->major,
                                    .minor = d->minor,
                                    .access = (char *)"rwm"};
  }
  copy->devices = rules;
  *owned = rules;
  return copy;
}

/* Creates the container's cgroup with its resources; the init joins it itself (see
 * rc_cgroup_join_open). */
/* With the systemd driver (unit not NULL) the unit is started first, holding a stand-in
 * process, and the cgroupfs side then fills in what systemd does not set. */
static int make_cgroup(const struct oci_config *cfg, const char *id, const char *cgpath,
                       bool microvm, const struct rc_systemd_unit *unit,
                       struct rc_systemd_standin *standin, struct rc_error *err) {
  struct oci_resources res_copy;
  struct oci_device_cgroup *owned_rules = NULL;
  const struct oci_resources *res = rc_effective_resources(cfg, &res_copy, &owned_rules);
  struct oci_resources vm_res;
  struct oci_device_cgroup *vm_rules = NULL;
  if (microvm) {
    /* The cgroup holds the VMM, not the workload (whose device rules the guest applies):
     * the VMM must be able to open /dev/kvm, whatever the config's rules say. */
    if (res)
      vm_res = *res;
    else
      memset(&vm_res, 0, sizeof(vm_res));
    vm_rules = rc_xcalloc(vm_res.n_devices + 1, sizeof(*vm_rules));
    if (vm_res.n_devices) memcpy(vm_rules, vm_res.devices, vm_res.n_devices * sizeof(*vm_rules));
    vm_rules[vm_res.n_devices++] = (struct oci_device_cgroup){.allow = true,
                                                              .type = 'c',
                                                              .has_major = true,
                                                              .has_minor = true,
                                                              .major = 10,
                                                              .minor = 232,
                                                              .access = (char *)"rw"};
    vm_res.devices = vm_rules;
    /* The pids limit is the guest's (its agent's cgroup holds the container's processes).
     * This cgroup counts other things: the VMM's threads (its main thread, a vCPU per CPU and
     * the device I/O threads, all made before its jail forbids clone) and the processes of
     * the createContainer and startContainer hooks, which run here before the jail and from
     * a helper forked before it; `runcell exec` stand-ins and the runtime's own children stay
     * in their callers' cgroups. The workload's number means nothing for those, and a low one
     * (runc users set 10 or 20) would keep the VMM from making its threads, failing create
     * with EAGAIN, or keep a hook from running, so it is left out: pids.max stays what a new
     * cgroup has, "max". A guest cannot fork on the host through the VMM (the jail's filter
     * kills it on clone), and a limit on an enclosing cgroup (a pod's) still applies. */
    vm_res.has_pids_limit = false;
    vm_res.pids_limit = 0;
    res = &vm_res;
  }
  int r = 0;
  /* A cgroup that already holds processes is not the container's alone: `kill --all`,
   * pause and delete would reach the host processes in it (red team, session 18). runc
   * 1.1.5 warns that it will stop supporting this; runc 1.2 refuses it, in these words.
   * (With the systemd driver the unit is new: systemd refuses a name in use.) */
  if (!unit) {
    pid_t *pids = NULL;
    size_t n = 0;
    r = rc_cgroup_pids(cgpath, &pids, &n, err);
    free(pids);
    if (r >= 0 && n > 0)
      r = rc_err(err, 0, "container's cgroup is not empty: %zu process(es) found", n);
    if (r < 0) r = rc_err_wrap(err, "cgroup %s", cgpath);
  }
  if (r >= 0 && unit)
    r = rc_systemd_start(unit, id, res, cfg->annotations, cfg->n_annotations, standin, err);
  if (r >= 0) r = rc_cgroup_create(cgpath, res, 0, err);
  if (r < 0 && unit && standin->pid > 0) {
    /* the unit was started: take it down again, leaving the cgroupfs error to report */
    struct rc_error stop_err;
    rc_systemd_standin_end(standin);
    if (rc_systemd_stop(unit->unit, &stop_err) < 0)
      rc_warn("cleanup after failed create: %s", stop_err.msg);
  }
  free(owned_rules);
  free(vm_rules);
  return r;
}

/* The OOM kills the container's memory cgroup has counted (v1 memory.oom_control, v2
 * memory.events), 0 when it cannot tell. */
static long long oom_kills(const char *cgpath) {
  cleanup_free char *text = NULL;
  struct rc_error ignore;
  if (rc_cgroup_read_control(cgpath, "memory", "memory.oom_control", "memory.events", &text,
                             &ignore) < 0)
    return 0;
  const char *p = strstr(text, "oom_kill ");
  return p ? strtoll(p + strlen("oom_kill "), NULL, 10) : 0;
}

/* The init hung up during set-up without a word (RC_SYNC_HUNG_UP):
 * say how it ended, and when the memory cgroup's OOM killer took it, that the config's
 * memory limit is below what setting up the container needs (runc refuses such a limit,
 * "unable to set memory limit to N (current usage: ...)"). Reaps the init when it has
 * ended; leaves it alone (the caller kills it) when it has not within a moment. */
static void explain_init_death(pid_t pid, const char *cgpath, const struct oci_config *cfg,
                               struct rc_error *err) {
  if (err->code != 0 || !strstr(err->msg, RC_SYNC_HUNG_UP)) return;
  siginfo_t si;
  for (int i = 0; i < 50; i++) {
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) return;
    if (si.si_pid == pid) break;
    usleep(2000);
  }
  if (si.si_pid != pid) return;
  char msg[RC_ERROR_MAX];
  snprintf(msg, sizeof(msg), "%s", err->msg);
  const struct oci_resources *r =
      cfg->has_linux && cfg->linux_.has_resources ? &cfg->linux_.resources : NULL;
  if (si.si_code == CLD_KILLED && si.si_status == SIGKILL && cgpath && oom_kills(cgpath) > 0) {
    if (r && r->memory.has_limit)
      rc_err(err, 0,
             "%s: the OOM killer killed it: linux.resources.memory.limit %lld is below what "
             "setting up the container needs",
             msg, (long long)r->memory.limit);
    else
      rc_err(err, 0, "%s: the OOM killer of its memory cgroup killed it", msg);
  } else if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) {
    rc_err(err, 0, "%s: killed by signal %d (%s)", msg, si.si_status, strsignal(si.si_status));
  } else if (si.si_code == CLD_EXITED) {
    rc_err(err, 0, "%s: exit status %d", msg, si.si_status);
  }
}

int rc_container_create(const struct rc_create_opts *o, struct rc_created *out,
                        struct rc_error *err) {
  out->pid = -1;
  out->pidfd = -1;
  out->console_master = -1;
  if (rc_state_validate_id(o->id, err) < 0) return -1;
  rc_close_inherited_fds(3 + o->preserve_fds);
  /* before the init is cloned: once it is in the container's mount namespace, its /proc
   * is one the container can mount over */
  if (rc_procfs_prepare(err) < 0) return -1;
  /* Not dumpable from here, so the init is not for a moment after its clone (until its
   * own prctl): a process of its user namespace's owner could otherwise ptrace it or open
   * /proc/<init>/root while it still has the host's root and every capability. */
  prctl(PR_SET_DUMPABLE, 0);

  char bundle[PATH_MAX];
  if (!realpath(o->bundle ? o->bundle : ".", bundle))
    return rc_err(err, errno, "bundle %s", o->bundle ? o->bundle : ".");
  struct oci_config *cfg = NULL;
  if (oci_config_load(bundle, &cfg, err) < 0) return -1;

  int rc = -1;
  char *rootfs = NULL, *cgpath = NULL;
  struct rc_container_dir dir = {.dirfd = -1};
  int ns_fds[OCI_NS_COUNT];
  int saved_ns[2] = {-1, -1};
  for (int i = 0; i < OCI_NS_COUNT; i++) ns_fds[i] = -1;
  int console = -1, start_fd = -1, control_fd = -1, sv[2] = {-1, -1}, console_pair[2] = {-1, -1};
  pid_t pid = -1;
  int pidfd = -1;
  bool cgroup_made = false;
  struct oci_state st = {0};
  struct rc_mode_choice mode;
  struct oci_key_value *annotations = NULL;
  int views_dirfd = -1, views_fuse = -1, control_pair[2] = {-1, -1}, kernel_control = -1;
  int views_staging = -1; /* a user namespace's: the staging directory the init mounts on */
  cleanup_free char *views_path = NULL;
  size_t n_annotations = 0;
  struct rc_microvm_plan *microvm = NULL;
  int vm_console_log = -1;
  struct rc_cgroup_join *cgroup_join = NULL;
  struct rc_systemd_unit sd_unit = {0};
  struct rc_systemd_standin standin = {0};

  if (validate_for_create(o, cfg, err) < 0) goto out;
  if (choose_mode(o->id, cfg, &mode, err) < 0) goto out;
  if (mode.mode == RC_MODE_CELL && mode.gate) {
    size_t kept = rc_cell_floor_apply(cfg);
    if (kept)
      rc_info(
          "container %s: a cell with its gate on keeps the kernel's settings read-only and "
          "its information masked: %zu path(s) or mount(s) the config left open (a "
          "privileged config?) are not (the gate off, runcell-native, leaves them so)",
          o->id, kept);
  }
  if (mode.mode == RC_MODE_MICROVM && o->preserve_fds > 0) {
    /* as for exec: the caller's descriptors are on the host, the process in the guest */
    rc_err(err, 0, "cannot create container %s: --preserve-fds does not reach a microVM", o->id);
    goto out;
  }
  annotations = rc_state_annotations(cfg, &mode, &n_annotations);
  if (resolve_rootfs(cfg, bundle, &rootfs, err) < 0) goto out;
  if (mode.mode == RC_MODE_MICROVM) {
    microvm = rc_xcalloc(1, sizeof(*microvm));
    if (rc_microvm_plan(cfg, rootfs, microvm, err) < 0) goto out;
  }
  if (o->systemd_cgroup) {
    if (rc_systemd_resolve(cfg->has_linux ? cfg->linux_.cgroups_path : NULL, o->id, &sd_unit, err) <
        0)
      goto out;
    cgpath = rc_xstrdup(sd_unit.path);
  } else if (rc_cgroup_resolve_path(cfg->has_linux ? cfg->linux_.cgroups_path : NULL, o->id,
                                    &cgpath, err) < 0) {
    goto out;
  }
  if (rc_ns_open_paths(cfg, ns_fds, err) < 0) goto out;
  /* a microVM's sysctls are the guest kernel's */
  if (mode.mode != RC_MODE_MICROVM && rc_ns_check_sysctl_targets(cfg, ns_fds, err) < 0) goto out;
  if (rc_state_dir_create(o->root, o->id, &dir, err) < 0) goto out;

  char created[64];
  rc_rfc3339_now(created, sizeof(created));
  st = (struct oci_state){
      .oci_version = (char *)OCI_VERSION,
      .id = (char *)o->id,
      .status = OCI_STATUS_CREATING,
      .bundle = bundle,
      .rootfs = rootfs,
      .created = created,
      .owner = (char *)"",
      .cgroup_path = cgpath,
      .mode = (char *)rc_mode_name(mode.mode),
      .systemd_cgroup = o->systemd_cgroup,
      .annotations = annotations,
      .n_annotations = n_annotations,
      .use_terminal = cfg->process.terminal,
  };
  /* Saved before anything else exists, so that `delete --force` can find and undo a
   * create that was killed half-way. */
  if (rc_state_save(&dir, &st, err) < 0) goto out;
  if (o->systemd_cgroup) {
    /* for delete --force of a container whose state.json is damaged (see the header); made
     * durable by config.json's write, which syncs the directory */
    int fd = openat(dir.dirfd, RC_SYSTEMD_STATE_MARKER, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
                    0600);
    if (fd < 0) {
      rc_err(err, errno, "create %s/%s", dir.path, RC_SYSTEMD_STATE_MARKER);
      goto out;
    }
    close(fd);
  }
  /* The config is kept with the state: delete needs its poststop hooks even if the bundle
   * is gone by then. */
  if (rc_write_file_atomic(dir.dirfd, "config.json", cfg->raw, strlen(cfg->raw), 0600, err) < 0)
    goto out;

  if (o->console_socket) {
    console = rc_console_socket_connect(o->console_socket, err);
    if (console < 0) goto out;
  } else if (o->receive_console && cfg->process.terminal) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, console_pair) < 0) {
      rc_err(err, errno, "socketpair for the console");
      goto out;
    }
    console = console_pair[1];
    console_pair[1] = -1;
  }
  if ((start_fd = make_state_socket(dir.dirfd, "start.sock", err)) < 0) goto out;
  if (microvm && (control_fd = make_state_socket(dir.dirfd, RC_VMCTL_SOCKET, err)) < 0) goto out;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    rc_err(err, errno, "socketpair");
    goto out;
  }
  /* FUSE only mounts in the user namespace that opened /dev/fuse: a cell with a user
   * namespace of its own (always a new one: validate_for_create refuses joining one) gets
   * one opened there after clone (views_in_userns). */
  bool views_in_userns = oci_config_namespace(cfg, OCI_NS_USER) != NULL;
  if (mode.gate &&
      prepare_views(&dir, views_in_userns, &views_dirfd, &views_fuse, control_pair, err) < 0)
    goto out;
  views_in_userns = views_in_userns && views_dirfd >= 0;
  if (views_dirfd >= 0) views_path = rc_xasprintf("%s/views", dir.path);
  /* The guest kernel's console: kept with the state, so that a guest that fails to boot
   * can say why (create quotes its end; the VMM bounds how much is written). */
  if (microvm) {
    vm_console_log =
        openat(dir.dirfd, "console.log", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (vm_console_log < 0) {
      rc_err(err, errno, "create the guest console log");
      goto out;
    }
  }
  /* Made before the init exists, which then joins it on its own: see rc_cgroup_join_open
   * for the grace period this saves. */
  if (make_cgroup(cfg, o->id, cgpath, microvm != NULL, o->systemd_cgroup ? &sd_unit : NULL,
                  &standin, err) < 0)
    goto out;
  cgroup_made = true;
  /* A microVM's VMM is still moved by the runtime (before GO): with the VMM joining
   * itself a CI run's QEMU lane guest hung in hostile-kernel twice in a row, while a
   * later whole-lane run with it passed 21/21. Until a CI run passes with it, the VMM
   * keeps the old way (which the lane has always passed). */
  if (!microvm && rc_cgroup_join_open(cgpath, &cgroup_join, err) < 0) goto out;
  if (rc_ns_prepare_parent(cfg, ns_fds, saved_ns, err) < 0) goto out;

  struct rc_init_ctx ctx = {
      .cfg = cfg,
      .id = o->id,
      .rootfs = rootfs,
      .bundle = bundle,
      .sync_fd = sv[1],
      .start_fd = start_fd,
      .control_fd = control_fd,
      .console_fd = console,
      .state_dir_fd = dir.dirfd,
      .clone_flags = rc_ns_clone_flags(cfg),
      .preserve_fds = o->preserve_fds,
      .no_pivot = o->no_pivot,
      .no_new_keyring = o->no_new_keyring,
      .gate = !mode.gate   ? NULL
              : mode.xgate ? rc_xgate_gate()
                           : &rc_gate_builtin_routed,
      .views_dirfd = views_dirfd,
      .views_path = views_path,
      .views_fuse = views_fuse,
      .views_control = control_pair[0],
      .views_in_userns = views_in_userns,
      .microvm = microvm,
      .vm_console_log = vm_console_log,
      .cgroup_join = cgroup_join,
  };
  memcpy(ctx.ns_fds, ns_fds, sizeof(ns_fds));

  fflush(NULL);
  pid = rc_cgroup_clone((unsigned long)ctx.clone_flags, cgroup_join);
  if (pid < 0) {
    rc_err(err, errno, "clone container init");
    goto out;
  }
  if (pid == 0) {
    close(sv[0]);
    if (microvm) rc_microvm_init_main(&ctx);
    rc_init_main(&ctx);
  }
  rc_ns_restore_parent(saved_ns);
  rc_cgroup_join_free(cgroup_join);
  cgroup_join = NULL;
  close(sv[1]);
  sv[1] = -1;
  if (console >= 0) close(console);
  console = -1;
  pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  st.pid = pid;
  st.pid_start_time = rc_pid_start_time(pid);
  write_state(&dir, &st);

  if (microvm && rc_cgroup_enter(cgpath, pid, err) < 0) goto out;
  if (rc_ns_write_id_maps(cfg, pid, err) < 0) goto out;
  /* Before GO, while the init still has the root it was cloned with. */
  if (views_in_userns &&
      ((views_fuse = rc_views_open_fuse_in(pid, err)) < 0 ||
       (views_staging = rc_views_staging_in(pid, views_path, views_dirfd, err)) < 0))
    goto out;
  if (rc_sync_send(sv[0], RC_SYNC_GO, err) < 0) goto out;
  if (views_staging >= 0) {
    if (rc_sync_send_fd(sv[0], RC_SYNC_VIEWS, views_staging, err) < 0 ||
        rc_sync_send_fd(sv[0], RC_SYNC_VIEWS, views_fuse, err) < 0)
      goto out;
    close(views_staging);
    views_staging = -1;
  }

  if (views_fuse >= 0) {
    /* A cell with file views: its cell kernel starts while the init sets up (which mounts
     * the views filesystem and sends its root to the cell kernel itself, on the control
     * socket), so that nobody waits for the other. */
    struct rc_cell_kernel_fds fds = {
        .listener = -1, .fuse = views_fuse, .control = control_pair[1], .init_pidfd = pidfd};
    int r = rc_cell_kernel_spawn(&fds, cgpath, pid, err);
    close(views_fuse);
    views_fuse = -1;
    close(control_pair[1]);
    control_pair[1] = -1;
    kernel_control = control_pair[0];
    control_pair[0] = -1;
    if (r < 0) goto out;
  }
  {
    int t = rc_sync_recv(sv[0], "set up container", err);
    if (t < 0) goto out;
    if (t != RC_SYNC_HOOKS) {
      rc_err(err, 0, "set up container: unexpected sync message %d", t);
      goto out;
    }
  }
  /* The init joined its cgroup before asking for the hooks (a microVM's VMM was moved
   * in above): the scope holds a process of the container, so the stand-in goes now, not
   * when create ends, so that the hooks (which may take long) and the pids limit find the
   * container alone there (docs/systemd-cgroup.md). */
  rc_systemd_standin_end(&standin);
  {
    cleanup_free char *hook_state = oci_state_to_hook_json(&st);
    if (rc_hooks_run("prestart", cfg->hooks.prestart, cfg->hooks.n_prestart, hook_state, err) < 0 ||
        rc_hooks_run("createRuntime", cfg->hooks.create_runtime, cfg->hooks.n_create_runtime,
                     hook_state, err) < 0) {
      rc_sync_send_error(sv[0], err);
      goto out;
    }
  }
  if (rc_sync_send(sv[0], RC_SYNC_GO, err) < 0) goto out;
  {
    /* A cell's init hands over its gate's listener first: the cell kernel must be serving
     * it before anything in the cell can make a routed syscall. The cell kernel started
     * for the views takes it on its control socket; otherwise one starts for it. */
    int listener = -1;
    int t = rc_sync_recv_fd(sv[0], "set up container", &listener, err);
    if (t == RC_SYNC_LISTENER && listener >= 0) {
      int r = 0;
      if (kernel_control >= 0) {
        r = rc_sync_send_fd(kernel_control, RC_SYNC_LISTENER, listener, err);
        close(kernel_control);
        kernel_control = -1;
      } else {
        struct rc_cell_kernel_fds fds = {
            .listener = listener, .fuse = -1, .control = -1, .init_pidfd = -1};
        r = rc_cell_kernel_spawn(&fds, cgpath, pid, err);
      }
      close(listener);
      if (r < 0) goto out;
      t = rc_sync_recv(sv[0], "set up container", err);
    } else if (listener >= 0) {
      close(listener);
    }
    if (t < 0) goto out;
    if (t != RC_SYNC_CREATED) {
      rc_err(err, 0, "set up container: unexpected sync message %d", t);
      goto out;
    }
  }

  if (console_pair[0] >= 0) {
    /* Foreground run: the master came back on our own end of the console pair. */
    if (rc_recv_fd(console_pair[0], &out->console_master, err) < 0) goto out;
  }

  st.status = OCI_STATUS_CREATED;
  if (rc_state_save(&dir, &st, err) < 0) goto out;
  if (o->pid_file && rc_write_pid_file(o->pid_file, pid, err) < 0) goto out;
  rc_debug("created container %s, init pid %d", o->id, (int)pid);
  out->pid = pid;
  out->pidfd = pidfd;
  pidfd = -1;
  rc = 0;

out:
  /* a create that failed before its init joined (a no-op once ended above) */
  rc_systemd_standin_end(&standin);
  if (rc < 0) {
    struct rc_error cleanup_err;
    if (pid > 0) {
      explain_init_death(pid, cgroup_made ? cgpath : NULL, cfg, err);
      if (pidfd >= 0)
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
      else
        kill(pid, SIGKILL);
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
      }
    }
    if (cgroup_made) {
      if (rc_cgroup_destroy(cgpath, &cleanup_err) < 0)
        rc_warn("cleanup after failed create: %s", cleanup_err.msg);
      if (o->systemd_cgroup && rc_systemd_stop(sd_unit.unit, &cleanup_err) < 0)
        rc_warn("cleanup after failed create: %s", cleanup_err.msg);
    }
    /* a network namespace by path outlives the VMM with runcell's tc redirects on its
     * interface: the jailed VMM cannot remove them itself */
    if (microvm && rc_microvm_net_release(cfg, &cleanup_err) < 0)
      rc_warn("cleanup after failed create: %s", cleanup_err.msg);
    if (dir.dirfd >= 0 && rc_state_dir_remove(&dir, &cleanup_err) < 0)
      rc_warn("cleanup after failed create: %s", cleanup_err.msg);
    if (out->console_master >= 0) close(out->console_master);
    out->console_master = -1;
  }
  if (pidfd >= 0) close(pidfd);
  if (sv[0] >= 0) close(sv[0]);
  if (sv[1] >= 0) close(sv[1]);
  if (start_fd >= 0) close(start_fd);
  if (control_fd >= 0) close(control_fd);
  if (vm_console_log >= 0) close(vm_console_log);
  free(microvm);
  rc_cgroup_join_free(cgroup_join);
  if (console >= 0) close(console);
  if (console_pair[0] >= 0) close(console_pair[0]);
  if (console_pair[1] >= 0) close(console_pair[1]);
  rc_ns_restore_parent(saved_ns); /* when clone was never reached */
  rc_ns_close_paths(ns_fds);
  rc_state_dir_close(&dir);
  free(rootfs);
  free(cgpath);
  rc_systemd_unit_free(&sd_unit);
  free(annotations);
  if (views_dirfd >= 0) close(views_dirfd);
  if (views_fuse >= 0) close(views_fuse);
  if (views_staging >= 0) close(views_staging);
  if (control_pair[0] >= 0) close(control_pair[0]);
  if (control_pair[1] >= 0) close(control_pair[1]);
  if (kernel_control >= 0) close(kernel_control);
  oci_config_free(cfg);
  return rc;
}
