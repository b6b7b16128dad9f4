/* Port I/O and MMIO dispatch: each device claims a range; a vCPU exit is routed by
 * address. Devices register before the vCPUs start, so lookups take no lock; each device
 * serialises its own state. Interrupt lines are an indirection so that device models run
 * the same under KVM and in unit tests. */
#ifndef RUNCELL_VMM_BUS_H
#define RUNCELL_VMM_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include "runcell/error.h"

#define VMM_BUS_MAX_DEVICES 32

struct vmm_bus_device {
  const char *name;
  uint64_t base, len;
  /* off is relative to base; size is 1, 2, 4 or 8 and off + size <= len is guaranteed. */
  void (*read)(void *opaque, uint64_t off, void *data, uint32_t size);
  void (*write)(void *opaque, uint64_t off, const void *data, uint32_t size);
  void *opaque;
};

struct vmm_bus {
  struct vmm_bus_device devs[VMM_BUS_MAX_DEVICES];
  unsigned n;
};

/* Adds a device; refuses an empty, wrapping or overlapping range and a full bus. */
int vmm_bus_add(struct vmm_bus *bus, const struct vmm_bus_device *dev, struct rc_error *err);

/* Routes an access. An access no device claims wholly (unmapped, straddling a device's
 * end, or a size other than 1/2/4/8) returns false; reads then fill data with 0xff. */
bool vmm_bus_read(const struct vmm_bus *bus, uint64_t addr, void *data, uint32_t size);
bool vmm_bus_write(const struct vmm_bus *bus, uint64_t addr, const void *data, uint32_t size);

/* An interrupt line: set(ctx, gsi, level). Under KVM this is KVM_IRQ_LINE on the VM. */
struct vmm_irq_line {
  int (*set)(void *ctx, uint32_t gsi, bool level);
  void *ctx;
  uint32_t gsi;
};

/* Raises then lowers the line: an edge, which is how the virtio-mmio and serial models
 * signal (the guest reads and acknowledges the device's status register). */
void vmm_irq_pulse(const struct vmm_irq_line *line);

#endif
