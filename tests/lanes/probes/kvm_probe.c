/* kvm_probe: the lane's proof that /dev/kvm is real hardware virtualization (nested SVM
 * under QEMU TCG): the KVM API version is 12, a VM can be created, and a vCPU runs real
 * guest code (real mode: "mov $42,%al; out %al,$0x10; hlt") and exits with the port write
 * and then the halt. Prints one line per step; exits 0 when every step passed, 1 otherwise.
 * Static, so the lane's initramfs needs no libraries for it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum {
  GUEST_MEM_SIZE = 0x10000,
  GUEST_CODE_ADDR = 0x1000,
  PROBE_PORT = 0x10,
  PROBE_VALUE = 42,
  KVM_EXPECTED_API = 12,
};

static const uint8_t guest_code[] = {
    0xb0, PROBE_VALUE, /* mov $42, %al */
    0xe6, PROBE_PORT,  /* out %al, $0x10 */
    0xf4,              /* hlt */
};

static int fail(const char *what) {
  printf("FAIL %s: %s\n", what, strerror(errno));
  return 1;
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Runs the vCPU once; the exit reason lands in run->exit_reason. */
static int run_once(int vcpu, const char *what, double *elapsed_us) {
  double start = now_us();
  if (ioctl(vcpu, KVM_RUN, 0) < 0) return fail(what);
  *elapsed_us = now_us() - start;
  return 0;
}

static int setup_vcpu(int vcpu) {
  struct kvm_sregs sregs;
  if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) return fail("KVM_GET_SREGS");
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) return fail("KVM_SET_SREGS");
  struct kvm_regs regs;
  memset(&regs, 0, sizeof(regs));
  regs.rip = GUEST_CODE_ADDR;
  regs.rflags = 0x2; /* bit 1 is reserved and must be set */
  if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) return fail("KVM_SET_REGS");
  return 0;
}

static int check_io_exit(const struct kvm_run *run) {
  if (run->exit_reason != KVM_EXIT_IO) {
    printf("FAIL first exit: reason %u, wanted KVM_EXIT_IO (%d)\n", run->exit_reason, KVM_EXIT_IO);
    return 1;
  }
  const uint8_t *data = (const uint8_t *)run + run->io.data_offset;
  if (run->io.direction != KVM_EXIT_IO_OUT || run->io.port != PROBE_PORT || run->io.size != 1 ||
      run->io.count != 1 || data[0] != PROBE_VALUE) {
    printf("FAIL port exit: dir %u port 0x%x size %u count %u value %u\n", run->io.direction,
           run->io.port, run->io.size, run->io.count, data[0]);
    return 1;
  }
  return 0;
}

/* Creates a vCPU in `vm`, runs guest_code (already in guest memory) and checks its exits. */
static int run_guest(int kvm, int vm) {
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) return fail("KVM_CREATE_VCPU");
  int status = 1;
  int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size < (int)sizeof(struct kvm_run)) {
    fail("KVM_GET_VCPU_MMAP_SIZE");
    goto out_vcpu;
  }
  struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) {
    fail("mmap kvm_run");
    goto out_vcpu;
  }
  double first_us = 0;
  double second_us = 0;
  if (setup_vcpu(vcpu) || run_once(vcpu, "KVM_RUN (to the port write)", &first_us) ||
      check_io_exit(run) || run_once(vcpu, "KVM_RUN (to the halt)", &second_us))
    goto out_run;
  if (run->exit_reason != KVM_EXIT_HLT) {
    printf("FAIL second exit: reason %u, wanted KVM_EXIT_HLT (%d)\n", run->exit_reason,
           KVM_EXIT_HLT);
    goto out_run;
  }
  printf("guest ran: out 0x%x=%d (first KVM_RUN %.0f us), then hlt (%.0f us)\n", PROBE_PORT,
         PROBE_VALUE, first_us, second_us);
  status = 0;
out_run:
  munmap(run, (size_t)run_size);
out_vcpu:
  close(vcpu);
  return status;
}

static int probe_vm(int kvm) {
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) return fail("KVM_CREATE_VM");
  printf("KVM_CREATE_VM: ok\n");
  int status = 1;
  uint8_t *mem = mmap(NULL, GUEST_MEM_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) {
    fail("mmap guest memory");
    goto out_vm;
  }
  memcpy(mem + GUEST_CODE_ADDR, guest_code, sizeof(guest_code));
  struct kvm_userspace_memory_region region = {
      .slot = 0,
      .guest_phys_addr = 0,
      .memory_size = GUEST_MEM_SIZE,
      .userspace_addr = (uint64_t)(uintptr_t)mem,
  };
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
    fail("KVM_SET_USER_MEMORY_REGION");
    goto out_mem;
  }
  status = run_guest(kvm, vm);
out_mem:
  munmap(mem, GUEST_MEM_SIZE);
out_vm:
  close(vm);
  return status;
}

int main(void) {
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) return fail("open /dev/kvm");
  int status = 1;
  int version = ioctl(kvm, KVM_GET_API_VERSION, 0);
  if (version != KVM_EXPECTED_API) {
    printf("FAIL KVM_GET_API_VERSION: %d, wanted %d\n", version, KVM_EXPECTED_API);
    goto out;
  }
  printf("KVM_GET_API_VERSION: %d\n", version);
  status = probe_vm(kvm);
out:
  close(kvm);
  if (status == 0) printf("PASS\n");
  return status;
}
