/* Address-routed dispatch of vCPU port I/O and MMIO exits to device models. */
#include "runcell/vmm/bus.h"

#include <string.h>

static bool valid_size(uint32_t size) {
  return size == 1 || size == 2 || size == 4 || size == 8;
}

int vmm_bus_add(struct vmm_bus *bus, const struct vmm_bus_device *dev, struct rc_error *err) {
  if (dev->len == 0 || dev->base + dev->len < dev->base)
    return rc_err(err, 0, "bus: device %s has an empty or wrapping range", dev->name);
  if (bus->n == VMM_BUS_MAX_DEVICES) return rc_err(err, 0, "bus: no room for device %s", dev->name);
  for (unsigned i = 0; i < bus->n; i++) {
    const struct vmm_bus_device *o = &bus->devs[i];
    if (dev->base < o->base + o->len && o->base < dev->base + dev->len)
      return rc_err(err, 0, "bus: device %s at 0x%llx overlaps %s at 0x%llx", dev->name,
                    (unsigned long long)dev->base, o->name, (unsigned long long)o->base);
  }
  bus->devs[bus->n++] = *dev;
  return 0;
}

static const struct vmm_bus_device *find(const struct vmm_bus *bus, uint64_t addr, uint32_t size) {
  if (!valid_size(size)) return NULL;
  for (unsigned i = 0; i < bus->n; i++) {
    const struct vmm_bus_device *d = &bus->devs[i];
    if (addr < d->base) continue;
    uint64_t off = addr - d->base;
    if (off < d->len && size <= d->len - off) return d;
  }
  return NULL;
}

bool vmm_bus_read(const struct vmm_bus *bus, uint64_t addr, void *data, uint32_t size) {
  const struct vmm_bus_device *d = find(bus, addr, size);
  if (!d || !d->read) {
    memset(data, 0xff, size <= 8 ? size : 8);
    return false;
  }
  d->read(d->opaque, addr - d->base, data, size);
  return true;
}

bool vmm_bus_write(const struct vmm_bus *bus, uint64_t addr, const void *data, uint32_t size) {
  const struct vmm_bus_device *d = find(bus, addr, size);
  if (!d || !d->write) return false;
  d->write(d->opaque, addr - d->base, data, size);
  return true;
}

void vmm_irq_pulse(const struct vmm_irq_line *line) {
  if (!line->set) return;
  line->set(line->ctx, line->gsi, true);
  line->set(line->ctx, line->gsi, false);
}
