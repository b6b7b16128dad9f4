/* The Linux boot path of the VMM (private to vmm/): where the boot structures live in
 * low guest memory, the kernel loaders (uncompressed vmlinux ELF and bzImage), the zero
 * page (boot_params with the e820 map, command line and initrd), the MP table that tells
 * the guest about every vCPU without ACPI, and the long-mode page tables and GDT the
 * 64-bit entry point requires.
 *
 * Everything read from a kernel or initrd file is bounds-checked before use: a corrupt
 * image gives an error naming the field, never a write outside guest RAM. */
#ifndef RUNCELL_VMM_BOOT_H
#define RUNCELL_VMM_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "runcell/error.h"
#include "runcell/vmm/guest_mem.h"

/* Low-memory layout (guest-physical). The real-mode IVT/BDA page (0..0x4ff) stays zero. */
#define VMM_BOOT_GDT_ADDR 0x500ULL
#define VMM_BOOT_ZERO_PAGE_ADDR 0x7000ULL
#define VMM_BOOT_STACK_ADDR 0x8ff0ULL
#define VMM_BOOT_PML4_ADDR 0x9000ULL
#define VMM_BOOT_PDPT_ADDR 0xa000ULL
#define VMM_BOOT_PD_ADDR 0xb000ULL /* four pages: 0xb000..0xefff */
#define VMM_BOOT_PD_PAGES 4        /* 4 x 1 GiB of 2 MiB pages: everything below 4 GiB */
#define VMM_BOOT_CMDLINE_ADDR 0x20000ULL
#define VMM_BOOT_CMDLINE_MAX 0x10000ULL /* bytes reserved for it, NUL included */
/* The top 1 KiB of base memory is the EBDA, where the MP floating pointer and table go
 * (Linux scans "the last KiB of base memory" for it); 0x9fc00..1 MiB is reserved in e820. */
#define VMM_BOOT_EBDA_ADDR 0x9fc00ULL
#define VMM_BOOT_HIGH_MEM 0x100000ULL /* 1 MiB: where the protected-mode kernel may start */

/* GDT selectors the 64-bit boot protocol requires (__BOOT_CS, __BOOT_DS) and our TSS. */
#define VMM_BOOT_CS 0x10
#define VMM_BOOT_DS 0x18
#define VMM_BOOT_TSS 0x20 /* a 16-byte descriptor in long mode: entries 4 and 5 */
#define VMM_BOOT_GDT_ENTRIES 6

/* What a loaded kernel image tells the rest of the boot. */
struct vmm_kernel_info {
  uint64_t entry;           /* guest-physical 64-bit entry point */
  uint64_t end;             /* first byte above what the kernel occupies or needs */
  uint64_t initrd_addr_max; /* highest address the initrd may end at (inclusive) */
  uint32_t cmdline_max;     /* longest command line the kernel takes, NUL excluded */
  /* The setup header to start the zero page from: copied from a bzImage (hdr_len bytes
   * starting at 0x1f1 of the file), none (0) for a vmlinux. */
  uint8_t hdr[0x290 - 0x1f1];
  size_t hdr_len;
};

/* Loads an uncompressed vmlinux: PT_LOAD segments at their physical addresses, which
 * must lie in RAM at or above 1 MiB; the entry (e_entry) must lie in a loaded segment. */
int vmm_boot_load_elf(const struct vmm_guest_mem *mem, const uint8_t *img, size_t len,
                      struct vmm_kernel_info *ki, struct rc_error *err);

/* Loads a bzImage: checks the setup header ("HdrS", protocol >= 2.12 with XLF_KERNEL_64),
 * copies the protected-mode kernel to its preferred address (or 1 MiB) and sets the
 * entry to the 64-bit entry point 0x200 past it. */
int vmm_boot_load_bzimage(const struct vmm_guest_mem *mem, const uint8_t *img, size_t len,
                          struct vmm_kernel_info *ki, struct rc_error *err);

/* Either of the above, by the image's magic. */
int vmm_boot_load_kernel(const struct vmm_guest_mem *mem, const uint8_t *img, size_t len,
                         struct vmm_kernel_info *ki, struct rc_error *err);

/* Where an initrd of `size` bytes goes: page-aligned, as high as it may be (below
 * initrd_addr_max and the end of RAM below 4 GiB), above the kernel. */
int vmm_boot_initrd_addr(const struct vmm_guest_mem *mem, const struct vmm_kernel_info *ki,
                         uint64_t size, uint64_t *addr, struct rc_error *err);

/* The e820 map for this guest's RAM; returns the number of entries (<= max). */
struct boot_e820_entry;
unsigned vmm_boot_e820(const struct vmm_guest_mem *mem, struct boot_e820_entry *out, unsigned max);

/* Writes the zero page at VMM_BOOT_ZERO_PAGE_ADDR and the command line at
 * VMM_BOOT_CMDLINE_ADDR; initrd_size 0 means no initrd. */
int vmm_boot_write_params(const struct vmm_guest_mem *mem, const struct vmm_kernel_info *ki,
                          const char *cmdline, uint64_t initrd_addr, uint64_t initrd_size,
                          struct rc_error *err);

/* Writes the MP floating pointer and configuration table at VMM_BOOT_EBDA_ADDR: one
 * processor entry per vCPU (APIC id = index, the first is the BSP), an ISA bus, one
 * IOAPIC, interrupt entries for IOAPIC pins 0..23 and the local ExtINT/NMI lines. */
#define VMM_MPTABLE_MAX_CPUS 64
#define VMM_IOAPIC_ADDR 0xfec00000ULL
#define VMM_IOAPIC_PINS 24
int vmm_mptable_write(const struct vmm_guest_mem *mem, unsigned n_cpus, struct rc_error *err);

/* Writes the GDT (null, null, code, data, TSS) and identity page tables mapping the
 * first 4 GiB with 2 MiB pages. */
int vmm_boot_write_pagetables(const struct vmm_guest_mem *mem, struct rc_error *err);

/* The guest kernel's command line: the VMM's own arguments (the serial console, reset
 * through the i8042), one virtio_mmio.device=4K@<base>:<gsi> per virtio device in
 * layout.h's order, then `extra` (may be NULL). */
#define VMM_BOOT_BASE_CMDLINE                                                            \
  "console=ttyS0 reboot=k panic=-1 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp " \
  "i8042.dumbkbd"
int vmm_boot_build_cmdline(unsigned n_virtio, const char *extra, char *buf, size_t size,
                           struct rc_error *err);

/* A GDT entry, packed as the CPU reads it. */
uint64_t vmm_gdt_entry(uint16_t flags, uint32_t base, uint32_t limit);

#endif
