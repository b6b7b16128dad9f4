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

#include "runcell/utf8.h"
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

/* msg as JSON can carry it: each byte that starts no well-formed UTF-8 sequence becomes
 * U+FFFD, as Go's encoding/json writes it (jansson refuses such a string, and the line
 * with the error containerd reports would be lost). */
static char *utf8_sanitized(const char *msg) {
  size_t n = strlen(msg);
  char *out = rc_xmalloc(3 * n + 1), *o = out;
  const unsigned char *s = (const unsigned char *)msg;
  for (size_t i = 0; i < n;) {
    size_t len = s[i] < 0x80 ? 1 : rc_utf8_sequence(s + i);
    if (len) {
      memcpy(o, s + i, len);
      o += len;
      i += len;
    } else {
      memcpy(o, "\xef\xbf\xbd", 3);
      o += 3;
      i++;
    }
  }
  *o = '\0';
  return out;
}

/* msg quoted as logrus's text formatter quotes a value (Go's %q): quotes, backslashes and
 * control characters escaped, bytes that are not UTF-8 as \xNN, so that a logfmt reader
 * gets the message back whole. */
static char *go_quoted(const char *msg) {
  size_t n = strlen(msg);
  char *out = rc_xmalloc(4 * n + 3), *o = out;
  const unsigned char *s = (const unsigned char *)msg;
  *o++ = '"';
  for (size_t i = 0; i < n;) {
    unsigned char c = s[i];
    const char *named = NULL;
    switch (c) {
      case '"':
        named = "\\\"";
        break;
      case '\\':
        named = "\\\\";
        break;
      case '\a':
        named = "\\a";
        break;
      case '\b':
        named = "\\b";
        break;
      case '\f':
        named = "\\f";
        break;
      case '\n':
        named = "\\n";
        break;
      case '\r':
        named = "\\r";
        break;
      case '\t':
        named = "\\t";
        break;
      case '\v':
        named = "\\v";
        break;
    }
    if (named) {
      memcpy(o, named, 2);
      o += 2;
      i++;
      continue;
    }
    size_t len = c < 0x20 || c == 0x7f ? 0 : c < 0x80 ? 1 : rc_utf8_sequence(s + i);
    if (!len) {
      o += sprintf(o, "\\x%02x", c);
      i++;
      continue;
    }
    memcpy(o, s + i, len);
    o += len;
    i += len;
  }
  *o++ = '"';
  *o = '\0';
  return out;
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
    cleanup_free char *text = utf8_sanitized(msg);
    json_t *o = json_pack("{s:s, s:s, s:s}", "level", level_name(level), "msg", text, "time", when);
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
    cleanup_free char *quoted = go_quoted(msg);
    char *line = rc_xasprintf("time=\"%s\" level=%s msg=%s\n", when, level_name(level), quoted);
    (void)rc_write_all(log_fd, line, strlen(line));
    free(line);
  }
}
