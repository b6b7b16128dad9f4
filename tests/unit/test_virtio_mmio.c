/* The virtio-mmio transport and the split virtqueue, driven by a test guest through
 * virtio-rng (the simplest model): registers, feature negotiation, reset, interrupts,
 * indirect descriptors, and every hostile queue setup and chain the device must refuse
 * with a fault instead of crashing (run under the sanitizer build too); and, through a
 * model of the test's own, the bound on what one notification serves. */
#include <linux/virtio_ids.h>
#include <stdlib.h>

#include "../../vmm/virtio/virtio_dev.h"
#include "test_virtio_guest.h"
#include "unit.h"

#define ALL_FEATURES UINT64_MAX
#define NO_INDIRECT (~(1ull << VIRTIO_RING_F_INDIRECT_DESC))

static bool rng_guest(struct tguest *g, uint64_t mem_bytes) {
  if (tg_init(g, mem_bytes) < 0) return false;
  struct vmm_virtio_dev *dev;
  struct rc_error err = {0};
  if (vmm_virtio_rng_create(&g->mem, tg_irq(g), &dev, &err) < 0) {
    fprintf(stderr, "rng: %s\n", err.msg);
    vmm_guest_mem_destroy(&g->mem);
    return false;
  }
  tg_attach(g, dev);
  return true;
}

static bool all_zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return false;
  return true;
}

static void test_registers(void) {
  struct tguest g;
  if (!rng_guest(&g, 2 << 20)) {
    CHECK(!"rng guest");
    return;
  }
  CHECK(tg_r32(&g, VIRTIO_MMIO_MAGIC_VALUE) == 0x74726976);
  CHECK(tg_r32(&g, VIRTIO_MMIO_VERSION) == 2);
  CHECK(tg_r32(&g, VIRTIO_MMIO_DEVICE_ID) == VIRTIO_ID_RNG);
  tg_w32(&g, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
  CHECK(tg_r32(&g, VIRTIO_MMIO_DEVICE_FEATURES) & 1); /* VIRTIO_F_VERSION_1 is bit 32 */
  tg_w32(&g, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 7);
  CHECK(tg_r32(&g, VIRTIO_MMIO_DEVICE_FEATURES) == 0);
  tg_w32(&g, VIRTIO_MMIO_QUEUE_SEL, 0);
  CHECK(tg_r32(&g, VIRTIO_MMIO_QUEUE_NUM_MAX) == 256);
  tg_w32(&g, VIRTIO_MMIO_QUEUE_SEL, 1); /* rng has one queue */
  CHECK(tg_r32(&g, VIRTIO_MMIO_QUEUE_NUM_MAX) == 0);
  CHECK(tg_r32(&g, VIRTIO_MMIO_SHM_LEN_LOW) == 0xffffffffu);
  /* only aligned 32-bit register accesses count */
  uint16_t half = 0x1234;
  g.win.read(g.win.opaque, VIRTIO_MMIO_MAGIC_VALUE, &half, 2);
  CHECK(half == 0);
  uint32_t v = 0x5a5a5a5a;
  g.win.read(g.win.opaque, VIRTIO_MMIO_MAGIC_VALUE + 1, &v, 4);
  CHECK(v == 0);
  /* config space beyond the device's is zeros, at any offset of the window */
  uint64_t wide = 1;
  g.win.read(g.win.opaque, 0xff8 + 0, &wide, 8);
  CHECK(wide == 0);
  CHECK(vmm_virtio_dev_fault(g.dev) == NULL);
  tg_fini(&g);
}

static void test_feature_negotiation(void) {
  struct tguest g;
  if (!rng_guest(&g, 2 << 20)) {
    CHECK(!"rng guest");
    return;
  }
  /* a legacy driver (no VERSION_1) is refused */
  CHECK(!tg_setup(&g, ~(1ull << VIRTIO_F_VERSION_1), 1, 8));
  CHECK(!(tg_r32(&g, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK));
  /* a feature the device did not offer is refused */
  tg_w32(&g, VIRTIO_MMIO_STATUS, 0);
  tg_w32(&g, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  tg_w32(&g, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  tg_w32(&g, VIRTIO_MMIO_DRIVER_FEATURES, 1 | 4); /* VERSION_1 and RING_PACKED */
  tg_w32(&g, VIRTIO_MMIO_STATUS,
         VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
  CHECK(!(tg_r32(&g, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK));
  /* DRIVER_OK without FEATURES_OK does not take */
  tg_w32(&g, VIRTIO_MMIO_STATUS,
         VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK);
  CHECK(!(tg_r32(&g, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK));
  CHECK(tg_setup(&g, ALL_FEATURES, 1, 8));
  /* reset clears everything */
  tg_w32(&g, VIRTIO_MMIO_STATUS, 0);
  CHECK(tg_r32(&g, VIRTIO_MMIO_STATUS) == 0);
  tg_w32(&g, VIRTIO_MMIO_QUEUE_SEL, 0);
  CHECK(tg_r32(&g, VIRTIO_MMIO_QUEUE_READY) == 0);
  CHECK(vmm_virtio_dev_fault(g.dev) == NULL);
  tg_fini(&g);
}

/* rng fills a two-buffer chain, interrupts, and the ACK clears the status bit */
static void test_rng_fills_buffers(void) {
  struct tguest g;
  if (!rng_guest(&g, 2 << 20)) {
    CHECK(!"rng guest");
    return;
  }
  CHECK(tg_setup(&g, ALL_FEATURES, 1, 8));
  uint8_t *buf = tg_ptr(&g, TG_BUFS, 96);
  memset(buf, 0, 96);
  tg_desc(&g, 0, 3, TG_BUFS, 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 5);
  tg_desc(&g, 0, 5, TG_BUFS + 64, 32, VRING_DESC_F_WRITE, 0);
  int before = tg_pulses(&g);
  tg_post(&g, 0, 3);
  uint32_t id = 0, len = 0;
  CHECK(tg_take_used(&g, 0, &id, &len));
  CHECK(id == 3 && len == 96);
  CHECK(!all_zero(buf, 64) && !all_zero(buf + 64, 32));
  CHECK(tg_pulses(&g) == before + 1);
  CHECK(tg_r32(&g, VIRTIO_MMIO_INTERRUPT_STATUS) == VIRTIO_MMIO_INT_VRING);
  tg_w32(&g, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
  CHECK(tg_r32(&g, VIRTIO_MMIO_INTERRUPT_STATUS) == 0);

  /* VRING_AVAIL_F_NO_INTERRUPT: served, but no interrupt */
  *(uint16_t *)tg_ptr(&g, g.q[0].avail, 2) = VRING_AVAIL_F_NO_INTERRUPT;
  before = tg_pulses(&g);
  tg_post(&g, 0, 3);
  CHECK(tg_take_used(&g, 0, &id, &len) && len == 96);
  CHECK(tg_pulses(&g) == before);
  CHECK(vmm_virtio_dev_fault(g.dev) == NULL);
  tg_fini(&g);
}

/* a chain made available before DRIVER_OK is served when the driver sets it */
static void test_buffers_before_driver_ok(void) {
  struct tguest g;
  if (!rng_guest(&g, 2 << 20)) {
    CHECK(!"rng guest");
    return;
  }
  uint32_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
  tg_w32(&g, VIRTIO_MMIO_STATUS, s);
  tg_w32(&g, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  tg_w32(&g, VIRTIO_MMIO_DRIVER_FEATURES, 1); /* VERSION_1 */
  s |= VIRTIO_CONFIG_S_FEATURES_OK;
  tg_w32(&g, VIRTIO_MMIO_STATUS, s);
  tg_queue_regs(&g, 0, 8);
  tg_w32(&g, VIRTIO_MMIO_QUEUE_READY, 1);
  tg_desc(&g, 0, 0, TG_BUFS, 16, VRING_DESC_F_WRITE, 0);
  tg_post(&g, 0, 0);
  uint32_t id, len;
  CHECK(!tg_take_used(&g, 0, &id, &len));
  tg_w32(&g, VIRTIO_MMIO_STATUS, s | VIRTIO_CONFIG_S_DRIVER_OK);
  CHECK(tg_take_used(&g, 0, &id, &len) && id == 0 && len == 16);
  tg_fini(&g);
}

static void test_indirect(void) {
  struct tguest g;
  if (!rng_guest(&g, 2 << 20)) {
    CHECK(!"rng guest");
    return;
  }
  CHECK(tg_setup(&g, ALL_FEATURES, 1, 8));
  uint64_t table = TG_BUFS + 0x10000;
  tg_desc_at(&g, table, 0, TG_BUFS, 40, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
  tg_desc_at(&g, table, 2, TG_BUFS + 100, 24, VRING_DESC_F_WRITE, 0);
  tg_desc(&g, 0, 1, table, 3 * 16, VRING_DESC_F_INDIRECT, 0);
  tg_post(&g, 0, 1);
  uint32_t id, len;
  CHECK(tg_take_used(&g, 0, &id, &len) && id == 1 && len == 64);
  CHECK(vmm_virtio_dev_fault(g.dev) == NULL);
  tg_fini(&g);
}

/* Sets the guest up, lets arrange() write something hostile, notifies, and checks the
 * device faulted with a message containing `why`, served nothing, and stays stopped. */
static void expect_fault(const char *what, uint64_t accept, uint16_t num,
                         void (*arrange)(struct tguest *g), const char *why) {
  struct tguest g;
  if (!rng_guest(&g, 2 << 20)) {
    CHECK(!"rng guest");
    return;
  }
  fprintf(stderr, "  hostile: %s\n", what);
  CHECK(tg_setup(&g, accept, 1, num));
  int before = tg_pulses(&g);
  arrange(&g);
  tg_notify(&g, 0);
  CHECK(tg_needs_reset(&g));
  CHECK_CONTAINS(vmm_virtio_dev_fault(g.dev), why);
  uint32_t id, len;
  CHECK(!tg_take_used(&g, 0, &id, &len));
  CHECK(tg_pulses(&g) == before + 1); /* the configuration change interrupt */
  CHECK(tg_r32(&g, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
  /* stopped: a good chain is not served until the driver resets the device */
  tg_desc(&g, 0, 0, TG_BUFS, 16, VRING_DESC_F_WRITE, 0);
  tg_post(&g, 0, 0);
  CHECK(!tg_take_used(&g, 0, &id, &len));
  /* after a reset the device works again; the first fault stays readable */
  CHECK(tg_setup(&g, accept, 1, 8));
  CHECK(!tg_needs_reset(&g));
  tg_desc(&g, 0, 0, TG_BUFS, 16, VRING_DESC_F_WRITE, 0);
  tg_post(&g, 0, 0);
  CHECK(tg_take_used(&g, 0, &id, &len) && id == 0 && len == 16);
  CHECK_CONTAINS(vmm_virtio_dev_fault(g.dev), why);
  tg_fini(&g);
}

static void loop2(struct tguest *g) {
  tg_desc(g, 0, 0, TG_BUFS, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
  tg_desc(g, 0, 1, TG_BUFS, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
  tg_make_avail(g, 0, 0);
}

static void self_loop(struct tguest *g) {
  tg_desc(g, 0, 4, TG_BUFS, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 4);
  tg_make_avail(g, 0, 4);
}

static void head_beyond_queue(struct tguest *g) {
  tg_make_avail(g, 0, 300);
}

static void next_beyond_queue(struct tguest *g) {
  tg_desc(g, 0, 0, TG_BUFS, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 8);
  tg_make_avail(g, 0, 0);
}

static void buffer_outside_ram(struct tguest *g) {
  tg_desc(g, 0, 0, 0xC0000000ull, 16, VRING_DESC_F_WRITE, 0);
  tg_make_avail(g, 0, 0);
}

static void buffer_past_ram_end(struct tguest *g) {
  tg_desc(g, 0, 0, (2 << 20) - 8, 16, VRING_DESC_F_WRITE, 0);
  tg_make_avail(g, 0, 0);
}

static void length_wraps(struct tguest *g) {
  tg_desc(g, 0, 0, UINT64_MAX - 8, 0xffffffffu, VRING_DESC_F_WRITE, 0);
  tg_make_avail(g, 0, 0);
}

static void avail_idx_jumps(struct tguest *g) {
  tg_desc(g, 0, 0, TG_BUFS, 16, VRING_DESC_F_WRITE, 0);
  __atomic_store_n((uint16_t *)tg_ptr(g, g->q[0].avail + 2, 2), 9, __ATOMIC_RELEASE);
  g->q[0].avail_idx = 9;
}

static void avail_idx_backwards(struct tguest *g) {
  __atomic_store_n((uint16_t *)tg_ptr(g, g->q[0].avail + 2, 2), 0xffff, __ATOMIC_RELEASE);
  g->q[0].avail_idx = 0xffff;
}

static void readable_after_writable(struct tguest *g) {
  tg_desc(g, 0, 0, TG_BUFS, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
  tg_desc(g, 0, 1, TG_BUFS, 16, 0, 0);
  tg_make_avail(g, 0, 0);
}

static void rng_readable(struct tguest *g) {
  tg_desc(g, 0, 0, TG_BUFS, 16, 0, 0);
  tg_make_avail(g, 0, 0);
}

static void indirect_loop(struct tguest *g) {
  uint64_t table = TG_BUFS + 0x10000;
  tg_desc_at(g, table, 0, TG_BUFS, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
  tg_desc_at(g, table, 1, TG_BUFS, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
  tg_desc(g, 0, 0, table, 32, VRING_DESC_F_INDIRECT, 0);
  tg_make_avail(g, 0, 0);
}

static void indirect_nested(struct tguest *g) {
  uint64_t table = TG_BUFS + 0x10000;
  tg_desc_at(g, table, 0, table, 16, VRING_DESC_F_INDIRECT, 0);
  tg_desc(g, 0, 0, table, 16, VRING_DESC_F_INDIRECT, 0);
  tg_make_avail(g, 0, 0);
}

static void indirect_bad_length(struct tguest *g) {
  tg_desc(g, 0, 0, TG_BUFS + 0x10000, 24, VRING_DESC_F_INDIRECT, 0);
  tg_make_avail(g, 0, 0);
}

static void indirect_next_beyond(struct tguest *g) {
  uint64_t table = TG_BUFS + 0x10000;
  tg_desc_at(g, table, 0, TG_BUFS, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
  tg_desc(g, 0, 0, table, 32, VRING_DESC_F_INDIRECT, 0);
  tg_make_avail(g, 0, 0);
}

static void indirect_outside_ram(struct tguest *g) {
  tg_desc(g, 0, 0, 0x7fff0000ull, 64, VRING_DESC_F_INDIRECT, 0);
  tg_make_avail(g, 0, 0);
}

static void test_hostile_chains(void) {
  expect_fault("two descriptors in a loop", ALL_FEATURES, 8, loop2, "longer than the queue");
  expect_fault("a descriptor naming itself", ALL_FEATURES, 8, self_loop, "longer than the queue");
  expect_fault("head index beyond the queue", ALL_FEATURES, 8, head_beyond_queue,
               "names descriptor 300");
  expect_fault("next index beyond the queue", ALL_FEATURES, 8, next_beyond_queue,
               "next descriptor 8");
  expect_fault("buffer in the MMIO hole", ALL_FEATURES, 8, buffer_outside_ram, "outside guest RAM");
  expect_fault("buffer across the end of RAM", ALL_FEATURES, 8, buffer_past_ram_end,
               "outside guest RAM");
  expect_fault("address + length wraps", ALL_FEATURES, 8, length_wraps, "outside guest RAM");
  expect_fault("available index a queue and one ahead", ALL_FEATURES, 8, avail_idx_jumps,
               "entries ahead");
  expect_fault("available index moved backwards", ALL_FEATURES, 8, avail_idx_backwards,
               "entries ahead");
  expect_fault("readable after writable", ALL_FEATURES, 8, readable_after_writable,
               "readable buffer follows");
  expect_fault("rng buffer not device-writable", ALL_FEATURES, 8, rng_readable, "device-readable");
  expect_fault("indirect not negotiated", NO_INDIRECT, 8, indirect_loop, "not negotiated");
  expect_fault("loop inside an indirect table", ALL_FEATURES, 8, indirect_loop,
               "longer than the queue");
  expect_fault("nested indirect table", ALL_FEATURES, 8, indirect_nested, "not at the head");
  expect_fault("indirect table of 1.5 descriptors", ALL_FEATURES, 8, indirect_bad_length,
               "not a multiple");
  expect_fault("next beyond the indirect table", ALL_FEATURES, 8, indirect_next_beyond,
               "beyond the table of 2");
  expect_fault("indirect table outside RAM", ALL_FEATURES, 8, indirect_outside_ram,
               "outside guest RAM");
}

/* Bad queue setups fault when the driver makes the queue ready, and leave it not ready. */
static void expect_setup_fault(const char *what, uint16_t num, uint64_t desc, uint64_t avail,
                               uint64_t used, const char *why) {
  struct tguest g;
  if (!rng_guest(&g, 2 << 20)) {
    CHECK(!"rng guest");
    return;
  }
  fprintf(stderr, "  hostile setup: %s\n", what);
  tg_w32(&g, VIRTIO_MMIO_QUEUE_SEL, 0);
  tg_w32(&g, VIRTIO_MMIO_QUEUE_NUM, num);
  tg_w32(&g, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
  tg_w32(&g, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
  tg_w32(&g, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)avail);
  tg_w32(&g, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(avail >> 32));
  tg_w32(&g, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)used);
  tg_w32(&g, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(used >> 32));
  tg_w32(&g, VIRTIO_MMIO_QUEUE_READY, 1);
  CHECK(tg_r32(&g, VIRTIO_MMIO_QUEUE_READY) == 0);
  CHECK(tg_needs_reset(&g));
  CHECK_CONTAINS(vmm_virtio_dev_fault(g.dev), why);
  tg_fini(&g);
}

static void test_hostile_setup(void) {
  expect_setup_fault("size 3", 3, 0x10000, 0x12000, 0x13000, "not a power of two");
  expect_setup_fault("size 0", 0, 0x10000, 0x12000, 0x13000, "not a power of two");
  expect_setup_fault("size 512 > max", 512, 0x10000, 0x12000, 0x13000, "at most 256");
  expect_setup_fault("misaligned descriptors", 8, 0x10008, 0x12000, 0x13000, "misaligned");
  expect_setup_fault("misaligned used ring", 8, 0x10000, 0x12000, 0x13002, "misaligned");
  expect_setup_fault("descriptors past RAM", 256, (2 << 20) - 0x800, 0x12000, 0x13000,
                     "outside guest RAM");
  expect_setup_fault("used ring in the hole", 8, 0x10000, 0x12000, 0xC0000000ull,
                     "outside guest RAM");
  expect_setup_fault("avail ring at 2^64 - 2", 8, 0x10000, UINT64_MAX - 1, 0x13000,
                     "outside guest RAM");
}

/* Buffer lengths that each fit in RAM but whose sum overflows 32 bits: the used length
 * could not say how much was written. Needs 2 GiB of (sparse, untouched) guest RAM. */
static void test_lengths_overflow(void) {
  struct tguest g;
  if (!rng_guest(&g, 2ull << 30)) {
    CHECK(!"rng guest");
    return;
  }
  CHECK(tg_setup(&g, ALL_FEATURES, 1, 8));
  for (uint16_t i = 0; i < 3; i++)
    tg_desc(&g, 0, i, 0x10000000ull, 0x60000000u, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, i + 1);
  tg_desc(&g, 0, 2, 0x10000000ull, 0x60000000u, VRING_DESC_F_WRITE, 0);
  tg_post(&g, 0, 0);
  CHECK(tg_needs_reset(&g));
  CHECK_CONTAINS(vmm_virtio_dev_fault(g.dev), "overflow 32 bits");
  tg_fini(&g);
}

/* A device model for the bound below: every request it serves makes one more available in
 * the ring it is serving, as a driver refilling the ring from a second vCPU (without
 * notifying) as fast as the notifying vCPU empties it would, but from inside the serving
 * itself, so the race is won every time and nothing depends on timing or threads. The
 * refills stop after a fixed number, so a device without the bound serves them all in the
 * one notification (and the test fails) instead of serving for ever. */
struct refill {
  struct tguest *g;
  unsigned served;       /* requests served, in all */
  unsigned refills_left; /* more the "second vCPU" posts */
};

static int64_t serve_refill(struct vmm_virtio_dev *dev, const struct virtq_chain *chain,
                            struct rc_error *err) {
  struct refill *r = dev->model;
  (void)chain;
  (void)err;
  r->served++;
  if (r->refills_left > 0) {
    r->refills_left--;
    tg_make_avail(r->g, 0, 0); /* one taken, one more: the ring stays a queue's worth ahead */
  }
  return 0;
}

static void refill_notify(struct vmm_virtio_dev *dev, unsigned q) {
  virtio_dev_serve(dev, q, serve_refill);
}

static const struct virtio_dev_ops refill_ops = {.name = "refill", .notify = refill_notify};

/* One notification serves at most one queue's worth of chains: a driver refilling the ring
 * (without notifying) cannot keep the notifying vCPU, and the device lock, in the device
 * for ever. Nothing is lost by the bound: a chain left over was posted after the
 * notification, and the driver's notification for it serves it. */
static void notify_is_bounded(uint16_t num) {
  enum { ROUNDS = 4 }; /* refills: this many queues' worth */
  struct tguest g;
  if (tg_init(&g, 2 << 20) < 0) {
    CHECK(!"guest memory");
    return;
  }
  struct refill r = {.g = &g};
  struct vmm_virtio_dev *dev;
  struct rc_error err = {0};
  if (virtio_dev_new(&g.mem, tg_irq(&g), &refill_ops, VIRTIO_ID_RNG, 0, 1, &dev, &err) < 0) {
    fprintf(stderr, "refill: %s\n", err.msg);
    CHECK(!"refill device");
    vmm_guest_mem_destroy(&g.mem);
    return;
  }
  dev->model = &r;
  tg_attach(&g, dev);
  CHECK(tg_setup(&g, ALL_FEATURES, 1, num));
  tg_desc(&g, 0, 0, TG_BUFS, 16, VRING_DESC_F_WRITE, 0);
  /* exactly a queue's worth posted before one notification: all of it is served, and
   * nothing that the serving itself made available (before the bound: num + ROUNDS * num,
   * every refill) */
  for (unsigned i = 0; i < num; i++) tg_make_avail(&g, 0, 0);
  r.refills_left = ROUNDS * num;
  int pulses = tg_pulses(&g);
  tg_notify(&g, 0);
  CHECK(r.served == num);
  CHECK(tg_pulses(&g) == pulses + 1);
  uint32_t id, len;
  unsigned used = 0;
  while (tg_take_used(&g, 0, &id, &len)) used++;
  CHECK(used == num);
  /* the notification came back and the device lock with it */
  CHECK(tg_r32(&g, VIRTIO_MMIO_MAGIC_VALUE) == 0x74726976);
  /* the driver notifies for what it posted: each notification serves one queue's worth
   * more, until the refills stop and the last one serves the rest */
  for (unsigned round = 0; round < ROUNDS; round++) {
    unsigned before = r.served;
    tg_notify(&g, 0);
    CHECK(r.served - before == num);
  }
  CHECK(r.refills_left == 0);
  tg_notify(&g, 0); /* nothing left */
  CHECK(r.served == (ROUNDS + 1) * num);
  uint16_t done = __atomic_load_n((uint16_t *)tg_ptr(&g, g.q[0].used + 2, 2), __ATOMIC_ACQUIRE);
  CHECK(done == g.q[0].avail_idx && done == (uint16_t)((ROUNDS + 1) * num));
  CHECK(vmm_virtio_dev_fault(g.dev) == NULL);
  tg_fini(&g);
}

static void test_notify_is_bounded(void) {
  notify_is_bounded(8);
  notify_is_bounded(256); /* the largest queue */
}

/* 2.1.2: a driver clears status bits only by resetting. Dropping FEATURES_OK under a live
 * device (to renegotiate with the queues running) or DRIVER_OK (to stop without a reset)
 * makes the device need a reset; it serves nothing until then. */
static void test_status_bits_cleared(void) {
  struct tguest g;
  if (!rng_guest(&g, 2 << 20)) {
    CHECK(!"rng guest");
    return;
  }
  uint32_t ok = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
                VIRTIO_CONFIG_S_DRIVER_OK;
  CHECK(tg_setup(&g, ALL_FEATURES, 1, 8));
  tg_w32(&g, VIRTIO_MMIO_STATUS, ok & ~(uint32_t)VIRTIO_CONFIG_S_FEATURES_OK);
  CHECK(tg_needs_reset(&g));
  CHECK_CONTAINS(vmm_virtio_dev_fault(g.dev), "cleared device status bits");
  /* the negotiation stays closed: new features are not taken */
  tg_w32(&g, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
  tg_w32(&g, VIRTIO_MMIO_DRIVER_FEATURES, 0);
  tg_w32(&g, VIRTIO_MMIO_STATUS, ok);
  CHECK(tg_r32(&g, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
  tg_desc(&g, 0, 0, TG_BUFS, 16, VRING_DESC_F_WRITE, 0);
  tg_post(&g, 0, 0);
  uint32_t id, len;
  CHECK(!tg_take_used(&g, 0, &id, &len));
  /* a reset starts over */
  CHECK(tg_setup(&g, ALL_FEATURES, 1, 8));
  tg_desc(&g, 0, 0, TG_BUFS, 16, VRING_DESC_F_WRITE, 0);
  tg_post(&g, 0, 0);
  CHECK(tg_take_used(&g, 0, &id, &len) && id == 0 && len == 16);
  tg_fini(&g);

  /* DRIVER_OK alone dropped */
  if (!rng_guest(&g, 2 << 20)) {
    CHECK(!"rng guest");
    return;
  }
  CHECK(tg_setup(&g, ALL_FEATURES, 1, 8));
  tg_w32(&g, VIRTIO_MMIO_STATUS, ok & ~(uint32_t)VIRTIO_CONFIG_S_DRIVER_OK);
  CHECK(tg_needs_reset(&g));
  tg_fini(&g);
}

UNIT_MAIN("virtio_mmio", UNIT_CASE(test_registers), UNIT_CASE(test_feature_negotiation),
          UNIT_CASE(test_rng_fills_buffers), UNIT_CASE(test_buffers_before_driver_ok),
          UNIT_CASE(test_indirect), UNIT_CASE(test_hostile_chains), UNIT_CASE(test_hostile_setup),
          UNIT_CASE(test_lengths_overflow), UNIT_CASE(test_notify_is_bounded),
          UNIT_CASE(test_status_bits_cleared))
