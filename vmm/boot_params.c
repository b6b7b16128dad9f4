/* The zero page (struct boot_params) the 64-bit Linux boot protocol hands the kernel in
 * %rsi: the setup header (from the bzImage, or built for a vmlinux), the e820 memory map,
 * the command line and the initrd. */
#include <asm/bootparam.h>
#include <asm/e820.h>
#include <string.h>

#include "runcell/vmm/layout.h"
#include "vmm/boot.h"

#define PAGE_SIZE_4K 4096ULL

/* The top of RAM below the MMIO hole. */
static uint64_t low_ram_end(const struct vmm_guest_mem *mem) {
  return mem->total < VMM_MMIO_HOLE_START ? mem->total : VMM_MMIO_HOLE_START;
}

static void e820_add(struct boot_e820_entry *out, unsigned max, unsigned *n, uint64_t addr,
                     uint64_t end, uint32_t type) {
  if (end <= addr || *n >= max) return;
  out[*n] = (struct boot_e820_entry){.addr = addr, .size = end - addr, .type = type};
  (*n)++;
}

unsigned vmm_boot_e820(const struct vmm_guest_mem *mem, struct boot_e820_entry *out, unsigned max) {
  unsigned n = 0;
  uint64_t low_end = low_ram_end(mem);
  /* Base memory up to the EBDA, where the MP table lives; the EBDA, VGA window and BIOS
   * area up to 1 MiB are reserved as on a PC, so the kernel leaves the MP table alone. */
  e820_add(out, max, &n, 0, VMM_BOOT_EBDA_ADDR, E820_RAM);
  e820_add(out, max, &n, VMM_BOOT_EBDA_ADDR, VMM_BOOT_HIGH_MEM, E820_RESERVED);
  e820_add(out, max, &n, VMM_BOOT_HIGH_MEM, low_end, E820_RAM);
  if (mem->total > low_end)
    e820_add(out, max, &n, VMM_MMIO_HOLE_END, VMM_MMIO_HOLE_END + (mem->total - low_end), E820_RAM);
  return n;
}

int vmm_boot_initrd_addr(const struct vmm_guest_mem *mem, const struct vmm_kernel_info *ki,
                         uint64_t size, uint64_t *addr, struct rc_error *err) {
  if (size == 0) return rc_err(err, 0, "initrd is empty");
  /* The initrd must end at or below initrd_addr_max (an inclusive address) and RAM. */
  uint64_t top = ki->initrd_addr_max + 1;
  uint64_t ram_end = low_ram_end(mem);
  if (top > ram_end) top = ram_end;
  uint64_t floor = ki->end > VMM_BOOT_HIGH_MEM ? ki->end : VMM_BOOT_HIGH_MEM;
  floor = (floor + PAGE_SIZE_4K - 1) & ~(PAGE_SIZE_4K - 1);
  if (size > top || ((top - size) & ~(PAGE_SIZE_4K - 1)) < floor)
    return rc_err(err, 0,
                  "initrd of %llu bytes does not fit between the kernel (ends 0x%llx) and "
                  "0x%llx; give the guest more memory",
                  (unsigned long long)size, (unsigned long long)floor, (unsigned long long)top);
  *addr = (top - size) & ~(PAGE_SIZE_4K - 1);
  return 0;
}

int vmm_boot_write_params(const struct vmm_guest_mem *mem, const struct vmm_kernel_info *ki,
                          const char *cmdline, uint64_t initrd_addr, uint64_t initrd_size,
                          struct rc_error *err) {
  struct boot_params bp;
  memset(&bp, 0, sizeof(bp));
  _Static_assert(sizeof(bp) == 4096, "boot_params is one page");
  _Static_assert(sizeof(ki->hdr) >= sizeof(bp.hdr), "room for the whole setup header");
  if (ki->hdr_len > 0) {
    /* A bzImage's own header: the kernel reads fields the loader does not touch. */
    memcpy(&bp.hdr, ki->hdr, ki->hdr_len < sizeof(bp.hdr) ? ki->hdr_len : sizeof(bp.hdr));
  } else {
    bp.hdr.boot_flag = 0xAA55;
    bp.hdr.header = 0x53726448; /* "HdrS" */
    bp.hdr.version = 0x020c;
    bp.hdr.kernel_alignment = 0x1000000;
    bp.hdr.cmdline_size = ki->cmdline_max;
  }
  bp.hdr.type_of_loader = 0xff; /* "undefined" boot loader */
  bp.hdr.loadflags |= LOADED_HIGH;
  bp.hdr.vid_mode = 0xffff; /* "normal" */

  size_t clen = strlen(cmdline);
  if (clen > ki->cmdline_max || clen >= VMM_BOOT_CMDLINE_MAX)
    return rc_err(err, 0, "kernel command line of %zu bytes exceeds the kernel's limit of %u", clen,
                  ki->cmdline_max);
  if (vmm_gpa_write(mem, VMM_BOOT_CMDLINE_ADDR, cmdline, clen + 1) < 0)
    return rc_err(err, 0, "guest RAM too small for the command line");
  bp.hdr.cmd_line_ptr = (uint32_t)VMM_BOOT_CMDLINE_ADDR;

  if (initrd_size > 0) {
    if (!vmm_gpa_ptr(mem, initrd_addr, initrd_size))
      return rc_err(err, 0, "initrd at 0x%llx is outside guest RAM",
                    (unsigned long long)initrd_addr);
    bp.hdr.ramdisk_image = (uint32_t)initrd_addr;
    bp.hdr.ramdisk_size = (uint32_t)initrd_size;
    bp.ext_ramdisk_image = (uint32_t)(initrd_addr >> 32);
    bp.ext_ramdisk_size = (uint32_t)(initrd_size >> 32);
  }

  bp.e820_entries = (uint8_t)vmm_boot_e820(mem, bp.e820_table, E820_MAX_ENTRIES_ZEROPAGE);
  if (vmm_gpa_write(mem, VMM_BOOT_ZERO_PAGE_ADDR, &bp, sizeof(bp)) < 0)
    return rc_err(err, 0, "guest RAM too small for the zero page");
  return 0;
}
