/* The Linux boot path without KVM: kernel loaders (bzImage header parsing, vmlinux ELF
 * segments, corrupt images of both), the zero page, the e820 map, command line and
 * initrd placement. */
#include <asm/bootparam.h>
#include <asm/e820.h>
#include <elf.h>
#include <stdlib.h>

#include "runcell/vmm/guest_mem.h"
#include "runcell/vmm/layout.h"
#include "unit.h"
/* Private VMM headers, by path: the unit tests build with the public include dir only. */
#include "../../vmm/boot.h"

#define MIB (1ULL << 20)

static struct vmm_guest_mem mem;
static bool have_mem;

static void mem_fresh(uint64_t size) {
  struct rc_error err = {0};
  if (have_mem) vmm_guest_mem_destroy(&mem);
  have_mem = true;
  if (vmm_guest_mem_create(&mem, size, &err) < 0) {
    fprintf(stderr, "guest memory: %s\n", err.msg);
    abort();
  }
}

static void put16(uint8_t *p, uint16_t v) {
  memcpy(p, &v, 2);
}
static void put32(uint8_t *p, uint32_t v) {
  memcpy(p, &v, 4);
}
static void put64(uint8_t *p, uint64_t v) {
  memcpy(p, &v, 8);
}

/* A bzImage-shaped file: 4 setup sectors + 1 boot sector, then `kernel` bytes of a
 * recognisable pattern. */
static uint8_t *make_bzimage(size_t kernel, size_t *len) {
  size_t setup = 5 * 512;
  *len = setup + kernel;
  uint8_t *img = calloc(1, *len);
  img[0x1f1] = 4;                              /* setup_sects */
  put32(img + 0x1f4, (uint32_t)(kernel / 16)); /* syssize */
  put16(img + 0x1fe, 0xAA55);
  img[0x200] = 0xeb;
  img[0x201] = 0x6a; /* header ends at 0x26c */
  put32(img + 0x202, 0x53726448);
  put16(img + 0x206, 0x020f);
  img[0x211] = LOADED_HIGH;
  put32(img + 0x214, 0x100000);
  put32(img + 0x22c, 0x7fffffff); /* initrd_addr_max */
  put32(img + 0x230, 0x200000);   /* kernel_alignment */
  img[0x234] = 1;
  put16(img + 0x236, XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G);
  put32(img + 0x238, 2047);                         /* cmdline_size */
  put64(img + 0x258, 0x1000000);                    /* pref_address */
  put32(img + 0x260, (uint32_t)(kernel + 4 * MIB)); /* init_size */
  for (size_t i = 0; i < kernel; i++) img[setup + i] = (uint8_t)(i * 7 + 1);
  return img;
}

static void test_bzimage_loads(void) {
  mem_fresh(64 * MIB);
  size_t len;
  uint8_t *img = make_bzimage(64 * 1024, &len);
  struct vmm_kernel_info ki;
  struct rc_error err = {0};
  CHECK(vmm_boot_load_kernel(&mem, img, len, &ki, &err) == 0);
  CHECK(ki.entry == 0x1000000 + 0x200); /* pref_address + the 64-bit entry offset */
  uint8_t *at = vmm_gpa_ptr(&mem, 0x1000000, 64 * 1024);
  CHECK(at && memcmp(at, img + 5 * 512, 64 * 1024) == 0);
  CHECK(ki.end >= 0x1000000 + 64 * 1024 + 4 * MIB);
  CHECK(ki.cmdline_max == 2047);
  CHECK(ki.initrd_addr_max == 0x7fffffff);
  CHECK(ki.hdr_len == 0x26c - 0x1f1);
  CHECK(memcmp(ki.hdr, img + 0x1f1, ki.hdr_len) == 0);

  /* No usable preferred address: 1 MiB. */
  put64(img + 0x258, 0);
  CHECK(vmm_boot_load_bzimage(&mem, img, len, &ki, &err) == 0);
  CHECK(ki.entry == 0x100000 + 0x200);
  free(img);
}

static void expect_bz_error(uint8_t *img, size_t len, const char *want) {
  struct vmm_kernel_info ki;
  struct rc_error err = {0};
  CHECK(vmm_boot_load_bzimage(&mem, img, len, &ki, &err) < 0);
  CHECK_CONTAINS(err.msg, want);
}

static void test_bzimage_corrupt(void) {
  mem_fresh(32 * MIB);
  size_t len;
  uint8_t *img = make_bzimage(4096, &len);
  uint8_t *bad = malloc(len);

  expect_bz_error(img, 0x100, "too short");
  memcpy(bad, img, len);
  bad[0x202] = 'X';
  expect_bz_error(bad, len, "HdrS");
  memcpy(bad, img, len);
  put16(bad + 0x206, 0x0206);
  expect_bz_error(bad, len, "too old");
  memcpy(bad, img, len);
  put16(bad + 0x236, 0);
  expect_bz_error(bad, len, "XLF_KERNEL_64");
  memcpy(bad, img, len);
  bad[0x211] = 0;
  expect_bz_error(bad, len, "zImage");
  memcpy(bad, img, len);
  bad[0x1f1] = 200; /* 201 setup sectors: past the end of the file */
  expect_bz_error(bad, len, "setup sectors");
  memcpy(bad, img, len);
  put32(bad + 0x1f4, 0xffffffff);
  expect_bz_error(bad, len, "syssize");
  memcpy(bad, img, len);
  put32(bad + 0x260, 0xfff00000); /* needs ~4 GiB */
  expect_bz_error(bad, len, "more than guest RAM");
  /* A header whose jump offset claims more than the file holds. */
  memcpy(bad, img, len);
  bad[0x201] = 0xff;
  expect_bz_error(bad, 0x264, "past the end");
  free(bad);
  free(img);
}

/* An ELF64 vmlinux with the given segments. */
struct seg {
  uint64_t paddr, filesz, memsz;
};
static uint8_t *make_elf(const struct seg *segs, unsigned n, uint64_t entry, size_t *len) {
  size_t data_off = sizeof(Elf64_Ehdr) + n * sizeof(Elf64_Phdr);
  size_t total = data_off;
  for (unsigned i = 0; i < n; i++) total += segs[i].filesz;
  uint8_t *img = calloc(1, total);
  Elf64_Ehdr eh = {0};
  memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_machine = EM_X86_64;
  eh.e_entry = entry;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = (uint16_t)n;
  memcpy(img, &eh, sizeof(eh));
  size_t off = data_off;
  for (unsigned i = 0; i < n; i++) {
    Elf64_Phdr ph = {.p_type = PT_LOAD,
                     .p_offset = off,
                     .p_paddr = segs[i].paddr,
                     .p_vaddr = 0xffffffff80000000ULL + segs[i].paddr,
                     .p_filesz = segs[i].filesz,
                     .p_memsz = segs[i].memsz};
    memcpy(img + sizeof(eh) + i * sizeof(ph), &ph, sizeof(ph));
    memset(img + off, 0x40 + (int)i, segs[i].filesz);
    off += segs[i].filesz;
  }
  *len = total;
  return img;
}

static void test_elf_loads(void) {
  mem_fresh(64 * MIB);
  /* Fill the bss region first, to see it zeroed. */
  memset(vmm_gpa_ptr(&mem, 0x1200000, 8192), 0x77, 8192);
  struct seg segs[] = {{0x1000000, 4096, 4096}, {0x1200000, 100, 8192}};
  size_t len;
  uint8_t *img = make_elf(segs, 2, 0x1000100, &len);
  struct vmm_kernel_info ki;
  struct rc_error err = {0};
  CHECK(vmm_boot_load_kernel(&mem, img, len, &ki, &err) == 0);
  CHECK(ki.entry == 0x1000100);
  CHECK(ki.end == 0x1200000 + 8192);
  CHECK(ki.hdr_len == 0);
  const uint8_t *a = vmm_gpa_ptr(&mem, 0x1000000, 4096);
  const uint8_t *b = vmm_gpa_ptr(&mem, 0x1200000, 8192);
  CHECK(a[0] == 0x40 && a[4095] == 0x40);
  CHECK(b[0] == 0x41 && b[99] == 0x41 && b[100] == 0 && b[8191] == 0);
  free(img);
}

static void expect_elf_error(const struct seg *segs, unsigned n, uint64_t entry, const char *want) {
  size_t len;
  uint8_t *img = make_elf(segs, n, entry, &len);
  struct vmm_kernel_info ki;
  struct rc_error err = {0};
  CHECK(vmm_boot_load_elf(&mem, img, len, &ki, &err) < 0);
  CHECK_CONTAINS(err.msg, want);
  free(img);
}

static void test_elf_corrupt(void) {
  mem_fresh(32 * MIB);
  struct seg outside[] = {{31 * MIB, 4096, 2 * MIB}}; /* runs past the end of RAM */
  expect_elf_error(outside, 1, 31 * MIB, "does not fit in guest RAM");
  struct seg hole[] = {{VMM_MMIO_HOLE_START, 16, 16}};
  expect_elf_error(hole, 1, VMM_MMIO_HOLE_START, "does not fit");
  struct seg wrap[] = {{0xfffffffffffff000ULL, 16, 0x2000}};
  expect_elf_error(wrap, 1, 0xfffffffffffff000ULL, "does not fit");
  struct seg low[] = {{0x7000, 16, 16}}; /* over the zero page */
  expect_elf_error(low, 1, 0x7000, "below 1 MiB");
  struct seg ok[] = {{2 * MIB, 16, 16}};
  expect_elf_error(ok, 1, 3 * MIB, "entry point");
  expect_elf_error(ok, 0, 2 * MIB, "program header");

  size_t len;
  uint8_t *img = make_elf(ok, 1, 2 * MIB, &len);
  struct vmm_kernel_info ki;
  struct rc_error err = {0};
  /* filesz > memsz */
  Elf64_Phdr ph;
  memcpy(&ph, img + sizeof(Elf64_Ehdr), sizeof(ph));
  ph.p_memsz = 8;
  memcpy(img + sizeof(Elf64_Ehdr), &ph, sizeof(ph));
  CHECK(vmm_boot_load_elf(&mem, img, len, &ki, &err) < 0);
  CHECK_CONTAINS(err.msg, "file size");
  /* data past the end of the file */
  ph.p_memsz = 16;
  ph.p_offset = len - 8;
  memcpy(img + sizeof(Elf64_Ehdr), &ph, sizeof(ph));
  CHECK(vmm_boot_load_elf(&mem, img, len, &ki, &err) < 0);
  CHECK_CONTAINS(err.msg, "outside the file");
  /* program headers past the end of the file (and an offset that would wrap) */
  Elf64_Ehdr eh;
  memcpy(&eh, img, sizeof(eh));
  eh.e_phoff = 0xffffffffffffff00ULL;
  memcpy(img, &eh, sizeof(eh));
  CHECK(vmm_boot_load_elf(&mem, img, len, &ki, &err) < 0);
  CHECK_CONTAINS(err.msg, "program headers");
  /* truncated, and not ELF at all */
  CHECK(vmm_boot_load_elf(&mem, img, 10, &ki, &err) < 0);
  CHECK_CONTAINS(err.msg, "too short");
  CHECK(vmm_boot_load_kernel(&mem, (const uint8_t *)"hello, world", 12, &ki, &err) < 0);
  CHECK_CONTAINS(err.msg, "neither");
  free(img);
}

static void test_e820(void) {
  struct boot_e820_entry e[8];
  /* 64 MiB */
  struct vmm_guest_mem small = {.total = 64 * MIB};
  unsigned n = vmm_boot_e820(&small, e, 8);
  CHECK(n == 3);
  CHECK(e[0].addr == 0 && e[0].size == 0x9fc00 && e[0].type == E820_RAM);
  CHECK(e[1].addr == 0x9fc00 && e[1].addr + e[1].size == 0x100000 && e[1].type == E820_RESERVED);
  CHECK(e[2].addr == 0x100000 && e[2].addr + e[2].size == 64 * MIB && e[2].type == E820_RAM);
  /* 4 GiB: 3 GiB below the hole, 1 GiB above 4 GiB */
  struct vmm_guest_mem big = {.total = 4096 * MIB};
  n = vmm_boot_e820(&big, e, 8);
  CHECK(n == 4);
  CHECK(e[2].addr + e[2].size == VMM_MMIO_HOLE_START);
  CHECK(e[3].addr == VMM_MMIO_HOLE_END && e[3].size == 4096 * MIB - VMM_MMIO_HOLE_START &&
        e[3].type == E820_RAM);
  /* room for fewer entries is respected */
  CHECK(vmm_boot_e820(&big, e, 2) == 2);
}

static void test_initrd_placement(void) {
  mem_fresh(128 * MIB);
  struct vmm_kernel_info ki = {.end = 40 * MIB, .initrd_addr_max = 0x7fffffff};
  struct rc_error err = {0};
  uint64_t addr;
  CHECK(vmm_boot_initrd_addr(&mem, &ki, 5000000, &addr, &err) == 0);
  CHECK(addr % 4096 == 0);
  CHECK(addr + 5000000 <= 128 * MIB);
  CHECK(128 * MIB - (addr + 5000000) < 4096); /* as high as it goes */
  CHECK(addr >= 40 * MIB);
  /* initrd_addr_max below the end of RAM bounds it (inclusive address) */
  ki.initrd_addr_max = 100 * MIB - 1;
  CHECK(vmm_boot_initrd_addr(&mem, &ki, 4096, &addr, &err) == 0);
  CHECK(addr == 100 * MIB - 4096);
  /* too big to fit above the kernel */
  ki.initrd_addr_max = 0x7fffffff;
  CHECK(vmm_boot_initrd_addr(&mem, &ki, 100 * MIB, &addr, &err) < 0);
  CHECK_CONTAINS(err.msg, "does not fit");
  CHECK(vmm_boot_initrd_addr(&mem, &ki, 0xffffffffffff0000ULL, &addr, &err) < 0);
  CHECK(vmm_boot_initrd_addr(&mem, &ki, 0, &addr, &err) < 0);
}

static void test_params(void) {
  mem_fresh(64 * MIB);
  struct vmm_kernel_info ki = {
      .entry = 0x1000000, .end = 20 * MIB, .initrd_addr_max = 0x7fffffff, .cmdline_max = 2047};
  struct rc_error err = {0};
  CHECK(vmm_boot_write_params(&mem, &ki, "console=ttyS0 quiet", 60 * MIB, 12345, &err) == 0);
  struct boot_params bp;
  CHECK(vmm_gpa_read(&mem, VMM_BOOT_ZERO_PAGE_ADDR, &bp, sizeof(bp)) == 0);
  CHECK(bp.hdr.boot_flag == 0xAA55);
  CHECK(bp.hdr.header == 0x53726448);
  CHECK(bp.hdr.type_of_loader == 0xff);
  CHECK(bp.hdr.loadflags & LOADED_HIGH);
  CHECK(bp.hdr.cmd_line_ptr == VMM_BOOT_CMDLINE_ADDR);
  CHECK(bp.hdr.cmdline_size == 2047);
  CHECK(bp.hdr.ramdisk_image == 60 * MIB && bp.hdr.ramdisk_size == 12345);
  CHECK(bp.ext_ramdisk_image == 0 && bp.ext_ramdisk_size == 0);
  CHECK(bp.e820_entries == 3);
  CHECK(bp.e820_table[2].addr == 0x100000 && bp.e820_table[2].type == E820_RAM);
  CHECK_STR_EQ((const char *)vmm_gpa_ptr(&mem, VMM_BOOT_CMDLINE_ADDR, 20), "console=ttyS0 quiet");

  /* A bzImage's header is the start; the loader's fields are laid over it. */
  size_t len;
  uint8_t *img = make_bzimage(4096, &len);
  CHECK(vmm_boot_load_bzimage(&mem, img, len, &ki, &err) == 0);
  CHECK(vmm_boot_write_params(&mem, &ki, "x", 0, 0, &err) == 0);
  CHECK(vmm_gpa_read(&mem, VMM_BOOT_ZERO_PAGE_ADDR, &bp, sizeof(bp)) == 0);
  CHECK(bp.hdr.version == 0x020f);
  CHECK(bp.hdr.xloadflags == (XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G));
  CHECK(bp.hdr.pref_address == 0x1000000);
  CHECK(bp.hdr.type_of_loader == 0xff);
  CHECK(bp.hdr.ramdisk_image == 0 && bp.hdr.ramdisk_size == 0);
  free(img);

  /* The kernel's cmdline_size bounds the command line (NUL excluded). */
  ki.cmdline_max = 10;
  CHECK(vmm_boot_write_params(&mem, &ki, "0123456789", 0, 0, &err) == 0);
  CHECK(vmm_boot_write_params(&mem, &ki, "0123456789a", 0, 0, &err) < 0);
  CHECK_CONTAINS(err.msg, "limit of 10");
  /* An initrd outside RAM is refused. */
  ki.cmdline_max = 100;
  CHECK(vmm_boot_write_params(&mem, &ki, "x", 63 * MIB, 2 * MIB, &err) < 0);
}

static void test_cmdline(void) {
  char buf[1024];
  struct rc_error err = {0};
  CHECK(vmm_boot_build_cmdline(2, "root=/dev/vda quiet", buf, sizeof(buf), &err) == 0);
  CHECK(strncmp(buf, "console=ttyS0 reboot=k panic=-1 ", 32) == 0);
  CHECK_CONTAINS(buf, " virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6 ");
  CHECK(strstr(buf, "0xd0002000") == NULL);
  size_t n = strlen(buf);
  CHECK(n > 20 && strcmp(buf + n - 20, " root=/dev/vda quiet") == 0);
  CHECK(strstr(buf, "nomodule") == NULL);
  CHECK(strstr(buf, "pci=off") == NULL);
  CHECK(vmm_boot_build_cmdline(0, NULL, buf, sizeof(buf), &err) == 0);
  CHECK_STR_EQ(buf, VMM_BOOT_BASE_CMDLINE);
  CHECK(vmm_boot_build_cmdline(12, NULL, buf, sizeof(buf), &err) == 0);
  CHECK_CONTAINS(buf, "virtio_mmio.device=4K@0xd000b000:18");
  CHECK(vmm_boot_build_cmdline(13, NULL, buf, sizeof(buf), &err) < 0);
  CHECK(vmm_boot_build_cmdline(1, NULL, buf, 40, &err) < 0);
  CHECK_CONTAINS(err.msg, "longer than 39");
}

static void cleanup_mem(void) {
  if (have_mem) vmm_guest_mem_destroy(&mem);
  have_mem = false;
}

UNIT_MAIN("vmm_boot", UNIT_CASE(test_bzimage_loads), UNIT_CASE(test_bzimage_corrupt),
          UNIT_CASE(test_elf_loads), UNIT_CASE(test_elf_corrupt), UNIT_CASE(test_e820),
          UNIT_CASE(test_initrd_placement), UNIT_CASE(test_params), UNIT_CASE(test_cmdline),
          UNIT_CASE(cleanup_mem))
