/* CPUID normalisation: KVM_GET_SUPPORTED_CPUID describes the host's CPU as KVM can
 * virtualise it, but its topology fields describe the host (its APIC ids, core and thread
 * counts) and it says nothing about which vCPU reads it. Each vCPU gets its own copy with
 * a consistent picture: n cores, one thread each, one package, APIC id = vCPU index, and
 * the KVM paravirtual leaves the guest needs for kvmclock. */
#include <string.h>

#include "vmm/cpu.h"

#define LEAF1_ECX_HYPERVISOR (1U << 31)
#define LEAF1_ECX_TSC_DEADLINE (1U << 24)
#define LEAF1_EDX_HTT (1U << 28)
#define EXT1_ECX_CMP_LEGACY (1U << 1)
#define KVM_LEAF_BASE 0x40000000U
#define KVM_LEAF_FEATURES 0x40000001U
#define KVM_LEAF_TIMING 0x40000010U
#define KVM_APIC_BUS_KHZ 1000000U /* KVM's APIC timer runs at 1 GHz */

/* Topology level types in leaves 0xb and 0x1f (ECX bits 15:8). */
#define TOPO_SMT 1U
#define TOPO_CORE 2U

struct kvm_cpuid_entry2 *vmm_cpuid_find(struct kvm_cpuid_entry2 *e, unsigned n, uint32_t function,
                                        uint32_t index) {
  for (unsigned i = 0; i < n; i++) {
    if (e[i].function != function) continue;
    if ((e[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e[i].index != index) continue;
    return &e[i];
  }
  return NULL;
}

/* Bits needed to number n cores (0 for one). */
static uint32_t bits_for(unsigned n) {
  uint32_t b = 0;
  while ((1U << b) < n) b++;
  return b;
}

static void drop_function(struct kvm_cpuid_entry2 *e, unsigned *n, uint32_t function) {
  unsigned w = 0;
  for (unsigned r = 0; r < *n; r++)
    if (e[r].function != function) e[w++] = e[r];
  *n = w;
}

static int append(struct kvm_cpuid_entry2 *e, unsigned *n, unsigned cap,
                  struct kvm_cpuid_entry2 entry, struct rc_error *err) {
  if (*n >= cap) return rc_err(err, 0, "CPUID: more than %u entries", cap);
  e[(*n)++] = entry;
  return 0;
}

/* Leaves 0xb / 0x1f: an SMT level of one thread and a core level of n cores. */
static int put_topology_leaf(struct kvm_cpuid_entry2 *e, unsigned *n, unsigned cap,
                             uint32_t function, uint32_t apic_id, unsigned n_vcpus,
                             struct rc_error *err) {
  drop_function(e, n, function);
  const uint32_t sig = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
  struct kvm_cpuid_entry2 smt = {.function = function,
                                 .index = 0,
                                 .flags = sig,
                                 .eax = 0,
                                 .ebx = 1,
                                 .ecx = (TOPO_SMT << 8) | 0,
                                 .edx = apic_id};
  struct kvm_cpuid_entry2 core = {.function = function,
                                  .index = 1,
                                  .flags = sig,
                                  .eax = bits_for(n_vcpus),
                                  .ebx = n_vcpus,
                                  .ecx = (TOPO_CORE << 8) | 1,
                                  .edx = apic_id};
  /* The level after the last: type 0 ends the enumeration. */
  struct kvm_cpuid_entry2 end = {
      .function = function, .index = 2, .flags = sig, .ecx = 2, .edx = apic_id};
  if (append(e, n, cap, smt, err) < 0 || append(e, n, cap, core, err) < 0 ||
      append(e, n, cap, end, err) < 0)
    return -1;
  return 0;
}

int vmm_cpuid_normalize(struct kvm_cpuid_entry2 *e, unsigned *n, unsigned cap, unsigned index,
                        unsigned n_vcpus, const struct vmm_cpuid_host *host, struct rc_error *err) {
  const uint32_t tsc_khz = host->tsc_khz;
  if (n_vcpus == 0 || n_vcpus > 255 || index >= n_vcpus)
    return rc_err(err, 0, "CPUID: vCPU %u of %u", index, n_vcpus);
  const uint32_t apic_id = index;
  const uint32_t core_bits = bits_for(n_vcpus);
  struct kvm_cpuid_entry2 *leaf0 = vmm_cpuid_find(e, *n, 0, 0);
  const uint32_t max_basic = leaf0 ? leaf0->eax : 0;

  for (unsigned i = 0; i < *n; i++) {
    struct kvm_cpuid_entry2 *c = &e[i];
    switch (c->function) {
      case 1:
        /* EBX: APIC id (31:24) and logical processors per package (23:16). */
        c->ebx = (c->ebx & 0x0000ffffU) | (apic_id << 24) | ((n_vcpus & 0xffU) << 16);
        c->ecx |= LEAF1_ECX_HYPERVISOR;
        /* Without TSC-deadline Linux calibrates the LAPIC timer against the PIT at boot,
         * which is slow and, under nested virtualization, unreliable. */
        if (host->tsc_deadline) c->ecx |= LEAF1_ECX_TSC_DEADLINE;
        if (n_vcpus > 1)
          c->edx |= LEAF1_EDX_HTT;
        else
          c->edx &= ~LEAF1_EDX_HTT;
        break;
      case 4: {
        /* Deterministic cache parameters: cores per package - 1 (31:26); one thread
         * shares L1/L2, every core shares L3 (25:14). */
        uint32_t level = (c->eax >> 5) & 7;
        uint32_t sharing = level >= 3 ? n_vcpus - 1 : 0;
        c->eax = (c->eax & 0x3fffU) | (sharing << 14) | ((n_vcpus - 1) << 26);
        break;
      }
      case 0x80000001U:
        /* CmpLegacy: "HTT means cores" on AMD. */
        if (n_vcpus > 1)
          c->ecx |= EXT1_ECX_CMP_LEGACY;
        else
          c->ecx &= ~EXT1_ECX_CMP_LEGACY;
        break;
      case 0x80000008U:
        /* ECX: APIC id bits for cores (15:12), cores - 1 (7:0). */
        c->ecx = (c->ecx & ~0xf0ffU) | (core_bits << 12) | (n_vcpus - 1);
        break;
      case 0x8000001eU:
        /* Extended APIC id; compute unit = core, one thread per unit; node 0. */
        c->eax = apic_id;
        c->ebx = apic_id & 0xffU;
        c->ecx = 0;
        c->edx = 0;
        break;
      default:
        break;
    }
  }
  if (max_basic >= 0xb && put_topology_leaf(e, n, cap, 0xb, apic_id, n_vcpus, err) < 0) return -1;
  if (max_basic >= 0x1f && put_topology_leaf(e, n, cap, 0x1f, apic_id, n_vcpus, err) < 0) return -1;

  /* The KVM leaves: the signature tells Linux it runs on KVM (kvmclock, PV EOI, ...). */
  drop_function(e, n, KVM_LEAF_TIMING);
  struct kvm_cpuid_entry2 *base = vmm_cpuid_find(e, *n, KVM_LEAF_BASE, 0);
  if (!base) {
    struct kvm_cpuid_entry2 add = {.function = KVM_LEAF_BASE};
    if (append(e, n, cap, add, err) < 0) return -1;
    base = &e[*n - 1];
  }
  base->ebx = 0x4b4d564bU; /* "KVMK" */
  base->ecx = 0x564b4d56U; /* "VMKV" */
  base->edx = 0x0000004dU; /* "M\0\0\0" */
  base->eax = tsc_khz ? KVM_LEAF_TIMING : KVM_LEAF_FEATURES;
  if (!vmm_cpuid_find(e, *n, KVM_LEAF_FEATURES, 0)) {
    /* No paravirtual features known: an empty leaf, rather than one the guest misreads. */
    struct kvm_cpuid_entry2 add = {.function = KVM_LEAF_FEATURES};
    if (append(e, n, cap, add, err) < 0) return -1;
  }
  if (tsc_khz) {
    struct kvm_cpuid_entry2 timing = {
        .function = KVM_LEAF_TIMING, .eax = tsc_khz, .ebx = KVM_APIC_BUS_KHZ};
    if (append(e, n, cap, timing, err) < 0) return -1;
  }
  return 0;
}
