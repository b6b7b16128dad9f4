/* virtio-console bridged to a socketpair, driven by a test guest: bytes both ways, flow
 * control when the socket is full and when the guest has posted no receive buffers, end
 * of file, a vanished peer, and hostile chains on both queues. */
#include <fcntl.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_virtio_guest.h"
#include "unit.h"

#define RXQ 0
#define TXQ 1
#define RX_GPA (TG_BUFS)
#define TX_GPA (TG_BUFS + 0x40000)
#define WAIT_MS 2000

/* A console on one end of a socketpair; *peer gets the other end. */
static bool console_guest(struct tguest *g, int *peer) {
  int sv[2];
  if (tg_init(g, 2 << 20) < 0) return false;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return false;
  /* a small socket buffer, so that the flow-control test fills it whatever the host's
   * defaults are */
  int sndbuf = 64 << 10;
  (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
  struct vmm_virtio_dev *dev;
  struct rc_error err = {0};
  if (vmm_virtio_console_create(&g->mem, tg_irq(g), sv[0], &dev, &err) < 0) {
    fprintf(stderr, "console: %s\n", err.msg);
    close(sv[1]);
    vmm_guest_mem_destroy(&g->mem);
    return false;
  }
  *peer = sv[1];
  tg_attach(g, dev);
  return tg_setup(g, UINT64_MAX, 2, 64);
}

/* Reads exactly n bytes from fd within the wait limit. */
static bool read_all(int fd, uint8_t *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, WAIT_MS) != 1) return false;
    ssize_t r = read(fd, buf + got, n - got);
    if (r <= 0) return false;
    got += (size_t)r;
  }
  return true;
}

static void post_rx(struct tguest *g, uint16_t i, uint32_t len) {
  tg_desc(g, RXQ, i, RX_GPA + i * 0x1000ull, len, VRING_DESC_F_WRITE, 0);
  tg_post(g, RXQ, i);
}

static void test_both_ways(void) {
  struct tguest g;
  int peer = -1;
  CHECK(console_guest(&g, &peer));
  CHECK(tg_r32(&g, VIRTIO_MMIO_DEVICE_ID) == VIRTIO_ID_CONSOLE);

  /* guest to host, in two buffers */
  memcpy(tg_ptr(&g, TX_GPA, 16), "hello, host", 11);
  tg_desc(&g, TXQ, 0, TX_GPA, 7, VRING_DESC_F_NEXT, 1);
  tg_desc(&g, TXQ, 1, TX_GPA + 7, 4, 0, 0);
  tg_post(&g, TXQ, 0);
  uint8_t buf[64];
  CHECK(read_all(peer, buf, 11) && memcmp(buf, "hello, host", 11) == 0);
  uint32_t id, len;
  CHECK(tg_take_used(&g, TXQ, &id, &len) && id == 0 && len == 0);

  /* host to guest */
  int before = tg_pulses(&g);
  post_rx(&g, 0, 64);
  CHECK(write(peer, "hi, guest", 9) == 9);
  CHECK(tg_wait_used(&g, RXQ, &id, &len, WAIT_MS) && id == 0 && len == 9);
  CHECK(memcmp(tg_ptr(&g, RX_GPA, 9), "hi, guest", 9) == 0);
  CHECK(tg_pulses(&g) > before);
  CHECK(vmm_virtio_dev_fault(g.dev) == NULL);
  tg_fini(&g);
  close(peer);
}

/* Input waits in the socket while the guest has no receive buffers, and arrives once it
 * posts some: small buffers take it piece by piece, in order. */
static void test_no_rx_buffers(void) {
  struct tguest g;
  int peer = -1;
  CHECK(console_guest(&g, &peer));
  CHECK(write(peer, "0123456789", 10) == 10);
  uint32_t id, len;
  CHECK(!tg_wait_used(&g, RXQ, &id, &len, 50));
  post_rx(&g, 0, 4);
  post_rx(&g, 1, 4);
  CHECK(tg_wait_used(&g, RXQ, &id, &len, WAIT_MS) && id == 0 && len == 4);
  CHECK(tg_wait_used(&g, RXQ, &id, &len, WAIT_MS) && id == 1 && len == 4);
  CHECK(memcmp(tg_ptr(&g, RX_GPA, 4), "0123", 4) == 0);
  CHECK(memcmp(tg_ptr(&g, RX_GPA + 0x1000, 4), "4567", 4) == 0);
  CHECK(!tg_wait_used(&g, RXQ, &id, &len, 50)); /* "89" waits for the next buffer */
  post_rx(&g, 2, 4);
  CHECK(tg_wait_used(&g, RXQ, &id, &len, WAIT_MS) && id == 2 && len == 2);
  CHECK(memcmp(tg_ptr(&g, RX_GPA + 0x2000, 2), "89", 2) == 0);
  tg_fini(&g);
  close(peer);
}

/* The guest writes more than the socket holds: the device stops taking chains while the
 * socket is full and finishes them, in order, as the host reads. */
static void test_socket_full(void) {
  struct tguest g;
  int peer = -1;
  CHECK(console_guest(&g, &peer));
  enum { CHAINS = 8, CHUNK = 64 << 10 };
  uint8_t *tx = tg_ptr(&g, TX_GPA, (uint64_t)CHAINS * CHUNK);
  for (size_t i = 0; i < (size_t)CHAINS * CHUNK; i++) tx[i] = (uint8_t)(i * 7 + i / 251);
  for (unsigned c = 0; c < CHAINS; c++) {
    tg_desc(&g, TXQ, (uint16_t)c, TX_GPA + (uint64_t)c * CHUNK, CHUNK, 0, 0);
    tg_make_avail(&g, TXQ, (uint16_t)c);
  }
  tg_notify(&g, TXQ);
  /* the socket (64 KiB of send buffer) cannot hold 512 KiB: not all are done */
  unsigned done = 0;
  uint32_t id, len;
  while (tg_take_used(&g, TXQ, &id, &len)) done++;
  CHECK(done < CHAINS);
  uint8_t *got = malloc((size_t)CHAINS * CHUNK);
  CHECK(got && read_all(peer, got, (size_t)CHAINS * CHUNK));
  CHECK(got && memcmp(got, tx, (size_t)CHAINS * CHUNK) == 0);
  free(got);
  while (done < CHAINS && tg_wait_used(&g, TXQ, &id, &len, WAIT_MS)) done++;
  CHECK(done == CHAINS);
  CHECK(vmm_virtio_dev_fault(g.dev) == NULL);
  tg_fini(&g);
  close(peer);
}

/* End of file: the device stops reading; the guest's buffers stay posted. A peer that is
 * gone entirely: guest output is dropped, not queued. */
static void test_eof_and_gone_peer(void) {
  struct tguest g;
  int peer = -1;
  CHECK(console_guest(&g, &peer));
  CHECK(write(peer, "bye", 3) == 3);
  shutdown(peer, SHUT_WR);
  post_rx(&g, 0, 64);
  uint32_t id, len;
  CHECK(tg_wait_used(&g, RXQ, &id, &len, WAIT_MS) && len == 3);
  post_rx(&g, 1, 64);
  CHECK(!tg_wait_used(&g, RXQ, &id, &len, 100));
  /* the write side still works */
  memcpy(tg_ptr(&g, TX_GPA, 3), "abc", 3);
  tg_desc(&g, TXQ, 0, TX_GPA, 3, 0, 0);
  tg_post(&g, TXQ, 0);
  uint8_t buf[3];
  CHECK(read_all(peer, buf, 3) && memcmp(buf, "abc", 3) == 0);
  CHECK(tg_take_used(&g, TXQ, &id, &len));
  close(peer);
  tg_post(&g, TXQ, 0);
  CHECK(tg_wait_used(&g, TXQ, &id, &len, WAIT_MS));
  CHECK(vmm_virtio_dev_fault(g.dev) == NULL);
  tg_fini(&g);
}

static void test_hostile(void) {
  struct tguest g;
  int peer = -1;
  uint32_t id, len;
  /* a transmit chain with a device-writable buffer */
  CHECK(console_guest(&g, &peer));
  tg_desc(&g, TXQ, 0, TX_GPA, 3, VRING_DESC_F_WRITE, 0);
  tg_post(&g, TXQ, 0);
  CHECK(tg_needs_reset(&g));
  CHECK_CONTAINS(vmm_virtio_dev_fault(g.dev), "device-writable");
  tg_fini(&g);
  close(peer);

  /* a receive chain in a loop, found by the I/O thread */
  CHECK(console_guest(&g, &peer));
  tg_desc(&g, RXQ, 0, RX_GPA, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
  tg_desc(&g, RXQ, 1, RX_GPA, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
  tg_post(&g, RXQ, 0);
  CHECK(write(peer, "x", 1) == 1);
  for (int i = 0; i < WAIT_MS && !vmm_virtio_dev_fault(g.dev); i++) usleep(1000);
  CHECK_CONTAINS(vmm_virtio_dev_fault(g.dev), "longer than the queue");
  CHECK(!tg_take_used(&g, RXQ, &id, &len));
  tg_fini(&g);
  close(peer);

  /* the receive available index jumping ahead */
  CHECK(console_guest(&g, &peer));
  __atomic_store_n((uint16_t *)tg_ptr(&g, g.q[RXQ].avail + 2, 2), 1000, __ATOMIC_RELEASE);
  tg_notify(&g, RXQ);
  for (int i = 0; i < WAIT_MS && !vmm_virtio_dev_fault(g.dev); i++) usleep(1000);
  CHECK_CONTAINS(vmm_virtio_dev_fault(g.dev), "entries ahead");
  tg_fini(&g);
  close(peer);
}

/* CPU time this process (every thread of it) has used, in seconds. */
static double cpu_seconds(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) < 0) return 0;
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Reads what the socket holds now, without waiting. */
static void drain_peer(int fd) {
  uint8_t buf[16384];
  while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
  }
}

/* The driver disables the transmit queue while the device is still writing a chain the
 * socket had no room for. The rest of that chain is dropped with the queue: the I/O thread
 * does not wake for the socket's room over and over with nothing it may write (a busy
 * loop), and once the driver sets the queue up again the old chain neither goes on to the
 * socket nor comes back in the new used ring. */
static void test_tx_queue_disabled(void) {
  struct tguest g;
  int peer = -1;
  CHECK(console_guest(&g, &peer));
  enum { BIG = 512 << 10 }; /* far more than the socket's 64 KiB */
  memset(tg_ptr(&g, TX_GPA, BIG), 'A', BIG);
  tg_desc(&g, TXQ, 7, TX_GPA, BIG, 0, 0);
  tg_post(&g, TXQ, 7);
  uint32_t id, len;
  CHECK(!tg_take_used(&g, TXQ, &id, &len)); /* still being written */
  tg_w32(&g, VIRTIO_MMIO_QUEUE_SEL, TXQ);
  tg_w32(&g, VIRTIO_MMIO_QUEUE_READY, 0);
  drain_peer(peer); /* the socket has room again */
  double before = cpu_seconds();
  usleep(400 * 1000);
  double spent = cpu_seconds() - before;
  CHECK(spent < 0.1); /* before the fix: the I/O thread spun, about 0.4 s */
  if (spent >= 0.1) fprintf(stderr, "  %.2f s of CPU while idle\n", spent);
  drain_peer(peer);

  /* a new ring: only its own chain goes out and comes back */
  tg_queue_regs(&g, TXQ, 64);
  tg_w32(&g, VIRTIO_MMIO_QUEUE_READY, 1);
  CHECK(tg_r32(&g, VIRTIO_MMIO_QUEUE_READY) == 1);
  memcpy(tg_ptr(&g, TX_GPA + BIG, 4), "new!", 4);
  tg_desc(&g, TXQ, 3, TX_GPA + BIG, 4, 0, 0);
  tg_post(&g, TXQ, 3);
  uint8_t buf[4] = {0};
  CHECK(read_all(peer, buf, 4) && memcmp(buf, "new!", 4) == 0);
  CHECK(tg_wait_used(&g, TXQ, &id, &len, WAIT_MS) && id == 3 && len == 0);
  CHECK(!tg_wait_used(&g, TXQ, &id, &len, 50)); /* and nothing else */
  struct pollfd p = {.fd = peer, .events = POLLIN};
  CHECK(poll(&p, 1, 50) == 0); /* nothing more of the old chain */
  CHECK(vmm_virtio_dev_fault(g.dev) == NULL);
  tg_fini(&g);
  close(peer);
}

/* A driver refills the transmit ring from a second vCPU, and the console's fd never pushes
 * back: the notifying vCPU comes back after a queue's worth instead of staying in the
 * device, holding its lock, for as long as the guest likes; the I/O thread goes on with
 * the rest. The fd is /dev/urandom, a slow sink that never fills: the kernel hashes what
 * is written into its pool, so a chain of 64 KiB costs the device a few hundred
 * microseconds and the feeder stays ahead of it. */
static void test_tx_flood(void) {
  struct tguest g;
  if (tg_init(&g, 2 << 20) < 0) {
    CHECK(!"guest memory");
    return;
  }
  int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
  CHECK(fd >= 0);
  struct vmm_virtio_dev *dev;
  struct rc_error err = {0};
  if (vmm_virtio_console_create(&g.mem, tg_irq(&g), fd, &dev, &err) < 0) {
    fprintf(stderr, "console: %s\n", err.msg);
    CHECK(!"console");
    vmm_guest_mem_destroy(&g.mem);
    return;
  }
  tg_attach(&g, dev);
  CHECK(tg_setup(&g, UINT64_MAX, 2, 64));
  tg_desc(&g, TXQ, 0, TX_GPA, 64 << 10, 0, 0);
  struct tg_feeder feeder;
  struct tg_notifier notifier;
  CHECK(tg_feeder_start(&feeder, &g, TXQ, 48));
  nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL); /* the ring fills */
  CHECK(tg_notifier_start(&notifier, &g, TXQ));
  CHECK(tg_wait_flag(&notifier.done, 3000)); /* before the bound: not while fed */
  tg_feeder_stop(&feeder);
  pthread_join(notifier.thread, NULL);
  /* the driver's notification for what it posted last: all of it is written out (some
   * by the I/O thread, going on where a bound stopped a pass) */
  tg_notify(&g, TXQ);
  uint16_t avail = g.q[TXQ].avail_idx, used = 0;
  for (int i = 0; i < WAIT_MS && used != avail; i++) {
    used = __atomic_load_n((uint16_t *)tg_ptr(&g, g.q[TXQ].used + 2, 2), __ATOMIC_ACQUIRE);
    if (used != avail) usleep(1000);
  }
  CHECK(used == avail);
  CHECK(vmm_virtio_dev_fault(g.dev) == NULL);
  tg_fini(&g);
}

UNIT_MAIN("virtio_console", UNIT_CASE(test_both_ways), UNIT_CASE(test_no_rx_buffers),
          UNIT_CASE(test_socket_full), UNIT_CASE(test_eof_and_gone_peer), UNIT_CASE(test_hostile),
          UNIT_CASE(test_tx_queue_disabled), UNIT_CASE(test_tx_flood))
