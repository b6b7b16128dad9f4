/* The guest-physical layout every part of the VMM agrees on: where RAM, the MMIO hole, the
 * virtio-mmio windows and the boot structures live, and which interrupt line each virtio
 * device gets. One place, so the boot code, the device models and the kernel command line
 * cannot disagree. */
#ifndef RUNCELL_VMM_LAYOUT_H
#define RUNCELL_VMM_LAYOUT_H

#include <stdint.h>

/* RAM starts at 0 and runs up to the MMIO hole; memory beyond that continues at 4 GiB. */
#define VMM_MMIO_HOLE_START 0xC0000000ULL
#define VMM_MMIO_HOLE_END 0x100000000ULL

/* virtio-mmio devices: one 4 KiB window each, announced on the kernel command line as
 * virtio_mmio.device=4K@<base>:<gsi>. */
#define VMM_VIRTIO_MMIO_BASE 0xD0000000ULL
#define VMM_VIRTIO_MMIO_SIZE 0x1000ULL
#define VMM_VIRTIO_MAX_DEVICES 12

/* Interrupt lines (IOAPIC pins) for the virtio devices, in device order. Skips the legacy
 * ISA lines a PC guest may claim (0 timer, 1 keyboard, 2 cascade, 3/4 serial, 8 RTC,
 * 12 mouse). */
static const uint32_t vmm_virtio_gsi[VMM_VIRTIO_MAX_DEVICES] = {5,  6,  7,  9,  10, 11,
                                                                13, 14, 15, 16, 17, 18};

/* Legacy PC devices the VMM emulates. */
#define VMM_SERIAL_COM1_PORT 0x3f8
#define VMM_SERIAL_COM1_GSI 4
#define VMM_I8042_DATA_PORT 0x60
#define VMM_I8042_CMD_PORT 0x64

#endif
