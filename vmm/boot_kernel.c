/* Kernel image loaders: an uncompressed vmlinux (ELF64, segments at their physical load
 * addresses) or a bzImage (setup header + protected-mode kernel entered at its 64-bit
 * entry point). The image is untrusted input: every offset and size in it is checked
 * against the file and guest RAM before anything is copied. */
#include <asm/bootparam.h>
#include <elf.h>
#include <string.h>

#include "vmm/boot.h"

/* x86-64 kernels use 16 MiB; a vmlinux has no header to say otherwise. */
#define DEFAULT_KERNEL_ALIGN 0x1000000ULL
/* Defaults for a kernel without a setup header: what x86-64 Linux declares in its own. */
#define DEFAULT_INITRD_ADDR_MAX 0x7fffffffULL
#define DEFAULT_CMDLINE_MAX 2047U

#define BZ_HDR_OFFSET 0x1f1ULL
#define BZ_HDR_MAGIC 0x53726448U /* "HdrS" */
#define BZ_MIN_VERSION 0x020cU   /* 2.12: xloadflags, hence XLF_KERNEL_64 */
#define BZ_ENTRY64_OFFSET 0x200ULL

static uint16_t get16(const uint8_t *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)get16(p) | ((uint32_t)get16(p + 2) << 16);
}
static uint64_t get64(const uint8_t *p) {
  return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

static void kernel_info_defaults(struct vmm_kernel_info *ki) {
  memset(ki, 0, sizeof(*ki));
  ki->initrd_addr_max = DEFAULT_INITRD_ADDR_MAX;
  ki->cmdline_max = DEFAULT_CMDLINE_MAX;
}

int vmm_boot_load_elf(const struct vmm_guest_mem *mem, const uint8_t *img, size_t len,
                      struct vmm_kernel_info *ki, struct rc_error *err) {
  kernel_info_defaults(ki);
  Elf64_Ehdr eh;
  if (len < sizeof(eh))
    return rc_err(err, 0, "vmlinux: %zu bytes is too short for an ELF header", len);
  memcpy(&eh, img, sizeof(eh));
  if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return rc_err(err, 0, "vmlinux: not an ELF file");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
      eh.e_machine != EM_X86_64)
    return rc_err(err, 0, "vmlinux: not a little-endian x86-64 ELF64 image");
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0)
    return rc_err(err, 0, "vmlinux: program header entries of %u bytes x %u (want %zu x >=1)",
                  eh.e_phentsize, eh.e_phnum, sizeof(Elf64_Phdr));
  uint64_t ph_bytes = (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr);
  if (eh.e_phoff > len || ph_bytes > len - eh.e_phoff)
    return rc_err(err, 0, "vmlinux: program headers (offset %llu) lie outside the %zu-byte file",
                  (unsigned long long)eh.e_phoff, len);
  bool entry_loaded = false;
  unsigned loaded = 0;
  for (unsigned i = 0; i < eh.e_phnum; i++) {
    Elf64_Phdr ph;
    memcpy(&ph, img + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
    if (ph.p_type != PT_LOAD) continue;
    if (ph.p_filesz > ph.p_memsz)
      return rc_err(err, 0, "vmlinux: segment %u has file size %llu > memory size %llu", i,
                    (unsigned long long)ph.p_filesz, (unsigned long long)ph.p_memsz);
    if (ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
      return rc_err(err, 0, "vmlinux: segment %u (offset %llu, %llu bytes) lies outside the file",
                    i, (unsigned long long)ph.p_offset, (unsigned long long)ph.p_filesz);
    if (ph.p_paddr < VMM_BOOT_HIGH_MEM)
      return rc_err(err, 0, "vmlinux: segment %u at 0x%llx is below 1 MiB (the boot structures)", i,
                    (unsigned long long)ph.p_paddr);
    uint8_t *dst = vmm_gpa_ptr(mem, ph.p_paddr, ph.p_memsz);
    if (!dst)
      return rc_err(err, 0,
                    "vmlinux: segment %u at 0x%llx (%llu bytes) does not fit in guest RAM "
                    "(%llu MiB)",
                    i, (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz,
                    (unsigned long long)(mem->total >> 20));
    memcpy(dst, img + ph.p_offset, ph.p_filesz);
    memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
    if (eh.e_entry >= ph.p_paddr && eh.e_entry - ph.p_paddr < ph.p_memsz) entry_loaded = true;
    uint64_t end = ph.p_paddr + ph.p_memsz; /* cannot wrap: vmm_gpa_ptr accepted the range */
    if (end > ki->end) ki->end = end;
    loaded++;
  }
  if (loaded == 0) return rc_err(err, 0, "vmlinux: no loadable segment");
  if (!entry_loaded)
    return rc_err(err, 0, "vmlinux: entry point 0x%llx is not in a loaded segment",
                  (unsigned long long)eh.e_entry);
  ki->entry = eh.e_entry;
  return 0;
}

int vmm_boot_load_bzimage(const struct vmm_guest_mem *mem, const uint8_t *img, size_t len,
                          struct vmm_kernel_info *ki, struct rc_error *err) {
  kernel_info_defaults(ki);
  /* The header through the fields this loader reads (init_size at 0x260). */
  if (len < 0x264) return rc_err(err, 0, "bzImage: %zu bytes is too short for a setup header", len);
  if (get32(img + 0x202) != BZ_HDR_MAGIC)
    return rc_err(err, 0, "bzImage: no \"HdrS\" setup header magic at 0x202");
  uint16_t version = get16(img + 0x206);
  if (version < BZ_MIN_VERSION)
    return rc_err(err, 0,
                  "bzImage: boot protocol %u.%02u is too old (need 2.12 for the 64-bit entry)",
                  version >> 8, version & 0xff);
  uint16_t xloadflags = get16(img + 0x236);
  if (!(xloadflags & XLF_KERNEL_64))
    return rc_err(err, 0, "bzImage: the kernel has no 64-bit entry point (XLF_KERNEL_64 unset)");
  if (!(img[0x211] & LOADED_HIGH))
    return rc_err(err, 0, "bzImage: a zImage (not loaded high) is not supported");

  /* The setup header runs from 0x1f1 to 0x202 + the jump's offset byte at 0x201. */
  size_t hdr_end = 0x202 + (size_t)img[0x201];
  if (hdr_end > len) return rc_err(err, 0, "bzImage: setup header runs past the end of the file");
  if (hdr_end > BZ_HDR_OFFSET + sizeof(ki->hdr)) hdr_end = BZ_HDR_OFFSET + sizeof(ki->hdr);
  ki->hdr_len = hdr_end - BZ_HDR_OFFSET;
  memcpy(ki->hdr, img + BZ_HDR_OFFSET, ki->hdr_len);

  unsigned setup_sects = img[0x1f1] ? img[0x1f1] : 4;
  size_t setup_bytes = ((size_t)setup_sects + 1) * 512;
  if (setup_bytes >= len)
    return rc_err(err, 0, "bzImage: %u setup sectors leave no protected-mode kernel in %zu bytes",
                  setup_sects, len);
  uint64_t kernel_bytes = len - setup_bytes;
  uint64_t syssize = (uint64_t)get32(img + 0x1f4) * 16;
  if (syssize == 0 || syssize > kernel_bytes)
    return rc_err(err, 0, "bzImage: syssize says %llu bytes but the file holds %llu",
                  (unsigned long long)syssize, (unsigned long long)kernel_bytes);
  uint64_t init_size = get32(img + 0x260);
  if (init_size < kernel_bytes) init_size = kernel_bytes;

  /* The kernel's preferred address saves the decompressor a copy; 1 MiB otherwise. */
  uint64_t load = VMM_BOOT_HIGH_MEM;
  uint64_t pref = get64(img + 0x258);
  if (pref >= VMM_BOOT_HIGH_MEM && pref % 4096 == 0 && vmm_gpa_ptr(mem, pref, init_size))
    load = pref;
  uint8_t *dst = vmm_gpa_ptr(mem, load, init_size);
  if (!dst)
    return rc_err(err, 0, "bzImage: the kernel needs %llu bytes at 0x%llx, more than guest RAM",
                  (unsigned long long)init_size, (unsigned long long)load);
  memcpy(dst, img + setup_bytes, kernel_bytes);

  ki->entry = load + BZ_ENTRY64_OFFSET;
  /* A relocatable kernel decompresses at its alignment but no lower than where it is
   * linked (16 MiB on x86-64): keep the initrd clear of all of that. */
  uint64_t align = get32(img + 0x230);
  if (align < 4096 || align > DEFAULT_KERNEL_ALIGN || (align & (align - 1)))
    align = DEFAULT_KERNEL_ALIGN;
  uint64_t run_at = (load + align - 1) & ~(align - 1);
  if (run_at < DEFAULT_KERNEL_ALIGN) run_at = DEFAULT_KERNEL_ALIGN;
  ki->end = (run_at > load ? run_at : load) + init_size;
  ki->initrd_addr_max = get32(img + 0x22c);
  uint32_t cmdline_size = get32(img + 0x238);
  if (cmdline_size == 0 || cmdline_size >= VMM_BOOT_CMDLINE_MAX)
    cmdline_size = VMM_BOOT_CMDLINE_MAX - 1;
  ki->cmdline_max = cmdline_size;
  return 0;
}

int vmm_boot_load_kernel(const struct vmm_guest_mem *mem, const uint8_t *img, size_t len,
                         struct vmm_kernel_info *ki, struct rc_error *err) {
  if (len >= SELFMAG && memcmp(img, ELFMAG, SELFMAG) == 0)
    return vmm_boot_load_elf(mem, img, len, ki, err);
  if (len >= 0x206 && get32(img + 0x202) == BZ_HDR_MAGIC)
    return vmm_boot_load_bzimage(mem, img, len, ki, err);
  return rc_err(err, 0, "kernel image is neither an ELF vmlinux nor a bzImage");
}
