/* vmm_kvm_check's reasons: a missing device, a device that is not KVM, and PVM. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "runcell/vmm/machine.h"
#include "unit.h"
/* Private VMM headers, by path: the unit tests build with the public include dir only. */
#include "../../vmm/kvm.h"

static void test_missing(void) {
  struct rc_error err = {0};
  CHECK(vmm_kvm_open("/nonexistent/kvm", NULL, &err) < 0);
  CHECK_CONTAINS(err.msg, "needs hardware virtualization");
  CHECK_CONTAINS(err.msg, "missing");
}

static void test_not_kvm(void) {
  struct rc_error err = {0};
  CHECK(vmm_kvm_open("/dev/null", NULL, &err) < 0);
  CHECK_CONTAINS(err.msg, "not KVM");
}

static void test_pvm(void) {
  /* Needs a working /dev/kvm; the PVM marker is any existing path. */
  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    printf("skip: no usable /dev/kvm here\n");
    return;
  }
  close(fd);
  struct rc_error err = {0};
  CHECK(vmm_kvm_open("/dev/kvm", "/", &err) < 0);
  CHECK_CONTAINS(err.msg, "PVM (kvm_pvm)");
  CHECK_CONTAINS(err.msg, "cannot boot a stock Linux guest kernel");
  /* The real check agrees with /sys/module/kvm_pvm. */
  bool pvm = access(VMM_KVM_PVM_SYSFS, F_OK) == 0;
  int r = vmm_kvm_check(&err);
  if (pvm) CHECK(r < 0 && strstr(err.msg, "PVM"));
}

/* vmm_machine_create owns agent_fd from the call on: a refused config closes it. */
static void test_create_refusals(void) {
  struct rc_error err = {0};
  struct vmm_machine *m = (struct vmm_machine *)&err;
  int p[2];
  CHECK(pipe(p) == 0);
  struct vmm_machine_config cfg = {.kernel_path = "/nonexistent",
                                   .vcpus = 0,
                                   .mem_bytes = 64ULL << 20,
                                   .agent_fd = p[0],
                                   .console_fd = -1};
  CHECK(vmm_machine_create(&cfg, &m, &err) < 0);
  CHECK(m == NULL);
  CHECK_CONTAINS(err.msg, "vCPUs");
  CHECK(fcntl(p[0], F_GETFD) < 0); /* closed */
  cfg.vcpus = 1;
  cfg.mem_bytes = 1 << 20;
  cfg.agent_fd = -1;
  CHECK(vmm_machine_create(&cfg, &m, &err) < 0);
  CHECK_CONTAINS(err.msg, "too little");
  /* A valid config on a host without usable KVM fails with vmm_kvm_check's reason. */
  cfg.mem_bytes = 64ULL << 20;
  struct rc_error check = {0};
  if (vmm_kvm_check(&check) < 0) {
    CHECK(vmm_machine_create(&cfg, &m, &err) < 0);
    CHECK_STR_EQ(err.msg, check.msg);
  } else {
    /* With KVM: the kernel file is what is missing. */
    CHECK(vmm_machine_create(&cfg, &m, &err) < 0);
    CHECK_CONTAINS(err.msg, "/nonexistent");
  }
  close(p[1]);
}

UNIT_MAIN("vmm_kvm", UNIT_CASE(test_missing), UNIT_CASE(test_not_kvm), UNIT_CASE(test_pvm),
          UNIT_CASE(test_create_refusals))
