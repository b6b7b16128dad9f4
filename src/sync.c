#include "runcell/sync.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runcell/util.h"

int rc_sync_send(int fd, enum rc_sync_type type, struct rc_error *err) {
  struct rc_sync_msg m = {.type = type};
  ssize_t n;
  do n = send(fd, &m, offsetof(struct rc_sync_msg, msg) + 1, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return rc_err(err, errno, "sync send");
  return 0;
}

int rc_sync_send_error(int fd, const struct rc_error *e) {
  struct rc_sync_msg m = {.type = RC_SYNC_ERROR, .code = e->code};
  snprintf(m.msg, sizeof(m.msg), "%s", e->msg);
  ssize_t n;
  do n = send(fd, &m, offsetof(struct rc_sync_msg, msg) + strlen(m.msg) + 1, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -1 : 0;
}

int rc_sync_recv(int fd, const char *while_doing, struct rc_error *err) {
  struct rc_sync_msg m;
  memset(&m, 0, sizeof(m));
  ssize_t n;
  do n = recv(fd, &m, sizeof(m), 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return rc_err(err, errno, "%s: sync receive", while_doing);
  if (n == 0) return rc_err(err, 0, "%s: container init exited unexpectedly", while_doing);
  if ((size_t)n < offsetof(struct rc_sync_msg, msg))
    return rc_err(err, 0, "%s: short sync message", while_doing);
  if (m.type == RC_SYNC_ERROR) {
    m.msg[sizeof(m.msg) - 1] = '\0';
    /* The child already formatted errno into its message; keep its code for callers. */
    snprintf(err->msg, sizeof(err->msg), "%s", m.msg);
    err->code = m.code;
    return RC_SYNC_PEER_ERROR;
  }
  return (int)m.type;
}

int rc_sync_expect(int fd, enum rc_sync_type type, const char *while_doing, struct rc_error *err) {
  int t = rc_sync_recv(fd, while_doing, err);
  if (t < 0) return t;
  if (t != (int)type)
    return rc_err(err, 0, "%s: unexpected sync message %d (wanted %d)", while_doing, t, (int)type);
  return 0;
}
