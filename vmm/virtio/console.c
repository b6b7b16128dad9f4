/* virtio-console (virtio 1.x 5.3) with a single port and no multiport control queue: the
 * guest's hvc0, bridged to one stream socket.
 *
 * Guest to host (transmit queue): a notification makes the vCPU write the chains to the
 * socket without blocking. When the socket is full the device keeps the chain it was
 * writing (and its offset) and takes nothing more from the queue; the I/O thread waits
 * for the socket to drain and goes on.
 * Host to guest (receive queue): the I/O thread polls the socket for input only while the
 * guest has posted receive buffers, and reads straight into them. At end of file it stops
 * reading for good. So neither direction is buffered in the VMM at all.
 *
 * The I/O thread sleeps in poll() on the socket and an eventfd; the vCPUs kick the eventfd
 * when the guest posts receive buffers or a write blocks, and destroy kicks it to stop.
 *
 * Each pass over a queue takes at most one queue's worth of chains while holding the
 * device lock (see virtio_dev_serve): a guest refilling a ring from another vCPU cannot
 * keep the lock held. A transmit drain that stops at that bound leaves the rest to the
 * I/O thread, which goes on at once in its next pass (the lock let go in between). */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runcell/vmm/thread.h"
#include "virtio_dev.h"

#define RX_QUEUE 0             /* receiveq0: host to guest */
#define TX_QUEUE 1             /* transmitq0: guest to host */
#define CONSOLE_CONFIG_SIZE 12 /* le16 cols, le16 rows, le32 max_nr_ports, le32 emerg_wr */

struct console {
  int fd;
  bool is_socket; /* send with MSG_NOSIGNAL: a closed peer is an error, not a SIGPIPE */
  int wake_fd;
  pthread_t thread;
  bool thread_started;
  /* guarded by the device lock */
  bool stop;
  bool eof;        /* fd reached end of file (or failed): no more reading */
  bool out_dead;   /* writing fd failed for good: guest output is dropped from now on */
  bool tx_pending; /* tx holds a chain written up to tx_off */
  bool tx_more;    /* a drain stopped at its bound: the I/O thread takes the next chains */
  uint64_t tx_off;
  struct virtq_chain tx;
};

static void wake(const struct console *c) {
  uint64_t one = 1;
  /* a full counter (never, in practice) still wakes the thread */
  if (write(c->wake_fd, &one, sizeof(one)) < 0) return;
}

/* Writes out transmit chains until the queue is empty, the socket is full or one queue's
 * worth is done (then the I/O thread goes on). Lock held. */
static void drain_tx(struct vmm_virtio_dev *dev) {
  struct console *c = dev->model;
  struct virtq *q = &dev->queues[TX_QUEUE];
  struct rc_error err = {0};
  bool pushed = false;
  unsigned budget = q->num;
  c->tx_more = false;
  while (q->ready && virtio_dev_live(dev)) {
    if (!c->tx_pending) {
      if (budget == 0) {
        /* a vCPU (or this pass of the I/O thread) has held the lock long enough; what is
         * left is not lost: the I/O thread's next pass takes it, woken here */
        c->tx_more = true;
        wake(c);
        break;
      }
      budget--;
      int r = virtq_pop(q, dev->mem, &c->tx, &err);
      if (r == 0) break;
      if (r > 0 && c->tx.n_writable)
        r = rc_err(&err, 0, "transmit chain %u has device-writable buffers", c->tx.head);
      if (r < 0) {
        virtio_dev_fail(dev, err.msg);
        return;
      }
      c->tx_pending = true;
      c->tx_off = 0;
    }
    while (c->tx_off < c->tx.readable_len && !c->out_dead) {
      struct iovec iov[VIRTQ_MAX_SIZE];
      unsigned n = virtq_chain_iov(&c->tx, false, c->tx_off, UINT64_MAX, iov, VIRTQ_MAX_SIZE);
      struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n};
      ssize_t done = c->is_socket ? sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT)
                                  : writev(c->fd, iov, (int)n);
      if (done < 0 && errno == EINTR) continue;
      if (done < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        wake(c); /* the I/O thread waits for room and goes on */
        goto out;
      }
      if (done < 0)
        c->out_dead = true; /* the peer is gone: like an unplugged serial line */
      else
        c->tx_off += (uint64_t)done;
    }
    virtq_push(q, c->tx.head, 0);
    c->tx_pending = false;
    pushed = true;
  }
out:
  if (pushed) virtio_dev_used(dev, TX_QUEUE);
}

/* Reads fd into the guest's receive buffers until either runs out. Lock held. */
static void fill_rx(struct vmm_virtio_dev *dev) {
  struct console *c = dev->model;
  struct virtq *q = &dev->queues[RX_QUEUE];
  struct virtq_chain chain;
  struct rc_error err = {0};
  bool pushed = false;
  /* one queue's worth per call: the I/O thread's next pass looks at the queue and the
   * socket again, so nothing left here waits for anything but the lock */
  for (unsigned budget = q->num; budget > 0 && q->ready && virtio_dev_live(dev) && !c->eof;
       budget--) {
    int r = virtq_pop(q, dev->mem, &chain, &err);
    if (r == 0) break;
    if (r > 0 && chain.n_readable)
      r = rc_err(&err, 0, "receive chain %u has device-readable buffers", chain.head);
    if (r < 0) {
      virtio_dev_fail(dev, err.msg);
      return;
    }
    struct iovec iov[VIRTQ_MAX_SIZE];
    unsigned n = virtq_chain_iov(&chain, true, 0, UINT64_MAX, iov, VIRTQ_MAX_SIZE);
    ssize_t got = 0;
    if (n > 0) {
      struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n};
      do {
        got = c->is_socket ? recvmsg(c->fd, &msg, MSG_DONTWAIT) : readv(c->fd, iov, (int)n);
      } while (got < 0 && errno == EINTR);
      if (got <= 0) {
        virtq_unpop(q); /* served later, when there is input */
        if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) c->eof = true;
        break;
      }
    }
    virtq_push(q, chain.head, (uint32_t)got);
    pushed = true;
  }
  if (pushed) virtio_dev_used(dev, RX_QUEUE);
}

static void *io_thread(void *arg) {
  struct vmm_virtio_dev *dev = arg;
  struct console *c = dev->model;
  for (;;) {
    struct rc_error err = {0};
    pthread_mutex_lock(&dev->lock);
    if (c->stop) {
      pthread_mutex_unlock(&dev->lock);
      break;
    }
    bool live = virtio_dev_live(dev);
    int avail = live && !c->eof ? virtq_has_avail(&dev->queues[RX_QUEUE], &err) : 0;
    if (avail < 0) virtio_dev_fail(dev, err.msg);
    bool want_in = avail > 0;
    /* the socket's room matters only for a chain of a queue still in use: a chain of a
     * disabled queue was dropped (console_queue_disabled), and waiting for POLLOUT with
     * nothing to write would wake this thread on every call, a busy loop */
    bool tx_live = live && dev->queues[TX_QUEUE].ready;
    bool want_out = tx_live && c->tx_pending && !c->out_dead;
    bool more_out = tx_live && c->tx_more && !c->tx_pending; /* no wait: go on at once */
    pthread_mutex_unlock(&dev->lock);

    struct pollfd pfd[2] = {
        {.fd = c->wake_fd, .events = POLLIN},
        {.fd = want_in || want_out ? c->fd : -1,
         .events = (short)((want_in ? POLLIN : 0) | (want_out ? POLLOUT : 0))},
    };
    if (poll(pfd, 2, more_out ? 0 : -1) < 0) continue; /* EINTR: look again */
    if (pfd[0].revents & POLLIN) {
      uint64_t n;
      if (read(c->wake_fd, &n, sizeof(n)) < 0) n = 0;
    }
    short ready = pfd[1].revents;
    if (!ready && !more_out) continue;
    pthread_mutex_lock(&dev->lock);
    if (!c->stop) {
      if (want_in && (ready & (POLLIN | POLLHUP | POLLERR))) fill_rx(dev);
      if (more_out || (want_out && (ready & (POLLOUT | POLLHUP | POLLERR)))) drain_tx(dev);
    }
    pthread_mutex_unlock(&dev->lock);
  }
  return NULL;
}

static void console_notify(struct vmm_virtio_dev *dev, unsigned q) {
  if (q == TX_QUEUE)
    drain_tx(dev);
  else
    wake(dev->model); /* new receive buffers: the I/O thread may read again */
}

static void console_reset(struct vmm_virtio_dev *dev) {
  struct console *c = dev->model;
  c->tx_pending = false; /* the chain belonged to the queues just reset */
  c->tx_off = 0;
  c->tx_more = false;
}

/* The receive queue holds nothing between passes; the transmit queue may hold a chain
 * half written: its rest is dropped, as a reset would, and its head never goes back (the
 * driver gave the ring up; a new one must not see it). */
static void console_queue_disabled(struct vmm_virtio_dev *dev, unsigned q) {
  if (q == TX_QUEUE) console_reset(dev);
}

static void console_destroy(struct vmm_virtio_dev *dev) {
  struct console *c = dev->model;
  if (!c) return;
  if (c->thread_started) {
    pthread_mutex_lock(&dev->lock);
    c->stop = true;
    pthread_mutex_unlock(&dev->lock);
    wake(c);
    pthread_join(c->thread, NULL);
  }
  if (c->wake_fd >= 0) close(c->wake_fd);
  if (c->fd >= 0) close(c->fd);
  free(c);
}

static const struct virtio_dev_ops console_ops = {.name = "virtio-console",
                                                  .notify = console_notify,
                                                  .reset = console_reset,
                                                  .queue_disabled = console_queue_disabled,
                                                  .destroy = console_destroy};

/* Starts the I/O thread with every signal blocked: signals meant for the vCPUs (or the
 * process) must not land on it. */
static int start_thread(struct vmm_virtio_dev *dev, struct rc_error *err) {
  struct console *c = dev->model;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  /* it moves guest-written bytes: it starts without capabilities */
  int r = vmm_thread_start(&c->thread, io_thread, dev, err);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r < 0) return rc_err_wrap(err, "virtio-console: start the I/O thread");
  c->thread_started = true;
  pthread_setname_np(c->thread, "virtio-console");
  return 0;
}

int vmm_virtio_console_create(const struct vmm_guest_mem *mem, struct vmm_irq_line irq, int fd,
                              struct vmm_virtio_dev **out, struct rc_error *err) {
  *out = NULL;
  struct console *c = calloc(1, sizeof(*c));
  if (!c) {
    close(fd);
    return rc_err(err, errno, "virtio-console: allocate");
  }
  c->fd = fd;
  c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct stat st;
  int fl = fcntl(fd, F_GETFL);
  if (c->wake_fd < 0 || fstat(fd, &st) < 0 || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    rc_err(err, errno, "virtio-console: set up fd %d", fd);
    if (c->wake_fd >= 0) close(c->wake_fd);
    close(fd);
    free(c);
    return -1;
  }
  c->is_socket = S_ISSOCK(st.st_mode);
  struct vmm_virtio_dev *dev;
  if (virtio_dev_new(mem, irq, &console_ops, VIRTIO_ID_CONSOLE, 0, 2, &dev, err) < 0) {
    close(c->wake_fd);
    close(fd);
    free(c);
    return -1;
  }
  dev->model = c;
  dev->config_len = CONSOLE_CONFIG_SIZE; /* no size, no multiport, no emergency write */
  if (start_thread(dev, err) < 0) {
    vmm_virtio_dev_destroy(dev);
    return -1;
  }
  *out = dev;
  return 0;
}
