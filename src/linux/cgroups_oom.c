/* OOM notification for `events`, by the kernel mechanisms runc uses:
 * - cgroup v1: an eventfd registered for memory.oom_control through cgroup.event_control.
 *   The kernel signals it on every OOM in the cgroup and once more when the cgroup is
 *   removed; a signal after which cgroup.event_control is gone is that removal.
 * - cgroup v2: inotify on memory.events, whose oom_kill count grows with each OOM kill,
 *   and on cgroup.events, whose "populated 0" says the last process is gone. cgroupfs
 *   sends no IN_DELETE_SELF, which is why the end is watched through cgroup.events. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroups_internal.h"
#include "runcell/util.h"

static void watch_init(struct rc_cgroup_oom_watch *w, bool v2) {
  memset(w, 0, sizeof(*w));
  w->fd = w->dirfd = w->control_fd = -1;
  w->wd_events = w->wd_populated = -1;
  w->v2 = v2;
}

void rc_cgroup_oom_watch_close(struct rc_cgroup_oom_watch *w) {
  if (w->fd >= 0) close(w->fd);
  if (w->dirfd >= 0) close(w->dirfd);
  if (w->control_fd >= 0) close(w->control_fd);
  w->fd = w->dirfd = w->control_fd = -1;
}

/* The value of "key N" in a flat-keyed file of the watched directory. */
static int read_key(const struct rc_cgroup_oom_watch *w, const char *file, const char *key,
                    uint64_t *out, struct rc_error *err) {
  cleanup_free char *text = NULL;
  if (rc_read_file_at(w->dirfd, file, 65536, &text, NULL, err) < 0) return -1;
  size_t kl = strlen(key);
  *out = 0;
  for (char *line = text; line && *line;) {
    char *nl = strchr(line, '\n');
    if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
      *out = strtoull(line + kl + 1, NULL, 10);
      return 0;
    }
    line = nl ? nl + 1 : NULL;
  }
  return 0;
}

static int open_v1(const char *dir, struct rc_cgroup_oom_watch *w, struct rc_error *err) {
  w->control_fd = openat(w->dirfd, "memory.oom_control", O_RDONLY | O_CLOEXEC);
  if (w->control_fd < 0) return rc_err(err, errno, "cgroup %s: open memory.oom_control", dir);
  w->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (w->fd < 0) return rc_err(err, errno, "eventfd");
  char line[64];
  int n = snprintf(line, sizeof(line), "%d %d", w->fd, w->control_fd);
  if (rc_write_file_at(w->dirfd, "cgroup.event_control", line, (size_t)n, err) < 0)
    return rc_err_wrap(err, "cgroup %s: register for OOM notifications", dir);
  return 0;
}

static int open_v2(const char *dir, struct rc_cgroup_oom_watch *w, struct rc_error *err) {
  w->fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (w->fd < 0) return rc_err(err, errno, "unable to init inotify");
  cleanup_free char *events = rc_xasprintf("%s/memory.events", dir);
  cleanup_free char *populated = rc_xasprintf("%s/cgroup.events", dir);
  w->wd_events = inotify_add_watch(w->fd, events, IN_MODIFY);
  if (w->wd_events < 0) return rc_err(err, errno, "cgroup %s: watch memory.events", dir);
  w->wd_populated = inotify_add_watch(w->fd, populated, IN_MODIFY);
  if (w->wd_populated < 0) return rc_err(err, errno, "cgroup %s: watch cgroup.events", dir);
  /* Kills from before the watch are not news. */
  if (read_key(w, "memory.events", "oom_kill", &w->oom_kills, err) < 0)
    return rc_err_wrap(err, "cgroup %s", dir);
  /* The last process may have left before the watch began: no event would come. */
  uint64_t pop = 1;
  if (read_key(w, "cgroup.events", "populated", &pop, err) < 0)
    return rc_err_wrap(err, "cgroup %s", dir);
  w->ended = pop == 0;
  return 0;
}

int rc_cgroup_oom_watch_open_dir(const char *dir, bool v2, struct rc_cgroup_oom_watch *w,
                                 struct rc_error *err) {
  watch_init(w, v2);
  w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (w->dirfd < 0) return rc_err(err, errno, "cgroup %s: open", dir);
  int r = v2 ? open_v2(dir, w, err) : open_v1(dir, w, err);
  if (r < 0) rc_cgroup_oom_watch_close(w);
  return r;
}

int rc_cgroup_oom_watch_open(const char *path, struct rc_cgroup_oom_watch *w,
                             struct rc_error *err) {
  const struct rc_cg_layout *l = rc_cg_layout();
  const struct rc_cg_hier *h = rc_cg_find(l, "memory");
  /* runc watches the unified directory on a v2 host whether or not memory is enabled. */
  if (!h && l->mode == RC_CGROUP_UNIFIED)
    for (size_t i = 0; i < l->n; i++)
      if (l->hiers[i].v2) h = &l->hiers[i];
  if (!h) {
    watch_init(w, false);
    return rc_err(err, 0, "memory controller missing");
  }
  cleanup_free char *dir = rc_xasprintf("%s%s", h->mount, strcmp(path, "/") == 0 ? "" : path);
  return rc_cgroup_oom_watch_open_dir(dir, h->v2, w, err);
}

static int read_v1(struct rc_cgroup_oom_watch *w, unsigned *ooms, struct rc_error *err) {
  uint64_t count = 0;
  ssize_t n = read(w->fd, &count, sizeof(count));
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return 0;
    return rc_err(err, errno, "read OOM eventfd");
  }
  if (n != (ssize_t)sizeof(count)) return rc_err(err, EIO, "read OOM eventfd: short read");
  /* Removal signals too. A removed cgroup directory's files are gone even through a
   * directory fd opened before, so this cannot mistake a new cgroup of the same name. */
  struct stat sb;
  if (fstatat(w->dirfd, "cgroup.event_control", &sb, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno != ENOENT) return rc_err(err, errno, "stat cgroup.event_control");
    w->ended = true;
    return 0;
  }
  *ooms = 1; /* one event per wake-up, however many OOMs the counter gathered */
  return 0;
}

static int read_v2(struct rc_cgroup_oom_watch *w, unsigned *ooms, struct rc_error *err) {
  _Alignas(struct inotify_event) char buf[4096];
  bool events_changed = false, populated_changed = false;
  for (;;) {
    ssize_t n = read(w->fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      return rc_err(err, errno, "unable to read event data from inotify");
    }
    for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= n;) {
      const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
      off += (ssize_t)(sizeof(struct inotify_event) + ev->len);
      /* IN_IGNORED: the watch went away with its file, i.e. the cgroup was removed. */
      if (ev->mask & IN_IGNORED) w->ended = true;
      if (!(ev->mask & IN_MODIFY)) continue;
      if (ev->wd == w->wd_events) events_changed = true;
      if (ev->wd == w->wd_populated) populated_changed = true;
    }
  }
  struct rc_error ignore;
  if (events_changed) {
    uint64_t kills = 0;
    if (read_key(w, "memory.events", "oom_kill", &kills, &ignore) < 0) {
      w->ended = true; /* the cgroup is gone */
    } else if (kills > w->oom_kills) {
      *ooms = 1;
      w->oom_kills = kills;
    }
  }
  if (populated_changed) {
    uint64_t pop = 0;
    if (read_key(w, "cgroup.events", "populated", &pop, &ignore) < 0 || pop == 0) w->ended = true;
  }
  return 0;
}

int rc_cgroup_oom_watch_read(struct rc_cgroup_oom_watch *w, unsigned *ooms, struct rc_error *err) {
  *ooms = 0;
  if (w->fd < 0) return rc_err(err, EBADF, "OOM watch is not open");
  return w->v2 ? read_v2(w, ooms, err) : read_v1(w, ooms, err);
}
