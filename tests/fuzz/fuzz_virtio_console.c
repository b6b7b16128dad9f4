/* libFuzzer target: virtio-console over virtio-mmio, driven by a hostile guest program
 * (see fuzz_virtio_driver.h for the input format) while the host end of its socketpair
 * writes and reads too:
 *   7 peer write     u8 n, n bytes (as much as the socket takes)
 *   8 peer read      drains what the device wrote
 *   9 peer shutdown  u8 how (0 read, 1 write, 2 both)
 * The device's I/O thread runs concurrently, as it does in a VMM. */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_virtio_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool peer_op(uint8_t op, struct fv_input *in, void *ctx) {
  int peer = *(int *)ctx;
  switch (op) {
    case 7: {
      uint8_t n, bytes[255];
      if (!fv_take(in, &n, 1) || !fv_take(in, bytes, n)) return false;
      (void)send(peer, bytes, n, MSG_DONTWAIT | MSG_NOSIGNAL);
      return true;
    }
    case 8: {
      uint8_t buf[4096];
      while (recv(peer, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
      }
      return true;
    }
    case 9: {
      uint8_t how;
      if (!fv_take(in, &how, 1)) return false;
      (void)shutdown(peer, how % 3);
      return true;
    }
    default:
      return true;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) abort();
  struct fv_guest g = {0};
  g.mem = *fv_mem();
  struct vmm_virtio_dev *dev;
  struct rc_error err = {0};
  if (vmm_virtio_console_create(&g.mem, fv_irq(), sv[0], &dev, &err) < 0) abort();
  g.win = vmm_virtio_mmio_window(dev, 0);
  struct fv_input in = {data, size};
  fv_run(&g, 2, &in, peer_op, &sv[1]);
  (void)vmm_virtio_dev_fault(dev);
  vmm_virtio_dev_destroy(dev);
  close(sv[1]);
  return 0;
}
