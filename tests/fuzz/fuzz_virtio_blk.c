/* libFuzzer target: virtio-blk over virtio-mmio, driven by a hostile guest program (see
 * fuzz_virtio_driver.h for the input format) against a 64 KiB disk in a memfd. The first
 * input byte picks a read-only (odd) or writable disk. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_virtio_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DISK_BYTES (64u << 10)

/* The disk is one memfd, emptied and regrown for every input. */
static const char *disk_path(void) {
  static char path[64];
  static int fd = -1;
  if (fd < 0) {
    fd = memfd_create("fuzz-virtio-blk", MFD_CLOEXEC);
    if (fd < 0) abort();
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  }
  if (ftruncate(fd, 0) < 0 || ftruncate(fd, DISK_BYTES) < 0) abort();
  return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  struct fv_guest g = {0};
  g.mem = *fv_mem();
  struct vmm_virtio_dev *dev;
  struct rc_error err = {0};
  if (vmm_virtio_blk_create(&g.mem, fv_irq(), disk_path(), data[0] & 1, "fuzz-serial", &dev, &err) <
      0)
    abort();
  g.win = vmm_virtio_mmio_window(dev, 0);
  struct fv_input in = {data + 1, size - 1};
  fv_run(&g, 1, &in, NULL, NULL);
  (void)vmm_virtio_dev_fault(dev);
  vmm_virtio_dev_destroy(dev);
  return 0;
}
