/* An 8250/16550A UART at COM1, as Linux's 8250 driver probes and drives it: the scratch
 * and IER tests of its autoconfiguration, a FIFO it can detect, a transmitter that is
 * always empty (THRE|TEMT) and a "transmitter empty" interrupt when IER asks for one.
 * There is no receive path: the guest's input arrives over the agent channel. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/devices/devices.h"

/* Register offsets (DLAB = LCR bit 7 selects the divisor latch at 0 and 1). */
enum {
  REG_DATA = 0,
  REG_IER = 1,
  REG_IIR_FCR = 2,
  REG_LCR = 3,
  REG_MCR = 4,
  REG_LSR = 5,
  REG_MSR = 6,
  REG_SCR = 7
};

#define IER_THRI 0x02
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_FIFO_ON 0xc0
#define FCR_ENABLE 0x01
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_DCD 0x80

#define OUT_BUF 1024

static const char budget_notice[] =
    "\r\n[runcell: guest console output limit reached; dropping the rest]\r\n";

struct vmm_serial {
  pthread_mutex_t lock;
  struct vmm_irq_line irq;
  int out_fd;
  uint64_t budget, seen, dropped;
  bool noticed;
  uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
  bool thr_pending; /* a "transmitter empty" interrupt the guest has not read from IIR */
  uint8_t buf[OUT_BUF];
  size_t buf_len;
};

static void write_all(int fd, const void *data, size_t len) {
  const uint8_t *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return; /* a broken console must not stop the guest: drop */
    p += n;
    len -= (size_t)n;
  }
}

static void flush_locked(struct vmm_serial *s) {
  if (s->buf_len > 0 && s->out_fd >= 0) write_all(s->out_fd, s->buf, s->buf_len);
  s->buf_len = 0;
}

/* Buffers a transmitted byte; a line, a full buffer or the guest changing IER (its
 * console and tty paths both end that way) sends it on. */
static void transmit_locked(struct vmm_serial *s, uint8_t byte) {
  s->seen++;
  if (s->seen > s->budget) {
    s->dropped++;
    if (!s->noticed) {
      s->noticed = true;
      flush_locked(s);
      if (s->out_fd >= 0) write_all(s->out_fd, budget_notice, sizeof(budget_notice) - 1);
    }
    return;
  }
  s->buf[s->buf_len++] = byte;
  if (byte == '\n' || s->buf_len == OUT_BUF) flush_locked(s);
}

/* The interrupt identification the guest would read now. */
static uint8_t iir_locked(const struct vmm_serial *s) {
  uint8_t fifo = (s->fcr & FCR_ENABLE) ? IIR_FIFO_ON : 0;
  if ((s->ier & IER_THRI) && s->thr_pending) return fifo | IIR_THRI;
  return fifo | IIR_NONE;
}

static void serial_read(void *opaque, uint64_t off, void *data, uint32_t size) {
  struct vmm_serial *s = opaque;
  uint8_t v = 0;
  pthread_mutex_lock(&s->lock);
  bool dlab = s->lcr & LCR_DLAB;
  switch (off) {
    case REG_DATA:
      v = dlab ? s->dll : 0; /* nothing is ever received */
      break;
    case REG_IER:
      v = dlab ? s->dlm : s->ier;
      break;
    case REG_IIR_FCR:
      v = iir_locked(s);
      /* Reading IIR acknowledges a transmitter-empty interrupt. */
      if ((v & 0x0f) == IIR_THRI) s->thr_pending = false;
      break;
    case REG_LCR:
      v = s->lcr;
      break;
    case REG_MCR:
      v = s->mcr;
      break;
    case REG_LSR:
      v = LSR_THRE | LSR_TEMT;
      break;
    case REG_MSR:
      if (s->mcr & MCR_LOOP) /* loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD */
        v = (uint8_t)(((s->mcr & 0x01) << 5) | ((s->mcr & 0x02) << 3) | ((s->mcr & 0x04) << 4) |
                      ((s->mcr & 0x08) << 4));
      else
        v = MSR_DCD | MSR_DSR | MSR_CTS;
      break;
    case REG_SCR:
      v = s->scr;
      break;
    default:
      break;
  }
  pthread_mutex_unlock(&s->lock);
  memset(data, 0, size);
  memcpy(data, &v, 1);
}

static void serial_write(void *opaque, uint64_t off, const void *data, uint32_t size) {
  struct vmm_serial *s = opaque;
  uint8_t v;
  memcpy(&v, data, 1);
  (void)size;
  bool raise = false;
  pthread_mutex_lock(&s->lock);
  bool dlab = s->lcr & LCR_DLAB;
  switch (off) {
    case REG_DATA:
      if (dlab) {
        s->dll = v;
        break;
      }
      if (!(s->mcr & MCR_LOOP)) transmit_locked(s, v);
      /* The byte leaves at once: the transmitter is empty again. The line is an edge
       * (layout.h's ISA wiring), so it fires when the interrupt becomes pending. */
      raise = (s->ier & IER_THRI) && !s->thr_pending;
      s->thr_pending = true;
      break;
    case REG_IER:
      if (dlab) {
        s->dlm = v;
        break;
      }
      flush_locked(s);
      /* Enabling the interrupt while the transmitter is empty raises it at once, which
       * is what Linux's 8250 startup checks for (else it assumes a buggy UART). */
      if ((v & IER_THRI) && !(s->ier & IER_THRI)) {
        s->thr_pending = true;
        raise = true;
      }
      s->ier = v & 0x0f;
      break;
    case REG_IIR_FCR:
      s->fcr = v & (FCR_ENABLE | 0xc0);
      break;
    case REG_LCR:
      s->lcr = v;
      break;
    case REG_MCR:
      s->mcr = v & 0x1f;
      break;
    case REG_SCR:
      s->scr = v;
      break;
    default: /* LSR and MSR are read-only */
      break;
  }
  pthread_mutex_unlock(&s->lock);
  if (raise) vmm_irq_pulse(&s->irq);
}

int vmm_serial_create(int out_fd, uint64_t budget, struct vmm_irq_line irq, struct vmm_serial **out,
                      struct rc_error *err) {
  struct vmm_serial *s = calloc(1, sizeof(*s));
  if (!s) return rc_err(err, errno, "allocate the serial device");
  pthread_mutex_init(&s->lock, NULL);
  s->irq = irq;
  s->out_fd = out_fd;
  s->budget = budget;
  s->lcr = 0x03; /* 8N1 */
  s->mcr = 0x08; /* OUT2 */
  s->dll = 0x0c; /* 9600 baud */
  *out = s;
  return 0;
}

struct vmm_bus_device vmm_serial_bus_device(struct vmm_serial *s, uint64_t base) {
  return (struct vmm_bus_device){.name = "serial",
                                 .base = base,
                                 .len = 8,
                                 .read = serial_read,
                                 .write = serial_write,
                                 .opaque = s};
}

void vmm_serial_flush(struct vmm_serial *s) {
  pthread_mutex_lock(&s->lock);
  flush_locked(s);
  pthread_mutex_unlock(&s->lock);
}

uint64_t vmm_serial_bytes_seen(struct vmm_serial *s) {
  pthread_mutex_lock(&s->lock);
  uint64_t v = s->seen;
  pthread_mutex_unlock(&s->lock);
  return v;
}

uint64_t vmm_serial_bytes_dropped(struct vmm_serial *s) {
  pthread_mutex_lock(&s->lock);
  uint64_t v = s->dropped;
  pthread_mutex_unlock(&s->lock);
  return v;
}

void vmm_serial_destroy(struct vmm_serial *s) {
  if (!s) return;
  vmm_serial_flush(s);
  pthread_mutex_destroy(&s->lock);
  free(s);
}
