/* What the virtio-mmio transport (mmio.c) shares with the device models (blk.c,
 * console.c, rng.c): the common device state, and the hooks a model provides.
 *
 * Locking: dev->lock guards everything in struct vmm_virtio_dev and the model's own
 * state. The transport takes it for every MMIO access (vCPU threads) and calls the hooks
 * with it held; a model's own thread (the console's I/O thread) takes it before touching
 * a queue. The VMM's main thread takes it with virtio_dev_host_lock, which a vCPU serving
 * a queue makes way for between two requests (virtio_dev_serve). */
#ifndef RUNCELL_VMM_VIRTIO_DEV_H
#define RUNCELL_VMM_VIRTIO_DEV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "runcell/vmm/virtio.h"
#include "virtqueue.h"

/* virtio-balloon has the most: inflate, deflate, stats, (free page hints), reporting */
#define VIRTIO_MAX_QUEUES 5
#define VIRTIO_CONFIG_MAX 64
#define VIRTIO_FAULT_MAX 512

struct virtio_dev_ops {
  const char *name;
  /* The driver made buffers available on queue q (the device is DRIVER_OK, not broken and
   * the queue ready). Also called for every ready queue when the driver sets DRIVER_OK,
   * for buffers posted before. Lock held. */
  void (*notify)(struct vmm_virtio_dev *dev, unsigned q);
  /* The device was reset (or broken): drop what the model holds from the queues. Lock
   * held; may be NULL. */
  void (*reset)(struct vmm_virtio_dev *dev);
  /* The driver wrote QueueReady = 0 on queue q, which was ready: drop what the model holds
   * from it (a chain half written, a buffer kept for later), so that nothing is pushed
   * into the ring the driver may set up next and no thread waits on its behalf. Lock
   * held; may be NULL (a model that keeps nothing between notifications). */
  void (*queue_disabled)(struct vmm_virtio_dev *dev, unsigned q);
  /* Stops the model's threads and frees its resources; the transport frees dev. No lock
   * held; may be NULL. */
  void (*destroy)(struct vmm_virtio_dev *dev);
  /* The driver wrote size bytes (1, 2, 4 or 8, within config_len) at offset off of the
   * configuration space: the model validates and applies them (the balloon's `actual`).
   * Lock held; NULL keeps the configuration read-only. */
  void (*config_write)(struct vmm_virtio_dev *dev, uint32_t off, const void *data, uint32_t size);
};

struct vmm_virtio_dev {
  pthread_mutex_t lock;
  /* The main thread's turn (virtio_dev_host_lock): a glibc mutex hands nothing over, so a
   * vCPU that drops the lock and takes it again a few microseconds later, or a second
   * vCPU, wins it over a sleeping waiter nearly every time. host_waiting counts host
   * threads on their way to the lock (atomic: raised before it is taken); host_turns counts
   * their holds (lock held), and host_done is broadcast at the end of each. */
  pthread_cond_t host_done;
  unsigned host_waiting;
  unsigned host_turns;
  const struct vmm_guest_mem *mem;
  struct vmm_irq_line irq;
  const struct virtio_dev_ops *ops;
  void *model; /* the model's own state */

  uint32_t device_id;
  uint64_t device_features, driver_features;
  uint32_t device_features_sel, driver_features_sel, queue_sel;
  uint32_t status, interrupt_status;
  uint16_t queue_max;
  unsigned n_queues;
  struct virtq queues[VIRTIO_MAX_QUEUES];
  uint8_t config[VIRTIO_CONFIG_MAX]; /* little-endian; the driver writes only via config_write */
  uint32_t config_len;
  uint32_t config_generation; /* bumped by virtio_dev_config_changed */

  bool broken;   /* DEVICE_NEEDS_RESET: no processing until the driver resets the device */
  int fault_set; /* atomic: fault holds the first guest error seen, never cleared */
  char fault[VIRTIO_FAULT_MAX];
};

/* Allocates and initialises the common part (features must include what the transport
 * adds: VIRTIO_F_VERSION_1 is added here). */
int virtio_dev_new(const struct vmm_guest_mem *mem, struct vmm_irq_line irq,
                   const struct virtio_dev_ops *ops, uint32_t device_id, uint64_t features,
                   unsigned n_queues, struct vmm_virtio_dev **out, struct rc_error *err);

/* Records a guest error: sets DEVICE_NEEDS_RESET, stops processing, keeps the message for
 * vmm_virtio_dev_fault and tells the driver (configuration change interrupt). Lock held. */
void virtio_dev_fail(struct vmm_virtio_dev *dev, const char *why);

/* The device changed its configuration space: bumps the generation and sends the
 * configuration change interrupt once the driver is up. Lock held. */
void virtio_dev_config_changed(struct vmm_virtio_dev *dev);

/* Raises the used-buffer interrupt if the driver of queue q wants one. Lock held. */
void virtio_dev_used(struct vmm_virtio_dev *dev, unsigned q);

/* Serves the chains available on queue q in turn, at most one queue's worth (q->num) per
 * call: serve returns the bytes it wrote into the chain (which goes back through the used
 * ring), or <0 with err set when the request breaks the rules, which fails the device.
 * Interrupts once at the end. Lock held. The bound keeps the time a notifying vCPU spends
 * here finite however fast another vCPU refills the ring; mmio.c says why no chain is left
 * behind by it. Between two chains it lets a host thread waiting in virtio_dev_host_lock
 * have the lock (virtio_dev_host_lock says how), so the caller must expect the device's
 * state to have changed when it returns: the lock is held again, but may have been let go
 * in between. A host thread waits for at most one request's work (bounded by its model). */
typedef int64_t (*virtio_serve_fn)(struct vmm_virtio_dev *dev, const struct virtq_chain *chain,
                                   struct rc_error *err);
void virtio_dev_serve(struct vmm_virtio_dev *dev, unsigned q, virtio_serve_fn serve);

/* The lock, for a host thread (the VMM's main thread: the balloon's target, counters and
 * statistics), with its turn guaranteed: a vCPU in virtio_dev_serve lets go between two
 * requests and takes the lock again only after a host thread has held and released it. */
void virtio_dev_host_lock(struct vmm_virtio_dev *dev);
void virtio_dev_host_unlock(struct vmm_virtio_dev *dev);

/* Whether the device processes queues now (DRIVER_OK and not broken). Lock held. */
bool virtio_dev_live(const struct vmm_virtio_dev *dev);

#endif
