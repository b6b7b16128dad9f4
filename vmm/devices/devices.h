/* The legacy PC devices of the VMM (private to vmm/): the 8250 UART the guest kernel's
 * console writes to, and the i8042 keyboard controller a PC guest resets itself through.
 * Each serialises its own state, so vCPU threads may access it concurrently. */
#ifndef RUNCELL_VMM_DEVICES_H
#define RUNCELL_VMM_DEVICES_H

#include <stdbool.h>
#include <stdint.h>

#include "runcell/error.h"
#include "runcell/vmm/bus.h"

/* 8250/16550A UART, output only (the guest's console). What the guest transmits goes to
 * out_fd (not owned; -1 drops it) until `budget` bytes have gone, after which output is
 * dropped with one notice, so that a guest printing forever cannot fill the host's disk.
 * Interrupts (transmitter empty) go to irq when the guest enables them in IER. */
struct vmm_serial;
#define VMM_SERIAL_DEFAULT_BUDGET (1ULL << 20)
int vmm_serial_create(int out_fd, uint64_t budget, struct vmm_irq_line irq, struct vmm_serial **out,
                      struct rc_error *err);
/* The UART's 8 registers as a PIO bus device at base. */
struct vmm_bus_device vmm_serial_bus_device(struct vmm_serial *s, uint64_t base);
/* Writes out what is buffered. */
void vmm_serial_flush(struct vmm_serial *s);
/* Bytes the guest transmitted, and how many of them were dropped over the budget. */
uint64_t vmm_serial_bytes_seen(struct vmm_serial *s);
uint64_t vmm_serial_bytes_dropped(struct vmm_serial *s);
/* Flushes and frees; NULL is fine. */
void vmm_serial_destroy(struct vmm_serial *s);

/* i8042: enough of the controller for Linux's probe and its keyboard reset. A reset
 * request (command 0xFE, a pulse of output line 0, or output port bit 0 cleared) calls
 * reset(ctx) from the vCPU thread that asked. */
struct vmm_i8042;
int vmm_i8042_create(struct vmm_irq_line kbd_irq, void (*reset)(void *ctx), void *ctx,
                     struct vmm_i8042 **out, struct rc_error *err);
/* The data port (0x60) and the command/status port (0x64) as PIO bus devices. */
struct vmm_bus_device vmm_i8042_data_device(struct vmm_i8042 *k, uint64_t base);
struct vmm_bus_device vmm_i8042_command_device(struct vmm_i8042 *k, uint64_t base);
void vmm_i8042_destroy(struct vmm_i8042 *k);

#endif
