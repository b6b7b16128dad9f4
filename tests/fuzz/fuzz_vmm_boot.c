/* libFuzzer target: arbitrary bytes as a guest kernel image through the VMM's loaders
 * (vmlinux ELF and bzImage): every size and offset they take from the file must be
 * checked against the file and guest RAM, whatever the bytes say. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../../vmm/boot.h"
#include "runcell/vmm/guest_mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* One small guest for every input: a kernel that fits must load, one that does not
   * must be refused. */
  static struct vmm_guest_mem mem;
  static int ready;
  struct rc_error err = {0};
  if (!ready) {
    if (vmm_guest_mem_create(&mem, 48ULL << 20, &err) < 0) abort();
    ready = 1;
  }
  struct vmm_kernel_info ki;
  (void)vmm_boot_load_kernel(&mem, data, size, &ki, &err);
  return 0;
}
