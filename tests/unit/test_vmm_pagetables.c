/* The long-mode start: the boot GDT (the descriptors the 64-bit boot protocol names),
 * identity page tables for the first 4 GiB, and the special registers that use them. */
#include "runcell/vmm/guest_mem.h"
#include "unit.h"
/* Private VMM headers, by path: the unit tests build with the public include dir only. */
#include "../../vmm/boot.h"
#include "../../vmm/cpu.h"

/* Translates a virtual address with the tables in guest memory, as the MMU would. */
static int walk(const struct vmm_guest_mem *mem, uint64_t cr3, uint64_t va, uint64_t *pa) {
  uint64_t e;
  if (vmm_gpa_read(mem, (cr3 & ~0xfffULL) + ((va >> 39) & 511) * 8, &e, 8) < 0 || !(e & 1))
    return -1;
  if (vmm_gpa_read(mem, (e & ~0xfffULL) + ((va >> 30) & 511) * 8, &e, 8) < 0 || !(e & 1)) return -1;
  if (e & 0x80) return -1; /* no 1 GiB pages expected */
  if (vmm_gpa_read(mem, (e & ~0xfffULL) + ((va >> 21) & 511) * 8, &e, 8) < 0 || !(e & 1)) return -1;
  if (!(e & 0x80) || !(e & 2)) return -1; /* 2 MiB, writable */
  *pa = (e & ~0x1fffffULL) | (va & 0x1fffff);
  return 0;
}

static void test_identity_map(void) {
  struct vmm_guest_mem mem;
  struct rc_error err = {0};
  CHECK(vmm_guest_mem_create(&mem, 64ULL << 20, &err) == 0);
  CHECK(vmm_boot_write_pagetables(&mem, &err) == 0);
  const uint64_t probes[] = {0,          0x7000,     0x1000000,  0x1234567,  0x3fffffff,
                             0x40000000, 0xbfffffff, 0xd0000123, 0xfee00000, 0xffffffff};
  for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
    uint64_t pa = 1;
    CHECK(walk(&mem, VMM_BOOT_PML4_ADDR, probes[i], &pa) == 0);
    CHECK(pa == probes[i]);
  }
  uint64_t pa;
  CHECK(walk(&mem, VMM_BOOT_PML4_ADDR, 0x100000000ULL, &pa) < 0); /* 4 GiB: unmapped */
  vmm_guest_mem_destroy(&mem);
}

static void test_gdt(void) {
  struct vmm_guest_mem mem;
  struct rc_error err = {0};
  CHECK(vmm_guest_mem_create(&mem, 32ULL << 20, &err) == 0);
  CHECK(vmm_boot_write_pagetables(&mem, &err) == 0);
  uint64_t gdt[VMM_BOOT_GDT_ENTRIES];
  CHECK(vmm_gpa_read(&mem, VMM_BOOT_GDT_ADDR, gdt, sizeof(gdt)) == 0);
  CHECK(gdt[0] == 0);
  CHECK(gdt[VMM_BOOT_CS / 8] == 0x00af9b000000ffffULL); /* flat 64-bit code */
  CHECK(gdt[VMM_BOOT_DS / 8] == 0x00cf93000000ffffULL); /* flat data */
  CHECK(gdt[VMM_BOOT_TSS / 8] == 0x00008b0000000067ULL);
  CHECK(gdt[VMM_BOOT_TSS / 8 + 1] == 0);
  CHECK(vmm_gdt_entry(0xc093, 0x12345678, 0xabcde) == 0x12ca93345678bcdeULL);
  vmm_guest_mem_destroy(&mem);
}

static void test_sregs(void) {
  struct kvm_sregs s;
  memset(&s, 0xff, sizeof(s));
  vmm_long_mode_sregs(&s);
  CHECK(s.cs.selector == 0x10 && s.cs.l == 1 && s.cs.db == 0 && s.cs.present && s.cs.s);
  CHECK(s.cs.type == 0xb && s.cs.base == 0 && s.cs.limit == 0xffffffff && s.cs.g == 1);
  CHECK(s.ds.selector == 0x18 && s.ss.selector == 0x18 && s.es.selector == 0x18);
  CHECK(s.ds.type == 0x3 && s.ds.db == 1 && s.ds.l == 0);
  CHECK(s.tr.selector == 0x20 && s.tr.type == 0xb && s.tr.s == 0 && s.tr.present);
  CHECK(s.gdt.base == VMM_BOOT_GDT_ADDR && s.gdt.limit == 47);
  CHECK(s.tr.limit == 0x67 && s.tr.g == 0);
  CHECK(s.cr3 == VMM_BOOT_PML4_ADDR);
  CHECK((s.cr0 & 0x80000001ULL) == 0x80000001ULL); /* PG, PE */
  CHECK(s.cr4 & 0x20);                             /* PAE */
  CHECK((s.efer & 0x500) == 0x500);                /* LME, LMA */
}

UNIT_MAIN("vmm_pagetables", UNIT_CASE(test_identity_map), UNIT_CASE(test_gdt),
          UNIT_CASE(test_sregs))
