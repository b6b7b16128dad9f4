/* What the 64-bit boot protocol needs in memory before the first instruction: a GDT with
 * flat __BOOT_CS/__BOOT_DS descriptors, and identity page tables covering the kernel,
 * the zero page and the command line (here: all of the first 4 GiB, 2 MiB pages). The
 * kernel replaces both early in its startup. */
#include <string.h>

#include "vmm/boot.h"

#define PTE_PRESENT 0x1ULL
#define PTE_WRITE 0x2ULL
#define PTE_LARGE 0x80ULL /* a 2 MiB page in a page-directory entry */
#define TWO_MIB (2ULL << 20)

uint64_t vmm_gdt_entry(uint16_t flags, uint32_t base, uint32_t limit) {
  /* flags: the access byte in bits 0..7, the G/DB/L/AVL nibble in bits 12..15. */
  return ((uint64_t)(base & 0xff000000U) << 32) | ((uint64_t)(flags & 0xf0ffU) << 40) |
         ((uint64_t)(limit & 0x000f0000U) << 32) | ((uint64_t)(base & 0x00ffffffU) << 16) |
         (uint64_t)(limit & 0x0000ffffU);
}

int vmm_boot_write_pagetables(const struct vmm_guest_mem *mem, struct rc_error *err) {
  const uint64_t gdt[] = {
      0,                                 /* null */
      0,                                 /* unused: the boot protocol wants CS at 0x10 */
      vmm_gdt_entry(0xa09b, 0, 0xfffff), /* 0x10 code: present, exec/read, L, G */
      vmm_gdt_entry(0xc093, 0, 0xfffff), /* 0x18 data: present, read/write, DB, G */
      vmm_gdt_entry(0x008b, 0, 0x67),    /* 0x20 TSS: present, busy 64-bit TSS, 104 bytes */
      0,                                 /* 0x28: the TSS descriptor's upper half (base 0) */
  };
  if (vmm_gpa_write(mem, VMM_BOOT_GDT_ADDR, gdt, sizeof(gdt)) < 0)
    return rc_err(err, 0, "guest RAM too small for the boot GDT");

  uint64_t *pml4 = vmm_gpa_ptr(mem, VMM_BOOT_PML4_ADDR, 4096);
  uint64_t *pdpt = vmm_gpa_ptr(mem, VMM_BOOT_PDPT_ADDR, 4096);
  uint64_t *pd = vmm_gpa_ptr(mem, VMM_BOOT_PD_ADDR, VMM_BOOT_PD_PAGES * 4096);
  if (!pml4 || !pdpt || !pd) return rc_err(err, 0, "guest RAM too small for the boot page tables");
  memset(pml4, 0, 4096);
  memset(pdpt, 0, 4096);
  pml4[0] = VMM_BOOT_PDPT_ADDR | PTE_PRESENT | PTE_WRITE;
  for (unsigned i = 0; i < VMM_BOOT_PD_PAGES; i++)
    pdpt[i] = (VMM_BOOT_PD_ADDR + i * 4096ULL) | PTE_PRESENT | PTE_WRITE;
  for (unsigned i = 0; i < VMM_BOOT_PD_PAGES * 512; i++)
    pd[i] = (i * TWO_MIB) | PTE_PRESENT | PTE_WRITE | PTE_LARGE;
  return 0;
}
