/* Namespace type names (linux.namespaces[].type) and their clone flags. */
#include <sched.h>
#include <string.h>

#include "internal.h"
#include "runcell/util.h"

/* Older libc headers lack the time namespace flag; the value is fixed by the kernel ABI. */
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static const struct {
  const char *name; /* linux.namespaces[].type */
  const char *proc; /* its file in /proc/<pid>/ns, and criu's name for it */
  int flag;
} ns_table[OCI_NS_COUNT] = {
    [OCI_NS_PID] = {"pid", "pid", CLONE_NEWPID},
    [OCI_NS_NETWORK] = {"network", "net", CLONE_NEWNET},
    [OCI_NS_MOUNT] = {"mount", "mnt", CLONE_NEWNS},
    [OCI_NS_IPC] = {"ipc", "ipc", CLONE_NEWIPC},
    [OCI_NS_UTS] = {"uts", "uts", CLONE_NEWUTS},
    [OCI_NS_USER] = {"user", "user", CLONE_NEWUSER},
    [OCI_NS_CGROUP] = {"cgroup", "cgroup", CLONE_NEWCGROUP},
    [OCI_NS_TIME] = {"time", "time", CLONE_NEWTIME},
};

const char *oci_ns_type_name(enum oci_ns_type type) {
  if ((unsigned)type >= OCI_NS_COUNT) return NULL;
  return ns_table[type].name;
}

const char *oci_ns_proc_name(enum oci_ns_type type) {
  if ((unsigned)type >= OCI_NS_COUNT) return NULL;
  return ns_table[type].proc;
}

int oci_ns_clone_flag(enum oci_ns_type type) {
  if ((unsigned)type >= OCI_NS_COUNT) return 0;
  return ns_table[type].flag;
}

int oci_ns_type_from_name(const char *name) {
  for (int i = 0; i < OCI_NS_COUNT; i++)
    if (strcmp(ns_table[i].name, name) == 0) return i;
  return -1;
}

const struct oci_namespace *oci_config_namespace(const struct oci_config *cfg,
                                                 enum oci_ns_type type) {
  if (!cfg || !cfg->has_linux) return NULL;
  for (size_t i = 0; i < cfg->linux_.n_namespaces; i++)
    if (cfg->linux_.namespaces[i].type == type) return &cfg->linux_.namespaces[i];
  return NULL;
}
