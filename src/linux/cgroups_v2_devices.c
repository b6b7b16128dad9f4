/* Device rules on cgroup v2: v2 has no devices controller; the kernel asks an eBPF program
 * of type BPF_PROG_TYPE_CGROUP_DEVICE, attached to the cgroup, about every open and mknod
 * of a device node. The program is generated here from the policy the rules leave
 * (cgroups_devices.c), as raw instructions, loaded with bpf(BPF_PROG_LOAD) and attached
 * with BPF_PROG_ATTACH; an update replaces the program in place. */
#include <errno.h>
#include <inttypes.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cgroups_internal.h"
#include "runcell/log.h"
#include "runcell/util.h"

/* No GPL-only helper is called, so the kernel takes any license string; this is the
 * project's own. */
static const char prog_license[] = "Apache-2.0";
/* The most programs the kernel attaches to one cgroup and hook (BPF_CGROUP_MAX_PROGS). */
#define MAX_ATTACHED 64

/* ---------------------------------------------------------------------------------------
 * The program
 *
 * struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }, access_type
 * holding the device type (BPF_DEVCG_DEV_*) in its low 16 bits and the access asked for
 * (BPF_DEVCG_ACC_*) in its high 16 bits. The prologue loads
 *   r2 = type, r3 = access, r4 = major, r5 = minor
 * then one block per exception jumps to the next block unless the request matches, and
 * returns the exception's verdict if it does; the last instructions return the default.
 * ------------------------------------------------------------------------------------- */

struct prog {
  struct bpf_insn *v;
  size_t n, cap;
};

static void emit(struct prog *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 64;
    p->v = rc_xrealloc(p->v, p->cap * sizeof(*p->v));
  }
  struct bpf_insn *i = &p->v[p->n++];
  memset(i, 0, sizeof(*i));
  i->code = code;
  i->dst_reg = dst & 0xf;
  i->src_reg = src & 0xf;
  i->off = off;
  i->imm = imm;
}

enum { R0, R1, R2, R3, R4, R5 };

static void emit_prologue(struct prog *p) {
  emit(p, BPF_LDX | BPF_MEM | BPF_W, R2, R1, 0, 0);
  emit(p, BPF_ALU | BPF_AND | BPF_K, R2, 0, 0, 0xffff);
  emit(p, BPF_LDX | BPF_MEM | BPF_W, R3, R1, 0, 0);
  emit(p, BPF_ALU | BPF_RSH | BPF_K, R3, 0, 0, 16);
  emit(p, BPF_LDX | BPF_MEM | BPF_W, R4, R1, 4, 0);
  emit(p, BPF_LDX | BPF_MEM | BPF_W, R5, R1, 8, 0);
}

static void emit_return(struct prog *p, bool allow) {
  emit(p, BPF_ALU64 | BPF_MOV | BPF_K, R0, 0, 0, allow ? 1 : 0);
  emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

/* One exception: its checks jump past the block (to the next one) on a mismatch. */
static void emit_exception(struct prog *p, const struct rc_dev_exception *e, bool default_allow) {
  bool check_access = e->access != RC_DEV_ACC_ALL;
  size_t len = 1 + (check_access ? 3 : 0) + (e->major >= 0) + (e->minor >= 0) + 2;
  size_t end = p->n + len; /* index of the next block's first instruction */
#define SKIP ((int16_t)(end - (p->n + 1)))
  emit(p, BPF_JMP | BPF_JNE | BPF_K, R2, 0, SKIP,
       e->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
  if (check_access) {
    emit(p, BPF_ALU | BPF_MOV | BPF_X, R1, R3, 0, 0);
    emit(p, BPF_ALU | BPF_AND | BPF_K, R1, 0, 0, (int32_t)e->access);
    if (default_allow)
      /* A deny exception (the v1 kernel's partial match): it applies as soon as any of the
       * access asked for is one it names. */
      emit(p, BPF_JMP | BPF_JEQ | BPF_K, R1, 0, SKIP, 0);
    else
      /* An allow exception: only when it grants all of the access asked for. */
      emit(p, BPF_JMP | BPF_JNE | BPF_X, R1, R3, SKIP, 0);
  }
  if (e->major >= 0) emit(p, BPF_JMP | BPF_JNE | BPF_K, R4, 0, SKIP, (int32_t)e->major);
  if (e->minor >= 0) emit(p, BPF_JMP | BPF_JNE | BPF_K, R5, 0, SKIP, (int32_t)e->minor);
#undef SKIP
  emit_return(p, !default_allow);
}

int rc_cg_bpf_device_program(const struct rc_dev_policy *pol, struct bpf_insn **out, size_t *n,
                             struct rc_error *err) {
  *out = NULL;
  *n = 0;
  /* Jumps are 16-bit: keep every block within reach (a block is at most 9 instructions). */
  if (pol->n > 3000)
    return rc_err(err, E2BIG, "%zu device exceptions are more than the eBPF filter takes (3000)",
                  pol->n);
  struct prog p = {0};
  emit_prologue(&p);
  for (size_t i = 0; i < pol->n; i++) {
    const struct rc_dev_exception *e = &pol->ex[i];
    if ((e->type != 'c' && e->type != 'b') || e->major > INT32_MAX || e->minor > INT32_MAX ||
        e->access == 0 || (e->access & ~(unsigned)RC_DEV_ACC_ALL)) {
      free(p.v);
      return rc_err(err, EINVAL,
                    "device exception %c %" PRId64 ":%" PRId64 " (access %u) is not valid", e->type,
                    e->major, e->minor, e->access);
    }
    emit_exception(&p, e, pol->default_allow);
  }
  emit_return(&p, pol->default_allow);
  *out = p.v;
  *n = p.n;
  return 0;
}

/* ---------------------------------------------------------------------------------------
 * Loading and attaching
 * ------------------------------------------------------------------------------------- */

static long sys_bpf(int cmd, union bpf_attr *attr) {
  return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

static int load_once(const struct bpf_insn *insns, size_t n, char *log, size_t log_len) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = (uint64_t)(uintptr_t)insns;
  attr.insn_cnt = (uint32_t)n;
  attr.license = (uint64_t)(uintptr_t)prog_license;
  /* Shows in `bpftool prog` next to the cgroup it guards. */
  snprintf(attr.prog_name, sizeof(attr.prog_name), "runcell_devices");
  if (log) {
    attr.log_buf = (uint64_t)(uintptr_t)log;
    attr.log_size = (uint32_t)log_len;
    attr.log_level = 1;
  }
  return (int)sys_bpf(BPF_PROG_LOAD, &attr);
}

/* Kernels before 5.11 charge programs to RLIMIT_MEMLOCK; raise it for the load only, so
 * that the container (and later commands' children) never inherit the raised limit. */
static int load_with_memlock(const struct bpf_insn *insns, size_t n) {
  struct rlimit old;
  if (getrlimit(RLIMIT_MEMLOCK, &old) < 0 || old.rlim_cur == RLIM_INFINITY) {
    errno = EPERM;
    return -1;
  }
  struct rlimit raised = {RLIM_INFINITY, RLIM_INFINITY};
  if (setrlimit(RLIMIT_MEMLOCK, &raised) < 0) {
    errno = EPERM;
    return -1;
  }
  int fd = load_once(insns, n, NULL, 0);
  int e = errno;
  (void)setrlimit(RLIMIT_MEMLOCK, &old);
  errno = e;
  return fd;
}

int rc_cg_bpf_device_load(const struct bpf_insn *insns, size_t n, const char *path,
                          struct rc_error *err) {
  int fd = load_once(insns, n, NULL, 0);
  if (fd >= 0) return fd;
  int e = errno;
  if (e == EPERM) {
    fd = load_with_memlock(insns, n);
    if (fd >= 0) return fd;
    return rc_err(err, e,
                  "cgroup %s: load the eBPF device filter (BPF_PROG_LOAD, "
                  "BPF_PROG_TYPE_CGROUP_DEVICE): the runtime may not use bpf() (it needs "
                  "CAP_BPF or CAP_SYS_ADMIN in the initial user namespace)",
                  path);
  }
  /* Load again with the verifier's log, so the error says why it refused. */
  size_t log_len = 1 << 16;
  cleanup_free char *log = rc_xcalloc(1, log_len);
  fd = load_once(insns, n, log, log_len);
  if (fd >= 0) return fd;
  size_t len = strlen(log);
  while (len > 0 && (log[len - 1] == '\n' || log[len - 1] == ' ')) log[--len] = '\0';
  /* The end of the log has the verdict; the message has room for a part only. */
  const char *tail = len > 1200 ? log + len - 1200 : log;
  return rc_err(err, e,
                "cgroup %s: load the eBPF device filter (BPF_PROG_LOAD, "
                "BPF_PROG_TYPE_CGROUP_DEVICE, %zu instructions), verifier log: %s%s",
                path, n, tail == log ? "" : "...", *tail ? tail : "(empty)");
}

static int load_program(const struct rc_dev_policy *pol, const char *path, struct rc_error *err) {
  cleanup_free struct bpf_insn *insns = NULL;
  size_t n = 0;
  if (rc_cg_bpf_device_program(pol, &insns, &n, err) < 0)
    return rc_err_wrap(err, "cgroup %s: eBPF device filter", path);
  return rc_cg_bpf_device_load(insns, n, path, err);
}

/* The device programs attached to dirfd's cgroup itself (not its ancestors'). */
static int query_attached(int dirfd, uint32_t *ids, uint32_t *n, const char *path,
                          struct rc_error *err) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.query.target_fd = (uint32_t)dirfd;
  attr.query.attach_type = BPF_CGROUP_DEVICE;
  attr.query.prog_ids = (uint64_t)(uintptr_t)ids;
  attr.query.prog_cnt = MAX_ATTACHED;
  if (sys_bpf(BPF_PROG_QUERY, &attr) < 0)
    return rc_err(err, errno, "cgroup %s: list its device programs (BPF_PROG_QUERY)", path);
  *n = attr.query.prog_cnt < MAX_ATTACHED ? attr.query.prog_cnt : MAX_ATTACHED;
  return 0;
}

static int prog_fd_by_id(uint32_t id) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.prog_id = id;
  return (int)sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
}

/* Whether the program is systemd's device filter, which it attaches to a unit's cgroup
 * from DevicePolicy/DeviceAllow (systemd 252 names it "sd_devices"). */
static bool is_systemds(int prog_fd) {
  struct bpf_prog_info info;
  memset(&info, 0, sizeof(info));
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.info.bpf_fd = (uint32_t)prog_fd;
  attr.info.info_len = sizeof(info);
  attr.info.info = (uint64_t)(uintptr_t)&info;
  if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) < 0) return false;
  return strncmp(info.name, "sd_devices", sizeof(info.name)) == 0;
}

static int attach(int dirfd, int prog_fd, int replace_fd) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.target_fd = (uint32_t)dirfd;
  attr.attach_bpf_fd = (uint32_t)prog_fd;
  attr.attach_type = BPF_CGROUP_DEVICE;
  /* MULTI: a container cgroup's parent may carry its own device program (systemd's),
   * and both must hold. */
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (replace_fd >= 0) {
    attr.attach_flags |= BPF_F_REPLACE;
    attr.replace_bpf_fd = (uint32_t)replace_fd;
  }
  return (int)sys_bpf(BPF_PROG_ATTACH, &attr);
}

static int detach(int dirfd, int prog_fd) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.target_fd = (uint32_t)dirfd;
  attr.attach_bpf_fd = (uint32_t)prog_fd;
  attr.attach_type = BPF_CGROUP_DEVICE;
  return (int)sys_bpf(BPF_PROG_DETACH, &attr);
}

int rc_cg_bpf_device_attach(int dirfd, const char *path, const struct rc_dev_policy *pol,
                            struct rc_error *err) {
  uint32_t ids[MAX_ATTACHED];
  uint32_t n_old = 0;
  if (query_attached(dirfd, ids, &n_old, path, err) < 0) return -1;
  int old_fds[MAX_ATTACHED];
  size_t n_fds = 0;
  for (uint32_t i = 0; i < n_old; i++) {
    int fd = prog_fd_by_id(ids[i]);
    /* One the runtime may not open (an LSM's) can only restrict further: leave it.
     * systemd's on a unit's cgroup (the systemd driver's scope) stays too: it is
     * systemd's, from the unit's DevicePolicy/DeviceAllow, and systemd replaces it itself
     * when it realizes the unit (taken away here, it would come back with that realize). */
    if (fd >= 0 && is_systemds(fd)) {
      close(fd);
      fd = -1;
    }
    if (fd >= 0) old_fds[n_fds++] = fd;
  }
  int ret = -1;
  cleanup_close int prog = load_program(pol, path, err);
  if (prog < 0) goto out;
  /* With exactly one program there before (ours, on update), swap it atomically: no
   * moment without a filter, nor with both. */
  bool replaced = false;
  if (n_fds == 1) {
    if (attach(dirfd, prog, old_fds[0]) == 0)
      replaced = true;
    else if (errno != EINVAL) {
      rc_err(err, errno,
             "cgroup %s: failed to call BPF_PROG_ATTACH (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI | "
             "BPF_F_REPLACE)",
             path);
      goto out;
    }
    /* EINVAL: a kernel before 5.6, without BPF_F_REPLACE; attach, then detach. */
  }
  if (!replaced) {
    if (attach(dirfd, prog, -1) < 0) {
      rc_err(err, errno,
             "cgroup %s: failed to call BPF_PROG_ATTACH (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)",
             path);
      goto out;
    }
    for (size_t i = 0; i < n_fds; i++)
      if (detach(dirfd, old_fds[i]) < 0 && errno != ENOENT) {
        rc_err(err, errno,
               "cgroup %s: failed to call BPF_PROG_DETACH (BPF_CGROUP_DEVICE) on the old device "
               "filter",
               path);
        goto out;
      }
  }
  if (n_fds > 1) rc_info("cgroup %s: replaced %zu device programs with one", path, n_fds);
  ret = 0;
out:
  for (size_t i = 0; i < n_fds; i++) close(old_fds[i]);
  return ret;
}

int rc_cg_v2_devices(const struct rc_cg_dir *d, const struct oci_device_cgroup *rules, size_t n,
                     struct rc_error *err) {
  struct rc_dev_policy pol;
  if (rc_cg_dev_policy_build(rules, n, true, &pol, err) < 0)
    return rc_err_wrap(err, "cgroup %s", d->path);
  int r = rc_cg_bpf_device_attach(d->fd, d->path, &pol, err);
  rc_cg_dev_policy_free(&pol);
  return r;
}
