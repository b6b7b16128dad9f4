/* Guest RAM from one memfd: the file is what a later balloon or free-page report punches
 * holes in, and what KVM maps as the memory slots. */
#include "runcell/vmm/guest_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runcell/vmm/layout.h"

#define TWO_MIB (2ULL << 20)

int vmm_guest_mem_create(struct vmm_guest_mem *m, uint64_t size, struct rc_error *err) {
  memset(m, 0, sizeof(*m));
  m->memfd = -1;
  if (size == 0 || size > (1ULL << 40))
    return rc_err(err, 0, "guest memory size %llu bytes is out of range", (unsigned long long)size);
  size = (size + TWO_MIB - 1) & ~(TWO_MIB - 1);
  m->memfd = memfd_create("runcell-guest-ram", MFD_CLOEXEC);
  if (m->memfd < 0) return rc_err(err, errno, "memfd for guest memory");
  if (ftruncate(m->memfd, (off_t)size) < 0) {
    rc_err(err, errno, "size guest memory to %llu bytes", (unsigned long long)size);
    vmm_guest_mem_destroy(m);
    return -1;
  }
  uint64_t low = size < VMM_MMIO_HOLE_START ? size : VMM_MMIO_HOLE_START;
  uint64_t spans[2][2] = {{0, low}, {VMM_MMIO_HOLE_END, size - low}};
  uint64_t offset = 0;
  for (int i = 0; i < 2; i++) {
    if (spans[i][1] == 0) continue;
    /* MAP_NORESERVE: the guest's RAM is committed as it touches it, as on a real machine. */
    void *p = mmap(NULL, spans[i][1], PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->memfd,
                   (off_t)offset);
    if (p == MAP_FAILED) {
      rc_err(err, errno, "map %llu bytes of guest memory", (unsigned long long)spans[i][1]);
      vmm_guest_mem_destroy(m);
      return -1;
    }
    m->regions[m->n_regions++] = (struct vmm_mem_region){
        .gpa = spans[i][0], .size = spans[i][1], .host = p, .fd_offset = offset};
    offset += spans[i][1];
  }
  m->total = size;
  return 0;
}

void vmm_guest_mem_destroy(struct vmm_guest_mem *m) {
  for (unsigned i = 0; i < m->n_regions; i++) munmap(m->regions[i].host, m->regions[i].size);
  if (m->memfd >= 0) close(m->memfd);
  memset(m, 0, sizeof(*m));
  m->memfd = -1;
}

void *vmm_gpa_ptr(const struct vmm_guest_mem *m, uint64_t gpa, uint64_t len) {
  for (unsigned i = 0; i < m->n_regions; i++) {
    const struct vmm_mem_region *r = &m->regions[i];
    if (gpa < r->gpa) continue;
    uint64_t off = gpa - r->gpa;
    /* off < size and len <= size - off: no sum that can wrap. */
    if (off >= r->size || len > r->size - off) continue;
    return r->host + off;
  }
  return NULL;
}

int vmm_gpa_read(const struct vmm_guest_mem *m, uint64_t gpa, void *dst, uint64_t len) {
  const void *p = vmm_gpa_ptr(m, gpa, len);
  if (!p) return -1;
  memcpy(dst, p, len);
  return 0;
}

int vmm_gpa_write(const struct vmm_guest_mem *m, uint64_t gpa, const void *src, uint64_t len) {
  void *p = vmm_gpa_ptr(m, gpa, len);
  if (!p) return -1;
  memcpy(p, src, len);
  return 0;
}
