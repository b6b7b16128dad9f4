/* virtio-rng (virtio 1.x 5.4): one request queue of device-writable buffers, each filled
 * from getrandom(). */
#include <errno.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <sys/random.h>

#include "virtio_dev.h"

/* How much of one request is filled: the driver asks again for more, and a guest posting
 * huge buffers cannot hold a vCPU in getrandom() for long. */
#define RNG_MAX_PER_REQUEST (64u << 10)

static int64_t serve_entropy(struct vmm_virtio_dev *dev, const struct virtq_chain *chain,
                             struct rc_error *err) {
  (void)dev;
  if (chain->n_readable)
    return rc_err(err, 0, "entropy request %u has device-readable buffers", chain->head);
  struct iovec iov[VIRTQ_MAX_SIZE];
  unsigned n = virtq_chain_iov(chain, true, 0, RNG_MAX_PER_REQUEST, iov, VIRTQ_MAX_SIZE);
  int64_t filled = 0;
  for (unsigned i = 0; i < n; i++) {
    size_t done = 0;
    while (done < iov[i].iov_len) {
      ssize_t got = getrandom((uint8_t *)iov[i].iov_base + done, iov[i].iov_len - done, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return filled + (int64_t)done; /* no entropy source: hand back what we have */
      done += (size_t)got;
    }
    filled += (int64_t)done;
  }
  return filled;
}

static void rng_notify(struct vmm_virtio_dev *dev, unsigned q) {
  virtio_dev_serve(dev, q, serve_entropy);
}

static const struct virtio_dev_ops rng_ops = {.name = "virtio-rng", .notify = rng_notify};

int vmm_virtio_rng_create(const struct vmm_guest_mem *mem, struct vmm_irq_line irq,
                          struct vmm_virtio_dev **out, struct rc_error *err) {
  return virtio_dev_new(mem, irq, &rng_ops, VIRTIO_ID_RNG, 1ull << VIRTIO_RING_F_INDIRECT_DESC, 1,
                        out, err);
}
