/* vCPU setup (private to vmm/): the CPUID a guest sees, and the KVM state of a vCPU
 * before its first instruction. */
#ifndef RUNCELL_VMM_CPU_H
#define RUNCELL_VMM_CPU_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "runcell/error.h"

/* Room for KVM_GET_SUPPORTED_CPUID's list plus the leaves normalisation adds. */
#define VMM_CPUID_MAX_ENTRIES 256

/* What the VMM knows beyond KVM_GET_SUPPORTED_CPUID's list. */
struct vmm_cpuid_host {
  uint32_t tsc_khz;  /* the guest's TSC frequency (KVM_GET_TSC_KHZ), 0 if unknown */
  bool tsc_deadline; /* KVM_CAP_TSC_DEADLINE_TIMER: KVM emulates the LAPIC's TSC-deadline
                        mode on any host, but leaves announcing it to the VMM */
};

/* Rewrites a KVM_GET_SUPPORTED_CPUID list for vCPU `index` of `n_vcpus` (APIC id =
 * index; one thread per core, all cores in one package): APIC ids and logical counts
 * and TSC-deadline (leaf 1), the topology leaves (4, 0xb, 0x1f, 0x80000008, 0x8000001e), the
 * hypervisor bit, the KVM leaves (0x40000000 signature "KVMKVMKVM", 0x40000001) and, when the TSC
 * frequency is known, the timing leaf 0x40000010 (TSC and APIC bus kHz). *n grows by at most 8
 * entries and never past cap. */
int vmm_cpuid_normalize(struct kvm_cpuid_entry2 *e, unsigned *n, unsigned cap, unsigned index,
                        unsigned n_vcpus, const struct vmm_cpuid_host *host, struct rc_error *err);

/* The entry for (function, index), or NULL. */
struct kvm_cpuid_entry2 *vmm_cpuid_find(struct kvm_cpuid_entry2 *e, unsigned n, uint32_t function,
                                        uint32_t index);

/* Sets a vCPU's CPUID, MSRs and, for the boot vCPU, the long-mode registers, FPU and
 * LAPIC lines so that it starts at `entry` with %rsi = the zero page. */
int vmm_vcpu_setup(int vcpu_fd, const struct kvm_cpuid2 *cpuid, bool boot_cpu, uint64_t entry,
                   struct rc_error *err);

/* The long-mode special registers the boot vCPU starts with (applied over KVM's reset
 * state). */
void vmm_long_mode_sregs(struct kvm_sregs *s);

#endif
