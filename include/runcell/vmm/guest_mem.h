/* Guest memory: one memfd mapped into the VMM, registered with KVM as at most two slots
 * (below the MMIO hole, and above 4 GiB). Every address the guest hands the VMM goes
 * through vmm_gpa_ptr/vmm_gpa_read/vmm_gpa_write, which check the whole range lies in RAM
 * (overflow-safe): a guest-written address is never used unchecked. */
#ifndef RUNCELL_VMM_GUEST_MEM_H
#define RUNCELL_VMM_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runcell/error.h"

struct vmm_mem_region {
  uint64_t gpa;       /* guest-physical start */
  uint64_t size;      /* bytes */
  uint8_t *host;      /* where the VMM sees it */
  uint64_t fd_offset; /* offset in the memfd */
};

struct vmm_guest_mem {
  struct vmm_mem_region regions[2];
  unsigned n_regions;
  uint64_t total; /* bytes of RAM */
  int memfd;      /* -1 when the memory is anonymous (unit tests) */
};

/* Creates size bytes of guest RAM (rounded up to 2 MiB) from a memfd, split around the
 * MMIO hole. */
int vmm_guest_mem_create(struct vmm_guest_mem *m, uint64_t size, struct rc_error *err);
void vmm_guest_mem_destroy(struct vmm_guest_mem *m);

/* The host address of [gpa, gpa + len), or NULL unless the range lies wholly inside one
 * RAM region. len 0 is allowed (a valid gpa is still required). */
void *vmm_gpa_ptr(const struct vmm_guest_mem *m, uint64_t gpa, uint64_t len);

/* Copies between guest RAM and the VMM; <0 (no partial copy) when the range is not RAM. */
int vmm_gpa_read(const struct vmm_guest_mem *m, uint64_t gpa, void *dst, uint64_t len);
int vmm_gpa_write(const struct vmm_guest_mem *m, uint64_t gpa, const void *src, uint64_t len);

#endif
