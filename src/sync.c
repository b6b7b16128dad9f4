#include "runcell/sync.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
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

int rc_sync_send_fd(int fd, enum rc_sync_type type, int passfd, struct rc_error *err) {
  struct rc_sync_msg m = {.type = type};
  struct iovec iov = {.iov_base = &m, .iov_len = offsetof(struct rc_sync_msg, msg) + 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof(control));
  struct msghdr mh = {.msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = control.buf,
                      .msg_controllen = sizeof(control.buf)};
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &passfd, sizeof(int));
  ssize_t n;
  do n = sendmsg(fd, &mh, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return rc_err(err, errno, "sync send");
  return 0;
}

int rc_sync_recv_fd(int fd, const char *while_doing, int *passfd, struct rc_error *err) {
  *passfd = -1;
  struct rc_sync_msg m;
  memset(&m, 0, sizeof(m));
  struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof(control));
  struct msghdr mh = {.msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = control.buf,
                      .msg_controllen = sizeof(control.buf)};
  ssize_t n;
  do n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return rc_err(err, errno, "%s: sync receive", while_doing);
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int)))
      memcpy(passfd, CMSG_DATA(c), sizeof(int));
  if (n == 0) return rc_err(err, 0, "%s: " RC_SYNC_HUNG_UP, while_doing);
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

int rc_sync_recv(int fd, const char *while_doing, struct rc_error *err) {
  int passfd = -1;
  int t = rc_sync_recv_fd(fd, while_doing, &passfd, err);
  if (passfd >= 0) close(passfd); /* nobody asked for one */
  return t;
}

int rc_sync_expect(int fd, enum rc_sync_type type, const char *while_doing, struct rc_error *err) {
  int t = rc_sync_recv(fd, while_doing, err);
  if (t < 0) return t;
  if (t != (int)type)
    return rc_err(err, 0, "%s: unexpected sync message %d (wanted %d)", while_doing, t, (int)type);
  return 0;
}
