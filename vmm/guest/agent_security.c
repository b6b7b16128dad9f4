/* The container's security settings beyond its privileges, applied inside the guest as
 * runc applies them on the host: sysctls, read-only and masked paths (on the container's
 * root, before its process exists), and each process's oom_score_adj and seccomp filter
 * (in the process, around its privilege changes).
 *
 * Paths are resolved inside the container's root (openat2 RESOLVE_IN_ROOT): a symlink in
 * the image cannot send a mask or a read-only bind anywhere else. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"

static void fd_path(int fd, char *out, size_t size) {
  snprintf(out, size, "/proc/self/fd/%d", fd);
}

/* The flags a read-only remount must keep: a bind remount replaces them all. */
static unsigned long mount_flags_of(const char *path) {
  struct statvfs sv;
  unsigned long keep = 0;
  if (statvfs(path, &sv) < 0) return 0;
  if (sv.f_flag & ST_NOSUID) keep |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) keep |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) keep |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) keep |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) keep |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) keep |= MS_RELATIME;
  return keep;
}

/* runc's readonlyPath: the path bound onto itself, then that mount remounted read-only.
 * A path the image lacks is skipped. */
static int readonly_path(int rootfd, const char *path, struct rc_error *err) {
  int fd = agent_open_in_root(rootfd, path, O_PATH);
  if (fd < 0) {
    if (errno == ENOENT) return 0;
    return rc_err(err, errno, "read-only path %s", path);
  }
  char p[64];
  fd_path(fd, p, sizeof(p));
  int r = mount(p, p, NULL, MS_BIND | MS_REC, NULL);
  int e = errno;
  close(fd);
  if (r < 0) return rc_err(err, e, "read-only path %s: bind", path);
  /* the remount must name the new mount, which the old fd does not: resolve again */
  fd = agent_open_in_root(rootfd, path, O_PATH);
  if (fd < 0) return rc_err(err, errno, "read-only path %s: reopen", path);
  fd_path(fd, p, sizeof(p));
  r = mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | mount_flags_of(p), NULL);
  e = errno;
  close(fd);
  if (r < 0) return rc_err(err, e, "read-only path %s: remount read-only", path);
  return 0;
}

/* runc's maskPath: /dev/null over a file, an empty read-only tmpfs over a directory. A path
 * the image lacks is skipped. */
static int masked_path(int rootfd, const char *path, struct rc_error *err) {
  int fd = agent_open_in_root(rootfd, path, O_PATH);
  if (fd < 0) {
    if (errno == ENOENT) return 0;
    return rc_err(err, errno, "masked path %s", path);
  }
  struct stat st;
  char p[64];
  fd_path(fd, p, sizeof(p));
  int r = fstat(fd, &st);
  if (r == 0 && S_ISDIR(st.st_mode))
    r = mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  else if (r == 0)
    r = mount("/dev/null", p, NULL, MS_BIND, NULL);
  int e = errno;
  close(fd);
  if (r < 0) return rc_err(err, e, "masked path %s", path);
  return 0;
}

int agent_apply_paths(int rootfd, const struct agent_security *sec, struct rc_error *err) {
  for (uint32_t i = 0; i < sec->n_readonly_paths; i++)
    if (readonly_path(rootfd, sec->readonly_paths[i], err) < 0) return -1;
  for (uint32_t i = 0; i < sec->n_masked_paths; i++)
    if (masked_path(rootfd, sec->masked_paths[i], err) < 0) return -1;
  return 0;
}

/* The guest kernel is the container's alone, so every sysctl the config names is written
 * to it, also those runc refuses because they are not namespaced on a shared host kernel
 * (kernel.*, vm.*): here they change nothing outside the container. */
int agent_apply_sysctls(const struct agent_security *sec, struct rc_error *err) {
  for (uint32_t i = 0; i < sec->n_sysctls; i++) {
    const char *entry = sec->sysctls[i];
    char rel[AGENT_MAX_STRING], path[AGENT_MAX_STRING + 16];
    if (agent_sysctl_path(entry, rel, sizeof(rel)) < 0)
      return rc_err(err, EINVAL, "sysctl \"%s\" is not name=value", entry);
    snprintf(path, sizeof(path), "/proc/sys/%s", rel);
    const char *value = strchr(entry, '=') + 1;
    if (agent_write_text(path, value, O_NOFOLLOW) < 0)
      return rc_err(err, errno, "sysctl %s = \"%s\"", rel, value);
  }
  return 0;
}

int agent_set_oom_score_adj(const struct agent_security *sec) {
  if (!sec->has_oom_score_adj) return 0;
  char buf[16];
  snprintf(buf, sizeof(buf), "%d", sec->oom_score_adj);
  return agent_write_text("/proc/self/oom_score_adj", buf, 0);
}

int agent_load_seccomp(const struct agent_security *sec) {
  if (!sec->seccomp_bpf) return 0;
  struct sock_fprog prog = {
      .len = (unsigned short)(sec->seccomp_bpf_len / sizeof(struct sock_filter)),
      .filter = (struct sock_filter *)(void *)sec->seccomp_bpf};
  return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, sec->seccomp_flags, &prog);
}
