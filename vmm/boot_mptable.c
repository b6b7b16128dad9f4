/* The Intel MultiProcessor Specification 1.4 tables: how a guest without ACPI finds its
 * vCPUs, its IOAPIC and how ISA interrupts are wired. The floating pointer sits at the
 * start of the EBDA (the "last KiB of base memory" Linux scans); the configuration table
 * follows it in the reserved area below 1 MiB. */
#include <string.h>

#include "vmm/boot.h"

#define MP_SPEC_REV 4 /* 1.4 */
#define MP_LAPIC_ADDR 0xfee00000U
#define MP_LAPIC_VERSION 0x14
#define MP_IOAPIC_VERSION 0x11

enum { MP_PROCESSOR = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_INTSRC = 3, MP_LINTSRC = 4 };
enum { MP_IRQ_INT = 0, MP_IRQ_NMI = 1, MP_IRQ_EXTINT = 3 };
#define MP_CPU_ENABLED 1
#define MP_CPU_BSP 2

struct __attribute__((packed)) mpf_intel {
  char signature[4]; /* "_MP_" */
  uint32_t physptr;  /* the configuration table */
  uint8_t length;    /* in 16-byte paragraphs: 1 */
  uint8_t specification;
  uint8_t checksum;
  uint8_t feature[5]; /* all 0: a configuration table is present, no IMCR */
};

struct __attribute__((packed)) mpc_table {
  char signature[4]; /* "PCMP" */
  uint16_t length;   /* the base table, header included */
  uint8_t spec;
  uint8_t checksum;
  char oem[8];
  char productid[12];
  uint32_t oemptr;
  uint16_t oemsize;
  uint16_t oemcount; /* entries */
  uint32_t lapic;
  uint16_t ext_length;
  uint8_t ext_checksum;
  uint8_t reserved;
};

struct __attribute__((packed)) mpc_cpu {
  uint8_t type, apicid, apicver, cpuflag;
  uint32_t cpufeature, featureflag;
  uint32_t reserved[2];
};

struct __attribute__((packed)) mpc_bus {
  uint8_t type, busid;
  char bustype[6];
};

struct __attribute__((packed)) mpc_ioapic {
  uint8_t type, apicid, apicver, flags;
  uint32_t apicaddr;
};

struct __attribute__((packed)) mpc_intsrc {
  uint8_t type, irqtype;
  uint16_t irqflag; /* 0: conforming to the bus (ISA: edge, active high) */
  uint8_t srcbus, srcbusirq, dstapic, dstirq;
};

static uint8_t checksum(const uint8_t *p, size_t len) {
  uint8_t sum = 0;
  for (size_t i = 0; i < len; i++) sum = (uint8_t)(sum + p[i]);
  return (uint8_t)(0 - sum);
}

/* Appends one entry to the table being built; the caller sized the buffer. */
static void put(uint8_t *buf, size_t *off, const void *entry, size_t len) {
  memcpy(buf + *off, entry, len);
  *off += len;
}

int vmm_mptable_write(const struct vmm_guest_mem *mem, unsigned n_cpus, struct rc_error *err) {
  if (n_cpus == 0 || n_cpus > VMM_MPTABLE_MAX_CPUS)
    return rc_err(err, 0, "MP table: %u vCPUs (1..%u supported)", n_cpus, VMM_MPTABLE_MAX_CPUS);
  const size_t table_size = sizeof(struct mpc_table) + n_cpus * sizeof(struct mpc_cpu) +
                            sizeof(struct mpc_bus) + sizeof(struct mpc_ioapic) +
                            (VMM_IOAPIC_PINS + 2) * sizeof(struct mpc_intsrc);
  const uint64_t table_addr = VMM_BOOT_EBDA_ADDR + sizeof(struct mpf_intel);
  uint8_t *table = vmm_gpa_ptr(mem, table_addr, table_size);
  struct mpf_intel *mpf = vmm_gpa_ptr(mem, VMM_BOOT_EBDA_ADDR, sizeof(*mpf));
  if (!table || !mpf || table_addr + table_size > VMM_BOOT_HIGH_MEM)
    return rc_err(err, 0, "MP table: no room below 1 MiB for %u vCPUs", n_cpus);

  const uint8_t ioapic_id = (uint8_t)n_cpus; /* after the CPUs' APIC ids */
  size_t off = sizeof(struct mpc_table);
  uint16_t count = 0;
  for (unsigned i = 0; i < n_cpus; i++, count++) {
    struct mpc_cpu cpu = {
        .type = MP_PROCESSOR,
        .apicid = (uint8_t)i,
        .apicver = MP_LAPIC_VERSION,
        .cpuflag = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0),
        .cpufeature = 0x600,  /* family 6: informational only */
        .featureflag = 0x201, /* FPU, APIC */
    };
    put(table, &off, &cpu, sizeof(cpu));
  }
  struct mpc_bus bus = {.type = MP_BUS, .busid = 0};
  memcpy(bus.bustype, "ISA   ", sizeof(bus.bustype));
  put(table, &off, &bus, sizeof(bus));
  count++;
  struct mpc_ioapic ioapic = {.type = MP_IOAPIC,
                              .apicid = ioapic_id,
                              .apicver = MP_IOAPIC_VERSION,
                              .flags = 1,
                              .apicaddr = (uint32_t)VMM_IOAPIC_ADDR};
  put(table, &off, &ioapic, sizeof(ioapic));
  count++;
  /* KVM's IOAPIC gets GSI n on pin n (the PIT on 0): identity wiring, as the virtio GSIs
   * in layout.h assume. */
  for (unsigned pin = 0; pin < VMM_IOAPIC_PINS; pin++, count++) {
    struct mpc_intsrc src = {.type = MP_INTSRC,
                             .irqtype = MP_IRQ_INT,
                             .srcbus = 0,
                             .srcbusirq = (uint8_t)pin,
                             .dstapic = ioapic_id,
                             .dstirq = (uint8_t)pin};
    put(table, &off, &src, sizeof(src));
  }
  /* Every local APIC: LINT0 takes the PIC's ExtINT, LINT1 is NMI. */
  struct mpc_intsrc lint0 = {.type = MP_LINTSRC, .irqtype = MP_IRQ_EXTINT, .dstapic = 0xff};
  struct mpc_intsrc lint1 = {
      .type = MP_LINTSRC, .irqtype = MP_IRQ_NMI, .dstapic = 0xff, .dstirq = 1};
  put(table, &off, &lint0, sizeof(lint0));
  put(table, &off, &lint1, sizeof(lint1));
  count += 2;

  struct mpc_table hdr = {.length = (uint16_t)table_size,
                          .spec = MP_SPEC_REV,
                          .oemcount = count,
                          .lapic = MP_LAPIC_ADDR};
  memcpy(hdr.signature, "PCMP", 4);
  memcpy(hdr.oem, "RUNCELL ", 8);
  memcpy(hdr.productid, "MICROVM     ", 12);
  memcpy(table, &hdr, sizeof(hdr));
  table[offsetof(struct mpc_table, checksum)] = checksum(table, table_size);

  struct mpf_intel fp = {
      .physptr = (uint32_t)table_addr, .length = 1, .specification = MP_SPEC_REV};
  memcpy(fp.signature, "_MP_", 4);
  fp.checksum = checksum((const uint8_t *)&fp, sizeof(fp));
  memcpy(mpf, &fp, sizeof(fp));
  return 0;
}
