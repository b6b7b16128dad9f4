/* virtio-net driven by a test guest. The "tap" is one end of an AF_UNIX datagram
 * socketpair, which has a tap's semantics for the device (one frame per read and per
 * write, a short read cuts the frame), so the test sees exactly the frames the device
 * writes and feeds it frames of its choosing: frames both ways, split buffers, indirect
 * chains, flow control (no receive buffers, nothing read), truncation, and hostile chains
 * on both queues. */
#include <fcntl.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_virtio_guest.h"
#include "unit.h"

#define RXQ 0
#define TXQ 1
#define RX_GPA (TG_BUFS)
#define TX_GPA (TG_BUFS + 0x80000)
#define HDR 12u
#define WAIT_MS 2000

static const uint8_t test_mac[6] = {0x02, 0x42, 0xac, 0x11, 0x00, 0x02};

/* A net device on one end of a datagram socketpair; *peer gets the other end. */
static bool net_guest(struct tguest *g, int *peer, uint16_t mtu) {
  int sv[2];
  if (tg_init(g, 4 << 20) < 0) return false;
  if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0) return false;
  struct vmm_virtio_dev *dev;
  struct rc_error err = {0};
  if (vmm_virtio_net_create(&g->mem, tg_irq(g), sv[0], test_mac, mtu, &dev, &err) < 0) {
    fprintf(stderr, "net: %s\n", err.msg);
    close(sv[1]);
    vmm_guest_mem_destroy(&g->mem);
    return false;
  }
  *peer = sv[1];
  tg_attach(g, dev);
  return tg_setup(g, UINT64_MAX, 2, 64);
}

/* A datagram from fd within the wait limit: its length, or -1. */
static ssize_t recv_frame(int fd, uint8_t *buf, size_t size) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, WAIT_MS) != 1) return -1;
  return recv(fd, buf, size, 0);
}

/* The guest transmits `frame` (n bytes) behind a zero header, the header and frame split
 * over `segs` descriptors starting at index first. */
static void transmit(struct tguest *g, uint16_t first, const void *frame, uint32_t n,
                     unsigned segs) {
  uint8_t *buf = tg_ptr(g, TX_GPA, HDR + n);
  memset(buf, 0, HDR);
  memcpy(buf + HDR, frame, n);
  uint32_t total = HDR + n, at = 0;
  for (unsigned s = 0; s < segs; s++) {
    uint32_t part = s == segs - 1 ? total - at : total / segs;
    tg_desc(g, TXQ, (uint16_t)(first + s), TX_GPA + at, part, s == segs - 1 ? 0 : VRING_DESC_F_NEXT,
            (uint16_t)(first + s + 1));
    at += part;
  }
  tg_post(g, TXQ, first);
}

static void post_rx(struct tguest *g, uint16_t i, uint32_t len) {
  memset(tg_ptr(g, RX_GPA + i * 0x10000ull, len), 0xee, len);
  tg_desc(g, RXQ, i, RX_GPA + i * 0x10000ull, len, VRING_DESC_F_WRITE, 0);
  tg_post(g, RXQ, i);
}

static void test_config(void) {
  struct tguest g;
  int peer = -1;
  CHECK(net_guest(&g, &peer, 1400));
  CHECK(tg_r32(&g, VIRTIO_MMIO_DEVICE_ID) == VIRTIO_ID_NET);
  tg_w32(&g, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  uint32_t f = tg_r32(&g, VIRTIO_MMIO_DEVICE_FEATURES);
  CHECK(f & (1u << VIRTIO_NET_F_MAC));
  CHECK(f & (1u << VIRTIO_NET_F_MTU));
  CHECK(f & (1u << VIRTIO_NET_F_STATUS));
  /* no offloads: the header's fields mean nothing, frames are whole */
  CHECK(!(f & (1u << VIRTIO_NET_F_CSUM)) && !(f & (1u << VIRTIO_NET_F_GUEST_TSO4)));
  CHECK(!(f & (1u << VIRTIO_NET_F_MRG_RXBUF)) && !(f & (1u << VIRTIO_NET_F_CTRL_VQ)));
  uint8_t cfg[12] = {0};
  for (unsigned i = 0; i < sizeof(cfg); i++) g.win.read(g.win.opaque, 0x100 + i, &cfg[i], 1);
  CHECK(memcmp(cfg, test_mac, 6) == 0);
  CHECK((cfg[6] | cfg[7] << 8) == VIRTIO_NET_S_LINK_UP);
  CHECK((cfg[10] | cfg[11] << 8) == 1400);
  tg_fini(&g);
  close(peer);
}

static void test_transmit(void) {
  struct tguest g;
  int peer = -1;
  CHECK(net_guest(&g, &peer, 1500));
  uint8_t frame[1514], got[2048];
  for (unsigned i = 0; i < sizeof(frame); i++) frame[i] = (uint8_t)(i * 7);

  /* header and frame in one buffer, then spread over three */
  transmit(&g, 0, frame, 60, 1);
  CHECK(recv_frame(peer, got, sizeof(got)) == 60 && memcmp(got, frame, 60) == 0);
  uint32_t id, len;
  CHECK(tg_take_used(&g, TXQ, &id, &len) && id == 0 && len == 0);
  transmit(&g, 4, frame, sizeof(frame), 3);
  CHECK(recv_frame(peer, got, sizeof(got)) == (ssize_t)sizeof(frame));
  CHECK(memcmp(got, frame, sizeof(frame)) == 0);
  CHECK(tg_take_used(&g, TXQ, &id, &len) && id == 4);

  /* a header and no frame: dropped, the buffer comes back, the device stays healthy */
  transmit(&g, 8, frame, 0, 1);
  CHECK(tg_take_used(&g, TXQ, &id, &len) && id == 8 && len == 0);
  CHECK(recv_frame(peer, got, sizeof(got)) < 0);

  /* the peer is gone: frames are lost, not an error of the guest's */
  close(peer);
  transmit(&g, 9, frame, 60, 1);
  CHECK(tg_take_used(&g, TXQ, &id, &len) && id == 9);
  CHECK(vmm_virtio_dev_fault(g.dev) == NULL);
  tg_fini(&g);
}

static void test_receive(void) {
  struct tguest g;
  int peer = -1;
  CHECK(net_guest(&g, &peer, 1500));
  uint8_t frame[1000];
  for (unsigned i = 0; i < sizeof(frame); i++) frame[i] = (uint8_t)(i * 3 + 1);

  int before = tg_pulses(&g);
  post_rx(&g, 0, 2048);
  CHECK(send(peer, frame, 100, 0) == 100);
  uint32_t id, len;
  CHECK(tg_wait_used(&g, RXQ, &id, &len, WAIT_MS) && id == 0 && len == HDR + 100);
  const uint8_t *buf = tg_ptr(&g, RX_GPA, 2048);
  static const uint8_t want_hdr[HDR] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}; /* num_buffers 1 */
  CHECK(memcmp(buf, want_hdr, HDR) == 0);
  CHECK(memcmp(buf + HDR, frame, 100) == 0);
  CHECK(buf[HDR + 100] == 0xee); /* nothing written past the frame */
  CHECK(tg_pulses(&g) > before);

  /* one chain of three buffers: the header alone in the first, the frame across two */
  uint64_t a = RX_GPA + 0x30000;
  memset(tg_ptr(&g, a, 0x3000), 0, 0x3000);
  tg_desc(&g, RXQ, 1, a, HDR, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
  tg_desc(&g, RXQ, 2, a + 0x1000, 300, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 3);
  tg_desc(&g, RXQ, 3, a + 0x2000, 1500, VRING_DESC_F_WRITE, 0);
  tg_post(&g, RXQ, 1);
  CHECK(send(peer, frame, sizeof(frame), 0) == (ssize_t)sizeof(frame));
  CHECK(tg_wait_used(&g, RXQ, &id, &len, WAIT_MS) && id == 1 && len == HDR + sizeof(frame));
  CHECK(memcmp(tg_ptr(&g, a + 0x1000, 300), frame, 300) == 0);
  CHECK(memcmp(tg_ptr(&g, a + 0x2000, 700), frame + 300, 700) == 0);

  /* a frame longer than the chain is cut to it */
  post_rx(&g, 4, HDR + 64);
  CHECK(send(peer, frame, sizeof(frame), 0) == (ssize_t)sizeof(frame));
  CHECK(tg_wait_used(&g, RXQ, &id, &len, WAIT_MS) && id == 4 && len == HDR + 64);
  CHECK(memcmp(tg_ptr(&g, RX_GPA + 4 * 0x10000ull + HDR, 64), frame, 64) == 0);
  CHECK(vmm_virtio_dev_fault(g.dev) == NULL);
  tg_fini(&g);
  close(peer);
}

/* Without receive buffers the device leaves frames in the tap (the kernel's queue, which
 * drops past its limit), and delivers them in order once buffers come. */
static void test_receive_waits_for_buffers(void) {
  struct tguest g;
  int peer = -1;
  CHECK(net_guest(&g, &peer, 1500));
  for (uint8_t i = 1; i <= 3; i++) CHECK(send(peer, &i, 1, 0) == 1);
  nanosleep(&(struct timespec){.tv_nsec = 50 * 1000000}, NULL);
  int queued = -1;
  CHECK(ioctl(peer, TIOCOUTQ, &queued) == 0 && queued > 0); /* still in the socket */
  uint32_t id, len;
  CHECK(!tg_take_used(&g, RXQ, &id, &len));
  for (uint16_t i = 0; i < 3; i++) post_rx(&g, i, 256);
  for (uint16_t i = 0; i < 3; i++) {
    CHECK(tg_wait_used(&g, RXQ, &id, &len, WAIT_MS) && id == i && len == HDR + 1);
    CHECK(*(uint8_t *)tg_ptr(&g, RX_GPA + i * 0x10000ull + HDR, 1) == i + 1);
  }
  CHECK(ioctl(peer, TIOCOUTQ, &queued) == 0 && queued == 0);
  tg_fini(&g);
  close(peer);
}

static void test_indirect_transmit(void) {
  struct tguest g;
  int peer = -1;
  CHECK(net_guest(&g, &peer, 1500));
  uint64_t table = TG_BUFS + 0x200000;
  uint8_t *buf = tg_ptr(&g, TX_GPA, HDR + 5);
  memset(buf, 0, HDR);
  static const uint8_t payload[5] = {'f', 'r', 'a', 'm', 'e'};
  memcpy(buf + HDR, payload, sizeof(payload));
  tg_desc_at(&g, table, 0, TX_GPA, HDR, VRING_DESC_F_NEXT, 1);
  tg_desc_at(&g, table, 1, TX_GPA + HDR, 5, 0, 0);
  tg_desc(&g, TXQ, 3, table, 32, VRING_DESC_F_INDIRECT, 0);
  tg_post(&g, TXQ, 3);
  uint8_t got[64];
  CHECK(recv_frame(peer, got, sizeof(got)) == 5 && memcmp(got, "frame", 5) == 0);
  uint32_t id, len;
  CHECK(tg_take_used(&g, TXQ, &id, &len) && id == 3);
  tg_fini(&g);
  close(peer);
}

static void test_hostile_chains(void) {
  struct tguest g;
  int peer = -1;
  uint32_t id, len;
  uint8_t got[64];

  /* transmit: shorter than the header */
  CHECK(net_guest(&g, &peer, 1500));
  tg_desc(&g, TXQ, 0, TX_GPA, HDR - 1, 0, 0);
  tg_post(&g, TXQ, 0);
  CHECK(!tg_take_used(&g, TXQ, &id, &len));
  CHECK(tg_needs_reset(&g));
  CHECK_CONTAINS(vmm_virtio_dev_fault(g.dev), "shorter than the 12-byte header");
  CHECK(recv_frame(peer, got, sizeof(got)) < 0);
  tg_fini(&g);
  close(peer);

  /* transmit: a buffer the device may write */
  CHECK(net_guest(&g, &peer, 1500));
  tg_desc(&g, TXQ, 0, TX_GPA, 64, VRING_DESC_F_NEXT, 1);
  tg_desc(&g, TXQ, 1, TX_GPA + 64, 64, VRING_DESC_F_WRITE, 0);
  tg_post(&g, TXQ, 0);
  CHECK(!tg_take_used(&g, TXQ, &id, &len));
  CHECK_CONTAINS(vmm_virtio_dev_fault(g.dev), "device-writable");
  tg_fini(&g);
  close(peer);

  /* transmit: a descriptor pointing outside guest RAM */
  CHECK(net_guest(&g, &peer, 1500));
  tg_desc(&g, TXQ, 0, (4ull << 20) - 8, 64, 0, 0);
  tg_post(&g, TXQ, 0);
  CHECK(!tg_take_used(&g, TXQ, &id, &len));
  CHECK(tg_needs_reset(&g));
  tg_fini(&g);
  close(peer);

  /* receive: a device-readable buffer */
  CHECK(net_guest(&g, &peer, 1500));
  tg_desc(&g, RXQ, 0, RX_GPA, 256, 0, 0);
  tg_post(&g, RXQ, 0);
  CHECK(send(peer, "x", 1, 0) == 1);
  CHECK(!tg_wait_used(&g, RXQ, &id, &len, 200));
  CHECK(tg_needs_reset(&g));
  CHECK_CONTAINS(vmm_virtio_dev_fault(g.dev), "device-readable");
  tg_fini(&g);
  close(peer);

  /* receive: no room for the header */
  CHECK(net_guest(&g, &peer, 1500));
  tg_desc(&g, RXQ, 0, RX_GPA, 4, VRING_DESC_F_WRITE, 0);
  tg_post(&g, RXQ, 0);
  CHECK(send(peer, "x", 1, 0) == 1);
  CHECK(!tg_wait_used(&g, RXQ, &id, &len, 200));
  CHECK_CONTAINS(vmm_virtio_dev_fault(g.dev), "no room for the 12-byte header");
  tg_fini(&g);
  close(peer);

  /* receive: a chain that loops on itself */
  CHECK(net_guest(&g, &peer, 1500));
  tg_desc(&g, RXQ, 0, RX_GPA, 256, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
  tg_desc(&g, RXQ, 1, RX_GPA + 256, 256, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
  tg_post(&g, RXQ, 0);
  CHECK(send(peer, "x", 1, 0) == 1);
  CHECK(!tg_wait_used(&g, RXQ, &id, &len, 200));
  CHECK(tg_needs_reset(&g));
  tg_fini(&g);
  close(peer);
}

static void test_bad_mtu(void) {
  struct vmm_guest_mem mem;
  struct rc_error err = {0};
  CHECK(vmm_guest_mem_create(&mem, 2 << 20, &err) == 0);
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0);
  struct vmm_virtio_dev *dev = (void *)1;
  CHECK(vmm_virtio_net_create(&mem, (struct vmm_irq_line){0}, sv[0], test_mac, 60, &dev, &err) < 0);
  CHECK(dev == NULL);
  CHECK_CONTAINS(err.msg, "MTU 60");
  CHECK(fcntl(sv[0], F_GETFD) < 0); /* the device took the fd, and closed it */
  close(sv[1]);
  vmm_guest_mem_destroy(&mem);
}

UNIT_MAIN("virtio_net", UNIT_CASE(test_config), UNIT_CASE(test_transmit), UNIT_CASE(test_receive),
          UNIT_CASE(test_receive_waits_for_buffers), UNIT_CASE(test_indirect_transmit),
          UNIT_CASE(test_hostile_chains), UNIT_CASE(test_bad_mtu))
