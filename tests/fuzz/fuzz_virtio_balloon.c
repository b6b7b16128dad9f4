/* libFuzzer target: virtio-balloon over virtio-mmio, driven by a hostile guest program
 * (see fuzz_virtio_driver.h for the input format; the queues are inflate, deflate,
 * statistics and free page reporting when all are negotiated) while the host side uses
 * its control calls in between:
 *   7 set target     le32 MiB the guest may keep
 *   8 request stats  (hands the held statistics buffer back)
 *   9 read           statistics and counters
 * Reports and inflates punch holes in the fuzzer's guest RAM, which is refilled (zeroed)
 * for every input. */
#include "fuzz_virtio_driver.h"
#include "runcell/vmm/balloon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BALLOON_QUEUES 4

static bool host_op(uint8_t op, struct fv_input *in, void *ctx) {
  struct vmm_balloon *b = ctx;
  struct rc_error err = {0};
  switch (op) {
    case 7: {
      uint32_t mib;
      if (!fv_take(in, &mib, 4)) return false;
      (void)vmm_balloon_set_target_bytes(b, (uint64_t)mib << 20, &err);
      return true;
    }
    case 8:
      (void)vmm_balloon_request_stats(b, &err);
      return true;
    case 9: {
      struct vmm_balloon_stats s;
      struct vmm_balloon_counters c;
      vmm_balloon_read_stats(b, &s);
      vmm_balloon_counters(b, &c);
      /* what the device says it gave back can never exceed what the guest handed it */
      if (c.returned_bytes > c.reported_bytes + c.inflated_bytes) abort();
      return true;
    }
    default:
      return true;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct fv_guest g = {0};
  g.mem = *fv_mem();
  struct vmm_virtio_dev *dev;
  struct vmm_balloon *b;
  struct rc_error err = {0};
  const struct vmm_balloon_config cfg = {
      .free_page_reporting = true, .deflate_on_oom = true, .stats = true};
  if (vmm_virtio_balloon_create(&g.mem, fv_irq(), &cfg, &dev, &b, &err) < 0) abort();
  g.win = vmm_virtio_mmio_window(dev, 0);
  struct fv_input in = {data, size};
  fv_run(&g, BALLOON_QUEUES, &in, host_op, b);
  (void)vmm_virtio_dev_fault(dev);
  vmm_virtio_dev_destroy(dev);
  return 0;
}
