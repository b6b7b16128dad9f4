/* libFuzzer target: virtio-net over virtio-mmio, driven by a hostile guest program (see
 * fuzz_virtio_driver.h for the input format) while the "tap" (a datagram socketpair, with
 * a tap's one-frame-per-read semantics) sends and takes frames too:
 *   7 peer send   le16 n (mod 2 KiB), n bytes: one frame towards the guest
 *   8 peer drain  takes every frame the device transmitted
 *   9 peer close  the tap's other side goes away
 * The device's I/O thread runs concurrently, as it does in a VMM. */
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_virtio_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool peer_op(uint8_t op, struct fv_input *in, void *ctx) {
  int *peer = ctx;
  switch (op) {
    case 7: {
      uint16_t n;
      static uint8_t frame[2048];
      if (!fv_take(in, &n, 2)) return false;
      n %= sizeof(frame);
      size_t have = in->left < n ? in->left : n;
      fv_take(in, frame, have);
      if (*peer >= 0) (void)send(*peer, frame, have, MSG_DONTWAIT | MSG_NOSIGNAL);
      return true;
    }
    case 8: {
      uint8_t buf[4096];
      while (*peer >= 0 && recv(*peer, buf, sizeof(buf), MSG_DONTWAIT) >= 0) {
      }
      return true;
    }
    case 9:
      if (*peer >= 0) close(*peer);
      *peer = -1;
      return true;
    default:
      return true;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 1};
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0) abort();
  struct fv_guest g = {0};
  g.mem = *fv_mem();
  struct vmm_virtio_dev *dev;
  struct rc_error err = {0};
  if (vmm_virtio_net_create(&g.mem, fv_irq(), sv[0], mac, 1500, &dev, &err) < 0) abort();
  g.win = vmm_virtio_mmio_window(dev, 0);
  struct fv_input in = {data, size};
  int peer = sv[1];
  fv_run(&g, 2, &in, peer_op, &peer);
  (void)vmm_virtio_dev_fault(dev);
  vmm_virtio_dev_destroy(dev);
  if (peer >= 0) close(peer);
  return 0;
}
