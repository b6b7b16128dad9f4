/* The balloon against the real Linux driver: the guest kernel (RUNCELL_GUEST_KERNEL) with
 * the agent initrd (RUNCELL_AGENT_INITRD), which boots to the agent and waits for its
 * host, on a machine whose balloon target is 64 MiB below its RAM from the start: the
 * driver inflates to it (pages given back to the host), posts its statistics, answers a
 * request for fresh ones, and deflates when the target goes back up. Needs a /dev/kvm
 * that boots a stock kernel (the QEMU lane): skipped, saying why, elsewhere. */
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "runcell/vmm/machine.h"
#include "unit.h"

#define MiB (1ULL << 20)
#define RAM (256 * MiB)
#define WAIT_MS 60000

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Polls the counters until the guest's `actual` is want (or the wait runs out). */
static bool actual_reaches(struct vmm_balloon *b, uint64_t want, struct vmm_balloon_counters *c) {
  for (uint64_t until = now_ms() + WAIT_MS; now_ms() < until; usleep(100000)) {
    vmm_balloon_counters(b, c);
    if (c->actual_bytes == want) return true;
  }
  return false;
}

static bool stats_within(struct vmm_balloon *b, int ms) {
  struct pollfd p = {.fd = vmm_balloon_stats_fd(b), .events = POLLIN};
  return poll(&p, 1, ms) == 1;
}

static void test_real_driver(void) {
  const char *kernel = getenv("RUNCELL_GUEST_KERNEL");
  const char *initrd = getenv("RUNCELL_AGENT_INITRD");
  struct rc_error err = {0};
  if (!kernel || !initrd) {
    printf(
        "skip: RUNCELL_GUEST_KERNEL and RUNCELL_AGENT_INITRD are not set (the lane sets them)\n");
    return;
  }
  if (vmm_kvm_check(&err) < 0) {
    printf("skip: %s\n", err.msg);
    return;
  }
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  struct vmm_machine_config cfg = {
      .kernel_path = kernel,
      .initrd_path = initrd,
      .cmdline = "quiet",
      .vcpus = 1,
      .mem_bytes = RAM,
      .agent_fd = sv[1], /* the agent says HELLO on it and waits: an idle, live guest */
      .console_fd = -1,
      .balloon = true,
      .balloon_cfg = {.free_page_reporting = true, .deflate_on_oom = true, .stats = true}};
  struct vmm_machine *m;
  if (vmm_machine_create(&cfg, &m, &err) < 0) {
    fprintf(stderr, "create: %s\n", err.msg);
    CHECK(false);
    close(sv[0]);
    return;
  }
  struct vmm_balloon *b = vmm_machine_balloon(m);
  CHECK(b != NULL);
  CHECK(vmm_balloon_set_target_bytes(b, RAM - 64 * MiB, &err) == 0);
  uint64_t t0 = now_ms();
  CHECK(vmm_machine_start(m, &err) == 0);

  struct vmm_balloon_counters c = {0};
  CHECK(actual_reaches(b, 64 * MiB, &c));
  printf(
      "inflated to %llu MiB in %llu ms: %llu MiB inflated, %llu MiB given back to the host, "
      "%llu MiB reported free in %llu reports\n",
      (unsigned long long)(c.actual_bytes >> 20), (unsigned long long)(now_ms() - t0),
      (unsigned long long)(c.inflated_bytes >> 20), (unsigned long long)(c.returned_bytes >> 20),
      (unsigned long long)(c.reported_bytes >> 20), (unsigned long long)c.reports);
  CHECK(c.inflated_bytes >= 64 * MiB && c.returned_bytes >= 64 * MiB);
  CHECK(c.stats_negotiated && c.reporting_negotiated && c.discard_failures == 0);

  /* the driver primed the statistics queue at probe; a request brings fresh figures */
  CHECK(stats_within(b, WAIT_MS));
  struct vmm_balloon_stats s;
  vmm_balloon_read_stats(b, &s);
  CHECK(s.seq >= 1);
  CHECK(vmm_balloon_request_stats(b, &err) == 0);
  CHECK(stats_within(b, WAIT_MS));
  struct vmm_balloon_stats s2;
  vmm_balloon_read_stats(b, &s2);
  printf("stats #%llu: total %llu MiB, free %llu MiB, available %llu MiB\n",
         (unsigned long long)s2.seq, (unsigned long long)(s2.value[VMM_BALLOON_STAT_TOTAL] >> 20),
         (unsigned long long)(s2.value[VMM_BALLOON_STAT_FREE] >> 20),
         (unsigned long long)(s2.value[VMM_BALLOON_STAT_AVAILABLE] >> 20));
  CHECK(s2.seq > s.seq);
  CHECK(s2.valid & (1u << VMM_BALLOON_STAT_TOTAL) && s2.valid & (1u << VMM_BALLOON_STAT_FREE));
  /* with DEFLATE_ON_OOM the driver leaves balloon pages in the guest's total */
  CHECK(s2.value[VMM_BALLOON_STAT_TOTAL] > 0 && s2.value[VMM_BALLOON_STAT_TOTAL] <= RAM);
  CHECK(s2.value[VMM_BALLOON_STAT_FREE] < s2.value[VMM_BALLOON_STAT_TOTAL]);

  /* the target back to all of RAM: the driver deflates */
  CHECK(vmm_balloon_set_target_bytes(b, RAM, &err) == 0);
  CHECK(actual_reaches(b, 0, &c));
  CHECK(c.deflated_bytes >= 64 * MiB);
  CHECK(vmm_machine_halt(m, 2000) == 0);
  char detail[256];
  CHECK(vmm_machine_wait(m, detail, sizeof(detail)) == VMM_STOP_REQUESTED);
  vmm_machine_destroy(m);
  close(sv[0]);
}

UNIT_MAIN("vmm_balloon_guest", UNIT_CASE(test_real_driver))
