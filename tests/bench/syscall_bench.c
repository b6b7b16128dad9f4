/* Syscall costs as a program inside a container sees them: times each operation and
 * prints one JSON object of nanoseconds per operation on stdout.
 *
 * usage: syscall_bench FILE [MILLISECONDS_PER_OPERATION]
 *
 * FILE must exist and hold at least 4 KiB (the runner writes it into the rootfs, so that
 * the program needs no writable filesystem). Built static by tests/bench, so the same
 * binary runs on the host and in any rootfs. Each operation gets the same time budget
 * (default 200 ms), whatever it costs (a syscall costs 100 times more under gVisor's
 * ptrace platform than on the host), split into ROUNDS rounds whose iteration count is
 * calibrated first; the fastest round is kept: a round that a timer interrupt or another
 * process on the machine disturbed says nothing about the syscall itself. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

enum { ROUNDS = 5, BLOCK = 4096 };

static const char *file;
static int file_fd = -1;
static char block[BLOCK];

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "syscall_bench: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* Each op returns <0 on failure; the raw syscall() for getppid and sysinfo keeps the C
 * library from answering from a cache. */
static int op_getppid(void) {
  return (int)syscall(SYS_getppid) < 0 ? -1 : 0;
}

static int op_open_close(void) {
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  return close(fd);
}

static int op_stat(void) {
  struct stat st;
  return stat(file, &st);
}

static int op_read_4k(void) {
  return pread(file_fd, block, BLOCK, 0) == BLOCK ? 0 : -1;
}

/* sysinfo: in a cell the gate routes it to the cell kernel (a seccomp user notification
 * answered by a process outside the cell); everywhere else it is an ordinary syscall. */
static int op_sysinfo(void) {
  struct sysinfo si;
  return (int)syscall(SYS_sysinfo, &si);
}

/* ns per operation of op, the best of ROUNDS rounds sharing budget_ns; *iterations
 * gets the total number of calls timed. */
static double time_op(const char *name, int (*op)(void), double budget_ns, long *iterations) {
  /* calibrate (this also warms the caches and resolves lazy state) */
  long n = 1;
  double spent = 0;
  while (spent < budget_ns / ROUNDS / 20 && n < (1L << 30)) {
    n *= 2;
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
      if (op() < 0) die(name);
    spent = now_ns() - t0;
  }
  long per_round = (long)((double)n * (budget_ns / ROUNDS) / (spent > 0 ? spent : 1));
  if (per_round < 1) per_round = 1;
  double best = -1;
  for (int r = 0; r < ROUNDS; r++) {
    double t0 = now_ns();
    for (long i = 0; i < per_round; i++)
      if (op() < 0) die(name);
    double per_op = (now_ns() - t0) / (double)per_round;
    if (best < 0 || per_op < best) best = per_op;
  }
  *iterations += per_round * ROUNDS;
  return best;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: syscall_bench FILE [MILLISECONDS_PER_OPERATION]\n");
    return 2;
  }
  file = argv[1];
  long budget_ms = argc == 3 ? strtol(argv[2], NULL, 10) : 200;
  if (budget_ms <= 0) {
    fprintf(stderr, "syscall_bench: MILLISECONDS_PER_OPERATION must be a positive number\n");
    return 2;
  }
  file_fd = open(file, O_RDONLY | O_CLOEXEC);
  if (file_fd < 0) die(file);

  static const struct {
    const char *name;
    int (*op)(void);
  } ops[] = {
      {"getppid", op_getppid}, {"open_close", op_open_close}, {"stat", op_stat},
      {"read_4k", op_read_4k}, {"sysinfo", op_sysinfo},
  };
  long iterations = 0;
  printf("{\"ms_per_op\": %ld", budget_ms);
  for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
    printf(", \"%s\": %.1f", ops[i].name,
           time_op(ops[i].name, ops[i].op, (double)budget_ms * 1e6, &iterations));
  printf(", \"iterations\": %ld}\n", iterations);
  return 0;
}
