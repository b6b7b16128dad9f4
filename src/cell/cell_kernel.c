/* The cell kernel's notify placement: spawning it, and its request loop.
 *
 * Every request is hostile input: the pointer a process passes may be bad, the process may
 * die (and its pid be reused) while the request is served. So the target's memory is
 * opened through /proc/<pid>/mem (with its maps), the request id is checked to still be
 * valid after the open (the fds then pin the right process's memory), the destination is
 * checked to be memory the caller could write itself, and only then is the answer
 * written; a refused or failed write answers EFAULT, as the kernel would. */
#include "runcell/cell_kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runcell/cgroups.h"
#include "runcell/procfs.h"
#include "runcell/sync.h"
#include "runcell/util.h"
#include "runcell/views.h"

/* The i386 numbers of the routed syscalls (asm/unistd_32.h, not included beside the
 * 64-bit ones). */
#define I386_SYSINFO 116
#define I386_SCHED_GETAFFINITY 242

/* PROCMAP_QUERY (Linux 6.11): the mapping that covers an address, from a /proc/<pid>/maps
 * fd, in O(log n). Declared here with the kernel's layout: Debian 12's headers lack it. */
struct procmap_query {
  uint64_t size, query_flags, query_addr, vma_start, vma_end, vma_flags, vma_page_size;
  uint64_t vma_offset, inode;
  uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
  uint64_t vma_name_addr, build_id_addr;
};
#define RC_PROCMAP_QUERY _IOWR('f', 17, struct procmap_query)
#define RC_PROCMAP_QUERY_VMA_WRITABLE 0x02

/* The text of the maps fd, for kernels without PROCMAP_QUERY: whether the mappings listed
 * cover [at, end) without a gap, each writable. */
static bool writable_in_maps_text(int maps, uint64_t at, uint64_t end) {
  int fd = dup(maps);
  cleanup_fclose FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
  if (!f) {
    if (fd >= 0) close(fd);
    return false;
  }
  cleanup_free char *line = NULL;
  size_t cap = 0;
  while (at < end && getline(&line, &cap, f) > 0) {
    /* "start-end perms ...", perms such as "rw-p" */
    char *p = NULL;
    unsigned long long lo = strtoull(line, &p, 16), hi = 0;
    if (*p == '-') hi = strtoull(p + 1, &p, 16);
    if (*p != ' ' || !p[1] || !p[2]) break;
    if (hi <= at) continue;
    if (lo > at || p[2] != 'w') break;
    at = hi;
  }
  return at >= end;
}

/* Whether the caller could write [addr, addr + len) itself: every byte in a mapping with
 * write permission. The kernel's own copy_to_user would fault on anything else, but a
 * write through /proc/<pid>/mem forces its way past page protections (FOLL_FORCE, the
 * debugger's access): without this check a routed sysinfo or sched_getaffinity aimed at
 * read-only or PROT_NONE memory, at the program's own code or at a read-only file mapping
 * succeeded and rewrote it. maps is of the same process as the mem fd (both opened before
 * the request's id was checked). The caller's other threads may change the mappings
 * meanwhile, as they may during a host syscall; what this cannot see: protection keys
 * (the caller's PKRU) and x86 shadow stacks (writable mappings that ordinary stores
 * fault on). */
static bool writable_by_caller(int maps, uint64_t addr, size_t len) {
  uint64_t end = addr + len;
  if (end < addr) return false;
  for (uint64_t at = addr; at < end;) {
    struct procmap_query q = {.size = sizeof(q), .query_addr = at};
    if (ioctl(maps, RC_PROCMAP_QUERY, &q) < 0)
      return errno == ENOTTY && writable_in_maps_text(maps, at, end);
    if (!(q.vma_flags & RC_PROCMAP_QUERY_VMA_WRITABLE) || q.vma_end <= at) return false;
    at = q.vma_end;
  }
  return true;
}

/* Writes len bytes at addr in the memory of the process behind a request; 0, or the
 * errno to answer (negative). */
static int write_target(int listener, const struct seccomp_notif *req, uint64_t addr,
                        const void *data, size_t len) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%u/mem", req->pid);
  cleanup_close int mem = open(path, O_RDWR | O_CLOEXEC);
  snprintf(path, sizeof(path), "/proc/%u/maps", req->pid);
  cleanup_close int maps = mem >= 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
  if (maps < 0) return -errno;
  __u64 id = req->id;
  if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0) return -ESRCH;
  if (!writable_by_caller(maps, addr, len)) return -EFAULT;
  ssize_t n = pwrite(mem, data, len, (off_t)addr);
  return n == (ssize_t)len ? 0 : -EFAULT;
}

/* The cell's limits and usage, read from its cgroup at most every LIMITS_TTL_NS: reading
 * half a dozen control files (memory.stat above all) costs tens of microseconds, more than
 * the rest of a routed syscall, and programs asking sysinfo in a loop need no fresher
 * numbers than a tenth of a second. */
#define LIMITS_TTL_NS 100000000ull
static const struct rc_cell_limits *cached_limits(const char *cgroup_path) {
  static struct rc_cell_limits limits;
  static unsigned long long read_at;
  static bool valid;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  unsigned long long ns =
      (unsigned long long)now.tv_sec * 1000000000ull + (unsigned long long)now.tv_nsec;
  if (!valid || ns - read_at > LIMITS_TTL_NS) {
    struct rc_error ignore;
    (void)rc_cell_limits_read(cgroup_path, &limits, &ignore);
    read_at = ns;
    valid = true;
  }
  return &limits;
}

/* What a listener's thread serves with: the cell's cgroup and when its init started. */
struct cell {
  const char *cgroup_path;
  double started; /* seconds after boot (rc_cell_start_time), < 0 if unknown */
};

/* The i386 struct sysinfo (the kernel's struct compat_sysinfo): 32-bit fields, 64 bytes.
 * A 32-bit caller's buffer is that large, so the 64-bit layout (112 bytes) must not be
 * written to it. */
struct compat_sysinfo {
  int32_t uptime;
  uint32_t loads[3];
  uint32_t totalram, freeram, sharedram, bufferram, totalswap, freeswap;
  uint16_t procs, pad;
  uint32_t totalhigh, freehigh, mem_unit;
  char f[8];
};
_Static_assert(sizeof(struct compat_sysinfo) == 64, "the i386 struct sysinfo is 64 bytes");

/* As the kernel's compat sysinfo: memory sizes that do not fit 32 bits are counted in
 * larger units (mem_unit doubled up to a page), and the rest is truncated. */
static void to_compat_sysinfo(struct sysinfo s, struct compat_sysinfo *out) {
  if ((uint64_t)s.totalram >> 32 || (uint64_t)s.totalswap >> 32) {
    int bits = 0;
    for (; s.mem_unit < 4096; s.mem_unit <<= 1) bits++;
    s.totalram >>= bits;
    s.freeram >>= bits;
    s.sharedram >>= bits;
    s.bufferram >>= bits;
    s.totalswap >>= bits;
    s.freeswap >>= bits;
    s.totalhigh >>= bits;
    s.freehigh >>= bits;
  }
  *out = (struct compat_sysinfo){
      .uptime = (int32_t)s.uptime,
      .loads = {(uint32_t)s.loads[0], (uint32_t)s.loads[1], (uint32_t)s.loads[2]},
      .totalram = (uint32_t)s.totalram,
      .freeram = (uint32_t)s.freeram,
      .sharedram = (uint32_t)s.sharedram,
      .bufferram = (uint32_t)s.bufferram,
      .totalswap = (uint32_t)s.totalswap,
      .freeswap = (uint32_t)s.freeswap,
      .procs = s.procs,
      .totalhigh = (uint32_t)s.totalhigh,
      .freehigh = (uint32_t)s.freehigh,
      .mem_unit = s.mem_unit};
}

static void serve_sysinfo(int listener, const struct cell *c, const struct seccomp_notif *req,
                          bool compat, struct seccomp_notif_resp *resp) {
  struct sysinfo host, view;
  if (sysinfo(&host) < 0) {
    resp->error = -errno;
    return;
  }
  rc_cell_sysinfo(&host, cached_limits(c->cgroup_path), &view);
  /* the cell's uptime, as its /proc/uptime shows it; the kernel counts a started second */
  if (c->started >= 0) {
    double up = rc_cell_uptime(c->started);
    view.uptime = (long)up + (up > (double)(long)up);
  }
  int r;
  if (compat) {
    struct compat_sysinfo view32;
    to_compat_sysinfo(view, &view32);
    r = write_target(listener, req, (uint32_t)req->data.args[0], &view32, sizeof(view32));
  } else {
    r = write_target(listener, req, req->data.args[0], &view, sizeof(view));
  }
  resp->error = r;
  resp->val = 0;
}

/* The kernel's nr_cpu_ids: the highest possible CPU + 1 (the host's sysfs: the cell
 * kernel runs outside the cell's mounts). */
static unsigned nr_cpu_ids(void) {
  static unsigned n;
  if (n) return n;
  cleanup_free char *possible = NULL;
  struct rc_error ignore;
  unsigned highest = 0;
  if (rc_read_file("/sys/devices/system/cpu/possible", 4096, &possible, NULL, &ignore) == 0)
    for (const char *p = possible; *p;) {
      if (*p < '0' || *p > '9') { /* "-" and "," separate, and strtoul would take "-1" */
        p++;
        continue;
      }
      char *end = NULL;
      unsigned long v = strtoul(p, &end, 10);
      if (v > highest) highest = (unsigned)v;
      p = end;
    }
  n = highest + 1;
  return n;
}

/* The last number of a "Key:\tn1\tn2..." line of a /proc status text (the innermost
 * namespace's), or the first when first; -1 if absent. */
static long status_field(const char *status, const char *key, bool first) {
  size_t k = strlen(key);
  for (const char *line = status; line && *line; line = strchr(line, '\n')) {
    if (*line == '\n') line++;
    if (strncmp(line, key, k) != 0 || line[k] != ':') continue;
    long v = -1;
    for (const char *p = line + k + 1; *p && *p != '\n';) {
      char *end = NULL;
      long n = strtol(p, &end, 10);
      if (end == p) break;
      v = n;
      if (first) break;
      p = end;
    }
    return v;
  }
  return -1;
}

/* The task a sched_getaffinity(pid) of the caller names, in the cell kernel's pid
 * namespace: 0 and the caller's own thread id are the caller, its own process id is its
 * thread group leader; other pids are not the caller's (0). pid is in the caller's
 * namespace, so its ids there come from its status (NSpid, NStgid: the last is its own
 * namespace's); the request's validity, checked after the read, shows that its pid had
 * not been reused. */
static pid_t affinity_target(int listener, const struct seccomp_notif *req, pid_t pid) {
  if (pid == 0) return (pid_t)req->pid;
  if (pid < 0) return 0;
  char path[64];
  snprintf(path, sizeof(path), "/proc/%u/status", req->pid);
  cleanup_free char *status = NULL;
  struct rc_error ignore;
  if (rc_read_file(path, 1 << 16, &status, NULL, &ignore) < 0) return 0;
  __u64 id = req->id;
  if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0) return 0;
  if (status_field(status, "NSpid", false) == pid) return (pid_t)req->pid;
  if (status_field(status, "NStgid", false) == pid)
    return (pid_t)status_field(status, "Tgid", true);
  return 0;
}

/* sched_getaffinity(pid, len, mask) for the caller itself (affinity_target): the CPUs it
 * may run on, cut down to as many as the cell's quota covers. Other pids are the
 * kernel's to answer. The arguments are taken as the kernel takes them: pid and len are
 * 32-bit (an int, an unsigned int), len must cover nr_cpu_ids bits (the product wraps at
 * 32 bits, as the kernel's does) and be a multiple of the caller's long, and
 * min(len, the kernel's cpumask size) bytes are written and returned. */
static void serve_sched_getaffinity(int listener, const struct cell *c,
                                    const struct seccomp_notif *req, bool compat,
                                    struct seccomp_notif_resp *resp) {
  pid_t target = affinity_target(listener, req, (pid_t)req->data.args[0]);
  if (target <= 0) {
    resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    return;
  }
  unsigned int len = (unsigned int)req->data.args[1];
  unsigned int word = compat ? 4 : (unsigned int)sizeof(long);
  if (len * 8u < nr_cpu_ids() || (len & (word - 1))) {
    resp->error = -EINVAL;
    return;
  }
  cpu_set_t *set = CPU_ALLOC(CPU_SETSIZE * 4);
  size_t size = CPU_ALLOC_SIZE(CPU_SETSIZE * 4);
  long got = syscall(SYS_sched_getaffinity, target, size, set);
  if (got < 0) {
    resp->error = -errno;
    CPU_FREE(set);
    return;
  }
  unsigned allowed = (unsigned)CPU_COUNT_S((size_t)got, set);
  unsigned keep = rc_cell_cpu_count(cached_limits(c->cgroup_path), allowed);
  for (size_t cpu = 0, kept = 0; cpu < (size_t)got * 8; cpu++) {
    if (!CPU_ISSET_S(cpu, (size_t)got, set)) continue;
    if (kept >= keep)
      CPU_CLR_S(cpu, (size_t)got, set);
    else
      kept++;
  }
  size_t n = len < (size_t)got ? len : (size_t)got;
  uint64_t addr = compat ? (uint32_t)req->data.args[2] : req->data.args[2];
  int r = write_target(listener, req, addr, set, n);
  CPU_FREE(set);
  resp->error = r;
  resp->val = r == 0 ? (long long)n : 0;
}

/* Whether every process of the listener's filter is gone. */
static bool listener_hung_up(int listener) {
  struct pollfd p = {.fd = listener, .events = POLLIN};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

/* Answers one routed syscall; false when the listener is finished with. */
static bool serve_notification(int listener, const struct cell *c, struct seccomp_notif *req,
                               size_t req_size, struct seccomp_notif_resp *resp, size_t resp_size) {
  memset(req, 0, req_size);
  if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
    if (errno == EINTR) return true;
    /* ENOENT: a caller died while its request waited, or the filter has no process left,
     * after which newer kernels (6.18 here) fail every RECV at once: that must end the
     * loop, or the thread spins on a CPU (the cell's own teardown needs it). */
    return errno == ENOENT && !listener_hung_up(listener);
  }
  memset(resp, 0, resp_size);
  resp->id = req->id;
  /* The gate routes the i386 calls (int 0x80) too: the numbers differ, and so do the
   * layouts written back. */
  bool x86_64 = req->data.arch == AUDIT_ARCH_X86_64, i386 = req->data.arch == AUDIT_ARCH_I386;
  if ((x86_64 && req->data.nr == SYS_sysinfo) || (i386 && req->data.nr == I386_SYSINFO))
    serve_sysinfo(listener, c, req, i386, resp);
  else if ((x86_64 && req->data.nr == SYS_sched_getaffinity) ||
           (i386 && req->data.nr == I386_SCHED_GETAFFINITY))
    serve_sched_getaffinity(listener, c, req, i386, resp);
  else
    resp->error = -ENOSYS; /* a routed syscall this cell kernel does not know */
  return ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp) == 0 || errno == ENOENT;
}

/* The loop: the listener, the views filesystem and the control socket on which the
 * listener arrives. Each source is dropped when it is finished; the cell kernel ends when
 * none is left. */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS /* Linux 6.6; Debian 12's headers are older */
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1
#endif

/* The caller waits for the answer, so the wake-up can be synchronous: the scheduler then
 * runs the cell kernel on the caller's CPU instead of waking it on another one, which on
 * this 2-CPU VM turns a 40-60 us round trip into about 5 us. Best effort: older kernels
 * lack it. */
static void sync_wake_ups(int listener) {
  if (listener >= 0)
    (void)ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
}

/* The listener is served by a thread of its own that blocks in NOTIF_RECV: a routed
 * syscall then costs one wake-up of that thread (on the caller's CPU, see sync_wake_ups),
 * not a poll() wake-up followed by a RECV as well. The main thread keeps the views
 * filesystem and the control socket, and watches the listener only for its hang-up (events
 * 0: a notification's EPOLLIN wake-up does not reach it). */
struct listener_thread {
  int listener;
  struct cell cell;
  int ended;  /* an eventfd the thread signals when it gives the listener up */
  int go[2];  /* a pipe: one byte once the fields above are set */
  bool given; /* start_listener has handed it a listener */
};

static void *serve_listener(void *arg) {
  const struct listener_thread *lt = arg;
  char go;
  ssize_t n;
  while ((n = read(lt->go[0], &go, 1)) < 0 && errno == EINTR) {
  }
  if (n != 1) return NULL; /* no listener will come */
  struct seccomp_notif_sizes sizes;
  if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) return NULL;
  struct seccomp_notif *req = rc_xcalloc(1, sizes.seccomp_notif);
  struct seccomp_notif_resp *resp = rc_xcalloc(1, sizes.seccomp_notif_resp);
  while (serve_notification(lt->listener, &lt->cell, req, sizes.seccomp_notif, resp,
                            sizes.seccomp_notif_resp)) {
  }
  free(req);
  free(resp);
  /* the main thread closes the listener: the kernel then fails the cell's routed syscalls
   * with ENOSYS instead of leaving them waiting for an answer */
  uint64_t one = 1;
  (void)!write(lt->ended, &one, sizeof(one));
  return NULL;
}

/* The listener's thread starts with the cell kernel, before it joins the cell's cgroups:
 * where those count its tasks against the cell's pids limit (cgroup v2), a cell at its
 * limit could keep it from starting one later. It waits until start_listener hands it the
 * listener. Returns 0 or the error number. */
static int listener_thread_new(struct listener_thread **out) {
  struct listener_thread *lt = rc_xcalloc(1, sizeof(*lt)); /* the thread's until the exit */
  lt->listener = -1;
  lt->ended = -1;
  if (pipe2(lt->go, O_CLOEXEC) < 0) {
    int e = errno;
    free(lt);
    return e;
  }
  int e = rc_thread_start_detached(serve_listener, lt);
  if (e != 0) {
    close(lt->go[0]);
    close(lt->go[1]);
    free(lt);
    return e;
  }
  *out = lt;
  return 0;
}

/* Hands the listener to its thread; false if it has one already or the hand-over failed
 * (the caller then closes the listener: the cell's routed syscalls then fail with
 * ENOSYS). */
static bool start_listener(struct listener_thread *lt, int listener, const char *cgroup_path,
                           pid_t init_pid, int ended) {
  if (lt->given) return false;
  sync_wake_ups(listener);
  lt->listener = listener;
  lt->cell = (struct cell){.cgroup_path = cgroup_path, .started = rc_cell_start_time(init_pid)};
  lt->ended = ended;
  lt->given = true;
  char go = 1;
  bool ok = write(lt->go[1], &go, 1) == 1;
  close(lt->go[1]);
  return ok;
}

/* The main loop: the views filesystem, the control socket, the listener's hang-up and the
 * init's exit. Each source is dropped when it is finished; the cell kernel ends (the
 * process, the listener's thread with it) when none is left. A listener whose every
 * process is gone hangs up; its thread sees that and ends (newer kernels wake a blocked
 * RECV then). Where the thread stays blocked in RECV instead, the listener is not closed
 * under it, and the process's exit ends both. */
struct sources {
  int listener, fuse, control, init_pidfd;
  int hints;      /* the views' size-hint thread (rc_views_hint_thread_start), or -1 */
  int views_root; /* held from RC_SYNC_VIEWS until the init has exited */
  bool mounted;   /* the fuse fd has a filesystem (it reports an error until then) */
};

/* A message on the control socket: the views root (the fuse fd is mounted: serve it) or
 * the gate's listener (the last message). Anything else, or the socket's end, closes it;
 * a views filesystem that was never mounted is given up with it. */
static void take_control_message(struct sources *s, struct listener_thread *lt, short revents,
                                 const char *cgroup_path, pid_t init_pid, int ended,
                                 struct rc_views_server **views) {
  int got = -1;
  struct rc_error ignore;
  int t = (revents & POLLIN) ? rc_sync_recv_fd(s->control, "cell kernel", &got, &ignore) : -1;
  if (t == RC_SYNC_VIEWS && got >= 0 && s->fuse >= 0 && !s->mounted) {
    s->mounted = true;
    *views = rc_views_server_new(s->fuse, cgroup_path, init_pid);
    rc_views_server_set_hints(*views, s->hints);
    if (s->init_pidfd >= 0)
      s->views_root = got;
    else
      close(got); /* nothing would say when to let it go */
    return;
  }
  if (t == RC_SYNC_LISTENER && got >= 0 && s->listener < 0 && ended >= 0 &&
      start_listener(lt, got, cgroup_path, init_pid, ended)) {
    s->listener = got;
    got = -1;
  }
  if (got >= 0) close(got);
  close(s->control);
  s->control = -1;
  if (!s->mounted && s->fuse >= 0) {
    close(s->fuse);
    s->fuse = -1;
  }
}

static void serve(struct sources s, struct listener_thread *lt, const char *cgroup_path,
                  pid_t init_pid) {
  int ended = eventfd(0, EFD_CLOEXEC);
  if (s.listener >= 0 &&
      (ended < 0 || !start_listener(lt, s.listener, cgroup_path, init_pid, ended))) {
    close(s.listener);
    s.listener = -1;
  }
  struct rc_views_server *views = NULL;
  while (s.listener >= 0 || s.fuse >= 0 || s.control >= 0) {
    struct pollfd p[5] = {{.fd = s.listener, .events = 0},
                          {.fd = s.mounted ? s.fuse : -1, .events = POLLIN},
                          {.fd = s.control, .events = POLLIN},
                          {.fd = s.listener >= 0 ? ended : -1, .events = POLLIN},
                          {.fd = s.views_root >= 0 ? s.init_pidfd : -1, .events = POLLIN}};
    if (poll(p, 5, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[4].revents) {
      /* The init has exited: let go of the views filesystem. If nothing else of the cell
       * has it mounted any more, it ends here, and the fuse fd then reports so. */
      close(s.views_root);
      s.views_root = -1;
    }
    if (p[3].revents & POLLIN) { /* the thread gave the listener up */
      close(s.listener);
      s.listener = -1;
    } else if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL))
      s.listener = -1; /* every process is gone: its thread may stay in RECV until the exit */
    if (p[1].revents & (POLLIN | POLLERR | POLLHUP)) {
      if (rc_views_server_handle(views) < 0) {
        /* unmounted everywhere: the cell's mount namespace is gone */
        close(s.fuse);
        s.fuse = -1;
      }
    }
    if (p[2].revents & (POLLIN | POLLHUP | POLLERR))
      take_control_message(&s, lt, p[2].revents, cgroup_path, init_pid, ended, &views);
  }
  rc_views_server_free(views);
  if (ended >= 0) close(ended);
  if (s.views_root >= 0) close(s.views_root);
  if (s.init_pidfd >= 0) close(s.init_pidfd);
}

/* The middle process's exit status: 0 once the cell kernel serves its cell; otherwise
 * what failed (CHARGE_FAILED: plus the errno, 0 when unknown). */
enum { FORK_FAILED = 1, THREAD_FAILED, ENDED_EARLY, CHARGE_FAILED = 64 };

/* What the cell kernel reports to the middle process before it serves. */
struct spawn_report {
  int status; /* the middle process's exit status */
};

int rc_cell_kernel_spawn(const struct rc_cell_kernel_fds *fds, const char *cgroup_path,
                         pid_t init_pid, struct rc_error *err) {
  pid_t pid = fork();
  if (pid < 0) return rc_err(err, errno, "start the cell kernel: fork");
  if (pid == 0) {
    /* the runtime's procfs handle is not the cell kernel's (its fd is about to be reused) */
    rc_procfs_release();
    /* The middle process exits once the cell kernel is ready, so the cell kernel is
     * nobody's child here: the runtime need not wait for it, and it outlives `runcell
     * create`. */
    setsid();
    int report[2];
    if (pipe2(report, O_CLOEXEC) < 0) _exit(FORK_FAILED);
    pid_t grandchild = fork();
    if (grandchild < 0) _exit(FORK_FAILED);
    if (grandchild > 0) {
      close(report[1]);
      struct spawn_report r;
      ssize_t n;
      while ((n = read(report[0], &r, sizeof(r))) < 0 && errno == EINTR) {
      }
      _exit(n == (ssize_t)sizeof(r) ? r.status : ENDED_EARLY);
    }
    close(report[0]);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    /* Nothing of the runtime's stays open: not the state directory (its lock), not the
     * container's stdio. What it serves moves to fds 3 to 6, the report to 7 until it is
     * sent. */
    enum { N = 4 };
    int keep[N + 1] = {fds->listener, fds->fuse, fds->control, fds->init_pidfd, report[1]};
    int moved[N + 1];
    for (int i = 0; i <= N; i++) moved[i] = keep[i] >= 0 ? fcntl(keep[i], F_DUPFD_CLOEXEC, 10) : -1;
    for (int i = 0; i <= N; i++)
      if (moved[i] >= 0 && (dup2(moved[i], 3 + i) < 0 || close(moved[i]) < 0)) _exit(1);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
    }
    syscall(SYS_close_range, 3 + N + 1, ~0U, 0);
    int at[N];
    for (int i = 0; i < N; i++) {
      at[i] = moved[i] >= 0 ? 3 + i : -1;
      if (at[i] < 0) close(3 + i);
    }
    prctl(PR_SET_NAME, RC_CELL_KERNEL_NAME);
    /* The CPU it spends answering the cell is the cell's: it joins the cell's cgroups
     * (rc_cgroup_charge_cell_kernel), with every thread it needs already started. A
     * failure is the create's or exec's (the errno in the status), not a limit quietly
     * escaped. */
    struct listener_thread *lt = NULL;
    struct spawn_report r = {0};
    struct rc_error cerr = {0};
    int hints = at[1] >= 0 ? rc_views_hint_thread_start(at[1]) : -1;
    if (listener_thread_new(&lt) != 0)
      r.status = THREAD_FAILED;
    else if (rc_cgroup_charge_cell_kernel(cgroup_path, getpid(), &cerr) < 0)
      r.status = CHARGE_FAILED + (cerr.code > 0 && cerr.code < 255 - CHARGE_FAILED ? cerr.code : 0);
    bool sent = write(3 + N, &r, sizeof(r)) == (ssize_t)sizeof(r);
    close(3 + N);
    if (!sent || r.status != 0) _exit(1);
    struct sources s = {.listener = at[0],
                        .fuse = at[1],
                        .control = at[2],
                        .init_pidfd = at[3],
                        .hints = hints,
                        .views_root = -1,
                        .mounted = false};
    serve(s, lt, cgroup_path, init_pid);
    _exit(0);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code >= CHARGE_FAILED) {
    code -= CHARGE_FAILED;
    rc_err(err, code, "start the cell kernel: join the cell's cgroup %s", cgroup_path);
    err->code = code ? code : EIO;
    return -1;
  }
  switch (code) {
    case 0:
      return 0;
    case THREAD_FAILED:
      return rc_err(err, EAGAIN, "start the cell kernel: its listener thread");
    case ENDED_EARLY:
      return rc_err(err, 0, "start the cell kernel: it ended before it was ready");
    default:
      return rc_err(err, 0, "start the cell kernel: fork failed");
  }
}
