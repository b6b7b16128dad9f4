/* The 8250 UART as Linux drives it (register behaviour, the THRE interrupt, the byte
 * budget) and the i8042 (its probe answers and the reset request). */
#include <fcntl.h>
#include <unistd.h>

#include "unit.h"
/* Private VMM headers, by path: the unit tests build with the public include dir only. */
#include "../../vmm/devices/devices.h"

static int pulses;
static int count_irq(void *ctx, uint32_t gsi, bool level) {
  (void)ctx;
  if (level) pulses++;
  return gsi == 4 || gsi == 1 ? 0 : -1;
}
static const struct vmm_irq_line serial_irq = {.set = count_irq, .gsi = 4};

static uint8_t rd(struct vmm_bus_device *d, uint64_t off) {
  uint8_t v = 0;
  d->read(d->opaque, off, &v, 1);
  return v;
}
static void wr(struct vmm_bus_device *d, uint64_t off, uint8_t v) {
  d->write(d->opaque, off, &v, 1);
}

static void test_registers(void) {
  struct vmm_serial *s;
  struct rc_error err = {0};
  CHECK(vmm_serial_create(-1, 1000, serial_irq, &s, &err) == 0);
  struct vmm_bus_device d = vmm_serial_bus_device(s, 0x3f8);
  CHECK(d.base == 0x3f8 && d.len == 8);
  /* Linux's autoconfig: IER holds what is written (low nibble), scratch works. */
  wr(&d, 1, 0);
  CHECK(rd(&d, 1) == 0);
  wr(&d, 1, 0xff);
  CHECK(rd(&d, 1) == 0x0f);
  wr(&d, 1, 0);
  wr(&d, 7, 0xa5);
  CHECK(rd(&d, 7) == 0xa5);
  /* Transmitter always empty. */
  CHECK((rd(&d, 5) & 0x60) == 0x60);
  /* FIFO: IIR's top bits follow FCR's enable (a 16550A to Linux). */
  CHECK(rd(&d, 2) == 0x01);
  wr(&d, 2, 0x07);
  CHECK((rd(&d, 2) & 0xc0) == 0xc0);
  /* Divisor latch behind DLAB, and the normal registers back after. */
  wr(&d, 3, 0x83);
  wr(&d, 0, 0x01);
  wr(&d, 1, 0x00);
  CHECK(rd(&d, 0) == 0x01 && rd(&d, 1) == 0x00 && rd(&d, 3) == 0x83);
  wr(&d, 3, 0x03);
  CHECK(rd(&d, 1) == 0);
  /* Modem status: carrier, DSR, CTS; loopback mirrors MCR. */
  CHECK(rd(&d, 6) == 0xb0);
  wr(&d, 4, 0x10 | 0x0a);
  CHECK((rd(&d, 6) & 0xf0) == 0x90);
  wr(&d, 4, 0x0b);
  CHECK(rd(&d, 4) == 0x0b);
  vmm_serial_destroy(s);
}

static void test_thre_interrupt(void) {
  struct vmm_serial *s;
  struct rc_error err = {0};
  CHECK(vmm_serial_create(-1, 1000, serial_irq, &s, &err) == 0);
  struct vmm_bus_device d = vmm_serial_bus_device(s, 0x3f8);
  pulses = 0;
  wr(&d, 0, 'a'); /* interrupts off: none */
  CHECK(pulses == 0);
  CHECK((rd(&d, 2) & 0x0f) == 0x01);
  /* Enabling THRI with the transmitter empty interrupts at once (Linux's THRE test). */
  wr(&d, 1, 0x02);
  CHECK(pulses == 1);
  CHECK((rd(&d, 2) & 0x0f) == 0x02);
  CHECK((rd(&d, 2) & 0x0f) == 0x01); /* reading IIR acknowledged it */
  wr(&d, 0, 'b');
  CHECK(pulses == 2);
  wr(&d, 0, 'c'); /* still pending: no new edge */
  CHECK(pulses == 2);
  CHECK((rd(&d, 2) & 0x0f) == 0x02);
  wr(&d, 1, 0x00);
  wr(&d, 0, 'd');
  CHECK(pulses == 2);
  CHECK((rd(&d, 2) & 0x0f) == 0x01);
  vmm_serial_destroy(s);
}

static void test_output_and_budget(void) {
  int p[2];
  CHECK(pipe2(p, O_NONBLOCK) == 0);
  struct vmm_serial *s;
  struct rc_error err = {0};
  CHECK(vmm_serial_create(p[1], 10, serial_irq, &s, &err) == 0);
  struct vmm_bus_device d = vmm_serial_bus_device(s, 0x3f8);
  const char *msg = "hello\nworld, and more than the budget\n";
  for (const char *c = msg; *c; c++) wr(&d, 0, (uint8_t)*c);
  vmm_serial_flush(s);
  char out[512] = {0};
  ssize_t n = read(p[0], out, sizeof(out) - 1);
  CHECK(n > 10);
  CHECK(strncmp(out, "hello\nworl", 10) == 0);
  CHECK_CONTAINS(out, "output limit reached");
  CHECK(strstr(out, "budget") == NULL);
  CHECK(vmm_serial_bytes_seen(s) == strlen(msg));
  CHECK(vmm_serial_bytes_dropped(s) == strlen(msg) - 10);
  /* Said once only. */
  wr(&d, 0, 'x');
  vmm_serial_flush(s);
  CHECK(read(p[0], out, sizeof(out)) < 0);
  /* Loopback output does not reach the console. */
  vmm_serial_destroy(s);

  CHECK(vmm_serial_create(p[1], 100, serial_irq, &s, &err) == 0);
  d = vmm_serial_bus_device(s, 0x3f8);
  wr(&d, 0, 'A');
  wr(&d, 4, 0x10);
  wr(&d, 0, 'B');
  wr(&d, 4, 0x00);
  wr(&d, 0, 'C');
  vmm_serial_destroy(s); /* flushes */
  n = read(p[0], out, sizeof(out));
  CHECK(n == 2 && out[0] == 'A' && out[1] == 'C');
  close(p[0]);
  close(p[1]);
}

static int resets;
static void on_reset(void *ctx) {
  (void)ctx;
  resets++;
}

static void test_i8042(void) {
  struct vmm_i8042 *k;
  struct rc_error err = {0};
  struct vmm_irq_line kbd = {.set = count_irq, .gsi = 1};
  CHECK(vmm_i8042_create(kbd, on_reset, NULL, &k, &err) == 0);
  struct vmm_bus_device data = vmm_i8042_data_device(k, 0x60);
  struct vmm_bus_device cmd = vmm_i8042_command_device(k, 0x64);
  resets = 0;
  CHECK((rd(&cmd, 0) & 0x03) == 0); /* nothing to read, ready for input */
  wr(&cmd, 0, 0xaa);                /* self-test */
  CHECK(rd(&cmd, 0) & 0x01);
  CHECK(rd(&data, 0) == 0x55);
  CHECK(!(rd(&cmd, 0) & 0x01));
  wr(&cmd, 0, 0x60); /* write the command byte */
  wr(&data, 0, 0x44);
  wr(&cmd, 0, 0x20);
  CHECK(rd(&data, 0) == 0x44);
  /* Keyboard commands are acknowledged; interrupts once the command byte enables them. */
  wr(&cmd, 0, 0x60);
  wr(&data, 0, 0x45);
  pulses = 0;
  wr(&data, 0, 0xf2); /* get ID */
  CHECK(pulses >= 1);
  uint8_t id[3];
  for (int i = 0; i < 3; i++) id[i] = rd(&data, 0);
  CHECK(id[0] == 0xfa && id[1] == 0xab && id[2] == 0x83);
  CHECK(resets == 0);
  wr(&cmd, 0, 0xfe); /* pulse the reset line */
  CHECK(resets == 1);
  wr(&cmd, 0, 0xff); /* pulse nothing */
  CHECK(resets == 1);
  wr(&cmd, 0, 0xd1); /* output port with the reset bit low */
  wr(&data, 0, 0xfe);
  CHECK(resets == 2);
  wr(&cmd, 0, 0xd1);
  wr(&data, 0, 0x01);
  CHECK(resets == 2);
  vmm_i8042_destroy(k);
}

UNIT_MAIN("vmm_serial", UNIT_CASE(test_registers), UNIT_CASE(test_thre_interrupt),
          UNIT_CASE(test_output_and_budget), UNIT_CASE(test_i8042))
