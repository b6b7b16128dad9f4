/* virtio-balloon (virtio 1.x 5.5): inflate/deflate towards a host-set target, the memory
 * statistics queue, and free page reporting, all of which end in the same place: guest
 * pages the guest does not use are cut out of the guest-RAM memfd, so the host really
 * gets the memory back.
 *
 * Why a hole punch and not MADV_DONTNEED: guest RAM is a shared memfd mapping. DONTNEED
 * only drops the VMM's page table entries: RSS falls, but the pages stay in the memfd
 * and nothing is freed (measured: 256 MiB touched, DONTNEED -> RSS 1 MiB, memfd still
 * 256 MiB). FALLOC_FL_PUNCH_HOLE (or MADV_REMOVE) frees them; KVM's MMU notifier drops
 * its own mappings, and the guest's next touch faults in a zeroed page.
 *
 * Queue numbering follows the negotiated features (the spec's inflateq, deflateq, statsq,
 * free_page_vq, reporting_vq, each optional one present only when negotiated; the guest
 * numbers the ones present consecutively).
 *
 * Requests are served on the vCPU that notifies: the guest's driver waits for them, and a
 * report is a few dozen ranges. The VMM's main thread still gets the device lock between
 * two requests (virtio_dev_serve), so a guest feeding its queues cannot keep the host's
 * calls below waiting. Nothing the guest wrote is used before it is copied out and checked
 * against guest RAM. */
#include "runcell/vmm/balloon.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "virtio_dev.h"

/* Linux sends at most 256 page frame numbers per request; anything past this many is a
 * driver gone wrong, refused before any of it is used. It is also the most the VMM's main
 * thread waits for the device lock (virtio_dev_serve makes way for it between requests):
 * 4096 frames none next to another are 4096 hole punches, a few milliseconds. */
#define MAX_PFNS_PER_REQUEST 4096u
/* A statistics buffer holds one 10-byte entry per tag; more than this is not read. */
#define MAX_STAT_ENTRIES 32u
#define STAT_ENTRY_SIZE 10u /* le16 tag, le64 value, packed */
#define CONFIG_SIZE 8u      /* le32 num_pages, le32 actual: nothing else is offered */
#define CONFIG_NUM_PAGES 0u
#define CONFIG_ACTUAL 4u

enum queue_role { ROLE_INFLATE, ROLE_DEFLATE, ROLE_STATS, ROLE_FREE_PAGE_HINT, ROLE_REPORTING };

struct vmm_balloon {
  struct vmm_virtio_dev *dev; /* its lock guards everything below */
  int stats_fd;
  uint64_t total_pages;
  uint32_t target_pages, actual_pages;
  uint64_t inflated_pages, deflated_pages;
  uint64_t reported_bytes, reports, returned_bytes, discard_failures;
  bool stats_held; /* the driver's statistics buffer, kept until the host asks */
  uint16_t stats_head;
  unsigned stats_queue;
  struct vmm_balloon_stats stats;
  uint32_t pfns[MAX_PFNS_PER_REQUEST]; /* one request's page frame numbers, copied out */
};

static uint64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static bool negotiated(const struct vmm_virtio_dev *dev, unsigned feature) {
  return dev->driver_features & (1ull << feature);
}

/* Which queue q is, given what the driver negotiated; false for none. */
static bool queue_role(const struct vmm_virtio_dev *dev, unsigned q, enum queue_role *role) {
  static const struct {
    enum queue_role role;
    int feature; /* -1: always present */
  } order[] = {{ROLE_INFLATE, -1},
               {ROLE_DEFLATE, -1},
               {ROLE_STATS, VIRTIO_BALLOON_F_STATS_VQ},
               {ROLE_FREE_PAGE_HINT, VIRTIO_BALLOON_F_FREE_PAGE_HINT},
               {ROLE_REPORTING, VIRTIO_BALLOON_F_REPORTING}};
  unsigned index = 0;
  for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
    if (order[i].feature >= 0 && !negotiated(dev, (unsigned)order[i].feature)) continue;
    if (index++ == q) {
      *role = order[i].role;
      return true;
    }
  }
  return false;
}

/* The memfd offset of [gpa, gpa + len), which the caller checked lies in one region. */
static uint64_t fd_offset(const struct vmm_guest_mem *mem, uint64_t gpa) {
  for (unsigned i = 0; i < mem->n_regions; i++) {
    const struct vmm_mem_region *r = &mem->regions[i];
    if (gpa >= r->gpa && gpa - r->gpa < r->size) return r->fd_offset + (gpa - r->gpa);
  }
  return 0; /* not reached: every caller passes a checked range */
}

/* Gives [gpa, gpa + len) of guest RAM back to the host. A failure leaves the memory
 * where it was: the guest loses nothing, the host just does not get it back. */
static void discard(struct vmm_balloon *b, uint64_t gpa, uint64_t len) {
  const struct vmm_guest_mem *mem = b->dev->mem;
  int r;
  if (mem->memfd >= 0) {
    r = fallocate(mem->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)fd_offset(mem, gpa), (off_t)len);
  } else {
    r = madvise(vmm_gpa_ptr(mem, gpa, len), len, MADV_DONTNEED); /* private anonymous RAM */
  }
  if (r == 0)
    b->returned_bytes += len;
  else
    b->discard_failures++;
}

/* The guest-physical address of a chain buffer (which virtq_pop checked is guest RAM). */
static bool buf_gpa(const struct vmm_guest_mem *mem, const struct virtq_buf *buf, uint64_t *gpa) {
  for (unsigned i = 0; i < mem->n_regions; i++) {
    const struct vmm_mem_region *r = &mem->regions[i];
    if (buf->host >= r->host && (uint64_t)(buf->host - r->host) < r->size) {
      *gpa = r->gpa + (uint64_t)(buf->host - r->host);
      return true;
    }
  }
  return false;
}

/* Copies out and checks one inflate or deflate request: an array of le32 page frame
 * numbers, each a whole page of guest RAM. Returns how many. */
static int64_t take_pfns(struct vmm_balloon *b, const struct virtq_chain *chain,
                         struct rc_error *err) {
  if (chain->n_writable)
    return rc_err(err, 0, "page request %u has device-writable buffers", chain->head);
  if (chain->readable_len % sizeof(uint32_t) ||
      chain->readable_len / sizeof(uint32_t) > MAX_PFNS_PER_REQUEST)
    return rc_err(err, 0, "page request %u is %u bytes (whole le32 frame numbers, at most %u)",
                  chain->head, chain->readable_len, MAX_PFNS_PER_REQUEST);
  uint32_t n = chain->readable_len / (uint32_t)sizeof(uint32_t);
  (void)virtq_chain_read(chain, 0, b->pfns, (size_t)n * sizeof(uint32_t));
  for (uint32_t i = 0; i < n; i++) {
    b->pfns[i] = le32toh(b->pfns[i]);
    uint64_t gpa = (uint64_t)b->pfns[i] << VIRTIO_BALLOON_PFN_SHIFT;
    if (!vmm_gpa_ptr(b->dev->mem, gpa, VMM_BALLOON_PAGE_SIZE))
      return rc_err(err, 0, "page request %u: frame 0x%x is not guest RAM", chain->head,
                    b->pfns[i]);
  }
  return n;
}

static int64_t serve_inflate(struct vmm_virtio_dev *dev, const struct virtq_chain *chain,
                             struct rc_error *err) {
  struct vmm_balloon *b = dev->model;
  int64_t n = take_pfns(b, chain, err);
  if (n < 0) return -1;
  /* consecutive frames (the usual case) go back in one call */
  uint64_t run_gpa = 0, run_len = 0;
  for (int64_t i = 0; i < n; i++) {
    uint64_t gpa = (uint64_t)b->pfns[i] << VIRTIO_BALLOON_PFN_SHIFT;
    if (run_len && gpa == run_gpa + run_len &&
        vmm_gpa_ptr(dev->mem, run_gpa, run_len + VMM_BALLOON_PAGE_SIZE)) {
      run_len += VMM_BALLOON_PAGE_SIZE;
      continue;
    }
    if (run_len) discard(b, run_gpa, run_len);
    run_gpa = gpa;
    run_len = VMM_BALLOON_PAGE_SIZE;
  }
  if (run_len) discard(b, run_gpa, run_len);
  b->inflated_pages += (uint64_t)n;
  return 0;
}

/* Deflated pages need nothing: a hole refills with zeroes when the guest touches it. */
static int64_t serve_deflate(struct vmm_virtio_dev *dev, const struct virtq_chain *chain,
                             struct rc_error *err) {
  struct vmm_balloon *b = dev->model;
  int64_t n = take_pfns(b, chain, err);
  if (n < 0) return -1;
  b->deflated_pages += (uint64_t)n;
  return 0;
}

/* A free page report: device-writable buffers, each a free, page-aligned range of guest
 * RAM. Every range is checked before any is given back. */
static int64_t serve_report(struct vmm_virtio_dev *dev, const struct virtq_chain *chain,
                            struct rc_error *err) {
  struct vmm_balloon *b = dev->model;
  if (chain->n_readable)
    return rc_err(err, 0, "free page report %u has device-readable buffers", chain->head);
  uint64_t gpas[VIRTQ_MAX_SIZE];
  for (unsigned i = 0; i < chain->n_writable; i++) {
    const struct virtq_buf *buf = &chain->bufs[i];
    if (!buf_gpa(dev->mem, buf, &gpas[i]))
      return rc_err(err, 0, "free page report %u: range %u is not guest RAM", chain->head, i);
    if (gpas[i] % VMM_BALLOON_PAGE_SIZE || buf->len % VMM_BALLOON_PAGE_SIZE)
      return rc_err(err, 0, "free page report %u: range %u (0x%llx, %u bytes) is not page-aligned",
                    chain->head, i, (unsigned long long)gpas[i], buf->len);
  }
  for (unsigned i = 0; i < chain->n_writable; i++) {
    discard(b, gpas[i], chain->bufs[i].len);
    b->reported_bytes += chain->bufs[i].len;
  }
  b->reports++;
  return 0; /* the device writes nothing into a report */
}

static void signal_stats(const struct vmm_balloon *b) {
  uint64_t one = 1;
  if (write(b->stats_fd, &one, sizeof(one)) < 0) return; /* a full counter still reads */
}

/* The driver posted its statistics buffer: read it, then keep it until the host asks for
 * the next figures (handing it back is the request). At most one queue's worth per
 * notification, for the reasons (and with the guarantee that nothing is left behind) of
 * virtio_dev_serve. */
static void take_stats(struct vmm_virtio_dev *dev, unsigned q) {
  struct vmm_balloon *b = dev->model;
  struct rc_error err = {0};
  struct virtq_chain chain;
  for (unsigned budget = dev->queues[q].num; budget > 0; budget--) {
    int r = virtq_pop(&dev->queues[q], dev->mem, &chain, &err);
    if (r == 0) return;
    if (r > 0 && chain.n_writable)
      r = rc_err(&err, 0, "statistics buffer %u has device-writable buffers", chain.head);
    if (r < 0) {
      virtio_dev_fail(dev, err.msg);
      return;
    }
    uint8_t raw[MAX_STAT_ENTRIES * STAT_ENTRY_SIZE];
    size_t got = virtq_chain_read(&chain, 0, raw, sizeof(raw));
    struct vmm_balloon_stats s = {.seq = b->stats.seq + 1, .at_ns = monotonic_ns()};
    for (size_t off = 0; off + STAT_ENTRY_SIZE <= got; off += STAT_ENTRY_SIZE) {
      uint16_t tag;
      uint64_t value;
      memcpy(&tag, raw + off, sizeof(tag));
      memcpy(&value, raw + off + sizeof(tag), sizeof(value));
      tag = le16toh(tag);
      if (tag >= VMM_BALLOON_STAT_COUNT) continue; /* a newer driver's figure */
      s.value[tag] = le64toh(value);
      s.valid |= 1u << tag;
    }
    b->stats = s;
    /* a second buffer while one is held: the older goes back, answered */
    if (b->stats_held) {
      virtq_push(&dev->queues[b->stats_queue], b->stats_head, 0);
      virtio_dev_used(dev, b->stats_queue);
    }
    b->stats_held = true;
    b->stats_head = chain.head;
    b->stats_queue = q;
    signal_stats(b);
  }
}

static void balloon_notify(struct vmm_virtio_dev *dev, unsigned q) {
  enum queue_role role;
  if (!queue_role(dev, q, &role)) return;
  switch (role) {
    case ROLE_INFLATE:
      virtio_dev_serve(dev, q, serve_inflate);
      break;
    case ROLE_DEFLATE:
      virtio_dev_serve(dev, q, serve_deflate);
      break;
    case ROLE_STATS:
      take_stats(dev, q);
      break;
    case ROLE_REPORTING:
      virtio_dev_serve(dev, q, serve_report);
      break;
    case ROLE_FREE_PAGE_HINT: /* never offered */
      break;
  }
}

static void balloon_reset(struct vmm_virtio_dev *dev) {
  struct vmm_balloon *b = dev->model;
  b->stats_held = false; /* it belonged to the queues just reset */
  b->actual_pages = 0;   /* a reset driver holds no balloon pages */
  uint32_t zero = 0;
  memcpy(dev->config + CONFIG_ACTUAL, &zero, sizeof(zero));
}

/* The held statistics buffer belongs to its ring: once the driver disables that queue it
 * must never come back, not even into a ring set up again at the same place. */
static void balloon_queue_disabled(struct vmm_virtio_dev *dev, unsigned q) {
  struct vmm_balloon *b = dev->model;
  if (b->stats_held && b->stats_queue == q) b->stats_held = false;
}

/* The driver may write only `actual`, whole. */
static void balloon_config_write(struct vmm_virtio_dev *dev, uint32_t off, const void *data,
                                 uint32_t size) {
  struct vmm_balloon *b = dev->model;
  if (off != CONFIG_ACTUAL || size != sizeof(uint32_t)) return;
  uint32_t v;
  memcpy(&v, data, sizeof(v));
  v = le32toh(v);
  if (v > b->total_pages) v = (uint32_t)b->total_pages; /* a figure, never used to index */
  b->actual_pages = v;
  uint32_t le = htole32(v);
  memcpy(dev->config + CONFIG_ACTUAL, &le, sizeof(le));
}

static void balloon_destroy(struct vmm_virtio_dev *dev) {
  struct vmm_balloon *b = dev->model;
  if (!b) return;
  if (b->stats_fd >= 0) close(b->stats_fd);
  free(b);
}

static const struct virtio_dev_ops balloon_ops = {.name = "virtio-balloon",
                                                  .notify = balloon_notify,
                                                  .reset = balloon_reset,
                                                  .queue_disabled = balloon_queue_disabled,
                                                  .destroy = balloon_destroy,
                                                  .config_write = balloon_config_write};

int vmm_virtio_balloon_create(const struct vmm_guest_mem *mem, struct vmm_irq_line irq,
                              const struct vmm_balloon_config *cfg, struct vmm_virtio_dev **dev,
                              struct vmm_balloon **balloon, struct rc_error *err) {
  *dev = NULL;
  *balloon = NULL;
  struct vmm_balloon *b = calloc(1, sizeof(*b));
  if (!b) return rc_err(err, errno, "virtio-balloon: allocate");
  b->stats_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (b->stats_fd < 0) {
    rc_err(err, errno, "virtio-balloon: eventfd");
    free(b);
    return -1;
  }
  b->total_pages = mem->total / VMM_BALLOON_PAGE_SIZE;
  uint64_t features = 1ull << VIRTIO_RING_F_INDIRECT_DESC;
  unsigned n_queues = 2;
  if (cfg->stats) {
    features |= 1ull << VIRTIO_BALLOON_F_STATS_VQ;
    n_queues++;
  }
  if (cfg->free_page_reporting) {
    features |= 1ull << VIRTIO_BALLOON_F_REPORTING;
    n_queues++;
  }
  if (cfg->deflate_on_oom) features |= 1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
  struct vmm_virtio_dev *d;
  if (virtio_dev_new(mem, irq, &balloon_ops, VIRTIO_ID_BALLOON, features, n_queues, &d, err) < 0) {
    close(b->stats_fd);
    free(b);
    return -1;
  }
  b->dev = d;
  d->model = b;
  d->config_len = CONFIG_SIZE; /* num_pages 0: the balloon starts empty */
  *dev = d;
  *balloon = b;
  return 0;
}

/* The host-side calls below run on the VMM's main thread (its relay, which forwards stdio
 * and signals and answers control requests while nothing else does) and take the device
 * lock, which a vCPU holds while serving a notification. A notification may be a second of
 * hole punching (virtio_dev_serve: 256 requests of 4096 scattered frames), and a plain
 * mutex would let two vCPUs re-notifying from both sides keep it for many seconds; with
 * virtio_dev_host_lock the serving vCPU makes way between two requests, so these wait for
 * one request (4096 hole punches at most) however the guest feeds its queues. */
int vmm_balloon_set_target_bytes(struct vmm_balloon *b, uint64_t guest_bytes,
                                 struct rc_error *err) {
  (void)err; /* every size is valid: it is clamped to the guest's RAM */
  uint64_t total = b->total_pages * VMM_BALLOON_PAGE_SIZE;
  uint64_t keep = guest_bytes < total ? guest_bytes : total;
  uint32_t pages = (uint32_t)((total - keep) / VMM_BALLOON_PAGE_SIZE); /* RAM <= 1 TiB */
  virtio_dev_host_lock(b->dev);
  if (pages != b->target_pages) {
    b->target_pages = pages;
    uint32_t le = htole32(pages);
    memcpy(b->dev->config + CONFIG_NUM_PAGES, &le, sizeof(le));
    virtio_dev_config_changed(b->dev);
  }
  virtio_dev_host_unlock(b->dev);
  return 0;
}

int vmm_balloon_request_stats(struct vmm_balloon *b, struct rc_error *err) {
  struct vmm_virtio_dev *dev = b->dev;
  int r = 0;
  virtio_dev_host_lock(dev);
  if (!virtio_dev_live(dev) || !negotiated(dev, VIRTIO_BALLOON_F_STATS_VQ)) {
    r = rc_err(err, ENOTSUP, "virtio-balloon: the guest's driver has no statistics queue");
  } else if (b->stats_held && dev->queues[b->stats_queue].ready) {
    virtq_push(&dev->queues[b->stats_queue], b->stats_head, 0);
    virtio_dev_used(dev, b->stats_queue);
    b->stats_held = false;
  } /* else the buffer is with the driver already: its next post answers */
  virtio_dev_host_unlock(dev);
  return r;
}

int vmm_balloon_stats_fd(const struct vmm_balloon *b) {
  return b->stats_fd;
}

void vmm_balloon_read_stats(struct vmm_balloon *b, struct vmm_balloon_stats *out) {
  uint64_t n;
  if (read(b->stats_fd, &n, sizeof(n)) < 0) n = 0; /* EAGAIN: nothing new */
  virtio_dev_host_lock(b->dev);
  *out = b->stats;
  virtio_dev_host_unlock(b->dev);
}

void vmm_balloon_counters(struct vmm_balloon *b, struct vmm_balloon_counters *out) {
  const struct vmm_virtio_dev *dev = b->dev;
  virtio_dev_host_lock(b->dev);
  *out = (struct vmm_balloon_counters){
      .total_bytes = b->total_pages * VMM_BALLOON_PAGE_SIZE,
      .target_bytes = (uint64_t)b->target_pages * VMM_BALLOON_PAGE_SIZE,
      .actual_bytes = (uint64_t)b->actual_pages * VMM_BALLOON_PAGE_SIZE,
      .inflated_bytes = b->inflated_pages * VMM_BALLOON_PAGE_SIZE,
      .deflated_bytes = b->deflated_pages * VMM_BALLOON_PAGE_SIZE,
      .reported_bytes = b->reported_bytes,
      .reports = b->reports,
      .returned_bytes = b->returned_bytes,
      .discard_failures = b->discard_failures,
      .reporting_negotiated = negotiated(dev, VIRTIO_BALLOON_F_REPORTING),
      .stats_negotiated = negotiated(dev, VIRTIO_BALLOON_F_STATS_VQ),
  };
  virtio_dev_host_unlock(b->dev);
}
