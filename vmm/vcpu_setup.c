/* A vCPU's state before its first instruction. Every vCPU gets its CPUID and MSRs; the
 * boot vCPU also gets the 64-bit boot protocol's register state (long mode on the boot
 * GDT and identity page tables, %rsi = zero page, %rip = kernel entry), a clean FPU and
 * its LAPIC's LINT0/LINT1 wired as on a PC. The others wait in KVM for INIT/SIPI, which
 * replaces their registers anyway. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/boot.h"
#include "vmm/cpu.h"

#define CR0_PE (1ULL << 0)
#define CR0_ET (1ULL << 4)
#define CR0_NE (1ULL << 5)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define MSR_IA32_TSC 0x10
#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_IA32_CR_PAT 0x277
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102

#define MISC_ENABLE_FAST_STRING 1ULL
#define PAT_POWER_ON 0x0007040600070406ULL /* WB, WT, UC-, UC repeated: the reset value */
#define MTRR_ENABLED_WB ((1ULL << 11) | 6) /* MTRRs on, default type write-back */

#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_NMI 4U
#define APIC_MODE_EXTINT 7U

static void set_segment(struct kvm_segment *s, uint16_t selector, uint8_t type, bool code) {
  memset(s, 0, sizeof(*s));
  s->selector = selector;
  s->base = 0;
  s->limit = 0xffffffff;
  s->type = type;
  s->present = 1;
  s->s = 1;
  s->g = 1;
  s->l = code ? 1 : 0;
  s->db = code ? 0 : 1;
}

void vmm_long_mode_sregs(struct kvm_sregs *s) {
  set_segment(&s->cs, VMM_BOOT_CS, 0xb, true);  /* execute/read, accessed */
  set_segment(&s->ds, VMM_BOOT_DS, 0x3, false); /* read/write, accessed */
  s->es = s->fs = s->gs = s->ss = s->ds;
  memset(&s->tr, 0, sizeof(s->tr));
  s->tr.selector = VMM_BOOT_TSS;
  s->tr.limit = 0x67; /* as the GDT says: a 104-byte TSS at 0 */
  s->tr.type = 0xb;   /* busy 64-bit TSS */
  s->tr.present = 1;
  s->gdt.base = VMM_BOOT_GDT_ADDR;
  s->gdt.limit = VMM_BOOT_GDT_ENTRIES * 8 - 1;
  /* No IDT: interrupts stay off until the kernel loads its own, and a fault before
   * that is a triple fault the VMM reports. */
  s->idt.base = 0;
  s->idt.limit = 0;
  s->cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
  s->cr3 = VMM_BOOT_PML4_ADDR;
  s->cr4 = CR4_PAE;
  s->efer = EFER_LME | EFER_LMA;
}

static int set_msrs(int fd, struct rc_error *err) {
  static const struct {
    uint32_t index;
    uint64_t value;
  } want[] = {
      {MSR_IA32_SYSENTER_CS, 0},
      {MSR_IA32_SYSENTER_ESP, 0},
      {MSR_IA32_SYSENTER_EIP, 0},
      {MSR_STAR, 0},
      {MSR_CSTAR, 0},
      {MSR_KERNEL_GS_BASE, 0},
      {MSR_SYSCALL_MASK, 0},
      {MSR_LSTAR, 0},
      {MSR_IA32_TSC, 0},
      {MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING},
      {MSR_IA32_CR_PAT, PAT_POWER_ON},
      {MSR_MTRR_DEF_TYPE, MTRR_ENABLED_WB},
  };
  enum { N = sizeof(want) / sizeof(want[0]) };
  /* kvm_msrs ends in a flexible array: allocated with room for the entries. */
  struct kvm_msrs *msrs = calloc(1, sizeof(*msrs) + N * sizeof(struct kvm_msr_entry));
  if (!msrs) return rc_err(err, ENOMEM, "KVM_SET_MSRS");
  msrs->nmsrs = N;
  for (unsigned i = 0; i < N; i++) {
    msrs->entries[i].index = want[i].index;
    msrs->entries[i].data = want[i].value;
  }
  int set = ioctl(fd, KVM_SET_MSRS, msrs);
  int e = errno;
  free(msrs);
  if (set < 0) return rc_err(err, e, "KVM_SET_MSRS");
  if (set != N) return rc_err(err, 0, "KVM_SET_MSRS: KVM refused MSR 0x%x", want[set].index);
  return 0;
}

static int set_lapic_lines(int fd, struct rc_error *err) {
  struct kvm_lapic_state lapic;
  if (ioctl(fd, KVM_GET_LAPIC, &lapic) < 0) return rc_err(err, errno, "KVM_GET_LAPIC");
  uint32_t v;
  memcpy(&v, lapic.regs + APIC_LVT0, 4);
  v = (v & ~0x700U) | (APIC_MODE_EXTINT << 8);
  memcpy(lapic.regs + APIC_LVT0, &v, 4);
  memcpy(&v, lapic.regs + APIC_LVT1, 4);
  v = (v & ~0x700U) | (APIC_MODE_NMI << 8);
  memcpy(lapic.regs + APIC_LVT1, &v, 4);
  if (ioctl(fd, KVM_SET_LAPIC, &lapic) < 0) return rc_err(err, errno, "KVM_SET_LAPIC");
  return 0;
}

int vmm_vcpu_setup(int fd, const struct kvm_cpuid2 *cpuid, bool boot_cpu, uint64_t entry,
                   struct rc_error *err) {
  if (ioctl(fd, KVM_SET_CPUID2, cpuid) < 0) return rc_err(err, errno, "KVM_SET_CPUID2");
  if (set_msrs(fd, err) < 0) return -1;
  if (!boot_cpu) return 0;

  struct kvm_sregs sregs;
  if (ioctl(fd, KVM_GET_SREGS, &sregs) < 0) return rc_err(err, errno, "KVM_GET_SREGS");
  vmm_long_mode_sregs(&sregs);
  if (ioctl(fd, KVM_SET_SREGS, &sregs) < 0) return rc_err(err, errno, "KVM_SET_SREGS");

  struct kvm_regs regs;
  memset(&regs, 0, sizeof(regs));
  regs.rflags = 0x2; /* bit 1 is always set; IF clear: interrupts off */
  regs.rip = entry;
  regs.rsp = VMM_BOOT_STACK_ADDR;
  regs.rbp = VMM_BOOT_STACK_ADDR;
  regs.rsi = VMM_BOOT_ZERO_PAGE_ADDR;
  if (ioctl(fd, KVM_SET_REGS, &regs) < 0) return rc_err(err, errno, "KVM_SET_REGS");

  struct kvm_fpu fpu;
  memset(&fpu, 0, sizeof(fpu));
  fpu.fcw = 0x37f;    /* x87 reset value: all exceptions masked */
  fpu.mxcsr = 0x1f80; /* SSE reset value */
  if (ioctl(fd, KVM_SET_FPU, &fpu) < 0) return rc_err(err, errno, "KVM_SET_FPU");
  return set_lapic_lines(fd, err);
}
