/* libFuzzer target: the cell kernel's FUSE request handler. Requests come from the kernel,
 * but the handler checks the numbers in them like any other input; whatever arrives, it
 * must not crash, leak, hang or write a malformed reply.
 *
 * The "fuse fd" is one end of a SOCK_SEQPACKET socketpair: like /dev/fuse, one read()
 * returns one whole message and each writev() is one reply. The input is a sequence of
 * requests, each as long as its fuse_in_header.len says (a length of 0 or one past the
 * end takes the rest of the input), so a seed can open a file and then read it. Each
 * request is handled in turn and its replies checked; a handler answer of -1 ("the
 * filesystem is gone") ends the sequence, as it ends the cell kernel's loop. The cgroup
 * does not exist (every limit reads as 0) and the cell's init is this process. */
#include <fcntl.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runcell/views.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLY_BUFFER (2u << 20)
#define SOCKET_BUFFER (4 << 20)

static char reply_buf[REPLY_BUFFER];

/* Reads every reply the handler wrote to the request req (n bytes): each must be one whole
 * fuse_out_header message answering it, and a read's data no more than was asked for. */
static void drain(int fd, const uint8_t *req, size_t n) {
  struct fuse_in_header in = {0};
  memcpy(&in, req, n < sizeof(in) ? n : sizeof(in));
  for (;;) {
    ssize_t got = recv(fd, reply_buf, sizeof(reply_buf), MSG_DONTWAIT | MSG_TRUNC);
    if (got < 0) return;
    struct fuse_out_header h;
    if ((size_t)got < sizeof(h) || (size_t)got > sizeof(reply_buf)) abort();
    memcpy(&h, reply_buf, sizeof(h));
    /* an OPEN may be preceded by the size hint (views_fuse.c store_size_hint): one byte
     * stored for the node it opens */
    if (h.unique == 0 && h.error == FUSE_NOTIFY_STORE) {
      struct fuse_notify_store_out st;
      if (in.opcode != FUSE_OPEN || (size_t)got != sizeof(h) + sizeof(st) + 1) abort();
      memcpy(&st, reply_buf + sizeof(h), sizeof(st));
      if (st.nodeid != in.nodeid || st.size != 1 || h.len != (uint32_t)got) abort();
      continue;
    }
    if (h.len != (uint32_t)got || h.unique != in.unique || h.error > 0 ||
        (h.error < 0 && (size_t)got != sizeof(h)))
      abort();
    struct fuse_read_in read_in;
    if (in.opcode == FUSE_READ && h.error == 0 && n >= sizeof(in) + sizeof(read_in)) {
      memcpy(&read_in, req + sizeof(in), sizeof(read_in));
      if ((size_t)got - sizeof(h) > read_in.size) abort();
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) abort();
  int bufsize = SOCKET_BUFFER;
  /* room for the largest reply (a view is at most 1 MiB); non-blocking, so that a reply
   * that does not fit, or a read with nothing to read, cannot hang the handler */
  (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &bufsize, sizeof(bufsize));
  (void)setsockopt(sv[1], SOL_SOCKET, SO_RCVBUFFORCE, &bufsize, sizeof(bufsize));
  if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0) abort();
  struct rc_views_server *s = rc_views_server_new(sv[0], "/runcell-fuzz/no-such-cgroup", getpid());
  for (size_t at = 0; at < size;) {
    size_t left = size - at;
    uint32_t len = 0;
    memcpy(&len, data + at, left < sizeof(len) ? left : sizeof(len));
    size_t n = len && len <= left ? len : left;
    if (send(sv[1], data + at, n, 0) != (ssize_t)n) break; /* larger than the socket takes */
    at += n;
    int r = rc_views_server_handle(s);
    drain(sv[1], data + at - n, n);
    if (r < 0) break;
  }
  rc_views_server_free(s);
  close(sv[0]);
  close(sv[1]);
  return 0;
}
