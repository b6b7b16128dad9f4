/* The caller's end of a microVM's control socket (include/runcell/microvm_control.h):
 * connecting through the state directory, requests with their fds, replies decoded with
 * the agent protocol's bounds-checked codec, and `ps`. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "runcell/microvm_control.h"
#include "runcell/util.h"

/* How long a request waits for the VMM's answer (the agent answers ps and exec at once;
 * a software-emulated lane is slow). */
#define REPLY_TIMEOUT_MS 60000

int rc_vmctl_connect(const char *root, const char *id, struct rc_error *err) {
  cleanup_free char *dir = rc_xasprintf("%s/%s", root, id);
  cleanup_close int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) {
    if (errno == ENOENT) return rc_err(err, 0, "container does not exist");
    return rc_err(err, errno, "open %s", dir);
  }
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return rc_err(err, errno, "microVM control socket");
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dirfd, RC_VMCTL_SOCKET);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    int e = errno;
    close(fd);
    /* no socket, or nobody serving it: the VMM is gone */
    if (e == ENOENT || e == ECONNREFUSED) return rc_err(err, 0, "container is not running");
    return rc_err(err, e, "connect to the microVM's control socket");
  }
  return fd;
}

int rc_vmctl_send(int fd, const struct agent_msg *m, const int *fds, size_t nfds,
                  struct rc_error *err) {
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int) * 3)];
  } ctl;
  if (nfds > 3) return rc_err(err, EINVAL, "control request: %zu fds", nfds);
  struct iovec iov = {.iov_base = (void *)m->bytes, .iov_len = m->len};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds) {
    memset(&ctl, 0, sizeof(ctl));
    mh.msg_control = ctl.buf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(h), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do n = sendmsg(fd, &mh, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EPIPE || errno == ECONNRESET) return rc_err(err, 0, "container is not running");
    return rc_err(err, errno, "send to the microVM's control socket");
  }
  return 0;
}

int rc_vmctl_recv(int fd, struct agent_msg *m, struct agent_frame *f, struct rc_error *err) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r;
  while ((r = poll(&p, 1, REPLY_TIMEOUT_MS)) < 0 && errno == EINTR) {
  }
  if (r == 0) return rc_err(err, ETIMEDOUT, "no answer from the microVM");
  ssize_t n;
  bool reset = false;
  for (;;) {
    n = recv(fd, m->bytes, sizeof(m->bytes), MSG_TRUNC);
    if (n >= 0 || errno == EINTR) {
      if (n >= 0) break;
      continue;
    }
    /* The VMM closed its end with a message of ours unread (a RESIZE or SIGNAL racing
     * an exec's end): the kernel reports that as ECONNRESET once, ahead of what the VMM
     * sent before closing (EXITED), which is still queued. Read on. */
    if (errno != ECONNRESET || reset) break;
    reset = true;
  }
  if (n < 0) return rc_err(err, errno, "read the microVM's control socket");
  /* the VMM went away with the guest */
  if (n == 0) return rc_err(err, 0, "container is not running");
  if ((size_t)n > sizeof(m->bytes) || (size_t)n < AGENT_FRAME_HEADER_SIZE)
    return rc_err(err, EPROTO, "microVM control: a %zd-byte message", n);
  uint32_t len = 0;
  if (agent_header_decode(m->bytes, &f->type, &len, err) < 0) return -1;
  if (len != (size_t)n - AGENT_FRAME_HEADER_SIZE)
    return rc_err(err, EPROTO, "microVM control: length %u in a %zd-byte message", len, n);
  f->length = len;
  f->payload = m->bytes + AGENT_FRAME_HEADER_SIZE;
  m->len = (size_t)n;
  return 0;
}

int rc_vmctl_reply(const struct agent_frame *f, struct agent_cursor *result, struct rc_error *err) {
  if (f->type != RC_VMCTL_REPLY)
    return rc_err(err, EPROTO, "microVM control: message 0x%04x where a reply belongs", f->type);
  agent_cursor_init(result, f->payload, f->length);
  uint32_t errnum = agent_get_u32(result);
  char message[AGENT_MAX_MESSAGE + 1];
  if (!agent_get_str_into(result, message, sizeof(message)) || result->bad)
    return rc_err(err, EPROTO, "microVM control: malformed reply");
  if (errnum == 0) return 0;
  agent_make_printable(message); /* shown as it is */
  rc_err(err, 0, "%s", message);
  err->code = errnum < 4096 ? (int)errnum : EIO;
  return -1;
}

/* Names the request in an error, unless the VMM's reply already did: the VMM wraps its
 * handlers' errors in the request's name ("stats: ..."), and wrapping again read
 * "stats: stats: ...". */
static int wrap_request(struct rc_error *err, const char *name) {
  size_t n = strlen(name);
  if (strncmp(err->msg, name, n) == 0 && err->msg[n] == ':') return -1;
  return rc_err_wrap(err, "%s", name);
}

int rc_microvm_ps(const char *root, const char *id, struct agent_ps_reply *out,
                  struct rc_error *err) {
  memset(out, 0, sizeof(*out));
  cleanup_close int fd = rc_vmctl_connect(root, id, err);
  if (fd < 0) return -1;
  cleanup_free struct agent_msg *m = rc_xcalloc(1, sizeof(*m));
  agent_msg_begin(m, RC_VMCTL_PS);
  struct agent_frame f = {0};
  struct agent_cursor result = {0};
  if (agent_msg_end(m, err) < 0 || rc_vmctl_send(fd, m, NULL, 0, err) < 0 ||
      rc_vmctl_recv(fd, m, &f, err) < 0 || rc_vmctl_reply(&f, &result, err) < 0)
    return wrap_request(err, "ps");
  /* the rest is a PS_REPLY payload, which the VMM checked; check it again all the same */
  struct agent_frame ps = {.type = AGENT_MSG_PS_REPLY,
                           .length = (uint32_t)(result.len - result.off),
                           .payload = result.p + result.off};
  if (agent_decode_ps_reply(&ps, out, err) < 0) return wrap_request(err, "ps");
  return 0;
}

/* One request with a payload-less or u64 body, and its REPLY's result. */
static int simple_request(const char *root, const char *id, uint16_t type, const uint64_t *arg,
                          struct agent_msg *m, struct agent_cursor *result, struct rc_error *err) {
  int fd = rc_vmctl_connect(root, id, err);
  if (fd < 0) return -1;
  agent_msg_begin(m, type);
  if (arg) agent_put_u64(m, *arg);
  struct agent_frame f = {0};
  int r = agent_msg_end(m, err) < 0 || rc_vmctl_send(fd, m, NULL, 0, err) < 0 ||
                  rc_vmctl_recv(fd, m, &f, err) < 0 || rc_vmctl_reply(&f, result, err) < 0
              ? -1
              : 0;
  close(fd);
  return r;
}

int rc_microvm_set_paused(const char *root, const char *id, bool paused, struct rc_error *err) {
  cleanup_free struct agent_msg *m = rc_xcalloc(1, sizeof(*m));
  struct agent_cursor result = {0};
  if (simple_request(root, id, paused ? RC_VMCTL_PAUSE : RC_VMCTL_RESUME, NULL, m, &result, err) <
      0)
    return wrap_request(err, paused ? "pause" : "resume");
  return 0;
}

int rc_microvm_memory(const char *root, const char *id, uint64_t guest_bytes, uint64_t *ram,
                      uint64_t *target, uint64_t *actual, struct rc_error *err) {
  cleanup_free struct agent_msg *m = rc_xcalloc(1, sizeof(*m));
  struct agent_cursor result = {0};
  if (simple_request(root, id, RC_VMCTL_MEMORY, &guest_bytes, m, &result, err) < 0)
    return wrap_request(err, "memory");
  uint64_t v[3];
  for (int i = 0; i < 3; i++) v[i] = agent_get_u64(&result);
  if (agent_cursor_finish(&result, "memory reply", err) < 0) return -1;
  if (ram) *ram = v[0];
  if (target) *target = v[1];
  if (actual) *actual = v[2];
  return 0;
}

int rc_microvm_pids_limit(const char *root, const char *id, uint64_t limit, struct rc_error *err) {
  cleanup_free struct agent_msg *m = rc_xcalloc(1, sizeof(*m));
  struct agent_cursor result = {0};
  /* unwrapped: the VMM's words (which name the request) or the guest's (which name the
   * guest's pids.max) say enough */
  if (simple_request(root, id, RC_VMCTL_PIDS_LIMIT, &limit, m, &result, err) < 0) return -1;
  return agent_cursor_finish(&result, "pids limit reply", err);
}

int rc_microvm_stats(const char *root, const char *id, struct agent_stats *out,
                     struct rc_error *err) {
  cleanup_free struct agent_msg *m = rc_xcalloc(1, sizeof(*m));
  struct agent_cursor result = {0};
  if (simple_request(root, id, RC_VMCTL_STATS, NULL, m, &result, err) < 0)
    return wrap_request(err, "stats");
  struct agent_frame st = {.type = AGENT_MSG_STATS_REPLY,
                           .length = (uint32_t)(result.len - result.off),
                           .payload = result.p + result.off};
  if (agent_decode_stats_reply(&st, out, err) < 0) return wrap_request(err, "stats");
  return 0;
}
