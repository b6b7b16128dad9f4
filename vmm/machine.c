/* Building a microVM: the KVM VM (TSS and identity-map pages, in-kernel irqchip and PIT),
 * guest RAM as memory slots, the kernel, initrd and boot structures in it, the devices on
 * their buses, and the vCPUs with their initial state. Running and stopping it is
 * vcpu_run.c. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runcell/vmm/thread.h"
#include "vmm/boot.h"
#include "vmm/cpu.h"
#include "vmm/kvm.h"
#include "vmm/machine_internal.h"

/* Pages KVM needs in guest-physical space on Intel without unrestricted guest; placed in
 * the MMIO hole just below the IOAPIC/BIOS area, where no RAM or device is. */
#define VMM_TSS_ADDR 0xfffbd000ULL
#define VMM_IDENTITY_MAP_ADDR 0xfffbc000ULL
#define VMM_MIN_MEM (32ULL << 20)
#define VMM_I8042_GSI 1

static int irq_line_set(void *ctx, uint32_t gsi, bool level) {
  struct vmm_machine *m = ctx;
  struct kvm_irq_level irq = {.irq = gsi, .level = level ? 1 : 0};
  return ioctl(m->vm_fd, KVM_IRQ_LINE, &irq);
}

static struct vmm_irq_line irq_line(struct vmm_machine *m, uint32_t gsi) {
  return (struct vmm_irq_line){.set = irq_line_set, .ctx = m, .gsi = gsi};
}

static void i8042_reset(void *ctx) {
  vmm_machine_end(ctx, VMM_STOP_RESET, "the guest reset the machine (i8042 reset line)");
}

static int create_vm(struct vmm_machine *m, struct rc_error *err) {
  m->kvm_fd = vmm_kvm_open(VMM_KVM_DEVICE, VMM_KVM_PVM_SYSFS, err);
  if (m->kvm_fd < 0) return -1;
  do {
    m->vm_fd = ioctl(m->kvm_fd, KVM_CREATE_VM, 0);
  } while (m->vm_fd < 0 && errno == EINTR);
  if (m->vm_fd < 0) return rc_err(err, errno, "KVM_CREATE_VM");
  if (ioctl(m->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)VMM_TSS_ADDR) < 0)
    return rc_err(err, errno, "KVM_SET_TSS_ADDR");
  if (ioctl(m->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
    uint64_t addr = VMM_IDENTITY_MAP_ADDR;
    if (ioctl(m->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &addr) < 0)
      return rc_err(err, errno, "KVM_SET_IDENTITY_MAP_ADDR");
  }
  if (ioctl(m->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) return rc_err(err, errno, "KVM_CREATE_IRQCHIP");
  /* The PIT: Linux still looks for the legacy timer on IRQ 0; the dummy speaker port
   * (0x61) keeps its calibration and NMI-reason reads in the kernel. */
  struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
  if (ioctl(m->vm_fd, KVM_CREATE_PIT2, &pit) < 0) return rc_err(err, errno, "KVM_CREATE_PIT2");
  for (unsigned i = 0; i < m->mem.n_regions; i++) {
    const struct vmm_mem_region *r = &m->mem.regions[i];
    struct kvm_userspace_memory_region slot = {.slot = i,
                                               .guest_phys_addr = r->gpa,
                                               .memory_size = r->size,
                                               .userspace_addr = (uintptr_t)r->host};
    if (ioctl(m->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
      return rc_err(err, errno, "KVM_SET_USER_MEMORY_REGION %u", i);
  }
  return 0;
}

static int load_kernel(struct vmm_machine *m, const char *path, struct vmm_kernel_info *ki,
                       struct rc_error *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return rc_err(err, errno, "open kernel %s", path);
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
    rc_err(err, errno, "kernel %s is not a regular, non-empty file", path);
    close(fd);
    return -1;
  }
  void *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (img == MAP_FAILED) return rc_err(err, errno, "map kernel %s", path);
  int r = vmm_boot_load_kernel(&m->mem, img, (size_t)st.st_size, ki, err);
  munmap(img, (size_t)st.st_size);
  if (r < 0) return rc_err_wrap(err, "kernel %s", path);
  return 0;
}

static int load_initrd(struct vmm_machine *m, const char *path, const struct vmm_kernel_info *ki,
                       uint64_t *addr, uint64_t *size, struct rc_error *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return rc_err(err, errno, "open initrd %s", path);
  struct stat st;
  int r = -1;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    rc_err(err, errno, "initrd %s is not a regular file", path);
    goto out;
  }
  *size = (uint64_t)st.st_size;
  if (vmm_boot_initrd_addr(&m->mem, ki, *size, addr, err) < 0) {
    rc_err_wrap(err, "initrd %s", path);
    goto out;
  }
  uint8_t *dst = vmm_gpa_ptr(&m->mem, *addr, *size);
  for (uint64_t done = 0; dst && done < *size;) {
    ssize_t n = pread(fd, dst + done, *size - done, (off_t)done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      rc_err(err, n < 0 ? errno : 0, "read initrd %s", path);
      goto out;
    }
    done += (uint64_t)n;
  }
  r = dst ? 0 : rc_err(err, 0, "initrd %s does not fit in guest RAM", path);
out:
  close(fd);
  return r;
}

static int load_boot(struct vmm_machine *m, const struct vmm_machine_config *cfg, uint64_t *entry,
                     struct rc_error *err) {
  struct vmm_kernel_info ki = {0};
  if (load_kernel(m, cfg->kernel_path, &ki, err) < 0) return -1;
  uint64_t initrd_addr = 0, initrd_size = 0;
  if (cfg->initrd_path &&
      load_initrd(m, cfg->initrd_path, &ki, &initrd_addr, &initrd_size, err) < 0)
    return -1;
  char *cmdline = malloc(VMM_BOOT_CMDLINE_MAX);
  if (!cmdline) return rc_err(err, errno, "allocate the kernel command line");
  int r = vmm_boot_build_cmdline(m->n_virtio, cfg->cmdline, cmdline, VMM_BOOT_CMDLINE_MAX, err);
  if (r == 0) r = vmm_boot_write_params(&m->mem, &ki, cmdline, initrd_addr, initrd_size, err);
  free(cmdline);
  if (r < 0) return -1;
  if (vmm_mptable_write(&m->mem, m->n_vcpus, err) < 0) return -1;
  if (vmm_boot_write_pagetables(&m->mem, err) < 0) return -1;
  *entry = ki.entry;
  return 0;
}

static int add_virtio(struct vmm_machine *m, struct vmm_virtio_dev *dev, struct rc_error *err) {
  unsigned slot = m->n_virtio++;
  m->virtio[slot] = dev;
  struct vmm_bus_device win =
      vmm_virtio_mmio_window(dev, VMM_VIRTIO_MMIO_BASE + slot * VMM_VIRTIO_MMIO_SIZE);
  return vmm_bus_add(&m->mmio, &win, err);
}

/* Devices, in the order the kernel command line announces the virtio ones: a block
 * device per disk, the agent's console, the entropy source, the balloon, the NIC. */
static int add_devices(struct vmm_machine *m, const struct vmm_machine_config *cfg,
                       struct rc_error *err) {
  if (vmm_serial_create(cfg->console_fd, VMM_SERIAL_DEFAULT_BUDGET,
                        irq_line(m, VMM_SERIAL_COM1_GSI), &m->serial, err) < 0)
    return -1;
  struct vmm_bus_device dev = vmm_serial_bus_device(m->serial, VMM_SERIAL_COM1_PORT);
  if (vmm_bus_add(&m->pio, &dev, err) < 0) return -1;
  if (vmm_i8042_create(irq_line(m, VMM_I8042_GSI), i8042_reset, m, &m->i8042, err) < 0) return -1;
  dev = vmm_i8042_data_device(m->i8042, VMM_I8042_DATA_PORT);
  if (vmm_bus_add(&m->pio, &dev, err) < 0) return -1;
  dev = vmm_i8042_command_device(m->i8042, VMM_I8042_CMD_PORT);
  if (vmm_bus_add(&m->pio, &dev, err) < 0) return -1;

  struct vmm_virtio_dev *v = NULL;
  for (unsigned i = 0; i < cfg->n_disks; i++) {
    const struct vmm_disk *d = &cfg->disks[i];
    if (vmm_virtio_blk_create(&m->mem, irq_line(m, vmm_virtio_gsi[m->n_virtio]), d->path,
                              d->read_only, d->serial, &v, err) < 0)
      return rc_err_wrap(err, "disk %u (%s)", i, d->path);
    if (add_virtio(m, v, err) < 0) return -1;
  }
  if (m->agent_fd >= 0) {
    int fd = m->agent_fd;
    m->agent_fd = -1; /* the console owns it from here on, even when it fails */
    if (vmm_virtio_console_create(&m->mem, irq_line(m, vmm_virtio_gsi[m->n_virtio]), fd, &v, err) <
        0)
      return -1;
    if (add_virtio(m, v, err) < 0) return -1;
  }
  if (vmm_virtio_rng_create(&m->mem, irq_line(m, vmm_virtio_gsi[m->n_virtio]), &v, err) < 0)
    return -1;
  if (add_virtio(m, v, err) < 0) return -1;
  if (cfg->balloon) {
    if (vmm_virtio_balloon_create(&m->mem, irq_line(m, vmm_virtio_gsi[m->n_virtio]),
                                  &cfg->balloon_cfg, &v, &m->balloon, err) < 0)
      return -1;
    if (add_virtio(m, v, err) < 0) return -1;
  }
  if (cfg->has_net) {
    int tap = fcntl(cfg->net.tap_fd, F_DUPFD_CLOEXEC, 3);
    if (tap < 0) return rc_err(err, errno, "network: duplicate the tap fd %d", cfg->net.tap_fd);
    if (vmm_virtio_net_create(&m->mem, irq_line(m, vmm_virtio_gsi[m->n_virtio]), tap, cfg->net.mac,
                              cfg->net.mtu, &v, err) < 0)
      return -1;
    if (add_virtio(m, v, err) < 0) return -1;
  }
  return 0;
}

static int create_vcpus(struct vmm_machine *m, uint64_t entry, struct rc_error *err) {
  int run_size = ioctl(m->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size < (int)sizeof(struct kvm_run)) return rc_err(err, errno, "KVM_GET_VCPU_MMAP_SIZE");
  size_t cpuid_bytes =
      sizeof(struct kvm_cpuid2) + VMM_CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2);
  struct kvm_cpuid2 *supported = calloc(1, cpuid_bytes);
  struct kvm_cpuid2 *cpuid = calloc(1, cpuid_bytes);
  int r = -1;
  if (!supported || !cpuid) {
    rc_err(err, errno, "allocate CPUID tables");
    goto out;
  }
  supported->nent = VMM_CPUID_MAX_ENTRIES - 16; /* room for what normalisation adds */
  if (ioctl(m->kvm_fd, KVM_GET_SUPPORTED_CPUID, supported) < 0) {
    rc_err(err, errno, "KVM_GET_SUPPORTED_CPUID");
    goto out;
  }
  bool tsc_khz_cap = ioctl(m->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GET_TSC_KHZ) > 0;
  struct vmm_cpuid_host host = {
      .tsc_deadline = ioctl(m->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0};
  for (unsigned i = 0; i < m->n_vcpus; i++) {
    struct vmm_vcpu *v = &m->vcpus[i];
    v->fd = ioctl(m->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
    if (v->fd < 0) {
      rc_err(err, errno, "KVM_CREATE_VCPU %u", i);
      goto out;
    }
    void *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (run == MAP_FAILED) {
      rc_err(err, errno, "map vCPU %u's run page", i);
      goto out;
    }
    v->run = run;
    v->run_size = (size_t)run_size;
    if (i == 0 && tsc_khz_cap) {
      int khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
      host.tsc_khz = khz > 0 ? (uint32_t)khz : 0;
    }
    unsigned n = supported->nent;
    memcpy(cpuid->entries, supported->entries, n * sizeof(supported->entries[0]));
    if (vmm_cpuid_normalize(cpuid->entries, &n, VMM_CPUID_MAX_ENTRIES, i, m->n_vcpus, &host, err) <
        0)
      goto out;
    cpuid->nent = n;
    if (vmm_vcpu_setup(v->fd, cpuid, i == 0, entry, err) < 0) {
      rc_err_wrap(err, "vCPU %u", i);
      goto out;
    }
  }
  r = 0;
out:
  free(supported);
  free(cpuid);
  return r;
}

int vmm_machine_create(const struct vmm_machine_config *cfg, struct vmm_machine **out,
                       struct rc_error *err) {
  *out = NULL;
  struct vmm_machine *m = calloc(1, sizeof(*m));
  if (!m) {
    if (cfg->agent_fd >= 0) close(cfg->agent_fd);
    return rc_err(err, errno, "allocate the machine");
  }
  m->kvm_fd = m->vm_fd = m->stopped_fd = -1;
  m->agent_fd = cfg->agent_fd;
  m->mem.memfd = -1;
  pthread_mutex_init(&m->stop_lock, NULL);
  pthread_cond_init(&m->park_cond, NULL);
  pthread_cond_init(&m->resume_cond, NULL);
  if (cfg->vcpus == 0 || cfg->vcpus > VMM_MPTABLE_MAX_CPUS) {
    rc_err(err, 0, "%u vCPUs (1..%u supported)", cfg->vcpus, VMM_MPTABLE_MAX_CPUS);
    goto fail;
  }
  if (cfg->mem_bytes < VMM_MIN_MEM) {
    rc_err(err, 0, "%llu MiB of guest memory is too little (at least %llu)",
           (unsigned long long)(cfg->mem_bytes >> 20), (unsigned long long)(VMM_MIN_MEM >> 20));
    goto fail;
  }
  if (cfg->n_disks > VMM_MAX_DISKS || !cfg->kernel_path) {
    rc_err(err, 0, "machine config: %u disks (at most %d), kernel %s", cfg->n_disks, VMM_MAX_DISKS,
           cfg->kernel_path ? "given" : "missing");
    goto fail;
  }
  m->n_vcpus = cfg->vcpus;
  m->vcpus = calloc(m->n_vcpus, sizeof(*m->vcpus));
  if (!m->vcpus) {
    rc_err(err, errno, "allocate vCPUs");
    goto fail;
  }
  for (unsigned i = 0; i < m->n_vcpus; i++)
    m->vcpus[i] = (struct vmm_vcpu){.machine = m, .index = i, .fd = -1};
  m->stopped_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (m->stopped_fd < 0) {
    rc_err(err, errno, "eventfd");
    goto fail;
  }
  uint64_t entry = 0;
  if (vmm_guest_mem_create(&m->mem, cfg->mem_bytes, err) < 0 || create_vm(m, err) < 0 ||
      add_devices(m, cfg, err) < 0 || load_boot(m, cfg, &entry, err) < 0 ||
      create_vcpus(m, entry, err) < 0)
    goto fail;
  *out = m;
  return 0;
fail:
  vmm_machine_destroy(m);
  return -1;
}

int vmm_machine_start(struct vmm_machine *m, struct rc_error *err) {
  if (m->started) return rc_err(err, 0, "machine already started");
  if (vmm_vcpu_kick_init(err) < 0) return -1;
  m->started = true;
  /* vCPU threads start with every signal blocked (the process's signals are for its
   * main thread) and unblock only their kick. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int r = 0;
  for (unsigned i = 0; i < m->n_vcpus; i++) {
    struct vmm_vcpu *v = &m->vcpus[i];
    /* the guest's exits, device models included, are handled on this thread: what a
     * guest that broke one would hold; it starts without capabilities */
    if (vmm_thread_start(&v->thread, vmm_vcpu_thread, v, err) < 0) {
      r = rc_err_wrap(err, "start vCPU %u's thread", i);
      break;
    }
    pthread_mutex_lock(&m->stop_lock);
    v->thread_started = true;
    pthread_mutex_unlock(&m->stop_lock);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r < 0) vmm_machine_end(m, VMM_STOP_FAULT, "%s", err->msg);
  return r;
}

int vmm_machine_stopped_fd(const struct vmm_machine *m) {
  return m->stopped_fd;
}

void vmm_machine_stop(struct vmm_machine *m) {
  vmm_machine_end(m, VMM_STOP_REQUESTED, "stop requested");
}

enum vmm_stop_reason vmm_machine_wait(struct vmm_machine *m, char *detail, size_t detail_size) {
  if (m->started && !m->joined) {
    for (unsigned i = 0; i < m->n_vcpus; i++)
      if (m->vcpus[i].thread_started) pthread_join(m->vcpus[i].thread, NULL);
    m->joined = true;
  }
  if (m->serial) vmm_serial_flush(m->serial);
  pthread_mutex_lock(&m->stop_lock);
  enum vmm_stop_reason reason = m->reason;
  if (detail && detail_size) snprintf(detail, detail_size, "%s", m->detail);
  pthread_mutex_unlock(&m->stop_lock);
  return reason;
}

int vmm_machine_halt(struct vmm_machine *m, int timeout_ms) {
  vmm_machine_stop(m);
  if (!m->started || m->joined) return 0;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until); /* pthread_timedjoin_np's clock */
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  for (unsigned i = 0; i < m->n_vcpus; i++) {
    if (!m->vcpus[i].thread_started) continue;
    if (pthread_timedjoin_np(m->vcpus[i].thread, NULL, &until) != 0) return -1;
    pthread_mutex_lock(&m->stop_lock); /* no kick for, and no second join of, a joined thread */
    m->vcpus[i].thread_started = false;
    pthread_mutex_unlock(&m->stop_lock);
  }
  m->joined = true;
  return 0;
}

void vmm_machine_destroy(struct vmm_machine *m) {
  if (!m) return;
  if (m->started && !m->joined) {
    vmm_machine_stop(m);
    vmm_machine_wait(m, NULL, 0);
  }
  /* Devices first: their I/O threads raise interrupts on the VM. */
  for (unsigned i = 0; i < m->n_virtio; i++) vmm_virtio_dev_destroy(m->virtio[i]);
  vmm_serial_destroy(m->serial);
  vmm_i8042_destroy(m->i8042);
  for (unsigned i = 0; m->vcpus && i < m->n_vcpus; i++) {
    if (m->vcpus[i].run) munmap(m->vcpus[i].run, m->vcpus[i].run_size);
    if (m->vcpus[i].fd >= 0) close(m->vcpus[i].fd);
  }
  free(m->vcpus);
  if (m->vm_fd >= 0) close(m->vm_fd);
  if (m->kvm_fd >= 0) close(m->kvm_fd);
  vmm_guest_mem_destroy(&m->mem);
  if (m->stopped_fd >= 0) close(m->stopped_fd);
  if (m->agent_fd >= 0) close(m->agent_fd);
  pthread_mutex_destroy(&m->stop_lock);
  pthread_cond_destroy(&m->park_cond);
  pthread_cond_destroy(&m->resume_cond);
  free(m);
}

struct vmm_balloon *vmm_machine_balloon(const struct vmm_machine *m) {
  return m->balloon;
}

size_t vmm_machine_device_faults(const struct vmm_machine *m, const char **out, size_t max) {
  size_t n = 0;
  for (unsigned i = 0; i < m->n_virtio && n < max; i++) {
    const char *f = m->virtio[i] ? vmm_virtio_dev_fault(m->virtio[i]) : NULL;
    if (f) out[n++] = f;
  }
  return n;
}

uint64_t vmm_machine_first_entry_ns(const struct vmm_machine *m) {
  return atomic_load(&m->first_entry_ns);
}
