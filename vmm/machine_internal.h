/* The machine's state shared by machine.c (building it) and vcpu_run.c (running and
 * stopping it); private to vmm/. */
#ifndef RUNCELL_VMM_MACHINE_INTERNAL_H
#define RUNCELL_VMM_MACHINE_INTERNAL_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runcell/vmm/bus.h"
#include "runcell/vmm/guest_mem.h"
#include "runcell/vmm/layout.h"
#include "runcell/vmm/machine.h"
#include "runcell/vmm/virtio.h"
#include "vmm/devices/devices.h"

struct vmm_vcpu {
  struct vmm_machine *machine;
  unsigned index;
  int fd;
  struct kvm_run *run;
  size_t run_size;
  pthread_t thread;
  bool thread_started;
  bool thread_done; /* set under stop_lock as the thread's last act */
  bool parked;      /* under stop_lock: waiting in vmm_machine_pause's park */
};

struct vmm_machine {
  int kvm_fd, vm_fd;
  struct vmm_guest_mem mem;
  struct vmm_bus pio, mmio;
  struct vmm_serial *serial;
  struct vmm_i8042 *i8042;
  struct vmm_virtio_dev *virtio[VMM_VIRTIO_MAX_DEVICES];
  struct vmm_balloon *balloon; /* control handle of one of virtio[]; NULL for none */
  unsigned n_virtio;
  struct vmm_vcpu *vcpus;
  unsigned n_vcpus;
  bool started, joined;
  int agent_fd; /* owned until handed to the virtio console */

  int stopped_fd; /* eventfd, written once when the first stop reason is recorded */
  atomic_bool stopping;
  pthread_mutex_t stop_lock;
  enum vmm_stop_reason reason;
  char detail[256];
  _Atomic uint64_t first_entry_ns;

  /* pause: under stop_lock; vCPUs park on resume_cond, the pauser waits on park_cond */
  atomic_bool pause_requested;
  bool kvmclock_ctrl; /* KVM_CAP_KVMCLOCK_CTRL */
  pthread_cond_t park_cond, resume_cond;
};

/* Records why the machine stops (the first reason wins), kicks every vCPU out of the
 * guest and signals stopped_fd. Safe from any thread, vCPU threads included. */
void vmm_machine_end(struct vmm_machine *m, enum vmm_stop_reason reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The body of a vCPU thread: KVM_RUN and exit dispatch until the machine stops. */
void *vmm_vcpu_thread(void *arg);

/* Installs the signal that kicks a vCPU thread out of KVM_RUN (once per process). */
int vmm_vcpu_kick_init(struct rc_error *err);
#define VMM_KICK_SIGNAL (SIGRTMIN + 4)

/* Monotonic clock in nanoseconds. */
uint64_t vmm_now_ns(void);

#endif
