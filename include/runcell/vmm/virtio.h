/* The virtio device models (virtio 1.x over the virtio-mmio transport, split virtqueues).
 * Everything the guest writes (queue addresses, descriptor chains, indices, lengths,
 * request headers) is treated as hostile: copied out once, validated, then used.
 *
 * A device is created with the guest memory it may touch and the interrupt line it
 * raises, and exposes one bus device (its 4 KiB MMIO window) for the machine to place at
 * VMM_VIRTIO_MMIO_BASE + i * VMM_VIRTIO_MMIO_SIZE with gsi vmm_virtio_gsi[i]. */
#ifndef RUNCELL_VMM_VIRTIO_H
#define RUNCELL_VMM_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#include "runcell/error.h"
#include "runcell/vmm/bus.h"
#include "runcell/vmm/guest_mem.h"

struct vmm_virtio_dev;

/* virtio-blk backed by a file or block device; read_only sets VIRTIO_BLK_F_RO and refuses
 * writes. The device reports its serial as `serial` (up to 20 bytes; may be NULL). */
int vmm_virtio_blk_create(const struct vmm_guest_mem *mem, struct vmm_irq_line irq,
                          const char *path, bool read_only, const char *serial,
                          struct vmm_virtio_dev **out, struct rc_error *err);

/* virtio-console, one port, bridged to a connected stream socket or pipe pair end `fd`
 * (owned by the device from here on): what the guest writes to its hvc0 goes to fd, what
 * arrives on fd goes to the guest. Flow control both ways: the device stops taking from
 * the guest's transmit queue while fd is full and stops reading fd while the guest has
 * posted no receive buffers, so neither side is ever buffered without bound. When fd
 * reaches end of file the device stops reading it. The device runs its own I/O thread. */
int vmm_virtio_console_create(const struct vmm_guest_mem *mem, struct vmm_irq_line irq, int fd,
                              struct vmm_virtio_dev **out, struct rc_error *err);

/* virtio-net on a tap device opened without IFF_VNET_HDR (bare Ethernet frames), owned by
 * the device from here on; the guest sees `mac`, `mtu` (>= 68) and the link up. No
 * offloads, one queue pair, no control queue. Flow control as the console's: the tap is
 * read only while the guest has posted receive buffers; a frame the tap refuses is
 * dropped. The device runs its own I/O thread. */
int vmm_virtio_net_create(const struct vmm_guest_mem *mem, struct vmm_irq_line irq, int tap_fd,
                          const uint8_t mac[6], uint16_t mtu, struct vmm_virtio_dev **out,
                          struct rc_error *err);

/* virtio-rng fed from getrandom(). */
int vmm_virtio_rng_create(const struct vmm_guest_mem *mem, struct vmm_irq_line irq,
                          struct vmm_virtio_dev **out, struct rc_error *err);

/* The device's MMIO window as a bus device at base (its opaque is the device). */
struct vmm_bus_device vmm_virtio_mmio_window(struct vmm_virtio_dev *dev, uint64_t base);

/* Stops the device's threads and frees it (closes the fds it owns). NULL is fine. */
void vmm_virtio_dev_destroy(struct vmm_virtio_dev *dev);

/* Set when the device has seen the guest break the virtio rules (a bad descriptor,
 * a wild index, an oversized chain): the device stops processing (DEVICE_NEEDS_RESET) and
 * the machine reports why. Returns NULL while the device is healthy. */
const char *vmm_virtio_dev_fault(const struct vmm_virtio_dev *dev);

#endif
