#include "runcell/state_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runcell/util.h"

#define STATE_FILE "state.json"

int rc_state_validate_id(const char *id, struct rc_error *err) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0) return rc_err(err, 0, "invalid container id format: container id cannot be empty");
  if (n > RC_ID_MAX)
    return rc_err(err, 0, "invalid container id format: id is longer than %d bytes", RC_ID_MAX);
  if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
    return rc_err(err, 0, "invalid container id format: %s", id);
  for (const char *p = id; *p; p++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '+' || c == '-' || c == '.';
    if (!ok) return rc_err(err, 0, "invalid container id format: %s", id);
  }
  return 0;
}

static int open_root(const char *root, bool create, struct rc_error *err) {
  if (create && rc_mkdir_p(root, 0711, err) < 0) return rc_err_wrap(err, "create state root");
  int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1; /* callers translate ENOENT into "does not exist" */
  return fd;
}

/* Locks the directory; fails with ENOENT semantics if it was removed while we waited. */
static int lock_dir(int dirfd) {
  while (flock(dirfd, LOCK_EX) < 0)
    if (errno != EINTR) return -1;
  struct stat st;
  if (fstat(dirfd, &st) < 0) return -1;
  if (st.st_nlink == 0) {
    errno = ENOENT;
    return -1;
  }
  return 0;
}

int rc_state_dir_create(const char *root, const char *id, struct rc_container_dir *d,
                        struct rc_error *err) {
  d->dirfd = -1;
  d->path = NULL;
  if (rc_state_validate_id(id, err) < 0) return -1;
  cleanup_close int rootfd = open_root(root, true, err);
  if (rootfd < 0) return rc_err(err, errno, "open state root %s", root);
  if (mkdirat(rootfd, id, 0700) < 0) {
    if (errno == EEXIST) return rc_err(err, 0, "container with id exists: %s", id);
    return rc_err(err, errno, "create state directory %s/%s", root, id);
  }
  int fd = openat(rootfd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 || lock_dir(fd) < 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    unlinkat(rootfd, id, AT_REMOVEDIR);
    return rc_err(err, e, "open state directory %s/%s", root, id);
  }
  d->dirfd = fd;
  d->path = rc_xasprintf("%s/%s", root, id);
  return 0;
}

int rc_state_dir_open(const char *root, const char *id, struct rc_container_dir *d,
                      struct rc_error *err) {
  d->dirfd = -1;
  d->path = NULL;
  if (rc_state_validate_id(id, err) < 0) return -1;
  cleanup_close int rootfd = open_root(root, false, err);
  if (rootfd < 0) {
    if (errno == ENOENT) return rc_err(err, 0, "container does not exist");
    return rc_err(err, errno, "open state root %s", root);
  }
  int fd = openat(rootfd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return rc_err(err, 0, "container does not exist");
    return rc_err(err, errno, "open state directory %s/%s", root, id);
  }
  if (lock_dir(fd) < 0) {
    int e = errno;
    close(fd);
    if (e == ENOENT) return rc_err(err, 0, "container does not exist");
    return rc_err(err, e, "lock state directory %s/%s", root, id);
  }
  d->dirfd = fd;
  d->path = rc_xasprintf("%s/%s", root, id);
  return 0;
}

void rc_state_dir_close(struct rc_container_dir *d) {
  if (d->dirfd >= 0) close(d->dirfd); /* closing drops the flock */
  d->dirfd = -1;
  free(d->path);
  d->path = NULL;
}

static int remove_tree_at(int dirfd) {
  int fd = dup(dirfd);
  if (fd < 0) return -1;
  DIR *dir = fdopendir(fd);
  if (!dir) {
    close(fd);
    return -1;
  }
  struct dirent *de;
  int rc = 0;
  while ((de = readdir(dir))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    if (unlinkat(dirfd, de->d_name, 0) == 0) continue;
    if (errno == EISDIR || errno == EPERM) {
      int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) {
        remove_tree_at(sub);
        close(sub);
      }
      if (unlinkat(dirfd, de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT) rc = -1;
    } else if (errno != ENOENT) {
      rc = -1;
    }
  }
  closedir(dir);
  return rc;
}

int rc_state_dir_remove(struct rc_container_dir *d, struct rc_error *err) {
  int rc = 0;
  if (d->dirfd >= 0) {
    remove_tree_at(d->dirfd);
    /* Remove the directory while still holding the lock, so a waiter sees nlink 0. */
    if (rmdir(d->path) < 0 && errno != ENOENT)
      rc = rc_err(err, errno, "remove state directory %s", d->path);
  }
  rc_state_dir_close(d);
  return rc;
}

int rc_state_load(struct rc_container_dir *d, struct oci_state **st, struct rc_error *err) {
  cleanup_free char *text = NULL;
  size_t len = 0;
  if (rc_read_file_at(d->dirfd, STATE_FILE, RC_STATE_MAX, &text, &len, err) < 0) {
    /* A directory without state.json is a create that never finished (or was killed):
     * the container does not exist yet as far as commands are concerned. */
    if (err->code == ENOENT) {
      rc_err(err, 0, "container does not exist");
      err->code = ENOENT; /* tells delete this is an aborted create, not a corrupt state */
      return -1;
    }
    return rc_err_wrap(err, "load state");
  }
  if (oci_state_parse(text, len, st, err) < 0) return rc_err_wrap(err, "%s", d->path);
  return 0;
}

int rc_state_save(struct rc_container_dir *d, const struct oci_state *st, struct rc_error *err) {
  cleanup_free char *json = oci_state_to_json(st);
  if (!json) return rc_err(err, ENOMEM, "serialize state");
  /* never a state no later command could read back */
  size_t len = strlen(json);
  if (len > RC_STATE_MAX)
    return rc_err(err, EFBIG, "save state of %s: %zu bytes, more than a state may be (%d)", st->id,
                  len, RC_STATE_MAX);
  if (rc_write_file_atomic(d->dirfd, STATE_FILE, json, len, 0600, err) < 0)
    return rc_err_wrap(err, "save state of %s in %s", st->id, d->path);
  return 0;
}

unsigned long long rc_pid_start_time(pid_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  char buf[1024];
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  if (n <= 0) return 0;
  buf[n] = '\0';
  /* comm may contain spaces and parentheses: fields start after the last ')'. */
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  p++;
  char state = 0;
  unsigned long long start = 0;
  /* after ')': state(3) ... starttime is field 22 overall, the 20th after comm */
  int field = 2;
  char *save = NULL;
  for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
    field++;
    if (field == 3) state = tok[0];
    if (field == 22) {
      start = strtoull(tok, NULL, 10);
      break;
    }
  }
  /* A zombie has exited: the container is stopped even if nobody reaped it yet. */
  if (state == 'Z' || state == 'X') return 0;
  return start;
}

void rc_state_refresh(struct oci_state *st) {
  if (st->status == OCI_STATUS_STOPPED || st->status == OCI_STATUS_CREATING) return;
  if (st->pid <= 0) {
    st->status = OCI_STATUS_STOPPED;
    return;
  }
  unsigned long long start = rc_pid_start_time(st->pid);
  if (start == 0 || (st->pid_start_time && start != st->pid_start_time))
    st->status = OCI_STATUS_STOPPED;
}

int rc_state_open_pidfd(const struct oci_state *st) {
  if (st->pid <= 0) {
    errno = ESRCH;
    return -1;
  }
  int fd = (int)syscall(SYS_pidfd_open, st->pid, 0);
  if (fd < 0) return -1;
  /* The pidfd pins the process; checking the start time after opening it closes the
   * window in which the pid could have been reused. */
  unsigned long long start = rc_pid_start_time(st->pid);
  if (start == 0 || (st->pid_start_time && start != st->pid_start_time)) {
    close(fd);
    errno = ESRCH;
    return -1;
  }
  return fd;
}

int rc_state_read(const char *root, const char *id, struct oci_state **st, struct rc_error *err) {
  if (rc_state_validate_id(id, err) < 0) return -1;
  cleanup_free char *path = rc_xasprintf("%s/%s/state.json", root, id);
  cleanup_free char *text = NULL;
  size_t len = 0;
  if (rc_read_file(path, RC_STATE_MAX, &text, &len, err) < 0) {
    if (err->code == ENOENT || err->code == ENOTDIR)
      return rc_err(err, 0, "container does not exist");
    return rc_err_wrap(err, "load state");
  }
  /* (the parser's message starts with "state.json:": name the directory, as load does) */
  if (oci_state_parse(text, len, st, err) < 0) return rc_err_wrap(err, "%s/%s", root, id);
  rc_state_refresh(*st);
  /* start execs the program, removes start.sock, then records "running". A start that
   * could not record it (a full state directory, a kill at that moment) leaves "created"
   * without start.sock while the program runs: report what is true. */
  if ((*st)->status == OCI_STATUS_CREATED) {
    cleanup_free char *sock = rc_xasprintf("%s/%s/start.sock", root, id);
    if (access(sock, F_OK) < 0 && errno == ENOENT) (*st)->status = OCI_STATUS_RUNNING;
  }
  return 0;
}

int rc_pid_state(pid_t pid, char *state) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  char buf[512];
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (!p || p[1] != ' ' || !p[2]) return -1;
  *state = p[2];
  return 0;
}
