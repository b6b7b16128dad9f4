/* Whether this host can run a microVM: /dev/kvm present and usable, the stable KVM API,
 * the capabilities the VMM relies on, and hardware virtualization behind it. PVM (the
 * kvm_pvm module: KVM for guests without VT-x/SVM, as in some cloud VMs) only runs
 * guests built for it, so a stock Linux guest kernel does not boot there; say so rather
 * than fail obscurely later. */
#include "vmm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runcell/vmm/machine.h"

static const struct {
  int cap;
  const char *name;
} required_caps[] = {
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
};

int vmm_kvm_open(const char *dev_path, const char *pvm_sysfs, struct rc_error *err) {
  int fd = open(dev_path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT || e == ENXIO || e == ENODEV)
      return rc_err(err, e,
                    "microVM mode needs hardware virtualization: %s is missing (no KVM module "
                    "loaded, or no VT-x/AMD-V on this host)",
                    dev_path);
    if (e == EACCES || e == EPERM)
      return rc_err(err, e,
                    "microVM mode needs read-write access to %s (root, or a member of its "
                    "group, usually kvm)",
                    dev_path);
    return rc_err(err, e, "microVM mode: open %s", dev_path);
  }
  int version = ioctl(fd, KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    close(fd);
    if (version < 0) return rc_err(err, errno, "microVM mode: %s is not KVM", dev_path);
    return rc_err(err, 0, "microVM mode needs KVM API version %d; %s has %d", KVM_API_VERSION,
                  dev_path, version);
  }
  struct stat st;
  if (pvm_sysfs && stat(pvm_sysfs, &st) == 0) {
    close(fd);
    return rc_err(err, 0,
                  "microVM mode needs hardware virtualization: %s here is PVM (kvm_pvm), "
                  "which cannot boot a stock Linux guest kernel",
                  dev_path);
  }
  for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++) {
    if (ioctl(fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0) {
      close(fd);
      return rc_err(err, 0, "microVM mode: KVM on this host lacks %s", required_caps[i].name);
    }
  }
  return fd;
}

int vmm_kvm_check(struct rc_error *err) {
  int fd = vmm_kvm_open(VMM_KVM_DEVICE, VMM_KVM_PVM_SYSFS, err);
  if (fd < 0) return -1;
  close(fd);
  return 0;
}
