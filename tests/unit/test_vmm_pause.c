/* vmm_machine_pause/resume on a real guest: the guest kernel (RUNCELL_GUEST_KERNEL) boots
 * on two vCPUs with its console on a pipe; a pause taken mid-boot stops the console dead
 * (no vCPU runs), resume lets the boot go on, a burst of pause/resume cycles does no harm,
 * and a machine stopped while paused halts at once. Needs a /dev/kvm that boots a stock
 * kernel (the QEMU lane; this machine's PVM cannot): skipped, saying why, elsewhere. */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "runcell/vmm/machine.h"
#include "unit.h"

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Bytes read from fd within ms milliseconds (stops at the first quiet poll after any). */
static size_t drain(int fd, int ms) {
  size_t total = 0;
  char buf[4096];
  struct pollfd p = {.fd = fd, .events = POLLIN};
  while (poll(&p, 1, ms) == 1) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    total += (size_t)n;
  }
  return total;
}

/* Waits up to ms for the first console byte. */
static bool some_output(int fd, int ms) {
  char c;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, ms) == 1 && read(fd, &c, 1) == 1;
}

/* A machine booting the guest kernel, its console on a pipe: *console is the read end,
 * *console_w the write end (nonblocking: a full pipe drops output rather than hold a vCPU
 * in write, which would hold up a pause), closed by the caller after destroy. */
static bool boot_guest(struct vmm_machine **m, int *console, int *console_w) {
  const char *kernel = getenv("RUNCELL_GUEST_KERNEL");
  struct rc_error err = {0};
  if (!kernel) {
    printf("skip: RUNCELL_GUEST_KERNEL is not set (the lane sets it)\n");
    return false;
  }
  if (vmm_kvm_check(&err) < 0) {
    printf("skip: %s\n", err.msg);
    return false;
  }
  int p[2];
  CHECK(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
  /* the whole boot log on the console, without initrd: the kernel prints for seconds
   * (nested), then panics looking for a root and reboots, which stops the machine */
  struct vmm_machine_config cfg = {.kernel_path = kernel,
                                   .cmdline = "panic=1",
                                   .vcpus = 2,
                                   .mem_bytes = 128ULL << 20,
                                   .agent_fd = -1,
                                   .console_fd = p[1]};
  if (vmm_machine_create(&cfg, m, &err) < 0) {
    fprintf(stderr, "create: %s\n", err.msg);
    CHECK(false);
    close(p[0]);
    close(p[1]);
    return false;
  }
  *console = p[0];
  *console_w = p[1];
  return true;
}

static void test_pause_stops_the_guest(void) {
  struct vmm_machine *m;
  int console, console_w;
  if (!boot_guest(&m, &console, &console_w)) return;
  struct rc_error err = {0};
  CHECK(vmm_machine_start(m, &err) == 0);
  CHECK(some_output(console, 30000)); /* the kernel is running */
  uint64_t t = now_ms();
  CHECK(vmm_machine_pause(m, &err) == 0);
  uint64_t took = now_ms() - t;
  CHECK(vmm_machine_paused(m));
  (void)drain(console, 100); /* what was written before the pause returned */
  size_t while_paused = drain(console, 2000);
  printf("pause took %llu ms; %zu console bytes in 2 s paused\n", (unsigned long long)took,
         while_paused);
  CHECK(took < 1000);
  CHECK(while_paused == 0);
  vmm_machine_resume(m);
  CHECK(!vmm_machine_paused(m));
  size_t after = drain(console, 3000);
  printf("%zu console bytes within 3 s of resume\n", after);
  CHECK(after > 0);
  /* a burst of pauses and resumes mid-boot */
  for (int i = 0; i < 50; i++) {
    CHECK(vmm_machine_pause(m, &err) == 0);
    vmm_machine_resume(m);
    (void)drain(console, 0);
  }
  /* stopped while paused: the parked vCPUs leave at once */
  CHECK(vmm_machine_pause(m, &err) == 0);
  t = now_ms();
  CHECK(vmm_machine_halt(m, 2000) == 0);
  printf("halt of a paused machine took %llu ms\n", (unsigned long long)(now_ms() - t));
  char detail[256];
  enum vmm_stop_reason why = vmm_machine_wait(m, detail, sizeof(detail));
  CHECK(why == VMM_STOP_REQUESTED || why == VMM_STOP_RESET);
  vmm_machine_destroy(m);
  close(console);
  close(console_w);
}

/* Paused before start: the vCPUs park as they start and the guest does not run. */
static void test_pause_before_start(void) {
  struct vmm_machine *m;
  int console, console_w;
  if (!boot_guest(&m, &console, &console_w)) return;
  struct rc_error err = {0};
  CHECK(vmm_machine_pause(m, &err) == 0);
  CHECK(vmm_machine_start(m, &err) == 0);
  CHECK(drain(console, 2000) == 0);
  vmm_machine_resume(m);
  CHECK(some_output(console, 30000));
  vmm_machine_stop(m);
  (void)vmm_machine_wait(m, NULL, 0);
  vmm_machine_destroy(m);
  close(console);
  close(console_w);
}

UNIT_MAIN("vmm_pause", UNIT_CASE(test_pause_stops_the_guest), UNIT_CASE(test_pause_before_start))
