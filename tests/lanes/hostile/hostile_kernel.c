/* A hostile guest *kernel*, for the microVM lane (tests/lanes/microvm-tests/
 * hostile-kernel.sh): instead of Linux, the VMM boots this freestanding program (an ELF
 * "vmlinux" entered in 64-bit mode by the Linux boot protocol, boot_params in %rsi), which
 * drives every device the VMM offers the way a compromised guest kernel could:
 *
 *   - first what no device may take as an error: every register and config byte of every
 *     virtio-mmio device on the command line (virtio_mmio.device=4K@BASE:IRQ) read at
 *     every size, random bytes to the serial port, random accesses to unassigned ports and
 *     MMIO; then "hostile kernel: sprayed" on the serial console;
 *   - then, the devices in a random order: brought up like a driver would, but over rings
 *     of garbage (random descriptors, lengths up to 4 GiB, loops through `next`, indirect
 *     tables, addresses outside RAM, unaligned and overlapping rings) notified again and
 *     again as the garbage changes, or random values of every access size written all over
 *     the register window and config space;
 *   - if the machine is still running after all that, "hostile kernel: done" and a reset
 *     through the i8042 (port 0x64, 0xfe).
 *
 * The VMM must stay up through part one (the "sprayed" line proves every access came
 * back), stop the machine at the first misuse of a device with the reason, keep its own
 * memory bounded, and fail the container with a clear error. Part two's sequence differs
 * every boot (seeded from the TSC, the seed printed), so repeated runs reach different
 * device errors.
 *
 * Built by tests/integration/test_microvm_lane.py with hostile_kernel.ld: no libc, no
 * interrupts (they stay disabled), its own stack. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SERIAL 0x3f8
#define GARBAGE_BASE 0x2000000ULL /* 32 MiB: the rings' garbage lives here */
#define GARBAGE_SIZE 0x1000000ULL /* 16 MiB (guest RAM is 256 MiB by default) */
#define MAX_DEVICES 16
#define ROUNDS 48
#define VIRTIO_ID_BALLOON 5

/* virtio-mmio registers (virtio 1.x 4.2.2) */
enum {
  R_MAGIC = 0x000,
  R_DEVICE_ID = 0x008,
  R_DEVICE_FEATURES = 0x010,
  R_DEVICE_FEATURES_SEL = 0x014,
  R_DRIVER_FEATURES = 0x020,
  R_DRIVER_FEATURES_SEL = 0x024,
  R_QUEUE_SEL = 0x030,
  R_QUEUE_NUM_MAX = 0x034,
  R_QUEUE_NUM = 0x038,
  R_QUEUE_READY = 0x044,
  R_QUEUE_NOTIFY = 0x050,
  R_INTERRUPT_STATUS = 0x060,
  R_INTERRUPT_ACK = 0x064,
  R_STATUS = 0x070,
  R_QUEUE_DESC = 0x080,
  R_QUEUE_DRIVER = 0x090,
  R_QUEUE_DEVICE = 0x0a0,
  R_WINDOW = 0x200, /* registers and config space as this test covers them */
};

__asm__(
    ".section .text.start,\"ax\"\n"
    ".globl _start\n"
    "_start:\n"
    "  cli\n"
    "  lea stack_top(%rip), %rsp\n"
    "  mov %rsi, %rdi\n"
    "  call hostile_main\n"
    "1: hlt\n"
    "  jmp 1b\n"
    ".text\n");

static uint8_t stack[64 * 1024] __attribute__((aligned(16), used));
__asm__(".globl stack_top\n.set stack_top, stack + 65536\n");

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void) {
  /* xorshift64*: fast, fixed sequence */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dULL;
}

static void outb(uint16_t port, uint8_t v) {
  __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static void outw(uint16_t port, uint16_t v) {
  __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}
static void outl(uint16_t port, uint32_t v) {
  __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}
static uint8_t inb(uint16_t port) {
  uint8_t v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

static void puts_serial(const char *s) {
  for (; *s; s++) outb(SERIAL, (uint8_t)*s);
}

static void put_hex(uint64_t v) {
  char b[19] = "0x";
  for (int i = 0; i < 16; i++) b[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 0xf];
  b[18] = '\0';
  puts_serial(b);
}

static void w32(uint64_t addr, uint32_t v) {
  *(volatile uint32_t *)(uintptr_t)addr = v;
}
static uint32_t r32(uint64_t addr) {
  return *(volatile uint32_t *)(uintptr_t)addr;
}

/* An MMIO write of a random size (1, 2, 4 or 8 bytes) at addr. */
static void write_any(uint64_t addr, uint64_t v) {
  switch (rnd() & 3) {
    case 0:
      *(volatile uint8_t *)(uintptr_t)addr = (uint8_t)v;
      break;
    case 1:
      *(volatile uint16_t *)(uintptr_t)addr = (uint16_t)v;
      break;
    case 2:
      *(volatile uint32_t *)(uintptr_t)addr = (uint32_t)v;
      break;
    default:
      *(volatile uint64_t *)(uintptr_t)addr = v;
      break;
  }
}

static uint64_t read_any(uint64_t addr, int size) {
  switch (size) {
    case 1:
      return *(volatile uint8_t *)(uintptr_t)addr;
    case 2:
      return *(volatile uint16_t *)(uintptr_t)addr;
    case 4:
      return *(volatile uint32_t *)(uintptr_t)addr;
    default:
      return *(volatile uint64_t *)(uintptr_t)addr;
  }
}

/* ---- The command line: where the devices are ---------------------------------------- */

static uint64_t parse_number(const char **p) {
  const char *s = *p;
  uint64_t v = 0;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    for (s += 2;; s++) {
      int d = *s >= '0' && *s <= '9'   ? *s - '0'
              : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
              : *s >= 'A' && *s <= 'F' ? *s - 'A' + 10
                                       : -1;
      if (d < 0) break;
      v = v * 16 + (uint64_t)d;
    }
  } else {
    for (; *s >= '0' && *s <= '9'; s++) v = v * 10 + (uint64_t)(*s - '0');
  }
  if (*s == 'K' || *s == 'k') {
    v <<= 10;
    s++;
  }
  *p = s;
  return v;
}

static size_t find_devices(const char *cmdline, uint64_t *base, size_t max) {
  static const char key[] = "virtio_mmio.device=";
  size_t n = 0;
  for (const char *p = cmdline; *p && n < max; p++) {
    size_t k = 0;
    while (key[k] && p[k] == key[k]) k++;
    if (key[k]) continue;
    const char *s = p + k;
    (void)parse_number(&s); /* size */
    if (*s++ != '@') continue;
    base[n++] = parse_number(&s);
    p = s - 1;
  }
  return n;
}

/* ---- Garbage rings ---------------------------------------------------------------- */

/* A guest address for a ring or a buffer: mostly inside the garbage, sometimes anywhere. */
static uint64_t garbage_address(uint64_t align) {
  switch (rnd() % 10) {
    case 0:
      return rnd(); /* anything at all */
    case 1:
      return 0x100000000ULL - (rnd() % 0x10000); /* the top of the 32-bit space */
    case 2:
      return GARBAGE_BASE + GARBAGE_SIZE - (rnd() % 64); /* across the garbage's end */
    case 3:
      return GARBAGE_BASE + (rnd() % GARBAGE_SIZE); /* unaligned */
    default:
      return (GARBAGE_BASE + (rnd() % GARBAGE_SIZE)) & ~(align - 1);
  }
}

/* Writes descriptors that look almost right over [at, at + bytes): plausible flags and
 * lengths, `next` links that loop, indirect tables pointing back into the garbage. */
static void fill_garbage(uint64_t at, uint64_t bytes) {
  volatile uint64_t *g = (volatile uint64_t *)(uintptr_t)at;
  for (uint64_t i = 0; i + 1 < bytes / 8; i += 2) {
    uint64_t addr = (rnd() & 1) ? garbage_address(1) : rnd();
    uint32_t len = (rnd() & 3) == 0 ? 0xffffffffu : (uint32_t)(rnd() % 70000);
    uint16_t flags = (uint16_t)(rnd() & 7); /* NEXT, WRITE, INDIRECT in any mix */
    uint16_t next = (uint16_t)((rnd() & 1) ? rnd() % 8 : rnd());
    g[i] = addr;
    g[i + 1] = (uint64_t)len | (uint64_t)flags << 32 | (uint64_t)next << 48;
  }
}

static void set_queue_address(uint64_t base, uint32_t reg, uint64_t addr) {
  w32(base + reg, (uint32_t)addr);
  w32(base + reg + 4, (uint32_t)(addr >> 32));
}

/* Brings the device up as a driver would, then feeds it garbage rings. */
static void drive_with_garbage(uint64_t base) {
  w32(base + R_STATUS, 0); /* reset */
  w32(base + R_STATUS, 1); /* ACKNOWLEDGE */
  w32(base + R_STATUS, 3); /* DRIVER */
  for (uint32_t sel = 0; sel < 2; sel++) {
    w32(base + R_DEVICE_FEATURES_SEL, sel);
    uint32_t offered = r32(base + R_DEVICE_FEATURES);
    w32(base + R_DRIVER_FEATURES_SEL, sel);
    w32(base + R_DRIVER_FEATURES, (rnd() & 3) ? offered : (uint32_t)rnd());
  }
  w32(base + R_STATUS, 0xb); /* FEATURES_OK */
  /* mostly a queue the device accepts, so that it goes on to read the garbage in it; now
   * and then one it must refuse (bad size, misaligned or outside RAM) */
  bool valid = (rnd() % 8) != 0;
  uint64_t rings[4] = {0};
  uint32_t sizes[4] = {0};
  for (uint32_t q = 0; q < 4; q++) {
    w32(base + R_QUEUE_SEL, q);
    uint32_t max = r32(base + R_QUEUE_NUM_MAX);
    if (max == 0) continue;
    uint32_t num;
    if (valid) {
      num = 1;
      while (num * 2 <= max && (rnd() & 3)) num *= 2;
    } else {
      switch (rnd() % 4) {
        case 0:
          num = 1 + (uint32_t)(rnd() % max);
          break;
        case 1:
          num = max + 1;
          break;
        case 2:
          num = 0;
          break;
        default:
          num = 1u << (rnd() % 16);
          break;
      }
    }
    w32(base + R_QUEUE_NUM, num);
    sizes[q] = num;
    uint64_t inside = GARBAGE_BASE + rnd() % (GARBAGE_SIZE - 0x10000);
    rings[q] = inside & ~15ULL;
    set_queue_address(base, R_QUEUE_DESC, valid ? (inside & ~15ULL) : garbage_address(16));
    set_queue_address(base, R_QUEUE_DRIVER,
                      valid ? ((inside + 0x4000) & ~1ULL) : garbage_address(2));
    set_queue_address(base, R_QUEUE_DEVICE,
                      valid ? ((inside + 0x8000) & ~3ULL) : garbage_address(4));
    w32(base + R_QUEUE_READY, 1);
  }
  w32(base + R_STATUS, 0xf); /* DRIVER_OK */
  for (int k = 0; k < 24; k++) {
    /* new garbage in one queue's descriptor table and rings (the available ring's index
     * included: the device sees up to 65535 new heads), then its notification */
    uint32_t q = (uint32_t)(rnd() % 4);
    if (rings[q]) {
      fill_garbage(rings[q], 0xc000);
      /* an available index the device takes (at most a queue ahead), now and then not */
      volatile uint16_t *avail_idx = (volatile uint16_t *)(uintptr_t)(rings[q] + 0x4000 + 2);
      if (sizes[q] && (rnd() % 8)) {
        *avail_idx = (uint16_t)(1 + rnd() % sizes[q]);
        /* and heads that name a descriptor of the table */
        volatile uint16_t *ring = avail_idx + 1;
        for (uint32_t i = 0; i < sizes[q]; i++) ring[i] = (uint16_t)(rnd() % sizes[q]);
      }
    }
    w32(base + R_QUEUE_NOTIFY, (rnd() % 8) ? q : (uint32_t)(rnd() % 16));
    w32(base + R_INTERRUPT_ACK, r32(base + R_INTERRUPT_STATUS));
  }
}

/* Random values of random sizes at random offsets of the window, then every offset read
 * back at every size. */
static void scribble(uint64_t base) {
  for (int k = 0; k < 300; k++) {
    uint64_t off = rnd() % R_WINDOW;
    uint64_t v = rnd();
    if ((rnd() & 3) == 0) v &= 0xff; /* small values reach the interesting cases */
    write_any(base + off, v);
  }
  uint64_t sum = 0;
  for (uint64_t off = 0; off < R_WINDOW; off += 4) sum += read_any(base + off, 4);
  for (int k = 0; k < 64; k++) sum += read_any(base + rnd() % R_WINDOW, 1 << (rnd() % 4));
  (void)sum;
}

/* ---- Everything else ------------------------------------------------------------------ */

static void serial_garbage(void) {
  for (int k = 0; k < 4000; k++) outb((uint16_t)(SERIAL + (rnd() % 8)), (uint8_t)rnd());
  for (int k = 0; k < 64; k++) (void)inb((uint16_t)(SERIAL + (rnd() % 8)));
  /* whatever the registers hold now, the line below must still come out */
  outb(SERIAL + 3, 0x03); /* 8N1, DLAB off */
  outb(SERIAL + 1, 0x00); /* no interrupts */
  outb(SERIAL + 4, 0x00); /* no loopback */
  puts_serial("\n");
}

static void ports_garbage(void) {
  for (int k = 0; k < 2000; k++) {
    uint16_t port = (uint16_t)rnd();
    /* the reset ports (i8042, fast A20, PCI) end the run: kept for the end */
    if (port == 0x64 || port == 0x92 || port == 0xcf9 || (port >= SERIAL && port < SERIAL + 8))
      continue;
    switch (rnd() % 3) {
      case 0:
        outb(port, (uint8_t)rnd());
        break;
      case 1:
        outw(port, (uint16_t)rnd());
        break;
      default:
        outl(port, (uint32_t)rnd());
        break;
    }
  }
}

/* Accesses above guest RAM that no device claims (the local APIC and the I/O APIC, served
 * by KVM itself, are left alone: garbage there only wedges this vCPU). */
static void mmio_garbage(uint64_t ram_end, const uint64_t *dev, size_t n_dev) {
  for (int k = 0; k < 500; k++) {
    uint64_t addr = ram_end + (rnd() % (0x100000000ULL - ram_end));
    addr &= ~7ULL;
    if (addr >= 0xfec00000ULL) continue;
    int mine = 0;
    for (size_t i = 0; i < n_dev; i++)
      if (addr >= dev[i] && addr < dev[i] + 0x1000) mine = 1;
    if (mine) continue;
    if (rnd() & 1)
      write_any(addr, rnd());
    else
      (void)read_any(addr, 1 << (rnd() % 4));
  }
}

/* The end of the first RAM range above 1 MiB, from the e820 map in boot_params. */
static uint64_t ram_end_of(const uint8_t *bp) {
  uint8_t entries = bp[0x1e8];
  uint64_t end = 0;
  for (uint8_t i = 0; i < entries && i < 128; i++) {
    const uint8_t *e = bp + 0x2d0 + 20 * i;
    uint64_t addr = *(const uint64_t *)e, size = *(const uint64_t *)(e + 8);
    uint32_t type = *(const uint32_t *)(e + 16);
    if (type == 1 && addr + size > end && addr + size <= 0x100000000ULL) end = addr + size;
  }
  return end;
}

void hostile_main(const uint8_t *boot_params);

static uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return (uint64_t)hi << 32 | lo;
}

void hostile_main(const uint8_t *boot_params) {
  const char *cmdline = (const char *)(uintptr_t)(*(const uint32_t *)(boot_params + 0x228));
  uint64_t ram_end = ram_end_of(boot_params);
  uint64_t dev[MAX_DEVICES];
  size_t n = find_devices(cmdline, dev, MAX_DEVICES);
  puts_serial("hostile kernel: ");
  put_hex(n);
  puts_serial(" virtio devices, RAM to ");
  put_hex(ram_end);
  puts_serial("\n");

  /* Part 1, what no device may take as an error: every register and config byte read at
   * every size, the serial port, unassigned ports and MMIO sprayed. */
  for (size_t i = 0; i < n; i++)
    for (uint64_t off = 0; off < R_WINDOW; off++)
      for (int size = 1; size <= 8; size *= 2)
        if (off % (uint64_t)size == 0) (void)read_any(dev[i] + off, size);
  puts_serial("hostile kernel: registers read\n");
  ports_garbage();
  puts_serial("hostile kernel: ports sprayed\n");
  mmio_garbage(ram_end, dev, n);
  puts_serial("hostile kernel: mmio sprayed\n");
  serial_garbage();
  puts_serial("hostile kernel: sprayed\n");

  /* Part 2, what a device must refuse: garbage rings and random register values, the
   * devices in a random order, a different sequence every boot (the seed is printed so a
   * failure can be replayed). The VMM stops the machine at the first device it sees
   * misused; a run that gets through all of it resets the machine itself. */
  if (ram_end < GARBAGE_BASE + GARBAGE_SIZE) {
    puts_serial("hostile kernel: too little RAM for the garbage rings\n");
  } else {
    rng_state = rdtsc() | 1;
    puts_serial("hostile kernel: seed ");
    put_hex(rng_state);
    puts_serial("\n");
    for (int round = 0; round < ROUNDS; round++) {
      size_t i = (size_t)(rnd() % (n ? n : 1));
      if (n == 0 || r32(dev[i] + R_MAGIC) != 0x74726976) continue; /* "virt" */
      /* Not the balloon: it gives the host whatever pages the guest names, and garbage
       * names this program's own code and page tables, so the guest would only wreck
       * itself (and a guest running wild in the emulated lane can take the lane down with
       * it). Its queues take garbage in fuzz_virtio_balloon and the unit tests. */
      if (r32(dev[i] + R_DEVICE_ID) == VIRTIO_ID_BALLOON) continue;
      if (rnd() % 4)
        drive_with_garbage(dev[i]);
      else
        scribble(dev[i]);
    }
  }
  puts_serial("hostile kernel: done\n");
  outb(0x64, 0xfe); /* reset through the i8042 */
  for (;;) __asm__ volatile("hlt");
}
