/* A "test guest" for the virtio device models: guest RAM from vmm_guest_mem_create, the
 * driver's side played by hand (descriptors and rings written into guest RAM, registers
 * poked through the device's bus callbacks) and an interrupt line that counts pulses.
 * Shared by the test_virtio_*.c suites; header-only so each suite stays one file. */
#ifndef RUNCELL_TEST_VIRTIO_GUEST_H
#define RUNCELL_TEST_VIRTIO_GUEST_H

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "runcell/vmm/virtio.h"

/* Queue i's rings live at TG_RINGS + i * 0x10000 (room for 256 entries); buffers from
 * TG_BUFS on. */
#define TG_RINGS 0x10000ull
#define TG_BUFS 0x100000ull

struct tg_queue {
  uint16_t num;
  uint64_t desc, avail, used;
  uint16_t avail_idx; /* the driver's next available slot */
  uint16_t used_seen; /* used entries the driver has taken */
};

struct tguest {
  struct vmm_guest_mem mem;
  struct vmm_virtio_dev *dev;
  struct vmm_bus_device win;
  int pulses;           /* atomic: rising edges seen on the interrupt line */
  struct tg_queue q[5]; /* as many as a device has (the balloon: 5) */
};

static int tg_irq_set(void *ctx, uint32_t gsi, bool level) {
  (void)gsi;
  if (level) __atomic_fetch_add(&((struct tguest *)ctx)->pulses, 1, __ATOMIC_SEQ_CST);
  return 0;
}

/* Guest RAM of mem_bytes; the device is attached by tg_attach once created. */
static inline int tg_init(struct tguest *g, uint64_t mem_bytes) {
  memset(g, 0, sizeof(*g));
  struct rc_error err = {0};
  if (vmm_guest_mem_create(&g->mem, mem_bytes, &err) < 0) {
    fprintf(stderr, "guest memory: %s\n", err.msg);
    return -1;
  }
  return 0;
}

static inline struct vmm_irq_line tg_irq(struct tguest *g) {
  return (struct vmm_irq_line){.set = tg_irq_set, .ctx = g, .gsi = 5};
}

static inline void tg_attach(struct tguest *g, struct vmm_virtio_dev *dev) {
  g->dev = dev;
  g->win = vmm_virtio_mmio_window(dev, 0xd0000000ull);
}

static inline void tg_fini(struct tguest *g) {
  vmm_virtio_dev_destroy(g->dev);
  vmm_guest_mem_destroy(&g->mem);
}

static inline uint32_t tg_r32(struct tguest *g, uint64_t off) {
  uint32_t v = 0;
  g->win.read(g->win.opaque, off, &v, 4);
  return v;
}

static inline void tg_w32(struct tguest *g, uint64_t off, uint32_t v) {
  g->win.write(g->win.opaque, off, &v, 4);
}

static inline void *tg_ptr(struct tguest *g, uint64_t gpa, uint64_t len) {
  return vmm_gpa_ptr(&g->mem, gpa, len);
}

static inline int tg_pulses(struct tguest *g) {
  return __atomic_load_n(&g->pulses, __ATOMIC_SEQ_CST);
}

/* Writes queue qi's setup registers (size num, rings at their default places). */
static inline void tg_queue_regs(struct tguest *g, unsigned qi, uint16_t num) {
  struct tg_queue *q = &g->q[qi];
  memset(q, 0, sizeof(*q));
  q->num = num;
  q->desc = TG_RINGS + qi * 0x10000ull;
  q->avail = q->desc + 0x2000;
  q->used = q->desc + 0x3000;
  memset(tg_ptr(g, q->desc, 0x4000), 0, 0x4000);
  tg_w32(g, VIRTIO_MMIO_QUEUE_SEL, qi);
  tg_w32(g, VIRTIO_MMIO_QUEUE_NUM, num);
  tg_w32(g, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)q->desc);
  tg_w32(g, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(q->desc >> 32));
  tg_w32(g, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)q->avail);
  tg_w32(g, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(q->avail >> 32));
  tg_w32(g, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)q->used);
  tg_w32(g, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(q->used >> 32));
}

/* The driver's initialisation (3.1.1) accepting the offered features in `accept`, with
 * n_queues queues of size num; false if the device refused something. */
static inline bool tg_setup(struct tguest *g, uint64_t accept, unsigned n_queues, uint16_t num) {
  tg_w32(g, VIRTIO_MMIO_STATUS, 0);
  tg_w32(g, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
  tg_w32(g, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  uint64_t offered = 0;
  for (uint32_t sel = 0; sel < 2; sel++) {
    tg_w32(g, VIRTIO_MMIO_DEVICE_FEATURES_SEL, sel);
    offered |= (uint64_t)tg_r32(g, VIRTIO_MMIO_DEVICE_FEATURES) << (32 * sel);
  }
  uint64_t f = offered & accept;
  for (uint32_t sel = 0; sel < 2; sel++) {
    tg_w32(g, VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
    tg_w32(g, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> (32 * sel)));
  }
  uint32_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
  tg_w32(g, VIRTIO_MMIO_STATUS, s);
  if (!(tg_r32(g, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK)) return false;
  for (unsigned i = 0; i < n_queues; i++) {
    tg_queue_regs(g, i, num);
    tg_w32(g, VIRTIO_MMIO_QUEUE_READY, 1);
    if (tg_r32(g, VIRTIO_MMIO_QUEUE_READY) != 1) return false;
  }
  tg_w32(g, VIRTIO_MMIO_STATUS, s | VIRTIO_CONFIG_S_DRIVER_OK);
  return tg_r32(g, VIRTIO_MMIO_STATUS) == (s | VIRTIO_CONFIG_S_DRIVER_OK);
}

/* Writes descriptor i of a table at gpa table. */
static inline void tg_desc_at(struct tguest *g, uint64_t table, uint16_t i, uint64_t addr,
                              uint32_t len, uint16_t flags, uint16_t next) {
  uint8_t *d = tg_ptr(g, table + 16ull * i, 16);
  memcpy(d, &addr, 8);
  memcpy(d + 8, &len, 4);
  memcpy(d + 12, &flags, 2);
  memcpy(d + 14, &next, 2);
}

static inline void tg_desc(struct tguest *g, unsigned qi, uint16_t i, uint64_t addr, uint32_t len,
                           uint16_t flags, uint16_t next) {
  tg_desc_at(g, g->q[qi].desc, i, addr, len, flags, next);
}

/* Puts head in the available ring and publishes it (without notifying). */
static inline void tg_make_avail(struct tguest *g, unsigned qi, uint16_t head) {
  struct tg_queue *q = &g->q[qi];
  if (!q->num) return; /* not set up: nothing to publish into */
  uint16_t *ring = tg_ptr(g, q->avail + 4, 2ull * q->num);
  ring[q->avail_idx % q->num] = head;
  q->avail_idx++;
  __atomic_store_n((uint16_t *)tg_ptr(g, q->avail + 2, 2), q->avail_idx, __ATOMIC_RELEASE);
}

static inline void tg_notify(struct tguest *g, unsigned qi) {
  tg_w32(g, VIRTIO_MMIO_QUEUE_NOTIFY, qi);
}

static inline void tg_post(struct tguest *g, unsigned qi, uint16_t head) {
  tg_make_avail(g, qi, head);
  tg_notify(g, qi);
}

/* Takes the next used entry: true with its id and length, false if there is none. */
static inline bool tg_take_used(struct tguest *g, unsigned qi, uint32_t *id, uint32_t *len) {
  struct tg_queue *q = &g->q[qi];
  if (!q->num) return false;
  uint16_t idx = __atomic_load_n((uint16_t *)tg_ptr(g, q->used + 2, 2), __ATOMIC_ACQUIRE);
  if (idx == q->used_seen) return false;
  const uint8_t *e = tg_ptr(g, q->used + 4 + 8ull * (q->used_seen % q->num), 8);
  memcpy(id, e, 4);
  memcpy(len, e + 4, 4);
  q->used_seen++;
  return true;
}

/* tg_take_used, waiting up to ms milliseconds for a device thread to produce it. */
static inline bool tg_wait_used(struct tguest *g, unsigned qi, uint32_t *id, uint32_t *len,
                                int ms) {
  for (int waited = 0;; waited++) {
    if (tg_take_used(g, qi, id, len)) return true;
    if (waited >= ms) return false;
    nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
  }
}

static inline bool tg_needs_reset(struct tguest *g) {
  return tg_r32(g, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET;
}

/* A hostile driver's second vCPU: keeps queue qi's available ring `ahead` entries past what
 * the device has used, naming descriptor 0 every time, without ever notifying, until stop
 * is set. A device serving "until the ring is empty" never gets there. */
struct tg_feeder {
  struct tguest *g;
  unsigned qi;
  uint16_t ahead;
  int stop; /* atomic */
  pthread_t thread;
};

static void *tg_feed(void *arg) {
  struct tg_feeder *f = arg;
  struct tg_queue *q = &f->g->q[f->qi];
  uint16_t *ring = tg_ptr(f->g, q->avail + 4, 2ull * q->num);
  uint16_t *idx = tg_ptr(f->g, q->avail + 2, 2);
  const uint16_t *used = tg_ptr(f->g, q->used + 2, 2);
  while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
    uint16_t done = __atomic_load_n(used, __ATOMIC_ACQUIRE);
    if ((uint16_t)(q->avail_idx - done) >= f->ahead) continue;
    ring[q->avail_idx % q->num] = 0;
    q->avail_idx++;
    __atomic_store_n(idx, q->avail_idx, __ATOMIC_RELEASE);
  }
  return NULL;
}

static inline bool tg_feeder_start(struct tg_feeder *f, struct tguest *g, unsigned qi,
                                   uint16_t ahead) {
  *f = (struct tg_feeder){.g = g, .qi = qi, .ahead = ahead};
  return pthread_create(&f->thread, NULL, tg_feed, f) == 0;
}

static inline void tg_feeder_stop(struct tg_feeder *f) {
  __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
  pthread_join(f->thread, NULL);
}

/* The first vCPU's notification of queue qi, on a thread of its own, so that a test can
 * see whether it ever comes back. */
struct tg_notifier {
  struct tguest *g;
  unsigned qi;
  int done; /* atomic */
  pthread_t thread;
};

static void *tg_notify_thread(void *arg) {
  struct tg_notifier *n = arg;
  tg_notify(n->g, n->qi);
  __atomic_store_n(&n->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

static inline bool tg_notifier_start(struct tg_notifier *n, struct tguest *g, unsigned qi) {
  *n = (struct tg_notifier){.g = g, .qi = qi};
  return pthread_create(&n->thread, NULL, tg_notify_thread, n) == 0;
}

/* Whether flag (an atomic int) becomes non-zero within ms milliseconds. */
static inline bool tg_wait_flag(const int *flag, int ms) {
  for (int waited = 0; !__atomic_load_n(flag, __ATOMIC_ACQUIRE); waited++) {
    if (waited >= ms) return false;
    nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
  }
  return true;
}

#endif
