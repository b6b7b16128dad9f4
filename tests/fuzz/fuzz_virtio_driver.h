/* The hostile guest driver shared by the fuzz_virtio_* targets: the input is a program of
 * operations on one virtio-mmio device and its guest RAM, decoded one byte of opcode at a
 * time (a truncated operation ends the program):
 *
 *   0 MMIO write     le16 offset (mod 4 KiB), u8 size (1/2/4/8), le64 value
 *   1 MMIO read      le16 offset (mod 4 KiB), u8 size
 *   2 memory write   le32 gpa (mod RAM + 64 KiB, so some land outside), u8 n, n bytes
 *   3 driver setup   u8 accept (bit 0 indirect), u8 log2 queue size: the whole 3.1.1
 *                    sequence, with the rings of queue q at 0x10000 * (q + 1)
 *   4 make available u8 queue, le16 head: avail ring entry, index + 1, notify
 *   5 descriptor     u8 queue, u8 index, le32 addr, le32 len, le16 flags, le16 next
 *   6 avail index    u8 queue, le16 index (no notify)
 *   7..15            left to the target (its `extra` callback); ignored without one
 *   (opcodes are taken mod 16)
 *
 * The device must survive every program: no crash, no sanitizer report, no hang. */
#ifndef RUNCELL_FUZZ_VIRTIO_DRIVER_H
#define RUNCELL_FUZZ_VIRTIO_DRIVER_H

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runcell/vmm/virtio.h"

#define FV_RAM (2u << 20)
#define FV_QUEUES 5 /* as many as a device has (the balloon: 5) */

struct fv_input {
  const uint8_t *p;
  size_t left;
};

static inline bool fv_take(struct fv_input *in, void *dst, size_t n) {
  if (in->left < n) return false;
  memcpy(dst, in->p, n);
  in->p += n;
  in->left -= n;
  return true;
}

struct fv_guest {
  struct vmm_guest_mem mem;
  struct vmm_bus_device win;
  uint16_t num[FV_QUEUES];
  uint16_t avail_idx[FV_QUEUES];
};

static int fv_irq_set(void *ctx, uint32_t gsi, bool level) {
  (void)ctx;
  (void)gsi;
  (void)level;
  return 0;
}

/* Guest RAM is made once and zeroed for every input. */
static inline struct vmm_guest_mem *fv_mem(void) {
  static struct vmm_guest_mem mem;
  static bool made;
  if (!made) {
    struct rc_error err = {0};
    if (vmm_guest_mem_create(&mem, FV_RAM, &err) < 0) abort();
    made = true;
  }
  memset(mem.regions[0].host, 0, mem.regions[0].size);
  return &mem;
}

static inline struct vmm_irq_line fv_irq(void) {
  return (struct vmm_irq_line){.set = fv_irq_set, .ctx = NULL, .gsi = 5};
}

static inline uint64_t fv_ring(unsigned q) {
  return 0x10000ull * (q + 1);
}

static inline void fv_w32(struct fv_guest *g, uint64_t off, uint32_t v) {
  g->win.write(g->win.opaque, off, &v, 4);
}

static inline uint32_t fv_r32(struct fv_guest *g, uint64_t off) {
  uint32_t v = 0;
  g->win.read(g->win.opaque, off, &v, 4);
  return v;
}

static inline void fv_setup(struct fv_guest *g, unsigned n_queues, uint8_t accept,
                            uint8_t log2_num) {
  fv_w32(g, VIRTIO_MMIO_STATUS, 0);
  fv_w32(g, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  uint64_t offered = 0;
  for (uint32_t sel = 0; sel < 2; sel++) {
    fv_w32(g, VIRTIO_MMIO_DEVICE_FEATURES_SEL, sel);
    offered |= (uint64_t)fv_r32(g, VIRTIO_MMIO_DEVICE_FEATURES) << (32 * sel);
  }
  if (!(accept & 1)) offered &= ~(1ull << 28); /* VIRTIO_RING_F_INDIRECT_DESC */
  for (uint32_t sel = 0; sel < 2; sel++) {
    fv_w32(g, VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
    fv_w32(g, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(offered >> (32 * sel)));
  }
  uint32_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
  fv_w32(g, VIRTIO_MMIO_STATUS, s);
  for (unsigned q = 0; q < n_queues; q++) {
    uint64_t base = fv_ring(q);
    g->num[q] = (uint16_t)(1u << (log2_num % 10)); /* up to 512: one past the maximum */
    g->avail_idx[q] = 0;
    fv_w32(g, VIRTIO_MMIO_QUEUE_SEL, q);
    fv_w32(g, VIRTIO_MMIO_QUEUE_NUM, g->num[q]);
    fv_w32(g, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)base);
    fv_w32(g, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)(base + 0x2000));
    fv_w32(g, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)(base + 0x3000));
    fv_w32(g, VIRTIO_MMIO_QUEUE_READY, 1);
  }
  fv_w32(g, VIRTIO_MMIO_STATUS, s | VIRTIO_CONFIG_S_DRIVER_OK);
}

static inline void fv_store16(struct fv_guest *g, uint64_t gpa, uint16_t v) {
  uint16_t *p = vmm_gpa_ptr(&g->mem, gpa, 2);
  if (p) __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Runs the program in `in` against the device whose window is g->win; extra handles
 * opcodes 7 to 15 (may be NULL) and returns false to end the program. */
static inline void fv_run(struct fv_guest *g, unsigned n_queues, struct fv_input *in,
                          bool (*extra)(uint8_t op, struct fv_input *in, void *ctx), void *ctx) {
  uint8_t op;
  while (fv_take(in, &op, 1)) {
    switch (op % 16) {
      case 0: {
        uint16_t off;
        uint8_t size;
        uint64_t v;
        if (!fv_take(in, &off, 2) || !fv_take(in, &size, 1) || !fv_take(in, &v, 8)) return;
        size = (uint8_t)(1u << (size % 4));
        off = (uint16_t)(off % 0x1000);
        if (off + size > 0x1000) break; /* the bus never routes one across the window */
        g->win.write(g->win.opaque, off, &v, size);
        break;
      }
      case 1: {
        uint16_t off;
        uint8_t size;
        uint64_t v;
        if (!fv_take(in, &off, 2) || !fv_take(in, &size, 1)) return;
        size = (uint8_t)(1u << (size % 4));
        off = (uint16_t)(off % 0x1000);
        if (off + size > 0x1000) break;
        g->win.read(g->win.opaque, off, &v, size);
        break;
      }
      case 2: {
        uint32_t gpa;
        uint8_t n;
        uint8_t bytes[255];
        if (!fv_take(in, &gpa, 4) || !fv_take(in, &n, 1) || !fv_take(in, bytes, n)) return;
        (void)vmm_gpa_write(&g->mem, gpa % (FV_RAM + 0x10000), bytes, n);
        break;
      }
      case 3: {
        uint8_t accept, log2_num;
        if (!fv_take(in, &accept, 1) || !fv_take(in, &log2_num, 1)) return;
        fv_setup(g, n_queues, accept, log2_num);
        break;
      }
      case 4: {
        uint8_t q;
        uint16_t head;
        if (!fv_take(in, &q, 1) || !fv_take(in, &head, 2)) return;
        q %= n_queues;
        uint16_t num = g->num[q] ? g->num[q] : 1;
        uint64_t avail = fv_ring(q) + 0x2000;
        fv_store16(g, avail + 4 + 2u * (g->avail_idx[q] % num), head);
        fv_store16(g, avail + 2, ++g->avail_idx[q]);
        fv_w32(g, VIRTIO_MMIO_QUEUE_NOTIFY, q);
        break;
      }
      case 5: {
        uint8_t q, i;
        uint32_t addr, len;
        uint16_t flags, next;
        if (!fv_take(in, &q, 1) || !fv_take(in, &i, 1) || !fv_take(in, &addr, 4) ||
            !fv_take(in, &len, 4) || !fv_take(in, &flags, 2) || !fv_take(in, &next, 2))
          return;
        uint8_t d[16];
        uint64_t a = addr;
        memcpy(d, &a, 8);
        memcpy(d + 8, &len, 4);
        memcpy(d + 12, &flags, 2);
        memcpy(d + 14, &next, 2);
        (void)vmm_gpa_write(&g->mem, fv_ring(q % n_queues) + 16u * i, d, 16);
        break;
      }
      case 6: {
        uint8_t q;
        uint16_t idx;
        if (!fv_take(in, &q, 1) || !fv_take(in, &idx, 2)) return;
        q %= n_queues;
        g->avail_idx[q] = idx;
        fv_store16(g, fv_ring(q) + 0x2000 + 2, idx);
        break;
      }
      default:
        if (extra && !extra((uint8_t)(op % 16), in, ctx)) return;
        break;
    }
  }
}

#endif
