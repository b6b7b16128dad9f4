/* Running a microVM: one thread per vCPU loops on KVM_RUN and routes the exits the
 * in-kernel devices do not handle (port I/O, MMIO) to the VMM's buses; the exits that end
 * a machine (shutdown, reset, a failed entry, a KVM internal error) record why. Stopping
 * sets immediate_exit in every vCPU's kvm_run and signals its thread, so a vCPU inside
 * KVM_RUN comes out at once and one about to enter never does. Pausing uses the same
 * kick, and parks each vCPU thread outside KVM_RUN until resume. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "vmm/machine_internal.h"

/* How long vmm_machine_pause waits for a vCPU to come out of the guest: an MMIO access in
 * flight (a disk read) finishes first, but a vCPU that takes longer is a stuck one. */
#define VMM_PAUSE_TIMEOUT_S 5

uint64_t vmm_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void kick_handler(int sig) {
  (void)sig; /* its only job is to interrupt KVM_RUN with EINTR */
}

static pthread_once_t kick_once = PTHREAD_ONCE_INIT;
static int kick_installed = -1;

static void install_kick(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = kick_handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: KVM_RUN must return */
  kick_installed = sigaction(VMM_KICK_SIGNAL, &sa, NULL);
}

int vmm_vcpu_kick_init(struct rc_error *err) {
  pthread_once(&kick_once, install_kick);
  if (kick_installed < 0) return rc_err(err, errno, "install the vCPU kick signal handler");
  return 0;
}

void vmm_machine_end(struct vmm_machine *m, enum vmm_stop_reason reason, const char *fmt, ...) {
  pthread_mutex_lock(&m->stop_lock);
  bool first = m->reason == VMM_STOP_NONE;
  if (first) {
    m->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->detail, sizeof(m->detail), fmt, ap);
    va_end(ap);
  }
  atomic_store(&m->stopping, true);
  for (unsigned i = 0; i < m->n_vcpus; i++) {
    struct vmm_vcpu *v = &m->vcpus[i];
    if (v->run) __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (v->thread_started && !v->thread_done) pthread_kill(v->thread, VMM_KICK_SIGNAL);
  }
  pthread_cond_broadcast(&m->resume_cond); /* parked vCPUs leave too */
  pthread_mutex_unlock(&m->stop_lock);
  if (first) {
    uint64_t one = 1;
    ssize_t n = write(m->stopped_fd, &one, sizeof(one));
    (void)n; /* an eventfd write of 1 cannot fail short of overflow */
  }
}

/* Port I/O: `count` accesses of `size` bytes (rep ins/outs) in the kvm_run page. */
static void handle_io(struct vmm_machine *m, struct vmm_vcpu *v) {
  struct kvm_run *run = v->run;
  uint64_t size = run->io.size, count = run->io.count, off = run->io.data_offset;
  if (size == 0 || size > 8 || off > v->run_size || count > (v->run_size - off) / size) {
    vmm_machine_end(m, VMM_STOP_FAULT, "KVM reported port I/O data outside the run page");
    return;
  }
  uint8_t *data = (uint8_t *)run + off;
  for (uint64_t i = 0; i < count; i++, data += size) {
    if (run->io.direction == KVM_EXIT_IO_OUT)
      vmm_bus_write(&m->pio, run->io.port, data, (uint32_t)size);
    else
      vmm_bus_read(&m->pio, run->io.port, data, (uint32_t)size); /* 0xff when unclaimed */
  }
}

static void handle_mmio(struct vmm_machine *m, struct vmm_vcpu *v) {
  struct kvm_run *run = v->run;
  uint64_t addr = run->mmio.phys_addr;
  uint32_t len = run->mmio.len;
  if (len > sizeof(run->mmio.data)) {
    vmm_machine_end(m, VMM_STOP_FAULT, "KVM reported an MMIO access of %u bytes", len);
    return;
  }
  if (run->mmio.is_write)
    vmm_bus_write(&m->mmio, addr, run->mmio.data, len);
  else
    vmm_bus_read(&m->mmio, addr, run->mmio.data, len);
  /* A virtio device that saw the guest break its rules has stopped; so does the machine. */
  if (addr >= VMM_VIRTIO_MMIO_BASE) {
    uint64_t slot = (addr - VMM_VIRTIO_MMIO_BASE) / VMM_VIRTIO_MMIO_SIZE;
    if (slot < m->n_virtio) {
      const char *fault = vmm_virtio_dev_fault(m->virtio[slot]);
      if (fault)
        vmm_machine_end(m, VMM_STOP_FAULT, "virtio device %llu (GSI %u): %s",
                        (unsigned long long)slot, vmm_virtio_gsi[slot], fault);
    }
  }
}

static void handle_system_event(struct vmm_machine *m, const struct kvm_run *run) {
  switch (run->system_event.type) {
    case KVM_SYSTEM_EVENT_RESET:
      vmm_machine_end(m, VMM_STOP_RESET, "the guest asked for a reset (KVM_SYSTEM_EVENT_RESET)");
      break;
    case KVM_SYSTEM_EVENT_SHUTDOWN:
      vmm_machine_end(m, VMM_STOP_SHUTDOWN, "the guest powered off (KVM_SYSTEM_EVENT_SHUTDOWN)");
      break;
    case KVM_SYSTEM_EVENT_CRASH:
      vmm_machine_end(m, VMM_STOP_FAULT, "the guest crashed (KVM_SYSTEM_EVENT_CRASH)");
      break;
    default:
      vmm_machine_end(m, VMM_STOP_SHUTDOWN, "KVM system event %u", run->system_event.type);
      break;
  }
}

/* Handles one exit; false once the machine ends. */
static bool handle_exit(struct vmm_machine *m, struct vmm_vcpu *v) {
  struct kvm_run *run = v->run;
  switch (run->exit_reason) {
    case KVM_EXIT_IO:
      handle_io(m, v);
      return true;
    case KVM_EXIT_MMIO:
      handle_mmio(m, v);
      return true;
    case KVM_EXIT_INTR:
      return true;
    case KVM_EXIT_HLT:
      /* Only without an in-kernel irqchip: nothing could ever wake it. */
      vmm_machine_end(m, VMM_STOP_SHUTDOWN, "vCPU %u halted with interrupts off", v->index);
      return false;
    case KVM_EXIT_SHUTDOWN:
      vmm_machine_end(m, VMM_STOP_SHUTDOWN, "vCPU %u shut down (triple fault; KVM_EXIT_SHUTDOWN)",
                      v->index);
      return false;
    case KVM_EXIT_SYSTEM_EVENT:
      handle_system_event(m, run);
      return false;
    case KVM_EXIT_FAIL_ENTRY:
      vmm_machine_end(m, VMM_STOP_FAULT,
                      "vCPU %u could not enter the guest (KVM_EXIT_FAIL_ENTRY, reason 0x%llx)",
                      v->index, (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
      return false;
    case KVM_EXIT_INTERNAL_ERROR:
      vmm_machine_end(m, VMM_STOP_FAULT,
                      "vCPU %u: KVM internal error (suberror %u; 1 is an instruction KVM "
                      "could not emulate)",
                      v->index, run->internal.suberror);
      return false;
    default:
      vmm_machine_end(m, VMM_STOP_FAULT, "vCPU %u: unexpected KVM exit %u", v->index,
                      run->exit_reason);
      return false;
  }
}

/* Called when a pause is requested or immediate_exit is set: parks while the machine is
 * paused, then re-arms KVM_RUN (immediate_exit off) unless the machine is stopping, which
 * is also the only case that returns false. immediate_exit is only ever changed under
 * stop_lock, so a stop's setting is never undone. */
static bool park_while_paused(struct vmm_machine *m, struct vmm_vcpu *v) {
  pthread_mutex_lock(&m->stop_lock);
  if (atomic_load(&m->pause_requested) && !atomic_load(&m->stopping)) {
    /* the guest's kvmclock learns the host stopped it (EINVAL before the guest enabled
     * kvmclock: nothing to tell then) */
    if (m->kvmclock_ctrl) (void)ioctl(v->fd, KVM_KVMCLOCK_CTRL, 0);
    v->parked = true;
    pthread_cond_broadcast(&m->park_cond);
    while (atomic_load(&m->pause_requested) && !atomic_load(&m->stopping))
      pthread_cond_wait(&m->resume_cond, &m->stop_lock);
    v->parked = false;
  }
  bool go_on = !atomic_load(&m->stopping);
  if (go_on) __atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
  pthread_mutex_unlock(&m->stop_lock);
  return go_on;
}

void *vmm_vcpu_thread(void *arg) {
  struct vmm_vcpu *v = arg;
  struct vmm_machine *m = v->machine;
  /* The creating thread blocked every signal; this one takes only its kick. */
  sigset_t kick;
  sigemptyset(&kick);
  sigaddset(&kick, VMM_KICK_SIGNAL);
  pthread_sigmask(SIG_UNBLOCK, &kick, NULL);

  while (!atomic_load(&m->stopping)) {
    if ((atomic_load(&m->pause_requested) ||
         __atomic_load_n(&v->run->immediate_exit, __ATOMIC_SEQ_CST)) &&
        !park_while_paused(m, v))
      break;
    if (v->index == 0 && atomic_load(&m->first_entry_ns) == 0)
      atomic_store(&m->first_entry_ns, vmm_now_ns());
    if (ioctl(v->fd, KVM_RUN, 0) < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      vmm_machine_end(m, VMM_STOP_FAULT, "vCPU %u: KVM_RUN: %s", v->index, strerror(errno));
      break;
    }
    if (!handle_exit(m, v)) break;
  }
  /* From here on nobody signals this thread: it may be joined at any moment. */
  pthread_mutex_lock(&m->stop_lock);
  v->thread_done = true;
  pthread_cond_broadcast(&m->park_cond); /* a pause does not wait for a finished thread */
  pthread_mutex_unlock(&m->stop_lock);
  return NULL;
}

/* vCPU threads that may still enter KVM_RUN: started, not finished, not parked. */
static unsigned unparked(const struct vmm_machine *m) {
  unsigned n = 0;
  for (unsigned i = 0; i < m->n_vcpus; i++) {
    const struct vmm_vcpu *v = &m->vcpus[i];
    if (v->thread_started && !v->thread_done && !v->parked) n++;
  }
  return n;
}

int vmm_machine_pause(struct vmm_machine *m, struct rc_error *err) {
  bool clock_ctrl = ioctl(m->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_KVMCLOCK_CTRL) > 0;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until); /* pthread_cond_timedwait's default clock */
  until.tv_sec += VMM_PAUSE_TIMEOUT_S;
  pthread_mutex_lock(&m->stop_lock);
  m->kvmclock_ctrl = clock_ctrl;
  atomic_store(&m->pause_requested, true);
  for (unsigned i = 0; i < m->n_vcpus; i++) {
    struct vmm_vcpu *v = &m->vcpus[i];
    if (v->run) __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (v->thread_started && !v->thread_done) pthread_kill(v->thread, VMM_KICK_SIGNAL);
  }
  int r = 0;
  while (r == 0 && !atomic_load(&m->stopping) && unparked(m) > 0)
    r = pthread_cond_timedwait(&m->park_cond, &m->stop_lock, &until);
  unsigned left = atomic_load(&m->stopping) ? 0 : unparked(m);
  pthread_mutex_unlock(&m->stop_lock);
  if (left == 0) return 0;
  vmm_machine_resume(m);
  return rc_err(err, ETIMEDOUT, "pause: %u vCPU(s) did not leave the guest within %d s", left,
                VMM_PAUSE_TIMEOUT_S);
}

void vmm_machine_resume(struct vmm_machine *m) {
  pthread_mutex_lock(&m->stop_lock);
  atomic_store(&m->pause_requested, false);
  pthread_cond_broadcast(&m->resume_cond);
  pthread_mutex_unlock(&m->stop_lock);
}

bool vmm_machine_paused(const struct vmm_machine *m) {
  return atomic_load(&m->pause_requested);
}
