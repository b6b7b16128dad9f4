/* The kernel command line the VMM gives every guest. Why each argument:
 *   console=ttyS0      the kernel's log goes to the 8250 at COM1 (the only console)
 *   reboot=k           reboot through the i8042 (port 0x64, 0xFE), which ends the VM
 *   panic=-1           a panic reboots at once, so a broken guest ends instead of hanging
 *   8250.nr_uarts=1    only COM1 exists: do not probe COM2..4
 *   i8042.noaux/nomux/nopnp/dumbkbd
 *                      no mouse, no multiplexer, no PnP/ACPI description, and no keyboard
 *                      state to set: the i8042 is there only for the reset
 * Left out of Firecracker's defaults, because Linux hands a parameter it does not know to
 * init (here runcell's agent) as an argument or environment variable:
 *   nomodule           is no kernel parameter at all;
 *   pci=off            is unknown to runcell's guest kernel, which has no PCI. A stock
 *                      kernel probes port 0xcf8, reads all-ones (nothing claims it) and
 *                      finds no PCI in a few port reads.
 * Dotted module parameters (8250., i8042.) are ignored silently by a kernel without the
 * driver.
 * The virtio-mmio devices have no other discovery (no ACPI, no device tree) than
 * virtio_mmio.device=<size>@<base>:<irq>. */
#include <stdio.h>

#include "runcell/vmm/layout.h"
#include "vmm/boot.h"

int vmm_boot_build_cmdline(unsigned n_virtio, const char *extra, char *buf, size_t size,
                           struct rc_error *err) {
  if (n_virtio > VMM_VIRTIO_MAX_DEVICES)
    return rc_err(err, 0, "%u virtio devices (at most %d)", n_virtio, VMM_VIRTIO_MAX_DEVICES);
  int used = snprintf(buf, size, "%s", VMM_BOOT_BASE_CMDLINE);
  for (unsigned i = 0; i < n_virtio && used >= 0 && (size_t)used < size; i++)
    used += snprintf(buf + used, size - (size_t)used, " virtio_mmio.device=4K@0x%llx:%u",
                     VMM_VIRTIO_MMIO_BASE + i * VMM_VIRTIO_MMIO_SIZE, vmm_virtio_gsi[i]);
  if (extra && *extra && used >= 0 && (size_t)used < size)
    used += snprintf(buf + used, size - (size_t)used, " %s", extra);
  if (used < 0 || (size_t)used >= size)
    return rc_err(err, 0, "kernel command line longer than %zu bytes", size - 1);
  return 0;
}
