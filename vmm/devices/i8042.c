/* The i8042 keyboard controller, for two reasons: Linux's reboot=k resets the machine by
 * sending it command 0xFE, and its i8042 driver probes it at boot (self-test, the
 * command byte). There is no keyboard behind it: keyboard commands are acknowledged and
 * nothing is ever typed. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/devices/devices.h"

#define STATUS_OBF 0x01    /* output buffer full: a byte waits on the data port */
#define STATUS_SYS 0x04    /* self-test passed */
#define STATUS_CMD 0x08    /* the last write went to the command port */
#define STATUS_UNLOCK 0x10 /* keyboard not inhibited */

#define CTR_KBD_INT 0x01

#define CMD_READ_CTR 0x20
#define CMD_WRITE_CTR 0x60
#define CMD_SELF_TEST 0xaa
#define CMD_KBD_TEST 0xab
#define CMD_KBD_DISABLE 0xad
#define CMD_KBD_ENABLE 0xae
#define CMD_READ_OUTPUT 0xd0
#define CMD_WRITE_OUTPUT 0xd1
#define CMD_RESET 0xfe /* pulse output line 0: the CPU reset line */

#define KBD_ACK 0xfa
#define KBD_RESET 0xff
#define KBD_GET_ID 0xf2

#define QUEUE 16

struct vmm_i8042 {
  pthread_mutex_t lock;
  struct vmm_irq_line irq;
  void (*reset)(void *ctx);
  void *reset_ctx;
  uint8_t ctr, outport, last_cmd_write;
  uint8_t pending_cmd; /* a command waiting for its data byte, 0 for none */
  uint8_t queue[QUEUE];
  unsigned q_head, q_len;
  uint8_t last_read;
};

/* Queues a byte for the guest; true when it should interrupt. */
static bool push_locked(struct vmm_i8042 *k, uint8_t byte) {
  if (k->q_len == QUEUE) return false;
  k->queue[(k->q_head + k->q_len) % QUEUE] = byte;
  k->q_len++;
  return k->ctr & CTR_KBD_INT;
}

/* Runs a controller command; true when the machine should reset. */
static bool command_locked(struct vmm_i8042 *k, uint8_t cmd, bool *irq) {
  switch (cmd) {
    case CMD_READ_CTR:
      *irq |= push_locked(k, k->ctr);
      return false;
    case CMD_WRITE_CTR:
    case CMD_WRITE_OUTPUT:
      k->pending_cmd = cmd;
      return false;
    case CMD_SELF_TEST:
      *irq |= push_locked(k, 0x55);
      return false;
    case CMD_KBD_TEST:
      *irq |= push_locked(k, 0x00);
      return false;
    case CMD_KBD_DISABLE:
      k->ctr |= 0x10;
      return false;
    case CMD_KBD_ENABLE:
      k->ctr &= (uint8_t)~0x10;
      return false;
    case CMD_READ_OUTPUT:
      *irq |= push_locked(k, k->outport);
      return false;
    default:
      /* 0xF0..0xFF pulse the output lines whose bit is clear; line 0 is CPU reset. */
      return cmd >= 0xf0 && !(cmd & 1);
  }
}

/* A byte on the data port: the data of a pending command, else for the keyboard. */
static bool data_locked(struct vmm_i8042 *k, uint8_t v, bool *irq) {
  uint8_t cmd = k->pending_cmd;
  k->pending_cmd = 0;
  if (cmd == CMD_WRITE_CTR) {
    k->ctr = v;
    return false;
  }
  if (cmd == CMD_WRITE_OUTPUT) {
    k->outport = v;
    return !(v & 1); /* output port bit 0 low holds the CPU in reset */
  }
  *irq |= push_locked(k, KBD_ACK);
  if (v == KBD_RESET) *irq |= push_locked(k, 0xaa); /* basic assurance test passed */
  if (v == KBD_GET_ID) {
    *irq |= push_locked(k, 0xab);
    *irq |= push_locked(k, 0x83);
  }
  return false;
}

static void data_read(void *opaque, uint64_t off, void *data, uint32_t size) {
  struct vmm_i8042 *k = opaque;
  (void)off;
  bool irq = false;
  pthread_mutex_lock(&k->lock);
  if (k->q_len > 0) {
    k->last_read = k->queue[k->q_head];
    k->q_head = (k->q_head + 1) % QUEUE;
    k->q_len--;
    irq = k->q_len > 0 && (k->ctr & CTR_KBD_INT);
  }
  uint8_t v = k->last_read;
  pthread_mutex_unlock(&k->lock);
  memset(data, 0, size);
  memcpy(data, &v, 1);
  if (irq) vmm_irq_pulse(&k->irq);
}

static void data_write(void *opaque, uint64_t off, const void *data, uint32_t size) {
  struct vmm_i8042 *k = opaque;
  (void)off;
  (void)size;
  uint8_t v;
  memcpy(&v, data, 1);
  bool irq = false;
  pthread_mutex_lock(&k->lock);
  k->last_cmd_write = 0;
  bool reset = data_locked(k, v, &irq);
  pthread_mutex_unlock(&k->lock);
  if (irq) vmm_irq_pulse(&k->irq);
  if (reset && k->reset) k->reset(k->reset_ctx);
}

static void status_read(void *opaque, uint64_t off, void *data, uint32_t size) {
  struct vmm_i8042 *k = opaque;
  (void)off;
  pthread_mutex_lock(&k->lock);
  uint8_t v = STATUS_SYS | STATUS_UNLOCK | (k->q_len ? STATUS_OBF : 0) |
              (k->last_cmd_write ? STATUS_CMD : 0);
  pthread_mutex_unlock(&k->lock);
  memset(data, 0, size);
  memcpy(data, &v, 1);
}

static void command_write(void *opaque, uint64_t off, const void *data, uint32_t size) {
  struct vmm_i8042 *k = opaque;
  (void)off;
  (void)size;
  uint8_t v;
  memcpy(&v, data, 1);
  bool irq = false;
  pthread_mutex_lock(&k->lock);
  k->last_cmd_write = 1;
  k->pending_cmd = 0;
  bool reset = command_locked(k, v, &irq);
  pthread_mutex_unlock(&k->lock);
  if (irq) vmm_irq_pulse(&k->irq);
  if (reset && k->reset) k->reset(k->reset_ctx);
}

int vmm_i8042_create(struct vmm_irq_line kbd_irq, void (*reset)(void *ctx), void *ctx,
                     struct vmm_i8042 **out, struct rc_error *err) {
  struct vmm_i8042 *k = calloc(1, sizeof(*k));
  if (!k) return rc_err(err, errno, "allocate the i8042 device");
  pthread_mutex_init(&k->lock, NULL);
  k->irq = kbd_irq;
  k->reset = reset;
  k->reset_ctx = ctx;
  k->ctr = 0x45;     /* keyboard interrupt on, system flag, scancode translation */
  k->outport = 0x01; /* CPU reset line released */
  *out = k;
  return 0;
}

struct vmm_bus_device vmm_i8042_data_device(struct vmm_i8042 *k, uint64_t base) {
  return (struct vmm_bus_device){.name = "i8042-data",
                                 .base = base,
                                 .len = 1,
                                 .read = data_read,
                                 .write = data_write,
                                 .opaque = k};
}

struct vmm_bus_device vmm_i8042_command_device(struct vmm_i8042 *k, uint64_t base) {
  return (struct vmm_bus_device){.name = "i8042-command",
                                 .base = base,
                                 .len = 1,
                                 .read = status_read,
                                 .write = command_write,
                                 .opaque = k};
}

void vmm_i8042_destroy(struct vmm_i8042 *k) {
  if (!k) return;
  pthread_mutex_destroy(&k->lock);
  free(k);
}
