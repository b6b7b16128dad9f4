/* Opening /dev/kvm (private to vmm/): the checks behind vmm_kvm_check, with the paths as
 * parameters so that tests can point them elsewhere. */
#ifndef RUNCELL_VMM_KVM_H
#define RUNCELL_VMM_KVM_H

#include "runcell/error.h"

#define VMM_KVM_DEVICE "/dev/kvm"
#define VMM_KVM_PVM_SYSFS "/sys/module/kvm_pvm"

/* Opens dev_path read-write (close-on-exec) and checks it is KVM API 12 with the
 * capabilities the VMM uses, backed by hardware virtualization rather than PVM (present
 * when pvm_sysfs exists). Returns the fd, or <0 with err naming the reason. */
int vmm_kvm_open(const char *dev_path, const char *pvm_sysfs, struct rc_error *err);

#endif
