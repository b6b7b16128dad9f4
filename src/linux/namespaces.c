#include "runcell/namespaces.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runcell/log.h"
#include "runcell/sysctl_path.h"
#include "runcell/util.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

int rc_ns_clone_flags(const struct oci_config *cfg) {
  int flags = 0;
  if (!cfg->has_linux) return 0;
  for (size_t i = 0; i < cfg->linux_.n_namespaces; i++) {
    const struct oci_namespace *ns = &cfg->linux_.namespaces[i];
    /* time: see rc_ns_prepare_parent; cgroup: rc_ns_unshare_cgroup, once the init has been
     * moved into its cgroup, so that this cgroup becomes the namespace's root. */
    if (ns->path || ns->type == OCI_NS_TIME || ns->type == OCI_NS_CGROUP) continue;
    flags |= oci_ns_clone_flag(ns->type);
  }
  return flags;
}

int rc_ns_open_paths(const struct oci_config *cfg, int fds[OCI_NS_COUNT], struct rc_error *err) {
  for (int i = 0; i < OCI_NS_COUNT; i++) fds[i] = -1;
  if (!cfg->has_linux) return 0;
  for (size_t i = 0; i < cfg->linux_.n_namespaces; i++) {
    const struct oci_namespace *ns = &cfg->linux_.namespaces[i];
    if (!ns->path) continue;
    int fd = open(ns->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      rc_ns_close_paths(fds);
      return rc_err(err, e, "open %s namespace %s", oci_ns_type_name(ns->type), ns->path);
    }
    fds[ns->type] = fd;
  }
  return 0;
}

void rc_ns_close_paths(int fds[OCI_NS_COUNT]) {
  for (int i = 0; i < OCI_NS_COUNT; i++) {
    if (fds[i] >= 0) close(fds[i]);
    fds[i] = -1;
  }
}

static int write_time_offsets(const struct oci_config *cfg, struct rc_error *err) {
  const struct oci_linux *l = &cfg->linux_;
  if (l->n_time_offsets == 0) return 0;
  char buf[256] = "";
  size_t used = 0;
  for (size_t i = 0; i < l->n_time_offsets; i++) {
    const struct oci_time_offset *t = &l->time_offsets[i];
    used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s %lld %u\n", t->clock,
                             (long long)t->secs, t->nanosecs);
    if (used >= sizeof(buf)) return rc_err(err, 0, "linux.timeOffsets: too many entries");
  }
  if (rc_write_file("/proc/self/timens_offsets", buf, used, err) < 0)
    return rc_err_wrap(err, "set time namespace offsets");
  return 0;
}

int rc_ns_prepare_parent(const struct oci_config *cfg, const int fds[OCI_NS_COUNT], int saved[2],
                         struct rc_error *err) {
  /* Remember our own namespaces for children: hooks the runtime runs later must run in the
   * runtime's namespaces, not the container's (rc_ns_restore_parent). */
  saved[0] = open("/proc/self/ns/pid_for_children", O_RDONLY | O_CLOEXEC);
  saved[1] = open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
  if (fds[OCI_NS_PID] >= 0 && setns(fds[OCI_NS_PID], CLONE_NEWPID) < 0)
    return rc_err(err, errno, "join pid namespace");
  if (fds[OCI_NS_TIME] >= 0 && setns(fds[OCI_NS_TIME], CLONE_NEWTIME) < 0)
    return rc_err(err, errno, "join time namespace");
  const struct oci_namespace *tns = oci_config_namespace(cfg, OCI_NS_TIME);
  if (tns && !tns->path) {
    /* unshare(CLONE_NEWTIME) only changes the namespace of future children, and its
     * offsets can be set only until the first process enters it: now. */
    if (unshare(CLONE_NEWTIME) < 0) return rc_err(err, errno, "create time namespace");
    if (write_time_offsets(cfg, err) < 0) return -1;
  } else if (cfg->has_linux && cfg->linux_.n_time_offsets > 0) {
    return rc_err(err, 0, "linux.timeOffsets requires a new time namespace");
  }
  return 0;
}

void rc_ns_restore_parent(int saved[2]) {
  if (saved[0] >= 0) {
    if (setns(saved[0], CLONE_NEWPID) < 0) rc_warn("restore pid namespace for children: %m");
    close(saved[0]);
  }
  if (saved[1] >= 0) {
    if (setns(saved[1], CLONE_NEWTIME) < 0) rc_warn("restore time namespace for children: %m");
    close(saved[1]);
  }
  saved[0] = saved[1] = -1;
}

int rc_ns_join_paths(const int fds[OCI_NS_COUNT], struct rc_error *err) {
  /* The user namespace goes first: joining the others may need its privileges. */
  static const enum oci_ns_type order[] = {OCI_NS_USER,    OCI_NS_IPC,    OCI_NS_UTS,
                                           OCI_NS_NETWORK, OCI_NS_CGROUP, OCI_NS_MOUNT};
  for (size_t i = 0; i < RC_ARRAY_SIZE(order); i++) {
    enum oci_ns_type t = order[i];
    if (fds[t] < 0) continue;
    if (setns(fds[t], oci_ns_clone_flag(t)) < 0)
      return rc_err(err, errno, "join %s namespace", oci_ns_type_name(t));
  }
  return 0;
}

static int write_map(pid_t pid, const char *file, const struct oci_id_mapping *m, size_t n,
                     struct rc_error *err) {
  if (n == 0) return 0;
  size_t cap = n * 40 + 1;
  cleanup_free char *buf = rc_xmalloc(cap);
  size_t used = 0;
  for (size_t i = 0; i < n; i++)
    used += (size_t)snprintf(buf + used, cap - used, "%u %u %u\n", m[i].container_id, m[i].host_id,
                             m[i].size);
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
  if (rc_write_file(path, buf, used, err) < 0) return rc_err_wrap(err, "write %s", file);
  return 0;
}

int rc_ns_write_id_maps(const struct oci_config *cfg, pid_t pid, struct rc_error *err) {
  const struct oci_namespace *uns = oci_config_namespace(cfg, OCI_NS_USER);
  if (!uns || uns->path) return 0;
  const struct oci_linux *l = &cfg->linux_;
  if (write_map(pid, "uid_map", l->uid_mappings, l->n_uid_mappings, err) < 0) return -1;
  if (write_map(pid, "gid_map", l->gid_mappings, l->n_gid_mappings, err) < 0) return -1;
  return 0;
}

int rc_ns_apply_uts(const struct oci_config *cfg, bool new_uts, struct rc_error *err) {
  /* An empty name is no name, as for runc: the namespace keeps the one it has. */
  const char *host = cfg->hostname && *cfg->hostname ? cfg->hostname : NULL;
  const char *domain = cfg->domainname && *cfg->domainname ? cfg->domainname : NULL;
  if (!host && !domain) return 0;
  if (!new_uts && !oci_config_namespace(cfg, OCI_NS_UTS))
    return rc_err(err, 0, "unable to set %s without a private UTS namespace",
                  host ? "hostname" : "domainname");
  if (host && sethostname(host, strlen(host)) < 0)
    return rc_err(err, errno, "sethostname %s", host);
  if (domain && setdomainname(domain, strlen(domain)) < 0)
    return rc_err(err, errno, "setdomainname %s", domain);
  return 0;
}

/* The namespace a sysctl belongs to, OCI_NS_COUNT for one that belongs to none. */
static enum oci_ns_type sysctl_namespace(const char *spelled) {
  /* both spellings ("kernel.shm_rmid_forced", "kernel/shm_rmid_forced") are one sysctl:
   * classified in the dotted one (runc accepts the slashed one too) */
  char key[256];
  snprintf(key, sizeof(key), "%s", spelled);
  for (char *c = key; *c; c++)
    if (*c == '/') *c = '.';
  if (strncmp(key, "net.", 4) == 0) return OCI_NS_NETWORK;
  if (strncmp(key, "fs.mqueue.", 10) == 0 || strcmp(key, "kernel.msgmax") == 0 ||
      strcmp(key, "kernel.msgmnb") == 0 || strcmp(key, "kernel.msgmni") == 0 ||
      strcmp(key, "kernel.sem") == 0 || strcmp(key, "kernel.shmall") == 0 ||
      strcmp(key, "kernel.shmmax") == 0 || strcmp(key, "kernel.shmmni") == 0 ||
      strcmp(key, "kernel.shm_rmid_forced") == 0)
    return OCI_NS_IPC;
  if (strcmp(key, "kernel.hostname") == 0 || strcmp(key, "kernel.domainname") == 0)
    return OCI_NS_UTS;
  return OCI_NS_COUNT;
}

/* Sysctls that belong to a namespace may only be set when the container has its own
 * copy of that namespace; everything else would change the host (runc refuses too). */
static int check_sysctl_namespace(const struct oci_config *cfg, const char *key,
                                  struct rc_error *err) {
  enum oci_ns_type need = sysctl_namespace(key);
  if (need == OCI_NS_COUNT)
    return rc_err(err, 0, "sysctl \"%s\" is not in a separate kernel namespace", key);
  const struct oci_namespace *ns = oci_config_namespace(cfg, need);
  if (!ns)
    return rc_err(err, 0, "sysctl \"%s\" is not allowed in the host's %s namespace", key,
                  oci_ns_type_name(need));
  return 0;
}

int rc_ns_check_sysctl_targets(const struct oci_config *cfg, const int fds[OCI_NS_COUNT],
                               struct rc_error *err) {
  if (!cfg->has_linux) return 0;
  for (size_t i = 0; i < cfg->linux_.n_sysctl; i++) {
    const char *key = cfg->linux_.sysctl[i].key;
    enum oci_ns_type need = sysctl_namespace(key);
    if (need == OCI_NS_COUNT || fds[need] < 0) continue;
    char own[32];
    snprintf(own, sizeof(own), "/proc/self/ns/%s", oci_ns_proc_name(need));
    struct stat target;
    struct stat mine;
    if (fstat(fds[need], &target) < 0)
      return rc_err(err, errno, "sysctl \"%s\": stat the %s namespace", key,
                    oci_ns_type_name(need));
    if (stat(own, &mine) < 0) return rc_err(err, errno, "sysctl \"%s\": stat %s", key, own);
    if (target.st_dev == mine.st_dev && target.st_ino == mine.st_ino)
      return rc_err(err, 0,
                    "sysctl \"%s\" is not allowed in the host's %s namespace (the path "
                    "given for it, %s, is the runtime's own)",
                    key, oci_ns_type_name(need), oci_config_namespace(cfg, need)->path);
  }
  return 0;
}

int rc_ns_apply_sysctl(const struct oci_config *cfg, struct rc_error *err) {
  if (!cfg->has_linux) return 0;
  for (size_t i = 0; i < cfg->linux_.n_sysctl; i++) {
    const char *key = cfg->linux_.sysctl[i].key;
    const char *val = cfg->linux_.sysctl[i].value;
    /* both "net.ipv4.ip_forward" and "net/ipv4/ip_forward" spellings are accepted */
    char rel[480], path[512];
    if (rc_sysctl_path(key, strlen(key), rel, sizeof(rel)) < 0)
      return rc_err(err, 0, "invalid sysctl key \"%s\"", key);
    if (check_sysctl_namespace(cfg, key, err) < 0) return -1;
    snprintf(path, sizeof(path), "/proc/sys/%s", rel);
    if (rc_write_file(path, val, strlen(val), err) < 0)
      return rc_err_wrap(err, "set sysctl %s=%s", key, val);
  }
  return 0;
}

int rc_ns_unshare_cgroup(const struct oci_config *cfg, struct rc_error *err) {
  const struct oci_namespace *ns = oci_config_namespace(cfg, OCI_NS_CGROUP);
  if (!ns || ns->path) return 0;
  if (unshare(CLONE_NEWCGROUP) < 0) return rc_err(err, errno, "create cgroup namespace");
  return 0;
}
