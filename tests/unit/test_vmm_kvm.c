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

UNIT_MAIN("vmm_kvm", UNIT_CASE(test_missing), UNIT_CASE(test_not_kvm), UNIT_CASE(test_pvm))
