/* libFuzzer target: virtio-rng over virtio-mmio, driven by a hostile guest program (see
 * fuzz_virtio_driver.h for the input format). */
#include "fuzz_virtio_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct fv_guest g = {0};
  g.mem = *fv_mem();
  struct vmm_virtio_dev *dev;
  struct rc_error err = {0};
  if (vmm_virtio_rng_create(&g.mem, fv_irq(), &dev, &err) < 0) abort();
  g.win = vmm_virtio_mmio_window(dev, 0);
  struct fv_input in = {data, size};
  fv_run(&g, 1, &in, NULL, NULL);
  (void)vmm_virtio_dev_fault(dev);
  vmm_virtio_dev_destroy(dev);
  return 0;
}
