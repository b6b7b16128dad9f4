/* Split virtqueues (virtio 1.x, 2.7) from the device's side. The driver (the guest) owns
 * the descriptor table and the available ring, the device owns the used ring; all three
 * live in guest RAM at addresses the driver wrote. Nothing the guest wrote is trusted:
 * queue addresses are range-checked once when the queue is enabled, each descriptor is
 * copied out once and validated before use, every buffer range goes through vmm_gpa_ptr,
 * and a chain is bounded by the queue size so that a loop cannot spin the VMM.
 *
 * Not thread-safe: the device serialises access to its queues with its own lock. */
#ifndef RUNCELL_VMM_VIRTIO_VIRTQUEUE_H
#define RUNCELL_VMM_VIRTIO_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "runcell/error.h"
#include "runcell/vmm/guest_mem.h"

/* The largest queue a device offers (QueueNumMax), and so the longest chain. */
#define VIRTQ_MAX_SIZE 256

/* One buffer of a chain, already range-checked: host points at len bytes of guest RAM. */
struct virtq_buf {
  uint8_t *host;
  uint32_t len;
};

/* A descriptor chain as the device sees it: the device-readable buffers first, then the
 * device-writable ones (the driver must order them so; a chain that does not is refused).
 * Zero-length buffers are dropped. */
struct virtq_chain {
  uint16_t head; /* the id that goes back in the used ring */
  unsigned n_readable, n_writable;
  uint32_t readable_len, writable_len; /* sums, each checked to fit 32 bits */
  struct virtq_buf bufs[VIRTQ_MAX_SIZE];
};

struct virtq {
  /* Set by the driver through the transport while the queue is not ready. */
  uint16_t num;
  uint64_t desc_gpa, avail_gpa, used_gpa;
  bool ready;
  /* Valid while ready: where the rings live in the VMM, and the device's positions. */
  bool indirect; /* VIRTIO_F_RING_INDIRECT_DESC negotiated */
  const uint8_t *desc;
  const uint8_t *avail;
  uint8_t *used;
  uint16_t last_avail; /* next available-ring slot the device takes */
  uint16_t used_idx;   /* next used-ring slot the device fills */
};

/* Forgets everything the driver set (device reset). */
void virtq_reset(struct virtq *q);

/* Checks the driver's setup (size a power of two <= max, aligned rings wholly in RAM) and
 * makes the queue ready; <0 with the reason otherwise. */
int virtq_enable(struct virtq *q, const struct vmm_guest_mem *mem, uint16_t max, bool indirect,
                 struct rc_error *err);

/* A queue that is not ready has nothing available and takes nothing back. */

/* 1 when the driver has made a chain available that the device has not taken, 0 when not,
 * <0 when the available index is more than a queue's worth ahead (a broken driver). */
int virtq_has_avail(const struct virtq *q, struct rc_error *err);

/* Takes the next available chain into *chain: 1 on success, 0 when there is none, <0
 * when the chain breaks the rules (index out of range, loop, address outside RAM, a
 * readable buffer after a writable one, lengths that overflow, a bad indirect table). */
int virtq_pop(struct virtq *q, const struct vmm_guest_mem *mem, struct virtq_chain *chain,
              struct rc_error *err);

/* Gives back the chain the last virtq_pop took, unused (the device could not serve it
 * yet); the next virtq_pop reads it again from guest memory. */
void virtq_unpop(struct virtq *q);

/* Returns a chain to the driver through the used ring, with the number of bytes the
 * device wrote into its writable buffers. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t written);

/* Whether the driver wants an interrupt for used buffers (VRING_AVAIL_F_NO_INTERRUPT
 * clear). Call after pushing. */
bool virtq_wants_interrupt(const struct virtq *q);

/* Copies up to len bytes starting at offset off of the chain's readable part (or, for
 * virtq_chain_write, into its writable part); returns the bytes copied. */
size_t virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *dst, size_t len);
size_t virtq_chain_write(const struct virtq_chain *c, uint64_t off, const void *src, size_t len);

/* Fills iov (room for max entries) with [off, off + len) of the chain's readable or
 * writable part, clipped to what the part holds; returns the entries used. */
unsigned virtq_chain_iov(const struct virtq_chain *c, bool writable, uint64_t off, uint64_t len,
                         struct iovec *iov, unsigned max);

#endif
