/* runcell-vmm-boot: boots a kernel on runcell's VMM with nothing else around it, the
 * serial console on stdout; for the hardware lane and for benchmarks.
 *
 *   runcell-vmm-boot --kernel K [--initrd I] [--cmdline S] [--mem MiB] [--cpus N]
 *                    [--disk PATH[:ro]]... [--timeout SECONDS]
 *
 * Prints the stop reason and phase timings on stderr; exits 0 when the guest reset or
 * powered off, 1 on a fault or timeout, 2 on a usage or setup error. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runcell/vmm/machine.h"

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void usage(void) {
  fprintf(stderr,
          "usage: runcell-vmm-boot --kernel K [--initrd I] [--cmdline S] [--mem MiB] "
          "[--cpus N] [--disk PATH[:ro]]... [--timeout SECONDS]\n");
}

static const char *reason_name(enum vmm_stop_reason r) {
  switch (r) {
    case VMM_STOP_NONE:
      return "none";
    case VMM_STOP_RESET:
      return "reset";
    case VMM_STOP_SHUTDOWN:
      return "shutdown";
    case VMM_STOP_FAULT:
      return "fault";
    case VMM_STOP_REQUESTED:
      return "requested";
  }
  return "?";
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || end == s || *end || v == 0 || v > max) return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  uint64_t t_start = now_ns();
  struct vmm_machine_config cfg = {
      .vcpus = 1, .mem_bytes = 256ULL << 20, .agent_fd = -1, .console_fd = 1};
  unsigned long timeout_s = 0, v;
  static const struct option opts[] = {
      {"kernel", required_argument, NULL, 'k'},  {"initrd", required_argument, NULL, 'i'},
      {"cmdline", required_argument, NULL, 'c'}, {"mem", required_argument, NULL, 'm'},
      {"cpus", required_argument, NULL, 'n'},    {"disk", required_argument, NULL, 'd'},
      {"timeout", required_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (opt) {
      case 'k':
        cfg.kernel_path = optarg;
        break;
      case 'i':
        cfg.initrd_path = optarg;
        break;
      case 'c':
        cfg.cmdline = optarg;
        break;
      case 'm':
        if (parse_uint(optarg, 1UL << 20, &v) < 0) return usage(), 2;
        cfg.mem_bytes = (uint64_t)v << 20;
        break;
      case 'n':
        if (parse_uint(optarg, 255, &v) < 0) return usage(), 2;
        cfg.vcpus = (unsigned)v;
        break;
      case 'd': {
        if (cfg.n_disks == VMM_MAX_DISKS) return usage(), 2;
        struct vmm_disk *d = &cfg.disks[cfg.n_disks++];
        size_t len = strlen(optarg);
        d->read_only = len > 3 && strcmp(optarg + len - 3, ":ro") == 0;
        if (d->read_only) optarg[len - 3] = '\0';
        d->path = optarg;
        break;
      }
      case 't':
        if (parse_uint(optarg, 86400, &timeout_s) < 0) return usage(), 2;
        break;
      default:
        return usage(), 2;
    }
  }
  if (!cfg.kernel_path || optind != argc) return usage(), 2;

  struct rc_error err = {0};
  if (vmm_kvm_check(&err) < 0) {
    fprintf(stderr, "runcell-vmm-boot: %s\n", err.msg);
    return 2;
  }
  uint64_t t_create = now_ns();
  struct vmm_machine *m;
  if (vmm_machine_create(&cfg, &m, &err) < 0) {
    fprintf(stderr, "runcell-vmm-boot: %s\n", err.msg);
    return 2;
  }
  uint64_t t_created = now_ns();
  if (vmm_machine_start(m, &err) < 0) {
    fprintf(stderr, "runcell-vmm-boot: %s\n", err.msg);
    vmm_machine_destroy(m);
    return 2;
  }
  struct pollfd pfd = {.fd = vmm_machine_stopped_fd(m), .events = POLLIN};
  int ready;
  do {
    ready = poll(&pfd, 1, timeout_s ? (int)(timeout_s * 1000) : -1);
  } while (ready < 0 && errno == EINTR);
  bool timed_out = ready == 0;
  if (timed_out) vmm_machine_stop(m);
  char detail[256];
  enum vmm_stop_reason reason = vmm_machine_wait(m, detail, sizeof(detail));
  uint64_t t_end = now_ns();
  uint64_t first = vmm_machine_first_entry_ns(m);
  fflush(stdout);
  fprintf(stderr, "runcell-vmm-boot: stopped: %s%s (%s)\n", reason_name(reason),
          timed_out ? ", timed out" : "", detail);
  fprintf(stderr,
          "runcell-vmm-boot: timings: create %.3f ms, VMM start to first guest entry %.3f ms, "
          "first entry to stop %.3f ms\n",
          (double)(t_created - t_create) / 1e6, first ? (double)(first - t_start) / 1e6 : -1.0,
          first ? (double)(t_end - first) / 1e6 : -1.0);
  vmm_machine_destroy(m);
  if (timed_out) return 1;
  return reason == VMM_STOP_RESET || reason == VMM_STOP_SHUTDOWN ? 0 : 1;
}
