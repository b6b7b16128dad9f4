/* The MP table: where the guest finds it, its checksums, and one enabled processor entry
 * per vCPU with the BSP first. */
#include <stdlib.h>

#include "runcell/vmm/guest_mem.h"
#include "unit.h"
/* Private VMM headers, by path: the unit tests build with the public include dir only. */
#include "../../vmm/boot.h"

static uint8_t sum(const uint8_t *p, size_t len) {
  uint8_t s = 0;
  for (size_t i = 0; i < len; i++) s = (uint8_t)(s + p[i]);
  return s;
}

static uint32_t get32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Checks the tables for n vCPUs. */
static void check_tables(unsigned n) {
  struct vmm_guest_mem mem;
  struct rc_error err = {0};
  CHECK(vmm_guest_mem_create(&mem, 32ULL << 20, &err) == 0);
  CHECK(vmm_mptable_write(&mem, n, &err) == 0);

  /* Linux scans the last KiB of base memory on 16-byte boundaries for "_MP_". */
  const uint8_t *fp = vmm_gpa_ptr(&mem, 0x9fc00, 16);
  CHECK(fp && memcmp(fp, "_MP_", 4) == 0);
  if (!fp) return;
  CHECK(fp[8] == 1 && fp[9] == 4); /* one paragraph, spec 1.4 */
  CHECK(sum(fp, 16) == 0);
  CHECK(fp[11] == 0); /* feature byte 1: a configuration table follows */

  uint32_t table_addr = get32(fp + 4);
  const uint8_t *t = vmm_gpa_ptr(&mem, table_addr, 44);
  CHECK(t && memcmp(t, "PCMP", 4) == 0);
  if (!t) return;
  uint16_t len, count;
  memcpy(&len, t + 4, 2);
  memcpy(&count, t + 34, 2);
  t = vmm_gpa_ptr(&mem, table_addr, len);
  CHECK(t != NULL);
  if (!t) return;
  CHECK(table_addr + len <= 0x100000); /* reserved in e820 */
  CHECK(sum(t, len) == 0);
  CHECK(get32(t + 36) == 0xfee00000);

  unsigned cpus = 0, buses = 0, ioapics = 0, intsrc = 0, lint = 0, bsps = 0;
  int ioapic_id = -1;
  size_t off = 44;
  for (unsigned i = 0; i < count && off < len; i++) {
    switch (t[off]) {
      case 0:
        CHECK(t[off + 1] == cpus); /* APIC ids in order */
        CHECK(t[off + 3] & 1);     /* enabled */
        if (t[off + 3] & 2) bsps++;
        CHECK(((t[off + 3] & 2) != 0) == (cpus == 0));
        cpus++;
        off += 20;
        break;
      case 1:
        CHECK(memcmp(t + off + 2, "ISA   ", 6) == 0);
        buses++;
        off += 8;
        break;
      case 2:
        ioapic_id = t[off + 1];
        CHECK(get32(t + off + 4) == 0xfec00000);
        ioapics++;
        off += 8;
        break;
      case 3:
        CHECK(t[off + 6] == ioapic_id);
        CHECK(t[off + 5] == t[off + 7]); /* ISA IRQ n on pin n */
        intsrc++;
        off += 8;
        break;
      case 4:
        lint++;
        off += 8;
        break;
      default:
        CHECK(!"unknown MP entry type");
        off = len;
    }
  }
  CHECK(off == len);
  CHECK(cpus == n && bsps == 1 && buses == 1 && ioapics == 1 && intsrc == 24 && lint == 2);
  CHECK(ioapic_id == (int)n); /* no clash with a CPU's APIC id */
  vmm_guest_mem_destroy(&mem);
}

static void test_one_cpu(void) {
  check_tables(1);
}

static void test_many_cpus(void) {
  check_tables(4);
  check_tables(VMM_MPTABLE_MAX_CPUS);
}

static void test_limits(void) {
  struct vmm_guest_mem mem;
  struct rc_error err = {0};
  CHECK(vmm_guest_mem_create(&mem, 32ULL << 20, &err) == 0);
  CHECK(vmm_mptable_write(&mem, 0, &err) < 0);
  CHECK(vmm_mptable_write(&mem, VMM_MPTABLE_MAX_CPUS + 1, &err) < 0);
  CHECK_CONTAINS(err.msg, "vCPUs");
  vmm_guest_mem_destroy(&mem);
}

UNIT_MAIN("vmm_mptable", UNIT_CASE(test_one_cpu), UNIT_CASE(test_many_cpus), UNIT_CASE(test_limits))
