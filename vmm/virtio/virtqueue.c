/* Split virtqueues from the device's side: every index, descriptor and address the guest
 * wrote is read once into the VMM, checked, and only then used. */
#include "virtqueue.h"

#include <endian.h>
#include <linux/virtio_ring.h>
#include <string.h>

/* The layouts of virtio 1.x 2.7 (all fields little-endian):
 *   descriptor: le64 addr, le32 len, le16 flags, le16 next            (16 bytes, align 16)
 *   available:  le16 flags, le16 idx, le16 ring[num], le16 used_event (align 2)
 *   used:       le16 flags, le16 idx, {le32 id, le32 len} ring[num], le16 avail_event
 *                                                                     (align 4) */
#define DESC_SIZE 16u
#define AVAIL_RING_OFF 4u
#define USED_RING_OFF 4u
#define USED_ELEM_SIZE 8u

struct desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags, next;
};

/* The guest changes these at any time: one atomic load or store each, never a torn
 * access, and the fences order them against the ring contents. */
static uint16_t load_le16(const uint8_t *p) {
  return le16toh(__atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_RELAXED));
}

static void store_le16(uint8_t *p, uint16_t v) {
  __atomic_store_n((uint16_t *)(void *)p, htole16(v), __ATOMIC_RELAXED);
}

void virtq_reset(struct virtq *q) {
  memset(q, 0, sizeof(*q));
}

int virtq_enable(struct virtq *q, const struct vmm_guest_mem *mem, uint16_t max, bool indirect,
                 struct rc_error *err) {
  uint16_t n = q->num;
  if (n == 0 || n > max || (n & (n - 1)) != 0)
    return rc_err(err, 0, "queue size %u is not a power of two of at most %u", n, max);
  if (q->desc_gpa % 16 || q->avail_gpa % 2 || q->used_gpa % 4)
    return rc_err(err, 0, "misaligned rings (descriptors 0x%llx, available 0x%llx, used 0x%llx)",
                  (unsigned long long)q->desc_gpa, (unsigned long long)q->avail_gpa,
                  (unsigned long long)q->used_gpa);
  /* the rings with their event fields, whether or not EVENT_IDX is negotiated */
  const void *desc = vmm_gpa_ptr(mem, q->desc_gpa, (uint64_t)DESC_SIZE * n);
  const void *avail = vmm_gpa_ptr(mem, q->avail_gpa, AVAIL_RING_OFF + 2ull * n + 2);
  void *used = vmm_gpa_ptr(mem, q->used_gpa, USED_RING_OFF + (uint64_t)USED_ELEM_SIZE * n + 2);
  if (!desc || !avail || !used)
    return rc_err(err, 0,
                  "queue rings outside guest RAM (descriptors 0x%llx, available 0x%llx, "
                  "used 0x%llx, size %u)",
                  (unsigned long long)q->desc_gpa, (unsigned long long)q->avail_gpa,
                  (unsigned long long)q->used_gpa, n);
  q->desc = desc;
  q->avail = avail;
  q->used = used;
  q->indirect = indirect;
  q->last_avail = 0;
  q->used_idx = 0;
  q->ready = true;
  return 0;
}

int virtq_has_avail(const struct virtq *q, struct rc_error *err) {
  if (!q->ready) return 0;
  uint16_t idx = load_le16(q->avail + 2);
  uint16_t pending = (uint16_t)(idx - q->last_avail);
  if (pending > q->num)
    return rc_err(err, 0, "available index %u is %u entries ahead of %u (queue size %u)", idx,
                  pending, q->last_avail, q->num);
  return pending != 0;
}

static struct desc read_desc(const uint8_t *table, uint16_t i) {
  uint8_t raw[DESC_SIZE];
  memcpy(raw, table + (size_t)i * DESC_SIZE, sizeof(raw)); /* the one read of this entry */
  struct desc d;
  memcpy(&d.addr, raw, 8);
  memcpy(&d.len, raw + 8, 4);
  memcpy(&d.flags, raw + 12, 2);
  memcpy(&d.next, raw + 14, 2);
  d.addr = le64toh(d.addr);
  d.len = le32toh(d.len);
  d.flags = le16toh(d.flags);
  d.next = le16toh(d.next);
  return d;
}

/* Adds one buffer descriptor to the chain after checking its range and its place. */
static int add_buf(struct virtq_chain *c, const struct vmm_guest_mem *mem, const struct desc *d,
                   struct rc_error *err) {
  bool writable = d->flags & VRING_DESC_F_WRITE;
  if (!writable && c->n_writable)
    return rc_err(err, 0, "chain %u: a device-readable buffer follows a writable one", c->head);
  uint8_t *host = vmm_gpa_ptr(mem, d->addr, d->len);
  if (!host)
    return rc_err(err, 0, "chain %u: buffer 0x%llx+%u is outside guest RAM", c->head,
                  (unsigned long long)d->addr, d->len);
  if (d->len == 0) return 0;
  uint32_t *sum = writable ? &c->writable_len : &c->readable_len;
  if (d->len > UINT32_MAX - *sum)
    return rc_err(err, 0, "chain %u: buffer lengths overflow 32 bits", c->head);
  *sum += d->len;
  c->bufs[c->n_readable + c->n_writable] = (struct virtq_buf){.host = host, .len = d->len};
  if (writable)
    c->n_writable++;
  else
    c->n_readable++;
  return 0;
}

int virtq_pop(struct virtq *q, const struct vmm_guest_mem *mem, struct virtq_chain *chain,
              struct rc_error *err) {
  int avail = virtq_has_avail(q, err);
  if (avail <= 0) return avail;
  /* the ring entry and the descriptors were written before the index: read them after */
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  uint16_t head = load_le16(q->avail + AVAIL_RING_OFF + 2u * (q->last_avail & (q->num - 1)));
  if (head >= q->num)
    return rc_err(err, 0, "available ring slot %u names descriptor %u (queue size %u)",
                  q->last_avail & (q->num - 1), head, q->num);
  chain->head = head;
  chain->n_readable = chain->n_writable = 0;
  chain->readable_len = chain->writable_len = 0;

  const uint8_t *table = q->desc;
  uint32_t table_len = q->num;
  uint16_t i = head;
  /* a chain never holds more descriptors than the queue has entries (2.7.5.2): this
   * budget ends loops, in the table and in an indirect table alike */
  for (unsigned budget = q->num, walked = 0;; walked++) {
    if (budget-- == 0)
      return rc_err(err, 0, "chain %u is longer than the queue size %u (a loop?)", head, q->num);
    struct desc d = read_desc(table, i);
    if (d.flags & VRING_DESC_F_INDIRECT) {
      if (!q->indirect) return rc_err(err, 0, "chain %u: indirect descriptor not negotiated", head);
      if (table != q->desc || walked != 0)
        return rc_err(err, 0, "chain %u: indirect descriptor not at the head of the chain", head);
      if (d.flags & VRING_DESC_F_NEXT)
        return rc_err(err, 0, "chain %u: indirect descriptor with NEXT set", head);
      if (d.len == 0 || d.len % DESC_SIZE)
        return rc_err(err, 0, "chain %u: indirect table length %u is not a multiple of %u", head,
                      d.len, DESC_SIZE);
      table = vmm_gpa_ptr(mem, d.addr, d.len);
      if (!table)
        return rc_err(err, 0, "chain %u: indirect table 0x%llx+%u is outside guest RAM", head,
                      (unsigned long long)d.addr, d.len);
      table_len = d.len / DESC_SIZE;
      i = 0;
      budget = q->num; /* the indirect table holds the whole chain */
      continue;
    }
    if (add_buf(chain, mem, &d, err) < 0) return -1;
    if (!(d.flags & VRING_DESC_F_NEXT)) break;
    if (d.next >= table_len)
      return rc_err(err, 0, "chain %u: next descriptor %u is beyond the table of %u", head, d.next,
                    table_len);
    i = d.next;
  }
  q->last_avail++;
  return 1;
}

void virtq_unpop(struct virtq *q) {
  q->last_avail--;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t written) {
  if (!q->ready) return; /* disabled meanwhile: the driver takes nothing back from it */
  uint8_t *elem = q->used + USED_RING_OFF + (size_t)USED_ELEM_SIZE * (q->used_idx & (q->num - 1));
  uint32_t id_le = htole32(head), len_le = htole32(written);
  memcpy(elem, &id_le, 4);
  memcpy(elem + 4, &len_le, 4);
  q->used_idx++;
  /* the element (and the data the device wrote) before the index that publishes it */
  __atomic_thread_fence(__ATOMIC_RELEASE);
  store_le16(q->used + 2, q->used_idx);
}

bool virtq_wants_interrupt(const struct virtq *q) {
  if (!q->ready) return false;
  /* the used index store before the flags load, or a driver re-enabling interrupts
   * between the two could miss this one */
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return !(load_le16(q->avail) & VRING_AVAIL_F_NO_INTERRUPT);
}

/* The buffers of one part of the chain. */
static const struct virtq_buf *part(const struct virtq_chain *c, bool writable, unsigned *n) {
  *n = writable ? c->n_writable : c->n_readable;
  return writable ? c->bufs + c->n_readable : c->bufs;
}

unsigned virtq_chain_iov(const struct virtq_chain *c, bool writable, uint64_t off, uint64_t len,
                         struct iovec *iov, unsigned max) {
  unsigned n, used = 0;
  const struct virtq_buf *b = part(c, writable, &n);
  for (unsigned i = 0; i < n && len > 0 && used < max; i++) {
    if (off >= b[i].len) {
      off -= b[i].len;
      continue;
    }
    uint64_t take = b[i].len - off;
    if (take > len) take = len;
    iov[used++] = (struct iovec){.iov_base = b[i].host + off, .iov_len = take};
    len -= take;
    off = 0;
  }
  return used;
}

size_t virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *dst, size_t len) {
  struct iovec iov[VIRTQ_MAX_SIZE];
  unsigned n = virtq_chain_iov(c, false, off, len, iov, VIRTQ_MAX_SIZE);
  size_t done = 0;
  for (unsigned i = 0; i < n; i++) {
    memcpy((uint8_t *)dst + done, iov[i].iov_base, iov[i].iov_len);
    done += iov[i].iov_len;
  }
  return done;
}

size_t virtq_chain_write(const struct virtq_chain *c, uint64_t off, const void *src, size_t len) {
  struct iovec iov[VIRTQ_MAX_SIZE];
  unsigned n = virtq_chain_iov(c, true, off, len, iov, VIRTQ_MAX_SIZE);
  size_t done = 0;
  for (unsigned i = 0; i < n; i++) {
    memcpy(iov[i].iov_base, (const uint8_t *)src + done, iov[i].iov_len);
    done += iov[i].iov_len;
  }
  return done;
}
