/* A microVM: KVM VM, vCPUs, guest RAM, the Linux boot path and the device set runcell
 * gives every guest (8250 serial for the kernel's console, i8042 for reset, virtio-blk
 * per disk, one virtio-console as the agent's channel, virtio-rng). The runtime (src/
 * microvm*.c) creates one inside the container's jail, starts it, waits on stopped_fd and
 * reads why it stopped. */
#ifndef RUNCELL_VMM_MACHINE_H
#define RUNCELL_VMM_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runcell/error.h"
#include "runcell/vmm/balloon.h"

#define VMM_MAX_DISKS 8

struct vmm_disk {
  const char *path;
  bool read_only;
  const char *serial; /* shows in the guest as /sys/block/vdX/serial; may be NULL */
};

/* The guest's NIC: virtio-net on a tap (opened without IFF_VNET_HDR). */
struct vmm_net {
  int tap_fd; /* the machine uses a duplicate; the caller keeps (and closes) its own */
  uint8_t mac[6];
  uint16_t mtu;
};

struct vmm_machine_config {
  const char *kernel_path; /* uncompressed vmlinux (ELF) or bzImage */
  const char *initrd_path; /* may be NULL */
  const char *cmdline;     /* appended after the VMM's own arguments; may be NULL */
  unsigned vcpus;          /* >= 1 */
  uint64_t mem_bytes;      /* guest RAM */
  struct vmm_disk disks[VMM_MAX_DISKS];
  unsigned n_disks;
  int agent_fd;   /* the host end of the agent channel (virtio-console); owned by the
                     machine from create on; -1 for none */
  int console_fd; /* where the guest kernel's serial console output goes; -1 to drop it */
  bool has_net;   /* false: no NIC */
  struct vmm_net net;
  bool balloon; /* a virtio-balloon, with the features balloon_cfg offers */
  struct vmm_balloon_config balloon_cfg;
};

/* Why a machine stopped. */
enum vmm_stop_reason {
  VMM_STOP_NONE,      /* still running */
  VMM_STOP_RESET,     /* the guest asked for a reset or power-off (i8042, triple fault) */
  VMM_STOP_SHUTDOWN,  /* KVM_EXIT_SHUTDOWN / KVM_EXIT_SYSTEM_EVENT */
  VMM_STOP_FAULT,     /* the guest broke a device's rules or KVM failed; see detail */
  VMM_STOP_REQUESTED, /* vmm_machine_stop */
};

struct vmm_machine;

/* Checks that /dev/kvm exists, is usable and is hardware virtualization runcell can boot
 * a stock Linux guest on; the error names the reason otherwise (missing device, no access,
 * KVM API version, PVM (kvm_pvm) backing it). */
int vmm_kvm_check(struct rc_error *err);

/* Builds the VM up to the first instruction of the guest kernel; nothing runs yet. */
int vmm_machine_create(const struct vmm_machine_config *cfg, struct vmm_machine **out,
                       struct rc_error *err);
/* Starts the vCPU threads. */
int vmm_machine_start(struct vmm_machine *m, struct rc_error *err);
/* An eventfd that becomes readable once the machine has stopped. */
int vmm_machine_stopped_fd(const struct vmm_machine *m);
/* Asks every vCPU to stop (from any thread, signal-safe is not required). */
void vmm_machine_stop(struct vmm_machine *m);
/* Joins the vCPU threads and says why the machine stopped; detail gets a readable reason
 * (the KVM exit, the device fault). */
enum vmm_stop_reason vmm_machine_wait(struct vmm_machine *m, char *detail, size_t detail_size);
/* Stops the machine and waits at most timeout_ms for every vCPU thread to leave KVM_RUN
 * and end: 0 when they did, <0 when one is still running (the caller exits anyway). A VMM
 * process should not exit with vCPUs inside KVM_RUN: nested hypervisors (the QEMU lane's
 * emulated SVM) have been seen to wedge the whole host kernel when it does. */
int vmm_machine_halt(struct vmm_machine *m, int timeout_ms);
void vmm_machine_destroy(struct vmm_machine *m);

/* Monotonic nanoseconds at which the first vCPU entered the guest (0 before), for the
 * phase benchmark. */
uint64_t vmm_machine_first_entry_ns(const struct vmm_machine *m);

/* The machine's balloon (memory target, statistics, free page reporting counters); NULL
 * when the config asked for none. */
struct vmm_balloon *vmm_machine_balloon(const struct vmm_machine *m);

/* The first error the guest made on each device that has failed one (the device stopped
 * itself, as virtio's NEEDS_RESET says): up to max of them into out, which point into the
 * machine. Returns how many. */
size_t vmm_machine_device_faults(const struct vmm_machine *m, const char **out, size_t max);

/* Takes every vCPU out of KVM_RUN (an MMIO or port access in flight completes first) and
 * parks it until vmm_machine_resume; returns once all are parked. Devices keep running.
 * Where KVM has KVM_CAP_KVMCLOCK_CTRL, each parked vCPU tells the guest's kvmclock it was
 * stopped by the host, so the guest's soft-lockup detector does not fire on resume.
 * Before start, the vCPUs park as soon as they start; after a stop there is nothing to
 * park. <0 (and the machine resumed) when a vCPU does not park within a few seconds. */
int vmm_machine_pause(struct vmm_machine *m, struct rc_error *err);
/* Lets parked vCPUs run again (nothing when not paused). */
void vmm_machine_resume(struct vmm_machine *m);
bool vmm_machine_paused(const struct vmm_machine *m);

#endif
