/* The runtime log. containerd's shim passes --log <bundle>/log.json --log-format json and,
 * when a command fails, reports the msg of the last "level":"error" line; its "time" must
 * be valid RFC 3339 or the message is dropped, so every line carries one. */
#include "runcell/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runcell/util.h"

static int log_fd = -1;
static bool log_as_json;
static bool log_debug;

int rc_log_init(const char *path, const char *format, bool debug) {
  log_debug = debug;
  log_as_json = format && strcmp(format, "json") == 0;
  if (!path || !*path) return 0;
  /* O_APPEND: the shim and several runcell invocations share one log file. */
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  /* Kept well above the descriptors a caller hands on with --preserve-fds (3, 4, ...):
   * opened as the lowest free one, the log would stand in for a preserved descriptor the
   * caller did not have open, and reach the container. */
  log_fd = fcntl(fd, F_DUPFD_CLOEXEC, RC_LOG_FD_MIN);
  if (log_fd < 0)
    log_fd = fd;
  else
    close(fd);
  return 0;
}

int rc_log_fd(void) {
  return log_fd;
}
bool rc_log_json(void) {
  return log_as_json;
}

static const char *level_name(enum rc_log_level level) {
  switch (level) {
    case RC_LOG_DEBUG:
      return "debug";
    case RC_LOG_INFO:
      return "info";
    case RC_LOG_WARN:
      return "warning";
    case RC_LOG_ERROR:
      return "error";
  }
  return "info";
}

void rc_log(enum rc_log_level level, const char *fmt, ...) {
  if (level == RC_LOG_DEBUG && !log_debug) return;
  char msg[RC_ERROR_MAX + 256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  char when[64];
  rc_rfc3339_now(when, sizeof(when));

  if (log_fd < 0) {
    /* Without a log file, warnings (and info and debug with --debug) go to stderr; errors
     * are printed by the CLI itself exactly once. */
    if (level == RC_LOG_WARN || (log_debug && level != RC_LOG_ERROR))
      dprintf(2, "runcell: %s: %s\n", level_name(level), msg);
    return;
  }
  if (log_as_json) {
    json_t *o = json_pack("{s:s, s:s, s:s}", "level", level_name(level), "msg", msg, "time", when);
    if (!o) return;
    char *line = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!line) return;
    size_t n = strlen(line);
    line = rc_xrealloc(line, n + 2);
    line[n] = '\n';
    line[n + 1] = '\0';
    (void)rc_write_all(log_fd, line, n + 1);
    free(line);
  } else {
    char *line = rc_xasprintf("time=\"%s\" level=%s msg=\"%s\"\n", when, level_name(level), msg);
    (void)rc_write_all(log_fd, line, strlen(line));
    free(line);
  }
}
