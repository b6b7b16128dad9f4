/* The virtio-mmio transport, version 2 ("modern", virtio 1.x 4.2.2): the register window
 * a guest driver uses to discover the device, negotiate features, set up its queues and
 * notify them. Registers are 32-bit and aligned; any other access to them reads 0 and
 * writes nothing. The guest's mistakes (a bad queue setup, a bad chain) put the device in
 * DEVICE_NEEDS_RESET and are recorded for the machine; they never stop the VMM. */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtio_dev.h"

#define MMIO_MAGIC 0x74726976u  /* "virt" */
#define MMIO_VERSION 2u         /* modern only: no legacy page-based queues */
#define MMIO_VENDOR 0x4c434e52u /* "RNCL" */
#define MMIO_CONFIG_OFF 0x100u

#define STATUS_KNOWN                                                                    \
  (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | \
   VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED)

int virtio_dev_new(const struct vmm_guest_mem *mem, struct vmm_irq_line irq,
                   const struct virtio_dev_ops *ops, uint32_t device_id, uint64_t features,
                   unsigned n_queues, struct vmm_virtio_dev **out, struct rc_error *err) {
  *out = NULL;
  if (n_queues == 0 || n_queues > VIRTIO_MAX_QUEUES)
    return rc_err(err, 0, "%s: %u queues is not supported", ops->name, n_queues);
  struct vmm_virtio_dev *dev = calloc(1, sizeof(*dev));
  if (!dev) return rc_err(err, errno, "%s: allocate the device", ops->name);
  int r = pthread_mutex_init(&dev->lock, NULL);
  if (r != 0) {
    free(dev);
    return rc_err(err, r, "%s: device lock", ops->name);
  }
  r = pthread_cond_init(&dev->host_done, NULL);
  if (r != 0) {
    pthread_mutex_destroy(&dev->lock);
    free(dev);
    return rc_err(err, r, "%s: device lock", ops->name);
  }
  dev->mem = mem;
  dev->irq = irq;
  dev->ops = ops;
  dev->device_id = device_id;
  dev->device_features = features | (1ull << VIRTIO_F_VERSION_1);
  dev->queue_max = VIRTQ_MAX_SIZE;
  dev->n_queues = n_queues;
  *out = dev;
  return 0;
}

void vmm_virtio_dev_destroy(struct vmm_virtio_dev *dev) {
  if (!dev) return;
  if (dev->ops->destroy) dev->ops->destroy(dev);
  pthread_cond_destroy(&dev->host_done);
  pthread_mutex_destroy(&dev->lock);
  free(dev);
}

const char *vmm_virtio_dev_fault(const struct vmm_virtio_dev *dev) {
  return __atomic_load_n(&dev->fault_set, __ATOMIC_ACQUIRE) ? dev->fault : NULL;
}

static void raise_interrupt(struct vmm_virtio_dev *dev, uint32_t why) {
  dev->interrupt_status |= why;
  vmm_irq_pulse(&dev->irq);
}

void virtio_dev_fail(struct vmm_virtio_dev *dev, const char *why) {
  if (dev->broken) return;
  dev->broken = true;
  dev->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
  if (!__atomic_load_n(&dev->fault_set, __ATOMIC_RELAXED)) {
    snprintf(dev->fault, sizeof(dev->fault), "%s: %s", dev->ops->name, why);
    __atomic_store_n(&dev->fault_set, 1, __ATOMIC_RELEASE);
  }
  if (dev->ops->reset) dev->ops->reset(dev);
  /* 2.1.2: a device entering NEEDS_RESET after DRIVER_OK sends a config change notice */
  if (dev->status & VIRTIO_CONFIG_S_DRIVER_OK) raise_interrupt(dev, VIRTIO_MMIO_INT_CONFIG);
}

void virtio_dev_config_changed(struct vmm_virtio_dev *dev) {
  dev->config_generation++;
  if (virtio_dev_live(dev)) raise_interrupt(dev, VIRTIO_MMIO_INT_CONFIG);
}

void virtio_dev_used(struct vmm_virtio_dev *dev, unsigned q) {
  if (virtq_wants_interrupt(&dev->queues[q])) raise_interrupt(dev, VIRTIO_MMIO_INT_VRING);
}

/* The main thread's turn. It announces itself (host_waiting) before it blocks on the lock;
 * a vCPU serving a queue checks between two requests and, if a host thread is waiting,
 * sleeps on host_done, which lets go of the lock, until a host hold has ended (host_turns
 * moved). Nothing else is needed for the waiter to get through: every long holder (a vCPU
 * in virtio_dev_serve, whichever got the lock first) makes way the same way before its next
 * request, and the other holders (a register access, the statistics queue's few small
 * buffers, a model's I/O thread) hold it briefly. The host thread therefore waits for one
 * request already being served, at most, never for the rest of a notification.
 *
 * It cannot wait for ever either. A vCPU that reads host_waiting != 0 (with the lock held)
 * knows that a host thread has announced itself and not yet taken the lock, since the
 * count comes down only under the lock; that thread takes the lock, once let go, and its
 * unlock moves host_turns and wakes the vCPU. */
void virtio_dev_host_lock(struct vmm_virtio_dev *dev) {
  __atomic_fetch_add(&dev->host_waiting, 1, __ATOMIC_SEQ_CST);
  pthread_mutex_lock(&dev->lock);
  __atomic_fetch_sub(&dev->host_waiting, 1, __ATOMIC_SEQ_CST);
}

void virtio_dev_host_unlock(struct vmm_virtio_dev *dev) {
  dev->host_turns++;
  pthread_cond_broadcast(&dev->host_done);
  pthread_mutex_unlock(&dev->lock);
}

/* Lock held: if a host thread is waiting for the lock, lets it have its turn and takes the
 * lock back after. True if the lock was let go (the device may have changed meanwhile). */
static bool make_way_for_host(struct vmm_virtio_dev *dev) {
  if (!__atomic_load_n(&dev->host_waiting, __ATOMIC_SEQ_CST)) return false;
  unsigned turn = dev->host_turns;
  while (dev->host_turns == turn) pthread_cond_wait(&dev->host_done, &dev->lock);
  return true;
}

/* At most one queue's worth of chains per call. Without a bound a guest could keep a vCPU
 * here for as long as it liked by refilling the ring from another vCPU as fast as this one
 * empties it. Each request is bounded by its model (an inflate request: 4096 frames, one
 * hole punch each at worst), so one call does at most q->num (<= 256) of them: about a
 * second of hole punching for a guest that posts 256 requests of 4096 scattered frames.
 * That is the guest's own vCPU's time; the device lock is another matter, since the VMM's
 * main thread takes it (the balloon's target, counters and statistics) and, while it
 * waits, so do the stdio relay, signal forwarding and control requests. So the lock is
 * held for one request at a time when the main thread wants it: before each request this
 * loop makes way for a host thread waiting in virtio_dev_host_lock, and resumes after
 * (what the device looks like then is checked again: another vCPU may have reset it or
 * disabled the queue meanwhile, and then the rest is not served).
 *
 * The bound leaves no chain unserved. The available index is never more than q->num
 * ahead of last_avail (virtq_has_avail fails the device otherwise), so every chain that
 * was available when the call began is among the first q->num taken from the ring after
 * it began, by this call or by another vCPU's that ran while this one made way (chains
 * are taken in ring order, each under the lock). A chain still available when the budget
 * runs out was made available after the call began, and its driver notifies after that:
 * this device never sets VRING_USED_F_NO_NOTIFY and offers no VIRTIO_F_EVENT_IDX, and then
 * 2.7.7.2 says the driver MUST notify after adding to the ring. That notification is a
 * register write, which takes the lock, so it is served after this call's last look at
 * the ring, or by itself while this call made way, and serves the rest from last_avail. */
void virtio_dev_serve(struct vmm_virtio_dev *dev, unsigned q, virtio_serve_fn serve) {
  struct virtq_chain chain;
  struct rc_error err = {0};
  bool pushed = false;
  for (unsigned budget = dev->queues[q].num; budget > 0; budget--) {
    if (make_way_for_host(dev) && !(virtio_dev_live(dev) && dev->queues[q].ready)) return;
    int r = virtq_pop(&dev->queues[q], dev->mem, &chain, &err);
    if (r == 0) break;
    int64_t written = r > 0 ? serve(dev, &chain, &err) : -1;
    if (written < 0) {
      char why[VIRTIO_FAULT_MAX];
      snprintf(why, sizeof(why), "queue %u: %s", q, err.msg);
      virtio_dev_fail(dev, why);
      return;
    }
    virtq_push(&dev->queues[q], chain.head, (uint32_t)written);
    pushed = true;
  }
  if (pushed) virtio_dev_used(dev, q);
}

bool virtio_dev_live(const struct vmm_virtio_dev *dev) {
  return !dev->broken && (dev->status & VIRTIO_CONFIG_S_DRIVER_OK);
}

static void reset_device(struct vmm_virtio_dev *dev) {
  dev->status = 0;
  dev->driver_features = 0;
  dev->device_features_sel = dev->driver_features_sel = dev->queue_sel = 0;
  dev->interrupt_status = 0;
  dev->broken = false;
  for (unsigned i = 0; i < dev->n_queues; i++) virtq_reset(&dev->queues[i]);
  if (dev->ops->reset) dev->ops->reset(dev);
}

static void write_status(struct vmm_virtio_dev *dev, uint32_t v) {
  if (v == 0) {
    reset_device(dev);
    return;
  }
  uint32_t old = dev->status;
  /* 2.1.2: the driver never clears a status bit; it resets the device (writes 0) and
   * starts over. Dropping FEATURES_OK to renegotiate under live queues, or DRIVER_OK to
   * stop without a reset, would leave the queues and the model's state tied to a setup
   * the driver no longer claims: the device needs a reset instead. */
  if (old & STATUS_KNOWN & ~v) {
    virtio_dev_fail(dev, "the driver cleared device status bits without a reset");
    return;
  }
  uint32_t next = (v & STATUS_KNOWN) | (old & VIRTIO_CONFIG_S_NEEDS_RESET);
  uint32_t added = next & ~old;
  if (added & VIRTIO_CONFIG_S_FEATURES_OK) {
    /* accept only features offered, and never the legacy interface */
    uint64_t f = dev->driver_features;
    if ((f & ~dev->device_features) || !(f & (1ull << VIRTIO_F_VERSION_1)))
      next &= ~(uint32_t)VIRTIO_CONFIG_S_FEATURES_OK;
  }
  if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && !(next & VIRTIO_CONFIG_S_FEATURES_OK))
    next &= ~(uint32_t)VIRTIO_CONFIG_S_DRIVER_OK;
  dev->status = next;
  /* buffers the driver made available before DRIVER_OK are served now (3.1.1) */
  if ((next & ~old & VIRTIO_CONFIG_S_DRIVER_OK) && virtio_dev_live(dev))
    for (unsigned i = 0; i < dev->n_queues && virtio_dev_live(dev); i++)
      if (dev->queues[i].ready) dev->ops->notify(dev, i);
}

static struct virtq *selected_queue(struct vmm_virtio_dev *dev) {
  return dev->queue_sel < dev->n_queues ? &dev->queues[dev->queue_sel] : NULL;
}

/* 64-bit queue addresses come as two 32-bit halves. */
static void set_half(uint64_t *addr, bool high, uint32_t v) {
  if (high)
    *addr = (*addr & 0xffffffffull) | ((uint64_t)v << 32);
  else
    *addr = (*addr & ~0xffffffffull) | v;
}

static void write_queue_reg(struct vmm_virtio_dev *dev, uint64_t off, uint32_t v) {
  struct virtq *q = selected_queue(dev);
  if (!q) return;
  if (off == VIRTIO_MMIO_QUEUE_READY) {
    if (v == 0) {
      /* the model lets go of whatever it held from this queue: a later setup of it is a
       * new ring, which must see nothing from the old one (and a thread waiting to finish
       * an old chain would wait, or spin, for nothing) */
      bool was_ready = q->ready;
      q->ready = false;
      if (was_ready && dev->ops->queue_disabled) dev->ops->queue_disabled(dev, dev->queue_sel);
    } else if (!q->ready && !dev->broken) {
      bool indirect = dev->driver_features & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
      struct rc_error err = {0};
      if (virtq_enable(q, dev->mem, dev->queue_max, indirect, &err) < 0) {
        char why[VIRTIO_FAULT_MAX];
        snprintf(why, sizeof(why), "queue %u: %s", dev->queue_sel, err.msg);
        virtio_dev_fail(dev, why);
      }
    }
    return;
  }
  if (q->ready) return; /* 4.2.2.3: the driver must not change a live queue's setup */
  switch (off) {
    case VIRTIO_MMIO_QUEUE_NUM:
      q->num = v > UINT16_MAX ? 0 : (uint16_t)v;
      break;
    case VIRTIO_MMIO_QUEUE_DESC_LOW:
      set_half(&q->desc_gpa, false, v);
      break;
    case VIRTIO_MMIO_QUEUE_DESC_HIGH:
      set_half(&q->desc_gpa, true, v);
      break;
    case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
      set_half(&q->avail_gpa, false, v);
      break;
    case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
      set_half(&q->avail_gpa, true, v);
      break;
    case VIRTIO_MMIO_QUEUE_USED_LOW:
      set_half(&q->used_gpa, false, v);
      break;
    case VIRTIO_MMIO_QUEUE_USED_HIGH:
      set_half(&q->used_gpa, true, v);
      break;
    default:
      break;
  }
}

static void write_reg(struct vmm_virtio_dev *dev, uint64_t off, uint32_t v) {
  switch (off) {
    case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
      dev->device_features_sel = v;
      break;
    case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
      dev->driver_features_sel = v;
      break;
    case VIRTIO_MMIO_DRIVER_FEATURES:
      if (dev->status & VIRTIO_CONFIG_S_FEATURES_OK) break; /* negotiation is over */
      if (dev->driver_features_sel <= 1)
        set_half(&dev->driver_features, dev->driver_features_sel, v);
      break;
    case VIRTIO_MMIO_QUEUE_SEL:
      dev->queue_sel = v;
      break;
    case VIRTIO_MMIO_QUEUE_NOTIFY:
      /* without VIRTIO_F_NOTIFICATION_DATA the value is the queue index */
      if (v < dev->n_queues && dev->queues[v].ready && virtio_dev_live(dev))
        dev->ops->notify(dev, v);
      break;
    case VIRTIO_MMIO_INTERRUPT_ACK:
      dev->interrupt_status &= ~v;
      break;
    case VIRTIO_MMIO_STATUS:
      write_status(dev, v);
      break;
    default:
      write_queue_reg(dev, off, v);
      break;
  }
}

static uint32_t read_reg(struct vmm_virtio_dev *dev, uint64_t off) {
  const struct virtq *q = selected_queue(dev);
  switch (off) {
    case VIRTIO_MMIO_MAGIC_VALUE:
      return MMIO_MAGIC;
    case VIRTIO_MMIO_VERSION:
      return MMIO_VERSION;
    case VIRTIO_MMIO_DEVICE_ID:
      return dev->device_id;
    case VIRTIO_MMIO_VENDOR_ID:
      return MMIO_VENDOR;
    case VIRTIO_MMIO_DEVICE_FEATURES:
      if (dev->device_features_sel > 1) return 0;
      return (uint32_t)(dev->device_features >> (32 * dev->device_features_sel));
    case VIRTIO_MMIO_QUEUE_NUM_MAX:
      return q ? dev->queue_max : 0;
    case VIRTIO_MMIO_QUEUE_READY:
      return q && q->ready;
    case VIRTIO_MMIO_INTERRUPT_STATUS:
      return dev->interrupt_status;
    case VIRTIO_MMIO_STATUS:
      return dev->status;
    case VIRTIO_MMIO_CONFIG_GENERATION:
      return dev->config_generation;
    /* no shared memory regions: a length of all ones says so (4.2.2.1) */
    case VIRTIO_MMIO_SHM_LEN_LOW:
    case VIRTIO_MMIO_SHM_LEN_HIGH:
    case VIRTIO_MMIO_SHM_BASE_LOW:
    case VIRTIO_MMIO_SHM_BASE_HIGH:
      return 0xffffffffu;
    default:
      return 0;
  }
}

static void mmio_read(void *opaque, uint64_t off, void *data, uint32_t size) {
  struct vmm_virtio_dev *dev = opaque;
  memset(data, 0, size);
  pthread_mutex_lock(&dev->lock);
  if (off >= MMIO_CONFIG_OFF) {
    uint64_t c = off - MMIO_CONFIG_OFF;
    if (c < dev->config_len && size <= dev->config_len - c) memcpy(data, dev->config + c, size);
  } else if (size == 4 && off % 4 == 0) {
    uint32_t v = htole32(read_reg(dev, off));
    memcpy(data, &v, 4);
  }
  pthread_mutex_unlock(&dev->lock);
}

static void mmio_write(void *opaque, uint64_t off, const void *data, uint32_t size) {
  struct vmm_virtio_dev *dev = opaque;
  if (off >= MMIO_CONFIG_OFF) {
    /* the configuration space: read-only unless the model takes writes, and then only
     * whole accesses inside it */
    uint64_t c = off - MMIO_CONFIG_OFF;
    pthread_mutex_lock(&dev->lock);
    if (dev->ops->config_write && (size == 1 || size == 2 || size == 4 || size == 8) &&
        c < dev->config_len && size <= dev->config_len - c)
      dev->ops->config_write(dev, (uint32_t)c, data, size);
    pthread_mutex_unlock(&dev->lock);
    return;
  }
  if (size != 4 || off % 4 != 0) return;
  uint32_t v;
  memcpy(&v, data, 4);
  pthread_mutex_lock(&dev->lock);
  write_reg(dev, off, le32toh(v));
  pthread_mutex_unlock(&dev->lock);
}

struct vmm_bus_device vmm_virtio_mmio_window(struct vmm_virtio_dev *dev, uint64_t base) {
  return (struct vmm_bus_device){.name = dev->ops->name,
                                 .base = base,
                                 .len = 0x1000,
                                 .read = mmio_read,
                                 .write = mmio_write,
                                 .opaque = dev};
}
