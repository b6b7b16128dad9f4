/* The small per-process attributes applied just before exec: rlimits, oom_score_adj,
 * personality and no_new_privs. Capabilities and seccomp live in their own files. */
#include "runcell/process_attrs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runcell/procfs.h"
#include "runcell/util.h"

static const struct {
  int type;
  const char *name;
} rlimit_names[] = {
    {RLIMIT_AS, "RLIMIT_AS"},
    {RLIMIT_CORE, "RLIMIT_CORE"},
    {RLIMIT_CPU, "RLIMIT_CPU"},
    {RLIMIT_DATA, "RLIMIT_DATA"},
    {RLIMIT_FSIZE, "RLIMIT_FSIZE"},
    {RLIMIT_LOCKS, "RLIMIT_LOCKS"},
    {RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"},
    {RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"},
    {RLIMIT_NICE, "RLIMIT_NICE"},
    {RLIMIT_NOFILE, "RLIMIT_NOFILE"},
    {RLIMIT_NPROC, "RLIMIT_NPROC"},
    {RLIMIT_RSS, "RLIMIT_RSS"},
    {RLIMIT_RTPRIO, "RLIMIT_RTPRIO"},
    {RLIMIT_RTTIME, "RLIMIT_RTTIME"},
    {RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"},
    {RLIMIT_STACK, "RLIMIT_STACK"},
};

static const char *rlimit_name(const struct oci_rlimit *rl, char *buf, size_t len) {
  if (rl->name) return rl->name;
  for (size_t i = 0; i < RC_ARRAY_SIZE(rlimit_names); i++)
    if (rlimit_names[i].type == rl->type) return rlimit_names[i].name;
  snprintf(buf, len, "resource %d", rl->type);
  return buf;
}

static void format_limit(uint64_t v, char *buf, size_t len) {
  if (v == (uint64_t)RLIM64_INFINITY)
    snprintf(buf, len, "unlimited");
  else
    snprintf(buf, len, "%" PRIu64, v);
}

int rc_apply_rlimits(const struct oci_process *p, struct rc_error *err) {
  for (size_t i = 0; i < p->n_rlimits; i++) {
    const struct oci_rlimit *rl = &p->rlimits[i];
    /* The 64-bit interface so that values from config.json are not truncated on 32-bit
     * ABIs. */
    struct rlimit64 lim = {.rlim_cur = (rlim64_t)rl->soft, .rlim_max = (rlim64_t)rl->hard};
    if (prlimit64(0, (__rlimit_resource_t)rl->type, &lim, NULL) == 0) continue;
    int e = errno;
    char nbuf[32], soft[32], hard[32];
    format_limit(rl->soft, soft, sizeof(soft));
    format_limit(rl->hard, hard, sizeof(hard));
    return rc_err(err, e, "setrlimit %s soft=%s hard=%s", rlimit_name(rl, nbuf, sizeof(nbuf)), soft,
                  hard);
  }
  return 0;
}

int rc_write_proc_file(const char *path, const char *data, size_t len, struct rc_error *err) {
  cleanup_close int fd = rc_procfs_open(path, O_WRONLY | O_TRUNC, err);
  if (fd < 0) return -1;
  if (rc_write_all(fd, data, len) < 0) return rc_err(err, errno, "write %s", path);
  return 0;
}

int rc_read_proc_file(const char *path, size_t max, char **out, struct rc_error *err) {
  cleanup_close int fd = rc_procfs_open(path, O_RDONLY, err);
  if (fd < 0) return -1;
  return rc_read_fd(fd, path, max, out, NULL, err);
}

int rc_apply_oom_score_adj(const struct oci_process *p, struct rc_error *err) {
  if (!p->has_oom_score_adj) return 0;
  char buf[32];
  int n = snprintf(buf, sizeof(buf), "%d", p->oom_score_adj);
  if (rc_write_proc_file("/proc/self/oom_score_adj", buf, (size_t)n, err) < 0)
    return rc_err_wrap(err, "set oomScoreAdj to %d", p->oom_score_adj);
  return 0;
}

/* The kernel's struct sched_attr with the utilization clamps of Linux 5.3
 * (SCHED_ATTR_SIZE_VER1): the SCHED_FLAG_UTIL_CLAMP_* flags need them present (0 here, as
 * runc passes them; the spec has no fields for them). Older kernels take the longer struct
 * as long as what they do not know is zero. glibc 2.36 has no wrapper. */
struct sched_attr_v1 {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime, sched_deadline, sched_period;
  uint32_t sched_util_min, sched_util_max;
};

int rc_apply_scheduler(const struct oci_process *p, struct rc_error *err) {
  if (!p->scheduler_policy) return 0;
  struct sched_attr_v1 attr = {.size = sizeof(attr),
                               .sched_policy = (uint32_t)p->sched_policy,
                               .sched_flags = p->sched_flags,
                               .sched_nice = p->sched_nice,
                               .sched_priority = p->sched_priority,
                               .sched_runtime = p->sched_runtime,
                               .sched_deadline = p->sched_deadline,
                               .sched_period = p->sched_period};
  if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0)
    return rc_err(err, errno, "set process.scheduler (%s, nice %d, priority %u)",
                  p->scheduler_policy, p->sched_nice, p->sched_priority);
  return 0;
}

int rc_apply_io_priority(const struct oci_process *p, struct rc_error *err) {
  if (!p->has_io_priority) return 0;
  /* IOPRIO_PRIO_VALUE(class, level), for IOPRIO_WHO_PROCESS 0: this process */
  long value = ((long)p->io_priority_class << 13) | p->io_priority;
  if (syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, value) < 0)
    return rc_err(err, errno, "set process.ioPriority (class %d, priority %d)",
                  p->io_priority_class, p->io_priority);
  return 0;
}

int rc_apply_personality(const struct oci_linux *l, struct rc_error *err) {
  if (!l || !l->has_personality) return 0;
  /* 0xffffffff only queries the personality: refusing it keeps a bad value from being
   * silently ignored. */
  if (l->personality_domain == 0xffffffffUL)
    return rc_err(err, EINVAL, "personality 0x%lx", l->personality_domain);
  if (personality(l->personality_domain) < 0)
    return rc_err(err, errno, "set personality to %s (0x%lx)",
                  l->personality_domain == PER_LINUX32 ? "LINUX32"
                  : l->personality_domain == PER_LINUX ? "LINUX"
                                                       : "unknown domain",
                  l->personality_domain);
  return 0;
}

int rc_apply_no_new_privs(const struct oci_process *p, struct rc_error *err) {
  if (!p->no_new_privileges) return 0;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return rc_err(err, errno, "prctl(PR_SET_NO_NEW_PRIVS) for noNewPrivileges");
  return 0;
}
