/* CPUID normalisation of a given KVM_GET_SUPPORTED_CPUID list: per-vCPU APIC ids, the
 * topology leaves, the hypervisor bit and the KVM leaves. */
#include "unit.h"
/* Private VMM headers, by path: the unit tests build with the public include dir only. */
#include "../../vmm/cpu.h"

#define SIG KVM_CPUID_FLAG_SIGNIFCANT_INDEX

/* A host's supported list: 8 threads, 2 per core, host APIC id 0x23 everywhere. */
static unsigned host_list(struct kvm_cpuid_entry2 *e) {
  const struct kvm_cpuid_entry2 host[] = {
      {.function = 0, .eax = 0x1f, .ebx = 0x756e6547},
      {.function = 1, .eax = 0x806f8, .ebx = 0x23100800, .ecx = 0x7ffafbff, .edx = 0xbfebfbff},
      {.function = 4, .index = 0, .flags = SIG, .eax = 0x1c004121}, /* L1d, 8 sharing */
      {.function = 4, .index = 1, .flags = SIG, .eax = 0x1c004122},
      {.function = 4, .index = 2, .flags = SIG, .eax = 0x1c004143}, /* L2 */
      {.function = 4, .index = 3, .flags = SIG, .eax = 0x1c03c163}, /* L3 */
      {.function = 0xb, .index = 0, .flags = SIG, .eax = 1, .ebx = 2, .ecx = 0x100, .edx = 0x23},
      {.function = 0xb, .index = 1, .flags = SIG, .eax = 4, .ebx = 8, .ecx = 0x201, .edx = 0x23},
      {.function = 0x1f, .index = 0, .flags = SIG, .eax = 1, .ebx = 2, .ecx = 0x100, .edx = 0x23},
      {.function = 0x40000000, .eax = 0x40000001},
      {.function = 0x40000001, .eax = 0x01007afb},
      {.function = 0x80000000, .eax = 0x80000008},
      {.function = 0x80000001, .ecx = 0x121},
      {.function = 0x80000008, .eax = 0x3030, .ecx = 0x7007},
  };
  memcpy(e, host, sizeof(host));
  return sizeof(host) / sizeof(host[0]);
}

static void test_topology(void) {
  struct kvm_cpuid_entry2 e[64];
  unsigned n = host_list(e);
  struct rc_error err = {0};
  CHECK(vmm_cpuid_normalize(e, &n, 64, 2, 4, &(struct vmm_cpuid_host){.tsc_khz = 2100000}, &err) ==
        0);
  struct kvm_cpuid_entry2 *c = vmm_cpuid_find(e, n, 1, 0);
  CHECK(c && (c->ebx >> 24) == 2);          /* APIC id = vCPU index */
  CHECK(c && ((c->ebx >> 16) & 0xff) == 4); /* logical processors */
  CHECK(c && (c->ebx & 0xffff) == 0x0800);  /* CLFLUSH size etc. kept */
  CHECK(c && (c->ecx & (1U << 31)));        /* hypervisor */
  CHECK(c && (c->edx & (1U << 28)));        /* HTT with more than one */
  CHECK(c && c->eax == 0x806f8);            /* signature kept */

  c = vmm_cpuid_find(e, n, 4, 0);
  CHECK(c && (c->eax >> 26) == 3 && ((c->eax >> 14) & 0xfff) == 0); /* L1: own */
  CHECK(c && (c->eax & 0x3fff) == 0x0121);
  c = vmm_cpuid_find(e, n, 4, 3);
  CHECK(c && (c->eax >> 26) == 3 && ((c->eax >> 14) & 0xfff) == 3); /* L3: shared by all */

  for (uint32_t leaf = 0xb; leaf <= 0x1f; leaf += 0x14) {
    struct kvm_cpuid_entry2 *smt = vmm_cpuid_find(e, n, leaf, 0);
    struct kvm_cpuid_entry2 *core = vmm_cpuid_find(e, n, leaf, 1);
    struct kvm_cpuid_entry2 *end = vmm_cpuid_find(e, n, leaf, 2);
    CHECK(smt && smt->eax == 0 && smt->ebx == 1 && smt->ecx == 0x100 && smt->edx == 2);
    CHECK(core && core->eax == 2 && core->ebx == 4 && core->ecx == 0x201 && core->edx == 2);
    CHECK(end && ((end->ecx >> 8) & 0xff) == 0 && end->edx == 2);
    unsigned count = 0;
    for (unsigned i = 0; i < n; i++) count += e[i].function == leaf;
    CHECK(count == 3);
  }

  c = vmm_cpuid_find(e, n, 0x80000008, 0);
  CHECK(c && (c->ecx & 0xff) == 3 && ((c->ecx >> 12) & 0xf) == 2);
  CHECK(c && c->eax == 0x3030);
  c = vmm_cpuid_find(e, n, 0x80000001, 0);
  CHECK(c && (c->ecx & 2));
}

static void test_kvm_leaves(void) {
  struct kvm_cpuid_entry2 e[64];
  unsigned n = host_list(e);
  struct rc_error err = {0};
  CHECK(vmm_cpuid_normalize(e, &n, 64, 0, 1, &(struct vmm_cpuid_host){.tsc_khz = 2100000}, &err) ==
        0);
  struct kvm_cpuid_entry2 *c = vmm_cpuid_find(e, n, 0x40000000, 0);
  char sig[13] = {0};
  if (c) {
    memcpy(sig, &c->ebx, 4);
    memcpy(sig + 4, &c->ecx, 4);
    memcpy(sig + 8, &c->edx, 4);
  }
  CHECK_STR_EQ(sig, "KVMKVMKVM");
  CHECK(c && c->eax == 0x40000010);
  c = vmm_cpuid_find(e, n, 0x40000001, 0);
  CHECK(c && c->eax == 0x01007afb); /* KVM's paravirtual features kept */
  c = vmm_cpuid_find(e, n, 0x40000010, 0);
  CHECK(c && c->eax == 2100000 && c->ebx == 1000000);
  c = vmm_cpuid_find(e, n, 1, 0);
  CHECK(c && !(c->edx & (1U << 28))); /* one vCPU: no HTT */
  CHECK(c && (c->ebx >> 24) == 0);

  /* Unknown TSC frequency: no timing leaf, max leaf 0x40000001. */
  n = host_list(e);
  CHECK(vmm_cpuid_normalize(e, &n, 64, 0, 1, &(struct vmm_cpuid_host){.tsc_khz = 0}, &err) == 0);
  CHECK(vmm_cpuid_find(e, n, 0x40000010, 0) == NULL);
  c = vmm_cpuid_find(e, n, 0x40000000, 0);
  CHECK(c && c->eax == 0x40000001);

  /* A list without the KVM leaves gets them. */
  n = 2;
  CHECK(vmm_cpuid_normalize(e, &n, 64, 0, 1, &(struct vmm_cpuid_host){.tsc_khz = 0}, &err) == 0);
  CHECK(vmm_cpuid_find(e, n, 0x40000000, 0) != NULL);
  CHECK(vmm_cpuid_find(e, n, 0x40000001, 0) != NULL);
}

static void test_tsc_deadline(void) {
  struct kvm_cpuid_entry2 e[64];
  unsigned n = host_list(e);
  struct rc_error err = {0};
  struct vmm_cpuid_host host = {.tsc_deadline = true};
  CHECK(vmm_cpuid_normalize(e, &n, 64, 0, 1, &host, &err) == 0);
  struct kvm_cpuid_entry2 *c = vmm_cpuid_find(e, n, 1, 0);
  CHECK(c && (c->ecx & (1U << 24)));
  CHECK(vmm_cpuid_find(e, n, 0x40000010, 0) == NULL);
}

static void test_errors(void) {
  struct kvm_cpuid_entry2 e[64];
  struct rc_error err = {0};
  unsigned n = host_list(e);
  CHECK(vmm_cpuid_normalize(e, &n, 64, 4, 4, &(struct vmm_cpuid_host){.tsc_khz = 0}, &err) <
        0); /* index out of range */
  CHECK(vmm_cpuid_normalize(e, &n, 64, 0, 0, &(struct vmm_cpuid_host){.tsc_khz = 0}, &err) < 0);
  n = host_list(e);
  unsigned before = n;
  CHECK(vmm_cpuid_normalize(e, &n, before, 0, 2, &(struct vmm_cpuid_host){.tsc_khz = 1000}, &err) <
        0); /* no room to add */
  CHECK_CONTAINS(err.msg, "entries");
  CHECK(n <= before);
}

UNIT_MAIN("vmm_cpuid", UNIT_CASE(test_topology), UNIT_CASE(test_kvm_leaves),
          UNIT_CASE(test_tsc_deadline), UNIT_CASE(test_errors))
