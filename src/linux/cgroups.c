/* cgroup core: finds the host's hierarchies, resolves the container's cgroup path and runs
 * its lifecycle (create, enter, list, kill, freeze, destroy) in every hierarchy. Resource
 * values are written by cgroups_v1.c and cgroups_v2.c; this file picks, per controller,
 * the hierarchy (and so the version) that owns it, because a hybrid host splits
 * controllers between v1 mounts and the v2 one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cgroups_internal.h"
#include "runcell/log.h"
#include "runcell/process_attrs.h"
#include "runcell/util.h"

/* Containers are created in one cgroup per hierarchy; this caps the number of
 * hierarchies we track so per-hierarchy bookkeeping can live on the stack. */
#define MAX_HIERS 32

/* ---------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------- */

bool rc_cg_list_has(const char *list, const char *name) {
  if (!list || !name) return false;
  size_t n = strlen(name);
  const char *p = list;
  while (*p) {
    size_t len = strcspn(p, ", \n");
    if (len == n && strncmp(p, name, n) == 0) return true;
    p += len;
    while (*p == ',' || *p == ' ' || *p == '\n') p++;
  }
  return false;
}

/* Same set of items, whatever the order: /proc/<pid>/cgroup and the mount options need
 * not list co-mounted controllers alike. */
static bool list_same_set(const char *a, const char *b) {
  cleanup_free char *copy = rc_xstrdup(a);
  size_t na = 0, nb = 0;
  for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (!rc_cg_list_has(b, t)) return false;
    na++;
  }
  cleanup_free char *copy_b = rc_xstrdup(b);
  for (char *save = NULL, *t = strtok_r(copy_b, ",", &save); t; t = strtok_r(NULL, ",", &save))
    nb++;
  return na == nb;
}

static void trim_right(char *s) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
}

static void sleep_ms(long ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static char *unescape_octal(const char *s) {
  char *out = rc_xmalloc(strlen(s) + 1), *o = out;
  while (*s) {
    if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
        s[3] <= '7') {
      *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
      s += 4;
    } else {
      *o++ = *s++;
    }
  }
  *o = '\0';
  return out;
}

/* ---------------------------------------------------------------------------------------
 * Control files
 * ------------------------------------------------------------------------------------- */

int rc_cg_write(const struct rc_cg_dir *d, const char *file, const char *value,
                const char *missing_hint, struct rc_error *err) {
  cleanup_close int fd = openat(d->fd, file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return rc_err(err, ENOENT, "cgroup %s: set %s \"%s\": %s", d->path, file, value,
                    missing_hint ? missing_hint
                                 : "the host does not provide this file (kernel or controller "
                                   "support missing)");
    return rc_err(err, errno, "cgroup %s: open %s", d->path, file);
  }
  /* cgroup files take a value per write() call, so never split it. */
  size_t len = strlen(value);
  ssize_t n;
  do {
    n = write(fd, value, len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return rc_err(err, errno, "cgroup %s: write %s \"%s\"", d->path, file, value);
  if ((size_t)n != len)
    return rc_err(err, EIO, "cgroup %s: write %s \"%s\": short write", d->path, file, value);
  return 0;
}

int rc_cg_read(const struct rc_cg_dir *d, const char *file, char **out, struct rc_error *err) {
  struct rc_error inner;
  if (rc_read_file_at(d->fd, file, 1 << 20, out, NULL, &inner) < 0)
    return rc_err(err, inner.code, "cgroup %s: read %s", d->path, file);
  trim_right(*out);
  return 0;
}

bool rc_cg_has_file(const struct rc_cg_dir *d, const char *file) {
  return faccessat(d->fd, file, F_OK, 0) == 0;
}

static bool content_matches(const char *content, const char *want) {
  if (strcmp(content, want) == 0) return true;
  size_t n = strlen(want);
  for (const char *line = content; line && *line;) {
    const char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    if (len == n && strncmp(line, want, n) == 0) return true;
    line = nl ? nl + 1 : NULL;
  }
  return false;
}

int rc_cg_wait_for(const struct rc_cg_dir *d, const char *file, const char *want, int timeout_ms,
                   struct rc_error *err) {
  long long deadline = rc_now_ms() + timeout_ms;
  long delay = 1;
  for (;;) {
    cleanup_free char *content = NULL;
    if (rc_cg_read(d, file, &content, err) < 0) return -1;
    if (content_matches(content, want)) return 0;
    if (rc_now_ms() >= deadline)
      return rc_err(err, ETIMEDOUT,
                    "cgroup %s: %s did not reach \"%s\" within %d ms (reads \"%s\")", d->path, file,
                    want, timeout_ms, content);
    sleep_ms(delay);
    if (delay < 50) delay *= 2;
  }
}

/* ---------------------------------------------------------------------------------------
 * Hierarchy discovery
 * ------------------------------------------------------------------------------------- */

/* Super options of a v1 mount that are not controllers. Only used when /proc/cgroups,
 * the authoritative list of controllers, cannot be read. */
static bool is_mount_option(const char *opt) {
  static const char *const opts[] = {"rw",
                                     "ro",
                                     "noprefix",
                                     "clone_children",
                                     "xattr",
                                     "none",
                                     "cpuset_v2_mode",
                                     "favordynmods",
                                     "nsdelegate",
                                     "memory_recursiveprot",
                                     "memory_localevents"};
  for (size_t i = 0; i < RC_ARRAY_SIZE(opts); i++)
    if (strcmp(opt, opts[i]) == 0) return true;
  return strncmp(opt, "release_agent=", 14) == 0;
}

/* The controllers this kernel has, as a comma-separated list (NULL if unknown). */
static char *kernel_controllers(void) {
  cleanup_fclose FILE *f = fopen("/proc/cgroups", "re");
  if (!f) return NULL;
  char line[256];
  size_t cap = 256, used = 0;
  char *list = rc_xcalloc(1, cap);
  while (fgets(line, sizeof(line), f)) {
    if (line[0] == '#') continue;
    size_t len = strcspn(line, " \t\n");
    if (len == 0) continue;
    if (used + len + 2 > cap) {
      cap = (used + len + 2) * 2;
      list = rc_xrealloc(list, cap);
    }
    if (used) list[used++] = ',';
    memcpy(list + used, line, len);
    used += len;
    list[used] = '\0';
  }
  return list;
}

/* Picks the controllers (and name=...) out of a v1 mount's super options. */
static char *v1_controllers(const char *super_opts, const char *known) {
  cleanup_free char *copy = rc_xstrdup(super_opts);
  size_t cap = strlen(super_opts) + 1, used = 0;
  char *out = rc_xcalloc(1, cap);
  for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    bool ctrl = strncmp(t, "name=", 5) == 0 ||
                (known ? rc_cg_list_has(known, t) : !is_mount_option(t) && !strchr(t, '='));
    if (!ctrl) continue;
    if (used) out[used++] = ',';
    size_t len = strlen(t);
    memcpy(out + used, t, len);
    used += len;
    out[used] = '\0';
  }
  return out;
}

static void add_hier(struct rc_cg_layout *l, char *mount, char *root, char *controllers, bool v2) {
  if (l->n >= MAX_HIERS) {
    free(mount);
    free(root);
    free(controllers);
    return;
  }
  l->hiers = rc_xrealloc(l->hiers, (l->n + 1) * sizeof(*l->hiers));
  l->hiers[l->n++] =
      (struct rc_cg_hier){.mount = mount, .root = root, .controllers = controllers, .v2 = v2};
}

void rc_cg_layout_free(struct rc_cg_layout *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->hiers[i].mount);
    free(l->hiers[i].root);
    free(l->hiers[i].controllers);
  }
  free(l->hiers);
  *l = (struct rc_cg_layout){0};
}

static bool is_name_only(const char *ctrls) {
  for (const char *p = ctrls; *p;) {
    size_t len = strcspn(p, ",");
    if (strncmp(p, "name=", 5) != 0) return false;
    p += len;
    if (*p) p++;
  }
  return true;
}

void rc_cg_parse_mountinfo(FILE *f, const char *known, struct rc_cg_layout *l) {
  *l = (struct rc_cg_layout){0};
  cleanup_free char *line = NULL;
  size_t cap = 0;
  char *v2_mount = NULL, *v2_root = NULL;
  bool have_v1_controller = false;
  /* What is mounted at /sys/fs/cgroup last (what a lookup there reaches) tells unified
   * hosts apart; the other mounts come in any order. */
  bool std_is_v2 = false;
  while (getline(&line, &cap, f) > 0) {
    trim_right(line);
    /* id parent major:minor root mountpoint options [optional...] - fstype source super */
    char *fields[64];
    size_t nf = 0;
    for (char *save = NULL, *t = strtok_r(line, " ", &save); t && nf < RC_ARRAY_SIZE(fields);
         t = strtok_r(NULL, " ", &save))
      fields[nf++] = t;
    size_t dash = 6;
    while (dash < nf && strcmp(fields[dash], "-") != 0) dash++;
    if (dash + 3 >= nf) continue;
    const char *fstype = fields[dash + 1];
    const char *super = fields[dash + 3];
    cleanup_free char *mount = unescape_octal(fields[4]);
    bool at_std = strcmp(mount, "/sys/fs/cgroup") == 0;
    if (at_std) std_is_v2 = strcmp(fstype, "cgroup2") == 0;
    if (strcmp(fstype, "cgroup2") == 0) {
      /* One v2 hierarchy exists; of several mounts, prefer the standard place. */
      if (v2_mount && !at_std) continue;
      free(v2_mount);
      free(v2_root);
      v2_mount = rc_xstrdup(mount);
      v2_root = unescape_octal(fields[3]);
      continue;
    }
    if (strcmp(fstype, "cgroup") != 0) continue;
    char *ctrls = v1_controllers(super, known);
    bool dup = ctrls[0] == '\0';
    for (size_t i = 0; i < l->n && !dup; i++)
      if (list_same_set(l->hiers[i].controllers, ctrls)) dup = true;
    if (dup) { /* the same hierarchy mounted twice: the first mount serves */
      free(ctrls);
      continue;
    }
    /* A hierarchy with only a name= binds no controller: it does not make a host v1. */
    if (!is_name_only(ctrls)) have_v1_controller = true;
    add_hier(l, rc_xstrdup(mount), unescape_octal(fields[3]), ctrls, false);
  }

  bool unified = std_is_v2 || (v2_mount && !have_v1_controller);
  if (unified) {
    /* v1 mounts beside a unified /sys/fs/cgroup (say net_cls for a VPN) are not ours. */
    rc_cg_layout_free(l);
    l->mode = RC_CGROUP_UNIFIED;
  } else {
    l->mode = v2_mount ? RC_CGROUP_HYBRID : RC_CGROUP_LEGACY;
  }
  if (v2_mount) add_hier(l, v2_mount, v2_root, rc_xstrdup(""), true);
}

static void discover(struct rc_cg_layout *l) {
  cleanup_free char *known = kernel_controllers();
  cleanup_fclose FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) {
    *l = (struct rc_cg_layout){.mode = RC_CGROUP_LEGACY};
    return;
  }
  rc_cg_parse_mountinfo(f, known, l);
  for (size_t i = 0; i < l->n; i++) {
    struct rc_cg_hier *h = &l->hiers[i];
    if (!h->v2) continue;
    /* On v2 the controllers are those its root offers (on hybrid hosts, the ones no v1
     * hierarchy took). */
    cleanup_free char *file = rc_xasprintf("%s/cgroup.controllers", h->mount);
    char *ctrls = NULL;
    struct rc_error ignore;
    if (rc_read_file(file, 4096, &ctrls, NULL, &ignore) < 0) continue;
    trim_right(ctrls);
    free(h->controllers);
    h->controllers = ctrls;
  }
}

const struct rc_cg_layout *rc_cg_layout(void) {
  /* The runtime is single-threaded and the layout cannot change under a running host in
   * any way we could handle, so discover once. */
  static struct rc_cg_layout layout;
  static bool done;
  if (!done) {
    discover(&layout);
    done = true;
  }
  return &layout;
}

enum rc_cgroup_mode rc_cgroup_mode(void) {
  return rc_cg_layout()->mode;
}

const char *rc_cgroup_mode_name(enum rc_cgroup_mode m) {
  switch (m) {
    case RC_CGROUP_LEGACY:
      return "legacy";
    case RC_CGROUP_HYBRID:
      return "hybrid";
    case RC_CGROUP_UNIFIED:
      return "unified";
  }
  return "unknown";
}

const struct rc_cg_hier *rc_cg_find(const struct rc_cg_layout *l, const char *controller) {
  for (size_t i = 0; i < l->n; i++)
    if (!l->hiers[i].v2 && rc_cg_list_has(l->hiers[i].controllers, controller)) return &l->hiers[i];
  for (size_t i = 0; i < l->n; i++)
    if (l->hiers[i].v2 && rc_cg_list_has(l->hiers[i].controllers, controller)) return &l->hiers[i];
  return NULL;
}

const struct rc_cg_hier *rc_cg_v2_hier(const struct rc_cg_layout *l) {
  for (size_t i = 0; i < l->n; i++)
    if (l->hiers[i].v2) return &l->hiers[i];
  return NULL;
}

/* The directory of cgroup path in hierarchy h. */
char *rc_cg_hier_dir(const struct rc_cg_hier *h, const char *path) {
  return rc_xasprintf("%s%s", h->mount, strcmp(path, "/") == 0 ? "" : path);
}

/* The cgroup pid is in on hierarchy h (relative to what the mount shows), from
 * /proc/<pid>/cgroup; pid 0 means ourselves. */
static int cgroup_of(pid_t pid, const struct rc_cg_hier *h, char **out, struct rc_error *err) {
  char file[64];
  if (pid)
    snprintf(file, sizeof(file), "/proc/%d/cgroup", (int)pid);
  else
    snprintf(file, sizeof(file), "/proc/self/cgroup");
  cleanup_fclose FILE *f = fopen(file, "re");
  if (!f) return rc_err(err, errno, "open %s", file);
  cleanup_free char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    trim_right(line);
    /* hierarchy-id:controllers:path; the path may itself contain ':' */
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c1 = '\0';
    *c2 = '\0';
    const char *ctrls = c1 + 1, *p = c2 + 1;
    bool match = h->v2 ? (strcmp(line, "0") == 0 && ctrls[0] == '\0')
                       : (ctrls[0] != '\0' && list_same_set(ctrls, h->controllers));
    if (!match) continue;
    /* A bind-mounted subtree shows the hierarchy from its root down. */
    size_t rl = strlen(h->root);
    if (strcmp(h->root, "/") != 0 && strncmp(p, h->root, rl) == 0 &&
        (p[rl] == '/' || p[rl] == '\0'))
      p += rl;
    *out = rc_xstrdup(*p ? p : "/");
    return 0;
  }
  return rc_err(err, ENOENT, "%s: no line for the cgroup hierarchy at %s", file, h->mount);
}

/* ---------------------------------------------------------------------------------------
 * Path resolution
 * ------------------------------------------------------------------------------------- */

/* runc's rule for the systemd driver's "slice:prefix:name". */
bool rc_cgroup_is_systemd_format(const char *p) {
  if (!p || p[0] == '/') return false;
  size_t colons = 0;
  for (const char *c = p; *c; c++)
    if (*c == ':') colons++;
  return colons == 2;
}

static bool has_dotdot(const char *p) {
  for (const char *c = p; *c;) {
    size_t len = strcspn(c, "/");
    if (len == 2 && c[0] == '.' && c[1] == '.') return true;
    c += len;
    while (*c == '/') c++;
  }
  return false;
}

/* Joins base and rel into "/a/b" form: single slashes, no "." parts, no trailing '/'. */
static char *normalize(const char *base, const char *rel) {
  cleanup_free char *joined = rc_xasprintf("%s/%s", base ? base : "", rel);
  char *out = rc_xmalloc(strlen(joined) + 2), *o = out;
  for (const char *c = joined; *c;) {
    while (*c == '/') c++;
    size_t len = strcspn(c, "/");
    if (len == 0) break;
    if (!(len == 1 && c[0] == '.')) {
      *o++ = '/';
      memcpy(o, c, len);
      o += len;
    }
    c += len;
  }
  if (o == out) *o++ = '/';
  *o = '\0';
  return out;
}

/* Checks a path given to the lifecycle calls (normally one rc_cgroup_resolve_path made,
 * but it comes back from state.json) and gives it in canonical form. The failures return
 * -1 themselves, not rc_err's result: the static analyzer cannot see that rc_err always
 * returns -1, and callers use *out whenever this does not return <0. */
int rc_cg_canonical(const char *path, char **out, struct rc_error *err) {
  *out = NULL;
  if (!path || path[0] != '/' || has_dotdot(path)) {
    rc_err(err, EINVAL, "cgroup \"%s\": not an absolute cgroup path without \"..\"",
           path ? path : "");
    return -1;
  }
  char *p = normalize(NULL, path);
  if (strcmp(p, "/") == 0) {
    free(p);
    rc_err(err, EINVAL, "cgroup \"%s\": the root cgroup cannot be a container's", path);
    return -1;
  }
  *out = p;
  return 0;
}

/* The runtime's own cgroup, the base of relative cgroupsPaths. On v1 each hierarchy has
 * its own, so take the one of the hierarchy that matters most for limits. */
static int own_cgroup(char **out, struct rc_error *err) {
  const struct rc_cg_layout *l = rc_cg_layout();
  const struct rc_cg_hier *h = NULL;
  if (l->mode == RC_CGROUP_UNIFIED) {
    h = rc_cg_v2_hier(l);
  } else {
    for (size_t i = 0; i < l->n && !h; i++)
      if (!l->hiers[i].v2 && rc_cg_list_has(l->hiers[i].controllers, "memory")) h = &l->hiers[i];
    for (size_t i = 0; i < l->n && !h; i++)
      if (!l->hiers[i].v2 && rc_cg_list_has(l->hiers[i].controllers, "pids")) h = &l->hiers[i];
    for (size_t i = 0; i < l->n && !h; i++) h = &l->hiers[i];
  }
  if (!h) return rc_err(err, ENOENT, "cgroup: no cgroup hierarchy is mounted");
  return cgroup_of(0, h, out, err);
}

int rc_cgroup_resolve_path(const char *cgroups_path, const char *id, char **out,
                           struct rc_error *err) {
  *out = NULL;
  if (!cgroups_path || !*cgroups_path) {
    if (!id || !*id || strchr(id, '/') || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
      return rc_err(err, EINVAL, "cgroup: container id \"%s\" cannot name a cgroup", id ? id : "");
    *out = rc_xasprintf("/runcell/%s", id);
    return 0;
  }
  if (rc_cgroup_is_systemd_format(cgroups_path))
    return rc_err(err, 0,
                  "cgroupsPath \"%s\" is in systemd format (slice:prefix:name) but the cgroupfs "
                  "driver is in use: give --systemd-cgroup (containerd: SystemdCgroup = true in "
                  "the runtime's options) or a cgroup path such as /runcell/<id>",
                  cgroups_path);
  if (has_dotdot(cgroups_path))
    return rc_err(err, EINVAL, "cgroupsPath \"%s\": \"..\" components are not allowed",
                  cgroups_path);
  cleanup_free char *base = NULL;
  if (cgroups_path[0] != '/' && own_cgroup(&base, err) < 0)
    return rc_err_wrap(err, "cgroupsPath \"%s\" is relative to the runtime's cgroup", cgroups_path);
  char *p = normalize(base, cgroups_path);
  if (strcmp(p, "/") == 0) {
    free(p);
    return rc_err(err, EINVAL, "cgroupsPath \"%s\" names the root cgroup", cgroups_path);
  }
  *out = p;
  return 0;
}

/* ---------------------------------------------------------------------------------------
 * Resources
 * ------------------------------------------------------------------------------------- */

bool rc_cg_memory_is_set(const struct oci_resources *r) {
  const struct oci_memory *m = &r->memory;
  /* 0 means unset for the byte values, as in runc. */
  /* kernel and kernelTCP are not here: they are ignored (see apply_resources). */
  return r->has_memory &&
         ((m->has_limit && m->limit) || (m->has_reservation && m->reservation) ||
          (m->has_swap && m->swap) || m->has_swappiness ||
          (m->has_disable_oom_killer && m->disable_oom_killer) || m->has_use_hierarchy);
}

bool rc_cg_cpu_is_set(const struct oci_resources *r) {
  const struct oci_cpu *c = &r->cpu;
  /* 0 means unset for all but burst and idle, as in runc. */
  return r->has_cpu &&
         ((c->has_shares && c->shares) || (c->has_quota && c->quota) ||
          (c->has_period && c->period) || (c->has_realtime_runtime && c->realtime_runtime) ||
          (c->has_realtime_period && c->realtime_period) || c->has_burst || c->has_idle);
}

bool rc_cg_cpuset_is_set(const struct oci_resources *r) {
  return r->has_cpu && ((r->cpu.cpus && *r->cpu.cpus) || (r->cpu.mems && *r->cpu.mems));
}

bool rc_cg_blkio_is_set(const struct oci_resources *r) {
  const struct oci_blkio *b = &r->blkio;
  return r->has_blkio &&
         (b->has_weight || b->has_leaf_weight || b->n_weight_device || b->n_throttle_read_bps ||
          b->n_throttle_write_bps || b->n_throttle_read_iops || b->n_throttle_write_iops);
}

static int open_dir(const struct rc_cg_hier *h, const char *path, struct rc_cg_dir *d,
                    struct rc_error *err) {
  cleanup_free char *dir = rc_cg_hier_dir(h, path);
  d->path = path;
  d->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d->fd < 0) return rc_err(err, errno, "cgroup %s: open %s", path, dir);
  return 0;
}

/* Opens the container's directory in the hierarchy owning controller; what names the
 * resource for the error when the host has no such controller. */
static int ctrl_dir(const char *path, const char *controller, const char *what, struct rc_cg_dir *d,
                    bool *v2, struct rc_error *err) {
  const struct rc_cg_hier *h = rc_cg_find(rc_cg_layout(), controller);
  if (!h)
    return rc_err(err, ENOTSUP,
                  "cgroup %s: %s is set but the host has no %s controller (not mounted or not "
                  "available)",
                  path, what, controller);
  *v2 = h->v2;
  return open_dir(h, path, d, err);
}

/* net_cls and net_prio exist only in v1, and a cgroup v2 host (most Kubernetes nodes) has
 * neither: as runc does, a setting for one is then left out (true), with a warning. Where
 * v1 is in use a missing controller stays an error (ctrl_dir's), as it is for runc. */
static bool v1_only_left_out(const struct rc_cg_layout *l, const char *path, const char *controller,
                             const char *what) {
  if (l->mode != RC_CGROUP_UNIFIED || rc_cg_find(l, controller)) return false;
  rc_warn("cgroup %s: %s is ignored: the host has no %s controller (cgroup v2 has none)", path,
          what, controller);
  return true;
}

static void close_dir(struct rc_cg_dir *d) {
  if (d->fd >= 0) close(d->fd);
  d->fd = -1;
}

/* rdma.max has the same "device key=value ..." lines on v1 and v2. */
static int apply_rdma(const struct rc_cg_dir *d, const struct oci_key_value *kv, size_t n,
                      struct rc_error *err) {
  for (size_t i = 0; i < n; i++) {
    if (!kv[i].key || !*kv[i].key || strpbrk(kv[i].key, " \n"))
      return rc_err(err, EINVAL, "cgroup %s: rdma device name \"%s\" is not valid", d->path,
                    kv[i].key ? kv[i].key : "");
    cleanup_free char *line = rc_xasprintf("%s %s", kv[i].key, kv[i].value ? kv[i].value : "");
    if (rc_cg_write(d, "rdma.max", line, "the host has no rdma controller", err) < 0) return -1;
  }
  return 0;
}

/* The device rules, wherever the host enforces them: the v1 devices controller where one
 * is mounted (hybrid hosts included, as runc), else an eBPF program on the v2 cgroup. */
static int apply_devices(const char *path, const struct oci_device_cgroup *rules, size_t n,
                         struct rc_error *err) {
  const struct rc_cg_layout *l = rc_cg_layout();
  const struct rc_cg_hier *h = rc_cg_find(l, "devices");
  if (!h || h->v2) h = rc_cg_v2_hier(l);
  if (!h)
    return rc_err(err, ENOTSUP,
                  "cgroup %s: the host has no devices controller (not mounted) and no cgroup v2 "
                  "hierarchy for an eBPF device filter, so device rules cannot be enforced",
                  path);
  struct rc_cg_dir d;
  if (open_dir(h, path, &d, err) < 0) return -1;
  int r = h->v2 ? rc_cg_v2_devices(&d, rules, n, err) : rc_cg_v1_devices(&d, rules, n, err);
  close_dir(&d);
  return r;
}

/* linux.resources.unified on a hybrid host: the v2 hierarchy holds the container too, but
 * only the controllers no v1 hierarchy took (and the core cgroup.* files). A key for a
 * controller on v1 would have no file there; say why instead. (runc 1.1 refuses unified
 * on any host that is not pure v2.) */
static int check_unified_keys(const char *path, const struct rc_cg_hier *v2,
                              const struct oci_key_value *kv, size_t n, struct rc_error *err) {
  for (size_t i = 0; i < n; i++) {
    const char *key = kv[i].key ? kv[i].key : "";
    size_t len = strcspn(key, ".");
    /* Not a controller file name: the writer says what is wrong with it. */
    if (len == 0 || key[len] != '.' || strchr(key, '/')) continue;
    cleanup_free char *ctrl = rc_xasprintf("%.*s", (int)len, key);
    if (strcmp(ctrl, "cgroup") == 0 || rc_cg_list_has(v2->controllers, ctrl)) continue;
    const struct rc_cg_hier *v1 = rc_cg_find(rc_cg_layout(), ctrl);
    if (v1 && !v1->v2)
      return rc_err(err, ENOTSUP,
                    "cgroup %s: linux.resources.unified \"%s\": the %s controller is on cgroup "
                    "v1 (%s) on this hybrid host; unified keys can set only the controllers of "
                    "the v2 hierarchy (%s)",
                    path, key, ctrl, v1->mount, *v2->controllers ? v2->controllers : "none");
    return rc_err(err, ENOTSUP,
                  "cgroup %s: linux.resources.unified \"%s\": the v2 hierarchy of this hybrid "
                  "host has no %s controller (it has: %s)",
                  path, key, ctrl, *v2->controllers ? v2->controllers : "none");
  }
  return 0;
}

/* creating: the container's first application, when the device rules always go in (the
 * defaults at least, as runc); an update leaves them alone unless it names some. */
static int apply_resources(const char *path, const struct oci_resources *r, bool creating,
                           struct rc_error *err) {
  static const struct oci_resources none;
  if (!r && !creating) return 0;
  if (!r) r = &none;
  const struct rc_cg_layout *l = rc_cg_layout();
  struct rc_cg_dir d = {.fd = -1};
  bool v2 = false;
  int ret = -1;

  /* cpuset first: the other controllers do not depend on it, but a container whose
   * cpus cannot be set should fail before anything else changes. */
  if (rc_cg_cpuset_is_set(r)) {
    if (ctrl_dir(path, "cpuset", "linux.resources.cpu.cpus/mems", &d, &v2, err) < 0) goto out;
    if ((v2 ? rc_cg_v2_cpuset : rc_cg_v1_cpuset)(&d, &r->cpu, err) < 0) goto out;
    close_dir(&d);
  }
  if (r->has_memory && (r->memory.has_kernel || r->memory.has_kernel_tcp))
    /* Deprecated by the spec; kernels since 5.16 no longer enforce kernel memory limits
     * apart (and v2 never had them): runc's warning, word for word. */
    rc_warn("Kernel memory settings are ignored and will be removed");
  if (rc_cg_memory_is_set(r)) {
    if (ctrl_dir(path, "memory", "linux.resources.memory", &d, &v2, err) < 0) goto out;
    if ((v2 ? rc_cg_v2_memory : rc_cg_v1_memory)(&d, &r->memory, err) < 0) goto out;
    close_dir(&d);
  }
  if (rc_cg_cpu_is_set(r)) {
    if (ctrl_dir(path, "cpu", "linux.resources.cpu", &d, &v2, err) < 0) goto out;
    if ((v2 ? rc_cg_v2_cpu : rc_cg_v1_cpu)(&d, &r->cpu, err) < 0) goto out;
    close_dir(&d);
  }
  if (r->has_pids_limit) {
    if (ctrl_dir(path, "pids", "linux.resources.pids", &d, &v2, err) < 0) goto out;
    if ((v2 ? rc_cg_v2_pids : rc_cg_v1_pids)(&d, r->pids_limit, err) < 0) goto out;
    close_dir(&d);
  }
  if ((creating || r->n_devices) && apply_devices(path, r->devices, r->n_devices, err) < 0)
    goto out;
  if (rc_cg_blkio_is_set(r)) {
    const char *ctrl = rc_cg_find(l, "blkio") ? "blkio" : "io";
    if (ctrl_dir(path, ctrl, "linux.resources.blockIO", &d, &v2, err) < 0) goto out;
    if ((v2 ? rc_cg_v2_io : rc_cg_v1_blkio)(&d, &r->blkio, err) < 0) goto out;
    close_dir(&d);
  }
  if (r->n_hugepage_limits) {
    if (ctrl_dir(path, "hugetlb", "linux.resources.hugepageLimits", &d, &v2, err) < 0) goto out;
    if ((v2 ? rc_cg_v2_hugetlb : rc_cg_v1_hugetlb)(&d, r->hugepage_limits, r->n_hugepage_limits,
                                                   err) < 0)
      goto out;
    close_dir(&d);
  }
  if (r->has_network && r->has_class_id &&
      !v1_only_left_out(l, path, "net_cls", "linux.resources.network.classID")) {
    if (ctrl_dir(path, "net_cls", "linux.resources.network.classID", &d, &v2, err) < 0) goto out;
    if (rc_cg_v1_net_cls(&d, r->class_id, err) < 0) goto out;
    close_dir(&d);
  }
  if (r->has_network && r->n_net_priorities &&
      !v1_only_left_out(l, path, "net_prio", "linux.resources.network.priorities")) {
    if (ctrl_dir(path, "net_prio", "linux.resources.network.priorities", &d, &v2, err) < 0)
      goto out;
    if (rc_cg_v1_net_prio(&d, r->net_priorities, r->n_net_priorities, err) < 0) goto out;
    close_dir(&d);
  }
  if (r->n_rdma) {
    if (ctrl_dir(path, "rdma", "linux.resources.rdma", &d, &v2, err) < 0) goto out;
    if (apply_rdma(&d, r->rdma, r->n_rdma, err) < 0) goto out;
    close_dir(&d);
  }
  /* unified last, so that its raw values override the converted ones, as in runc. */
  if (r->n_unified) {
    const struct rc_cg_hier *h = rc_cg_v2_hier(l);
    if (!h) {
      rc_err(err, ENOTSUP,
             "cgroup %s: linux.resources.unified needs cgroup v2, but the host is %s (invalid "
             "configuration: cannot use unified on cgroup v1)",
             path, rc_cgroup_mode_name(l->mode));
      goto out;
    }
    if (l->mode != RC_CGROUP_UNIFIED &&
        check_unified_keys(path, h, r->unified, r->n_unified, err) < 0)
      goto out;
    if (open_dir(h, path, &d, err) < 0) goto out;
    if (rc_cg_v2_unified(&d, r->unified, r->n_unified, err) < 0) goto out;
    close_dir(&d);
  }
  ret = 0;
out:
  close_dir(&d);
  return ret;
}

int rc_cgroup_apply(const char *path, const struct oci_resources *resources, struct rc_error *err) {
  cleanup_free char *p = NULL;
  if (rc_cg_canonical(path, &p, err) < 0) return -1;
  return apply_resources(p, resources, false, err);
}

/* ---------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------- */

/* Calls fn for every level of path in hierarchy h, from the hierarchy root (level 0,
 * the mount itself) down to the leaf, with the directory of that level. */
static int for_each_level(const struct rc_cg_hier *h, const char *path,
                          int (*fn)(const char *dir, size_t level, bool leaf, void *ctx),
                          void *ctx) {
  cleanup_free char *full = rc_cg_hier_dir(h, path);
  size_t mlen = strlen(h->mount);
  size_t level = 0;
  for (char *p = full + mlen;; p++) {
    if (*p == '/' || *p == '\0') {
      char saved = *p;
      *p = '\0';
      int r = fn(full, level++, saved == '\0', ctx);
      *p = saved;
      if (r < 0) return r;
      if (saved == '\0') break;
    }
  }
  return 0;
}

struct mkdir_ctx {
  char *first_made; /* the highest directory this call created, NULL if none */
  struct rc_error *err;
  const char *path;
};

static int mkdir_level(const char *dir, size_t level, bool leaf, void *ctx) {
  (void)leaf;
  struct mkdir_ctx *c = ctx;
  if (level == 0) return 0;
  if (mkdir(dir, 0755) == 0) {
    if (!c->first_made) c->first_made = rc_xstrdup(dir);
    return 0;
  }
  if (errno == EEXIST) return 0;
  return rc_err(c->err, errno, "cgroup %s: mkdir %s", c->path, dir);
}

/* Removes the directories from leaf up to first_made, deepest first. */
static void remove_made(const struct rc_cg_hier *h, const char *path, const char *first_made) {
  if (!first_made) return;
  cleanup_free char *dir = rc_cg_hier_dir(h, path);
  size_t stop = strlen(first_made);
  for (;;) {
    rmdir(dir);
    if (strlen(dir) <= stop) break;
    char *slash = strrchr(dir, '/');
    if (!slash) break;
    *slash = '\0';
  }
}

struct level_ctx {
  char *parent; /* directory of the previous level */
  const char *path;
  struct rc_error *err;
};

static int cpuset_level(const char *dir, size_t level, bool leaf, void *ctx) {
  (void)leaf;
  struct level_ctx *c = ctx;
  int ret = 0;
  if (level > 0) {
    struct rc_cg_dir parent = {.fd = open(c->parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC),
                               .path = c->path};
    struct rc_cg_dir child = {.fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), .path = c->path};
    if (parent.fd < 0 || child.fd < 0)
      ret = rc_err(c->err, errno, "cgroup %s: open %s", c->path, parent.fd < 0 ? c->parent : dir);
    else
      ret = rc_cg_v1_cpuset_inherit(&parent, &child, c->err);
    close_dir(&parent);
    close_dir(&child);
  }
  free(c->parent);
  c->parent = rc_xstrdup(dir);
  return ret;
}

static int enable_level(const char *dir, size_t level, bool leaf, void *ctx) {
  (void)level;
  (void)ctx;
  /* The leaf holds the processes; v2 lets a cgroup have processes or enabled children
   * controllers, not both, so only its ancestors delegate. */
  if (leaf) return 0;
  struct rc_cg_dir d = {.fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), .path = dir};
  if (d.fd < 0) return 0; /* a missing level shows later as a missing file, with context */
  rc_cg_v2_enable_controllers(&d);
  close_dir(&d);
  return 0;
}

/* A cgroup v2 path through a threaded subtree (a level that is "domain threaded" or
 * "threaded", made so by someone else: a threaded child turns its parent into a thread
 * root) ends in "domain invalid" cgroups, in which no process can be placed: the kernel
 * answers the join with a bare EOPNOTSUPP. runc's rule (libcontainer/cgroups/fs2
 * CreateCgroupPath), which runcell follows so that such a config runs under both or under
 * neither: a config that sets a domain controller's limits is refused, saying why, before
 * anything is enabled or changed; otherwise every "domain invalid" level is made threaded
 * and the container runs there. runc's domain controllers are memory, io, hugetlb and cpu
 * (although the kernel's cpu controller is threaded). Found by the cgroup v2 lane
 * (tests/lanes/cgroupv2/cgroupv2.sh): runc ran a pids-only container there, runcell failed
 * with "write cgroup.procs: Operation not supported" and left the parent's
 * cgroup.subtree_control changed. */
struct threaded_ctx {
  const char *path;
  const char *domain; /* a domain controller the config sets limits for, or NULL */
  struct rc_error *err;
};

/* The domain controller on v2 hierarchy h that r sets limits for, if any. */
static const char *v2_domain_controller_set(const struct rc_cg_layout *l,
                                            const struct rc_cg_hier *h,
                                            const struct oci_resources *r) {
  if (!r) return NULL;
  if (rc_cg_memory_is_set(r) && rc_cg_find(l, "memory") == h) return "memory";
  if (rc_cg_blkio_is_set(r) && !rc_cg_find(l, "blkio") && rc_cg_find(l, "io") == h) return "io";
  if (rc_cg_cpu_is_set(r) && rc_cg_find(l, "cpu") == h) return "cpu";
  if (r->n_hugepage_limits && rc_cg_find(l, "hugetlb") == h) return "hugetlb";
  return NULL;
}

static int threaded_level(const char *dir, size_t level, bool leaf, void *ctx) {
  (void)leaf;
  struct threaded_ctx *c = ctx;
  if (level == 0) return 0; /* the hierarchy's root is a domain, whatever is below it */
  struct rc_cg_dir d = {.fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), .path = c->path};
  if (d.fd < 0) return 0; /* a missing level shows later, with context */
  static const char *const names[] = {"domain", "domain invalid", "domain threaded", "threaded"};
  enum rc_cg_v2_type type;
  int r = 0;
  if (rc_cg_v2_type(&d, &type) == 0 && type != RC_CG_V2_DOMAIN) {
    if (c->domain)
      r = rc_err(c->err, EOPNOTSUPP,
                 "cgroup %s: %s is \"%s\", part of a threaded subtree, where the config's %s "
                 "limits cannot apply: only pids and cpuset limits may be set there (runc's rule: "
                 "it refuses this config too)",
                 c->path, dir, names[type], c->domain);
    else if (type == RC_CG_V2_DOMAIN_INVALID)
      r = rc_cg_v2_join_threaded(&d, c->err);
  }
  close_dir(&d);
  return r;
}

/* v2's refusal to put a process beside children that have controllers enabled says only
 * EBUSY: say what it means. */
static void explain_v2_busy(struct rc_error *err) {
  if (err->code != EBUSY) return;
  char msg[RC_ERROR_MAX];
  snprintf(msg, sizeof(msg), "%s", err->msg);
  rc_err(err, 0,
         "%s (cgroup v2 allows no processes in a cgroup whose children have "
         "controllers enabled)",
         msg);
  err->code = EBUSY;
}

int rc_cg_write_pid(const struct rc_cg_hier *h, const char *dir_path, const char *path, pid_t pid,
                    struct rc_error *err) {
  cleanup_free char *dir = rc_cg_hier_dir(h, dir_path);
  /* Named by its directory: the reader needs to know which hierarchy refused. */
  struct rc_cg_dir d = {.fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), .path = dir};
  if (d.fd < 0) return rc_err(err, errno, "cgroup %s: open %s", path, dir);
  char buf[32];
  snprintf(buf, sizeof(buf), "%d", (int)pid);
  int r = rc_cg_write(&d, "cgroup.procs", buf, NULL, err);
  close_dir(&d);
  if (r < 0 && h->v2) explain_v2_busy(err);
  return r;
}

int rc_cgroup_create(const char *cgroup_path, const struct oci_resources *resources, pid_t pid,
                     struct rc_error *err) {
  cleanup_free char *path = NULL;
  if (rc_cg_canonical(cgroup_path, &path, err) < 0) return -1;
  const struct rc_cg_layout *l = rc_cg_layout();
  if (l->n == 0) return rc_err(err, ENOENT, "cgroup %s: no cgroup hierarchy is mounted", path);
  if (rc_cg_check_reserved(l, path, err) < 0) return -1;
  char *made[MAX_HIERS] = {0};
  char *orig[MAX_HIERS] = {0}; /* the pid's cgroups before, to move it back on failure */
  size_t joined = 0;
  int ret = -1;

  for (size_t i = 0; i < l->n; i++) {
    struct mkdir_ctx c = {.err = err, .path = path};
    int r = for_each_level(&l->hiers[i], path, mkdir_level, &c);
    made[i] = c.first_made;
    if (r < 0) goto out;
  }
  /* Before anything is enabled, so that a refusal leaves every existing cgroup as it was. */
  const struct rc_cg_hier *v2 = rc_cg_v2_hier(l);
  if (v2) {
    struct threaded_ctx t = {
        .path = path, .domain = v2_domain_controller_set(l, v2, resources), .err = err};
    if (for_each_level(v2, path, threaded_level, &t) < 0) goto out;
  }
  for (size_t i = 0; i < l->n; i++) {
    const struct rc_cg_hier *h = &l->hiers[i];
    struct level_ctx c = {.path = path, .err = err};
    int r = 0;
    if (!h->v2 && rc_cg_list_has(h->controllers, "cpuset"))
      r = for_each_level(h, path, cpuset_level, &c);
    else if (h->v2)
      r = for_each_level(h, path, enable_level, &c);
    free(c.parent);
    if (r < 0) goto out;
  }
  if (apply_resources(path, resources, true, err) < 0) goto out;
  if (pid > 0) {
    for (size_t i = 0; i < l->n; i++) {
      struct rc_error ignore;
      if (cgroup_of(pid, &l->hiers[i], &orig[i], &ignore) < 0) orig[i] = NULL;
    }
    for (; joined < l->n; joined++)
      if (rc_cg_write_pid(&l->hiers[joined], path, path, pid, err) < 0) goto out;
  }
  ret = 0;
out:
  if (ret < 0) {
    /* The process must leave before its new cgroups can be removed. */
    for (size_t i = 0; i < joined; i++) {
      struct rc_error ignore;
      if (orig[i]) rc_cg_write_pid(&l->hiers[i], orig[i], path, pid, &ignore);
    }
    for (size_t i = l->n; i-- > 0;) remove_made(&l->hiers[i], path, made[i]);
  }
  for (size_t i = 0; i < l->n; i++) {
    free(made[i]);
    free(orig[i]);
  }
  return ret;
}

static int enter(const char *cgroup_path, pid_t pid, bool v2_only, struct rc_error *err) {
  cleanup_free char *path = NULL;
  if (rc_cg_canonical(cgroup_path, &path, err) < 0) return -1;
  const struct rc_cg_layout *l = rc_cg_layout();
  if (l->n == 0) return rc_err(err, ENOENT, "cgroup %s: no cgroup hierarchy is mounted", path);
  for (size_t i = 0; i < l->n; i++)
    if ((!v2_only || l->hiers[i].v2) && rc_cg_write_pid(&l->hiers[i], path, path, pid, err) < 0)
      return -1;
  return 0;
}

int rc_cgroup_enter(const char *cgroup_path, pid_t pid, struct rc_error *err) {
  return enter(cgroup_path, pid, false, err);
}

int rc_cgroup_enter_v2(const char *cgroup_path, pid_t pid, struct rc_error *err) {
  return enter(cgroup_path, pid, true, err);
}

struct rc_cgroup_join {
  struct rc_cg_dir v1[MAX_HIERS]; /* each v1 hierarchy's cgroup directory */
  size_t n_v1;
  struct rc_cg_dir v2;        /* the v2 one (.fd -1: none) */
  bool v2_placed;             /* the clone put the child there */
  bool v2_left;               /* the runtime moves it there */
  char *paths[MAX_HIERS + 1]; /* the directories' paths, owned (the dirs borrow them) */
  size_t n_paths;
};

static void join_close(struct rc_cgroup_join *j) {
  for (size_t i = 0; i < j->n_v1; i++) close_dir(&j->v1[i]);
  j->n_v1 = 0;
  close_dir(&j->v2);
}

void rc_cgroup_join_free(struct rc_cgroup_join *j) {
  if (!j) return;
  join_close(j);
  for (size_t i = 0; i < j->n_paths; i++) free(j->paths[i]);
  free(j);
}

int rc_cgroup_join_open(const char *cgroup_path, struct rc_cgroup_join **out,
                        struct rc_error *err) {
  *out = NULL;
  cleanup_free char *path = NULL;
  if (rc_cg_canonical(cgroup_path, &path, err) < 0) return -1;
  const struct rc_cg_layout *l = rc_cg_layout();
  if (l->n == 0) return rc_err(err, ENOENT, "cgroup %s: no cgroup hierarchy is mounted", path);
  struct rc_cgroup_join *j = rc_xcalloc(1, sizeof(*j));
  j->v2.fd = -1;
  for (size_t i = 0; i < l->n; i++) {
    char *dir = rc_cg_hier_dir(&l->hiers[i], path);
    struct rc_cg_dir d = {.fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), .path = dir};
    j->paths[j->n_paths++] = dir;
    if (d.fd < 0) {
      rc_err(err, errno, "cgroup %s: open %s", path, dir);
      rc_cgroup_join_free(j);
      return -1;
    }
    if (l->hiers[i].v2)
      j->v2 = d;
    else
      j->v1[j->n_v1++] = d;
  }
  *out = j;
  return 0;
}

/* The v2 cgroup directory for CLONE_INTO_CGROUP, or -1 (none, or the runtime's to do). */
static int join_clone_fd(const struct rc_cgroup_join *j) {
  return j && !j->v2_left ? j->v2.fd : -1;
}

void rc_cgroup_join_leave_v2(struct rc_cgroup_join *j) {
  if (j) j->v2_left = true;
}

int rc_cgroup_join_self(struct rc_cgroup_join *j, struct rc_error *err) {
  int ret = 0;
  /* "0" is the writer itself; in a v1 `tasks` file it moves just this thread, which is
   * the whole of a process that has not made threads yet. */
  for (size_t i = 0; i < j->n_v1 && ret == 0; i++)
    ret = rc_cg_write(&j->v1[i], "tasks", "0", NULL, err);
  if (ret == 0 && j->v2.fd >= 0 && !j->v2_placed && !j->v2_left) {
    ret = rc_cg_write(&j->v2, "cgroup.procs", "0", NULL, err);
    if (ret < 0) explain_v2_busy(err);
  }
  join_close(j);
  return ret;
}

pid_t rc_cgroup_clone(unsigned long flags, struct rc_cgroup_join *j) {
  int target = join_clone_fd(j);
  if (target >= 0) {
    /* clone3 refuses an exit signal with CLONE_PARENT: the child then signals the
     * grandparent with the caller's own exit signal, as clone does. */
    struct clone_args args = {.flags = flags | CLONE_INTO_CGROUP,
                              .exit_signal = (flags & CLONE_PARENT) ? 0 : SIGCHLD,
                              .cgroup = (uint64_t)target};
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0) j->v2_placed = true; /* the child's copy: its v2 part is done */
    if (pid >= 0) return (pid_t)pid;
    /* Refused (old kernel, a seccomp profile that hides clone3, the no-internal-process
     * rule): clone as before; the child's own write into cgroup.procs says what is wrong
     * if anything is. */
  }
  return (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
}

bool rc_cgroup_exists(const char *cgroup_path) {
  cleanup_free char *path = NULL;
  struct rc_error ignore;
  if (rc_cg_canonical(cgroup_path, &path, &ignore) < 0) return false;
  const struct rc_cg_layout *l = rc_cg_layout();
  for (size_t i = 0; i < l->n; i++) {
    cleanup_free char *dir = rc_cg_hier_dir(&l->hiers[i], path);
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return true;
  }
  return false;
}

/* The hierarchy to list processes from: pids tracks every task, v2 holds all; any other
 * has the same processes too. */
const struct rc_cg_hier *rc_cg_procs_hier(const struct rc_cg_layout *l) {
  for (size_t i = 0; i < l->n; i++)
    if (!l->hiers[i].v2 && rc_cg_list_has(l->hiers[i].controllers, "pids")) return &l->hiers[i];
  const struct rc_cg_hier *h = rc_cg_v2_hier(l);
  return h ? h : (l->n ? &l->hiers[0] : NULL);
}

/* The process (thread group) thread tid belongs to; 0 when it is gone. */
static pid_t tgid_of(pid_t tid) {
  char file[64];
  snprintf(file, sizeof(file), "/proc/%d/status", (int)tid);
  cleanup_free char *status = NULL;
  struct rc_error ignore;
  if (rc_read_proc_file(file, 1 << 16, &status, &ignore) < 0) return 0;
  const char *t = strstr(status, "\nTgid:");
  return t ? (pid_t)strtol(t + 6, NULL, 10) : 0;
}

int rc_cg_read_own_pids(int dirfd, const char *path, struct rc_cg_pid_list *out,
                        struct rc_error *err) {
  struct rc_cg_dir d = {.fd = dirfd, .path = path};
  cleanup_free char *procs = NULL;
  size_t first = out->n;
  bool threads = false;
  if (rc_cg_read(&d, "cgroup.procs", &procs, err) < 0) {
    /* A threaded cgroup's cgroup.procs cannot be read (EOPNOTSUPP): its processes are
     * its thread root's. Its cgroup.threads lists its threads, each standing for its
     * process. (runc reads cgroup.procs alone, so its ps and kill --all fail there; found
     * by the cgroup v2 lane, once runcell could create such a container.) */
    if (err->code != EOPNOTSUPP || rc_cg_read(&d, "cgroup.threads", &procs, err) < 0) return -1;
    threads = true;
  }
  for (char *p = procs; *p;) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p) break;
    if (v > 0 && threads) {
      v = tgid_of((pid_t)v);
      for (size_t i = first; i < out->n && v > 0; i++)
        if (out->v[i] == v) v = 0; /* another thread of a process already listed */
    }
    if (v > 0) {
      if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 16;
        out->v = rc_xrealloc(out->v, out->cap * sizeof(*out->v));
      }
      out->v[out->n++] = (pid_t)v;
    }
    p = end;
    while (*p == '\n' || *p == ' ') p++;
  }
  return 0;
}

int rc_cg_collect_pids(int dirfd, const char *path, struct rc_cg_pid_list *out, int depth,
                       struct rc_error *err) {
  if (depth > 64) return rc_err(err, ELOOP, "cgroup %s: nested too deep", path);
  if (rc_cg_read_own_pids(dirfd, path, out, err) < 0) {
    /* a child removed while we walk is simply gone */
    return err->code == ENOENT && depth > 0 ? 0 : -1;
  }
  int copy = dup(dirfd); /* fdopendir takes the fd over; keep the caller's */
  if (copy < 0) return rc_err(err, errno, "cgroup %s: dup", path);
  DIR *dir = fdopendir(copy);
  if (!dir) {
    close(copy);
    return rc_err(err, errno, "cgroup %s: list", path);
  }
  int ret = 0;
  struct dirent *de;
  while (ret == 0 && (de = readdir(dir))) {
    if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    int child = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (child < 0) continue; /* removed meanwhile */
    ret = rc_cg_collect_pids(child, path, out, depth + 1, err);
    close(child);
  }
  closedir(dir);
  return ret;
}

static int cmp_pid(const void *a, const void *b) {
  pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
  return (x > y) - (x < y);
}

int rc_cgroup_pids(const char *cgroup_path, pid_t **pids, size_t *n, struct rc_error *err) {
  *pids = NULL;
  *n = 0;
  cleanup_free char *path = NULL;
  if (rc_cg_canonical(cgroup_path, &path, err) < 0) return -1;
  const struct rc_cg_hier *h = rc_cg_procs_hier(rc_cg_layout());
  if (!h) return rc_err(err, ENOENT, "cgroup %s: no cgroup hierarchy is mounted", path);
  cleanup_free char *dir = rc_cg_hier_dir(h, path);
  cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return 0; /* no cgroup, no processes */
    return rc_err(err, errno, "cgroup %s: open %s", path, dir);
  }
  struct rc_cg_pid_list list = {0};
  if (rc_cg_collect_pids(fd, path, &list, 0, err) < 0) {
    free(list.v);
    return -1;
  }
  rc_cg_drop_cell_kernels(rc_cg_layout(), path, &list);
  /* A process shows once per thread group in cgroup.procs, but a sub-cgroup walk can race
   * with migrations and list one twice. */
  if (list.n) qsort(list.v, list.n, sizeof(*list.v), cmp_pid);
  size_t u = 0;
  for (size_t i = 0; i < list.n; i++)
    if (u == 0 || list.v[u - 1] != list.v[i]) list.v[u++] = list.v[i];
  *pids = list.v;
  *n = u;
  return 0;
}

static int freeze_within(const char *path, bool freeze, int timeout_ms, struct rc_error *err) {
  const struct rc_cg_layout *l = rc_cg_layout();
  const struct rc_cg_hier *h = NULL;
  for (size_t i = 0; i < l->n && !h; i++)
    if (!l->hiers[i].v2 && rc_cg_list_has(l->hiers[i].controllers, "freezer")) h = &l->hiers[i];
  if (!h) h = rc_cg_v2_hier(l); /* v2's freezer is part of the core: cgroup.freeze */
  if (!h) return rc_err(err, ENOTSUP, "cgroup %s: the host has no freezer controller", path);
  struct rc_cg_dir d;
  if (open_dir(h, path, &d, err) < 0) return -1;
  int r;
  if (h->v2) {
    /* The cell kernels leave the tree for the freeze (cgroups_cell_kernel.c says why). */
    r = freeze ? rc_cg_park_cell_kernels(h, path, true, err) : 0;
    if (r == 0) r = rc_cg_v2_freeze(&d, freeze, err);
    if (r == 0)
      r = rc_cg_wait_for(&d, "cgroup.events", freeze ? "frozen 1" : "frozen 0", timeout_ms, err);
    if (!freeze) {
      struct rc_error back;
      if (rc_cg_park_cell_kernels(h, path, false, &back) < 0 && r == 0) {
        *err = back;
        r = -1;
      }
    }
  } else {
    /* v1 can stall in FREEZING while a task sits in an uninterruptible sleep; writing
     * the state again retries the tasks that were missed. */
    long long deadline = rc_now_ms() + timeout_ms;
    const char *want = freeze ? "FROZEN" : "THAWED";
    long delay = 1;
    for (;;) {
      if ((r = rc_cg_v1_freeze(&d, freeze, err)) < 0) break;
      cleanup_free char *state = NULL;
      if ((r = rc_cg_read(&d, "freezer.state", &state, err)) < 0) break;
      if (strcmp(state, want) == 0) break;
      if (rc_now_ms() >= deadline) {
        r = rc_err(err, ETIMEDOUT,
                   "cgroup %s: freezer.state did not reach %s within %d ms "
                   "(reads %s)",
                   path, want, timeout_ms, state);
        break;
      }
      sleep_ms(delay);
      if (delay < 50) delay *= 2;
    }
  }
  close_dir(&d);
  return r;
}

int rc_cgroup_freeze(const char *cgroup_path, bool freeze, struct rc_error *err) {
  cleanup_free char *path = NULL;
  if (rc_cg_canonical(cgroup_path, &path, err) < 0) return -1;
  int r = freeze_within(path, freeze, 5000, err);
  if (r < 0 && freeze) {
    /* Leave nothing half frozen behind a failed pause. */
    struct rc_error ignore;
    freeze_within(path, false, 1000, &ignore);
  }
  return r;
}

int rc_cgroup_kill_all(const char *cgroup_path, int sig, struct rc_error *err) {
  cleanup_free char *path = NULL;
  if (rc_cg_canonical(cgroup_path, &path, err) < 0) return -1;
  /* Frozen tasks cannot fork, so a SIGKILL sweep over a frozen cgroup misses no child
   * born in between. Freezing is a help, not a must: kill anyway if it fails. */
  bool try_freeze = sig == SIGKILL && rc_cgroup_exists(path), frozen = false;
  if (try_freeze) {
    struct rc_error ignore;
    frozen = freeze_within(path, true, 1000, &ignore) == 0;
  }
  cleanup_free pid_t *pids = NULL;
  size_t n = 0;
  int ret = rc_cgroup_pids(path, &pids, &n, err);
  for (size_t i = 0; ret == 0 && i < n; i++)
    if (kill(pids[i], sig) < 0 && errno != ESRCH)
      ret = rc_err(err, errno, "cgroup %s: kill %d with signal %d", path, (int)pids[i], sig);
  if (try_freeze) {
    /* Thaw even after a failed freeze: it may have stopped half way. */
    struct rc_error thaw_err;
    if (freeze_within(path, false, 5000, &thaw_err) < 0 && frozen && ret == 0) {
      *err = thaw_err;
      ret = -1;
    }
  }
  return ret;
}

/* Removes dir and every cgroup below it, deepest first, retrying while tasks that are
 * exiting still hold it, until deadline. */
static int remove_tree(const char *dir, const char *path, long long deadline,
                       struct rc_error *err) {
  DIR *d = opendir(dir);
  if (!d) {
    if (errno == ENOENT) return 0;
    return rc_err(err, errno, "cgroup %s: open %s", path, dir);
  }
  int ret = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    cleanup_free char *child = rc_xasprintf("%s/%s", dir, de->d_name);
    if (remove_tree(child, path, deadline, err) < 0 && ret == 0) ret = -1;
  }
  closedir(d);
  if (ret < 0) return ret;
  long delay = 10;
  for (;;) {
    if (rmdir(dir) == 0 || errno == ENOENT) return 0;
    if (errno != EBUSY || rc_now_ms() >= deadline)
      return rc_err(err, errno, "cgroup %s: remove %s", path, dir);
    sleep_ms(delay);
    if (delay < 100) delay *= 2;
  }
}

int rc_cgroup_destroy(const char *cgroup_path, struct rc_error *err) {
  cleanup_free char *path = NULL;
  if (rc_cg_canonical(cgroup_path, &path, err) < 0) return -1;
  const struct rc_cg_layout *l = rc_cg_layout();
  /* One budget for all hierarchies: once the tasks are gone every rmdir succeeds. */
  long long deadline = rc_now_ms() + 1000;
  int ret = 0;
  struct rc_error one;
  if (rc_cg_end_cell_kernels(l, path, deadline, &one) < 0) {
    *err = one;
    ret = -1;
  }
  for (size_t i = 0; i < l->n; i++) {
    cleanup_free char *dir = rc_cg_hier_dir(&l->hiers[i], path);
    if (remove_tree(dir, path, deadline, &one) < 0 && ret == 0) {
      *err = one;
      ret = -1;
    }
  }
  return ret;
}

int rc_cgroup_read_control(const char *path, const char *controller, const char *file_v1,
                           const char *file_v2, char **out, struct rc_error *err) {
  *out = NULL;
  const struct rc_cg_hier *h = rc_cg_find(rc_cg_layout(), controller);
  if (!h) return rc_err(err, ENOTSUP, "cgroup %s: the host has no %s controller", path, controller);
  const char *file = h->v2 ? file_v2 : file_v1;
  if (!file)
    return rc_err(err, ENOTSUP, "cgroup %s: no such file for %s on cgroup v%d", path, controller,
                  h->v2 ? 2 : 1);
  struct rc_cg_dir d;
  if (open_dir(h, path, &d, err) < 0) return -1;
  int r = rc_cg_read(&d, file, out, err);
  close_dir(&d);
  return r;
}
