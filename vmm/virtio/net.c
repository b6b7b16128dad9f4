/* virtio-net (virtio 1.x 5.1) on a tap device: one receive and one transmit queue, no
 * control queue and no offloads, so every buffer starts with the plain 12-byte
 * virtio_net_hdr_v1 (VERSION_1 makes num_buffers part of it) and the tap carries bare
 * Ethernet frames (no IFF_VNET_HDR, no packet information).
 *
 * Guest to host (transmit queue): a notification makes the vCPU write each chain's frame,
 * after its header, to the tap with one writev. A tap never holds a frame back: when its
 * queue is full the frame is dropped, as a wire would, so transmit needs no state.
 * Host to guest (receive queue): the I/O thread polls the tap only while the guest has
 * posted receive buffers and reads each frame straight into one chain, behind a header it
 * writes itself; a frame longer than the chain is cut by the tap (the driver sizes its
 * buffers for the MTU it was given). Nothing is ever buffered in the VMM.
 *
 * The I/O thread sleeps in poll() on the tap and an eventfd the vCPUs kick when the guest
 * posts receive buffers; destroy kicks it to stop. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runcell/vmm/thread.h"
#include "virtio_dev.h"

#define RX_QUEUE 0 /* receiveq1: host to guest */
#define TX_QUEUE 1 /* transmitq1: guest to host */
/* struct virtio_net_hdr_v1 without offloads: flags, gso_type, hdr_len, gso_size,
 * csum_start, csum_offset, num_buffers. */
#define NET_HDR_SIZE 12u
/* struct virtio_net_config up to mtu: mac[6], le16 status, le16 max_virtqueue_pairs,
 * le16 mtu. */
#define NET_CONFIG_SIZE 12u
/* The largest frame the tap takes or gives: 64 KiB of payload plus the Ethernet header. */
#define NET_FRAME_MAX (65535u + 14u)

struct net {
  int tap_fd;
  int wake_fd;
  pthread_t thread;
  bool thread_started;
  bool stop; /* guarded by the device lock */
  /* counters, guarded by the device lock (tests and the fuzzer read them) */
  uint64_t tx_frames, tx_dropped, rx_frames;
};

static void wake(const struct net *n) {
  uint64_t one = 1;
  if (write(n->wake_fd, &one, sizeof(one)) < 0) return; /* a full counter still wakes */
}

/* One transmit chain: the header is checked for size only (no offloads were offered, so
 * its fields carry nothing the device must honour), the frame after it goes to the tap. */
static int64_t serve_tx(struct vmm_virtio_dev *dev, const struct virtq_chain *chain,
                        struct rc_error *err) {
  struct net *n = dev->model;
  if (chain->n_writable)
    return rc_err(err, 0, "transmit chain %u has device-writable buffers", chain->head);
  if (chain->readable_len < NET_HDR_SIZE)
    return rc_err(err, 0, "transmit chain %u: %u bytes, shorter than the %u-byte header",
                  chain->head, chain->readable_len, NET_HDR_SIZE);
  uint64_t len = chain->readable_len - NET_HDR_SIZE;
  if (len == 0 || len > NET_FRAME_MAX) {
    n->tx_dropped++; /* the tap would refuse it; the guest gets its buffer back */
    return 0;
  }
  struct iovec iov[VIRTQ_MAX_SIZE];
  unsigned cnt = virtq_chain_iov(chain, false, NET_HDR_SIZE, len, iov, VIRTQ_MAX_SIZE);
  ssize_t done;
  do {
    done = writev(n->tap_fd, iov, (int)cnt);
  } while (done < 0 && errno == EINTR);
  if (done < 0)
    n->tx_dropped++; /* full, down or gone: a lost frame, which the protocols above expect */
  else
    n->tx_frames++;
  return 0;
}

/* Reads frames from the tap into the guest's receive chains until either runs out, or
 * one queue's worth is done: a guest reposting buffers as fast as a busy tap fills them
 * would otherwise keep the device lock, which its vCPUs need too. What is left waits for
 * the I/O thread's next pass, which polls the queue and the tap again. Lock held. */
static void fill_rx(struct vmm_virtio_dev *dev) {
  struct net *n = dev->model;
  struct virtq *q = &dev->queues[RX_QUEUE];
  struct virtq_chain chain;
  struct rc_error err = {0};
  bool pushed = false;
  for (unsigned budget = q->num; budget > 0 && q->ready && virtio_dev_live(dev); budget--) {
    int r = virtq_pop(q, dev->mem, &chain, &err);
    if (r == 0) break;
    if (r > 0 && chain.n_readable)
      r = rc_err(&err, 0, "receive chain %u has device-readable buffers", chain.head);
    if (r > 0 && chain.writable_len < NET_HDR_SIZE)
      r = rc_err(&err, 0, "receive chain %u: %u bytes, no room for the %u-byte header", chain.head,
                 chain.writable_len, NET_HDR_SIZE);
    if (r < 0) {
      virtio_dev_fail(dev, err.msg);
      break;
    }
    struct iovec iov[VIRTQ_MAX_SIZE];
    unsigned cnt = virtq_chain_iov(&chain, true, NET_HDR_SIZE, UINT64_MAX, iov, VIRTQ_MAX_SIZE);
    ssize_t got;
    if (cnt == 0) {
      /* a chain with room for the header only: take the frame off the tap all the same
       * (a read of 0 bytes would leave it there) and hand the driver an empty one, which
       * it drops */
      uint8_t discard[1];
      got = read(n->tap_fd, discard, sizeof(discard));
      if (got > 0) got = 0;
    } else {
      do {
        got = readv(n->tap_fd, iov, (int)cnt);
      } while (got < 0 && errno == EINTR);
    }
    if (got < 0) {
      virtq_unpop(q); /* served later, when a frame is there */
      break;
    }
    /* num_buffers = 1 (le16 at offset 10); everything else zero: no offload flags */
    uint8_t hdr[NET_HDR_SIZE] = {0};
    hdr[10] = 1;
    virtq_chain_write(&chain, 0, hdr, sizeof(hdr));
    virtq_push(q, chain.head, NET_HDR_SIZE + (uint32_t)got);
    n->rx_frames++;
    pushed = true;
  }
  if (pushed) virtio_dev_used(dev, RX_QUEUE);
}

static void *io_thread(void *arg) {
  struct vmm_virtio_dev *dev = arg;
  struct net *n = dev->model;
  for (;;) {
    struct rc_error err = {0};
    pthread_mutex_lock(&dev->lock);
    if (n->stop) {
      pthread_mutex_unlock(&dev->lock);
      break;
    }
    int avail = virtio_dev_live(dev) ? virtq_has_avail(&dev->queues[RX_QUEUE], &err) : 0;
    if (avail < 0) virtio_dev_fail(dev, err.msg);
    pthread_mutex_unlock(&dev->lock);

    struct pollfd pfd[2] = {{.fd = n->wake_fd, .events = POLLIN},
                            {.fd = avail > 0 ? n->tap_fd : -1, .events = POLLIN}};
    if (poll(pfd, 2, -1) < 0) continue; /* EINTR: look again */
    if (pfd[0].revents & POLLIN) {
      uint64_t v;
      if (read(n->wake_fd, &v, sizeof(v)) < 0) v = 0;
    }
    if (!(pfd[1].revents & (POLLIN | POLLERR | POLLHUP))) continue;
    pthread_mutex_lock(&dev->lock);
    if (!n->stop) fill_rx(dev);
    pthread_mutex_unlock(&dev->lock);
    if (pfd[1].revents & (POLLERR | POLLHUP) && !(pfd[1].revents & POLLIN))
      poll(NULL, 0, 10); /* a tap in trouble: do not spin on it */
  }
  return NULL;
}

static void net_notify(struct vmm_virtio_dev *dev, unsigned q) {
  if (q == TX_QUEUE)
    virtio_dev_serve(dev, TX_QUEUE, serve_tx);
  else
    wake(dev->model); /* new receive buffers: the I/O thread may read again */
}

static void net_destroy(struct vmm_virtio_dev *dev) {
  struct net *n = dev->model;
  if (!n) return;
  if (n->thread_started) {
    pthread_mutex_lock(&dev->lock);
    n->stop = true;
    pthread_mutex_unlock(&dev->lock);
    wake(n);
    pthread_join(n->thread, NULL);
  }
  if (n->wake_fd >= 0) close(n->wake_fd);
  if (n->tap_fd >= 0) close(n->tap_fd);
  free(n);
}

static const struct virtio_dev_ops net_ops = {
    .name = "virtio-net", .notify = net_notify, .destroy = net_destroy};

/* Starts the I/O thread with every signal blocked: signals meant for the vCPUs (or the
 * process) must not land on it. */
static int start_thread(struct vmm_virtio_dev *dev, struct rc_error *err) {
  struct net *n = dev->model;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  /* it moves guest-written bytes: it starts without capabilities */
  int r = vmm_thread_start(&n->thread, io_thread, dev, err);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r < 0) return rc_err_wrap(err, "virtio-net: start the I/O thread");
  n->thread_started = true;
  pthread_setname_np(n->thread, "virtio-net");
  return 0;
}

int vmm_virtio_net_create(const struct vmm_guest_mem *mem, struct vmm_irq_line irq, int tap_fd,
                          const uint8_t mac[6], uint16_t mtu, struct vmm_virtio_dev **out,
                          struct rc_error *err) {
  *out = NULL;
  if (mtu < 68) {
    close(tap_fd);
    return rc_err(err, EINVAL, "virtio-net: MTU %u is below IPv4's minimum of 68", mtu);
  }
  struct net *n = calloc(1, sizeof(*n));
  if (!n) {
    close(tap_fd);
    return rc_err(err, errno, "virtio-net: allocate");
  }
  n->tap_fd = tap_fd;
  n->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int fl = fcntl(tap_fd, F_GETFL);
  if (n->wake_fd < 0 || fl < 0 || fcntl(tap_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    rc_err(err, errno, "virtio-net: set up tap fd %d", tap_fd);
    if (n->wake_fd >= 0) close(n->wake_fd);
    close(tap_fd);
    free(n);
    return -1;
  }
  uint64_t features = (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_MTU) |
                      (1ull << VIRTIO_NET_F_STATUS) | (1ull << VIRTIO_RING_F_INDIRECT_DESC);
  struct vmm_virtio_dev *dev;
  if (virtio_dev_new(mem, irq, &net_ops, VIRTIO_ID_NET, features, 2, &dev, err) < 0) {
    close(n->wake_fd);
    close(tap_fd);
    free(n);
    return -1;
  }
  dev->model = n;
  uint16_t status = htole16(VIRTIO_NET_S_LINK_UP), pairs = htole16(1), le_mtu = htole16(mtu);
  memcpy(dev->config, mac, 6);
  memcpy(dev->config + 6, &status, 2);
  memcpy(dev->config + 8, &pairs, 2);
  memcpy(dev->config + 10, &le_mtu, 2);
  dev->config_len = NET_CONFIG_SIZE;
  if (start_thread(dev, err) < 0) {
    vmm_virtio_dev_destroy(dev);
    return -1;
  }
  *out = dev;
  return 0;
}
