/* Small helpers shared by every module: files, strings, cleanup attributes. */
#ifndef RUNCELL_UTIL_H
#define RUNCELL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "runcell/error.h"

static inline void rc_freep(void *p) {
  free(*(void **)p);
}
static inline void rc_closep(int *fd) {
  if (*fd >= 0) close(*fd);
}
static inline void rc_fclosep(FILE **f) {
  if (*f) fclose(*f);
}
#define cleanup_free __attribute__((cleanup(rc_freep)))
#define cleanup_close __attribute__((cleanup(rc_closep)))
#define cleanup_fclose __attribute__((cleanup(rc_fclosep)))

#define RC_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Returns the fd and sets *fd to -1 so a cleanup_close variable does not close it. */
static inline int rc_steal_fd(int *fd) {
  int r = *fd;
  *fd = -1;
  return r;
}

/* Reads a whole file (at most max bytes) into a NUL-terminated heap buffer. */
int rc_read_file(const char *path, size_t max, char **out, size_t *len, struct rc_error *err);
int rc_read_file_at(int dirfd, const char *path, size_t max, char **out, size_t *len,
                    struct rc_error *err);
/* The same from an open fd (path names it in errors): for a file opened with checks. */
int rc_read_fd(int fd, const char *path, size_t max, char **out, size_t *len, struct rc_error *err);
/* Writes data to an existing file (O_WRONLY|O_TRUNC, no create), as cgroup and proc
 * files need. */
int rc_write_file(const char *path, const char *data, size_t len, struct rc_error *err);
int rc_write_file_at(int dirfd, const char *path, const char *data, size_t len,
                     struct rc_error *err);
/* Writes a file atomically: temp file in the same directory, fsync, rename, fsync dir.
 * Safe in a directory someone else can write: the temp name is random and created with
 * O_EXCL|O_NOFOLLOW (a planted file or symlink is never written through), and a symlink
 * already at name is replaced, not followed. */
int rc_write_file_atomic(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
                         struct rc_error *err);
/* Writes pid to path (relative to the cwd) as a bare integer without a newline, which is
 * how containerd reads it, atomically. */
int rc_write_pid_file(const char *path, pid_t pid, struct rc_error *err);
/* mkdir -p on a host path. */
int rc_mkdir_p(const char *path, mode_t mode, struct rc_error *err);
/* Writes all bytes, retrying on EINTR and short writes. */
ssize_t rc_write_all(int fd, const void *buf, size_t len);
/* Reads exactly len bytes unless EOF; returns bytes read or -1. */
ssize_t rc_read_all(int fd, void *buf, size_t len);
/* strdup that aborts on out-of-memory: allocation failure is not a recoverable state
 * for a short-lived runtime process. */
char *rc_xstrdup(const char *s);
void *rc_xmalloc(size_t n);
void *rc_xcalloc(size_t n, size_t size);
void *rc_xrealloc(void *p, size_t n);
char *rc_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parses a signal as a number, NAME or SIGNAME (case-insensitive). Returns <0 if unknown. */
int rc_parse_signal(const char *s);
/* RFC 3339 timestamp with nanoseconds in UTC, e.g. 2024-01-02T03:04:05.123456789Z. */
void rc_rfc3339_now(char *buf, size_t len);
/* CLOCK_MONOTONIC in milliseconds, for deadlines. */
int64_t rc_now_ms(void);
/* Fails unless descriptors 3 .. 3+n-1 (the ones --preserve-fds n hands on) are the
 * caller's: open, and not own_fd (runcell's own, e.g. its log; -1 for none). */
int rc_check_preserved_fds(const char *cmd, int n, int own_fd, struct rc_error *err);
/* Closes every fd >= from. */
void rc_close_fds_from(int from);
/* Closes every fd above stdio except the n listed in keep (negative entries ignored): for
 * a process that never execs, where close-on-exec does not help. */
void rc_close_fds_except(const int *keep, size_t n);
/* A detached thread running fn(arg): 0, or the error number. */
int rc_thread_start_detached(void *(*fn)(void *), void *arg);

#endif
