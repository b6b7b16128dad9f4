/* virtio-balloon (virtio 1.x 5.5): how a microVM's memory follows what its guest uses.
 *
 * - Free page reporting (VIRTIO_BALLOON_F_REPORTING): the guest hands back blocks of
 *   memory it has freed; the device punches them out of the guest-RAM memfd, so the host
 *   gets the pages back (a later guest touch faults in a zeroed page). This is what makes
 *   the VMM's footprint fall after the workload frees memory.
 * - Inflate/deflate with a target (num_pages, DEFLATE_ON_OOM): the host asks the guest to
 *   give up memory (`update --memory` shrinking a microVM); inflated pages are punched out
 *   the same way; the guest takes them back under memory pressure.
 * - Statistics (VIRTIO_BALLOON_F_STATS_VQ): the guest's own view of its memory (free,
 *   total, available, caches, faults) on request, for `events --stats`.
 *
 * Everything the guest sends is checked: page frame numbers and reported ranges must be
 * page-aligned guest RAM (never the MMIO hole, never past the end); a guest that breaks
 * the rules fails the device (and so the machine).
 *
 * Threads: the set/request/read calls below may come from any thread (the VMM's main
 * loop); the device serialises them with the vCPUs under its own lock. */
#ifndef RUNCELL_VMM_BALLOON_H
#define RUNCELL_VMM_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "runcell/error.h"
#include "runcell/vmm/bus.h"
#include "runcell/vmm/guest_mem.h"

struct vmm_virtio_dev;
struct vmm_balloon;

/* The balloon's page: every page frame number the guest sends is in 4 KiB units. */
#define VMM_BALLOON_PAGE_SIZE 4096ULL

struct vmm_balloon_config {
  bool free_page_reporting; /* offer VIRTIO_BALLOON_F_REPORTING */
  bool deflate_on_oom;      /* offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM */
  bool stats;               /* offer VIRTIO_BALLOON_F_STATS_VQ */
};

/* The guest's memory statistics, by their virtio tags (VIRTIO_BALLOON_S_*). Values are as
 * the guest reports them: bytes for the memory figures, counts for the fault ones. */
enum vmm_balloon_stat {
  VMM_BALLOON_STAT_SWAP_IN = 0,
  VMM_BALLOON_STAT_SWAP_OUT = 1,
  VMM_BALLOON_STAT_MAJOR_FAULTS = 2,
  VMM_BALLOON_STAT_MINOR_FAULTS = 3,
  VMM_BALLOON_STAT_FREE = 4,      /* free memory */
  VMM_BALLOON_STAT_TOTAL = 5,     /* memory the guest kernel manages */
  VMM_BALLOON_STAT_AVAILABLE = 6, /* MemAvailable */
  VMM_BALLOON_STAT_CACHES = 7,    /* page cache */
  VMM_BALLOON_STAT_HUGETLB_ALLOCS = 8,
  VMM_BALLOON_STAT_HUGETLB_FAILURES = 9,
  VMM_BALLOON_STAT_COUNT = 10,
};

struct vmm_balloon_stats {
  uint64_t seq;   /* 0 before the guest's first report; grows by one with each */
  uint64_t at_ns; /* CLOCK_MONOTONIC when the report arrived */
  uint32_t valid; /* bit (1 << tag) for each figure the guest sent */
  uint64_t value[VMM_BALLOON_STAT_COUNT];
};

struct vmm_balloon_counters {
  uint64_t total_bytes;      /* guest RAM the balloon manages */
  uint64_t target_bytes;     /* the balloon size the host asked for (num_pages) */
  uint64_t actual_bytes;     /* the balloon size the guest says it reached (actual) */
  uint64_t inflated_bytes;   /* pages taken by inflate requests, all time */
  uint64_t deflated_bytes;   /* pages given back by deflate requests, all time */
  uint64_t reported_bytes;   /* free memory the guest reported, all time */
  uint64_t reports;          /* reporting requests served */
  uint64_t returned_bytes;   /* handed back to the host (holes punched; never-touched
                              * pages count too) */
  uint64_t discard_failures; /* ranges the host could not free (the guest is unaffected) */
  bool reporting_negotiated; /* the guest's driver took free page reporting */
  bool stats_negotiated;     /* ... and the statistics queue */
};

/* A balloon over guest RAM mem (its memfd is where memory goes back; anonymous memory,
 * as in the unit tests, is given back with MADV_DONTNEED). *dev is the virtio device to
 * place on the bus (the machine owns and destroys it); *balloon is the control handle,
 * valid as long as *dev. */
int vmm_virtio_balloon_create(const struct vmm_guest_mem *mem, struct vmm_irq_line irq,
                              const struct vmm_balloon_config *cfg, struct vmm_virtio_dev **dev,
                              struct vmm_balloon **balloon, struct rc_error *err);

/* Asks the guest to keep guest_bytes of its RAM (the balloon takes the rest, rounded down
 * to whole pages; at least 0, at most all of it). The guest inflates or deflates towards
 * it in its own time; counters.actual_bytes says how far it got. */
int vmm_balloon_set_target_bytes(struct vmm_balloon *b, uint64_t guest_bytes, struct rc_error *err);

/* Asks the guest for fresh statistics without waiting: stats_fd (an eventfd, nonblocking)
 * becomes readable once they arrived, and vmm_balloon_read_stats returns them. <0 when the
 * guest's driver did not take the statistics queue. */
int vmm_balloon_request_stats(struct vmm_balloon *b, struct rc_error *err);
int vmm_balloon_stats_fd(const struct vmm_balloon *b);
/* Copies the latest statistics (seq 0: none yet) and drains stats_fd. */
void vmm_balloon_read_stats(struct vmm_balloon *b, struct vmm_balloon_stats *out);

void vmm_balloon_counters(struct vmm_balloon *b, struct vmm_balloon_counters *out);

#endif
