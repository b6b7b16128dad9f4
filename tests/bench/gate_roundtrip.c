/* The cost of the cell gate's paths, as a program in a container sees them (static; run by
 * tests/bench/xgate_lane.py in the MPK lane). usage: gate_roundtrip OP [MILLISECONDS]
 * prints {"OP": nanoseconds per call}. OPs:
 *   getppid       an allowed syscall (the gate's filters run, nothing else)
 *   sysinfo       the routed syscall: the cell kernel answers it in a cell
 *   bare_sigsys   a bare SIGSYS round trip: the program's own SECCOMP_RET_TRAP filter on
 *                 getpgid and an empty handler (what xgate's entry costs at the least)
 *   bare_notify   a bare seccomp user-notification round trip: the program's own
 *                 SECCOMP_RET_USER_NOTIF filter on getpgid, answered by a thread of the
 *                 same process on the same CPU (no address-space switch)
 *   bare_notify_process
 *                 the same, answered by another process on the same CPU, as notify's
 *                 supervisor is (what the notify placement costs at the least: the
 *                 switch to another address space and back is part of every answer)
 * The bare ones install their filter in a forked child, which needs no_new_privs only. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void op_getppid(void) {
  syscall(SYS_getppid);
}
static void op_sysinfo(void) {
  struct sysinfo si;
  syscall(SYS_sysinfo, &si);
}
static void op_getpgid(void) {
  syscall(SYS_getpgid, 0);
}

/* best of 5 rounds of a calibrated count within budget_ns */
static double time_op(void (*op)(void), double budget_ns) {
  long n = 1;
  double spent = 0;
  while (spent < budget_ns / 100 && n < (1L << 30)) {
    n *= 2;
    double t0 = now_ns();
    for (long i = 0; i < n; i++) op();
    spent = now_ns() - t0;
  }
  long per_round = (long)((double)n * (budget_ns / 5) / (spent > 0 ? spent : 1)) + 1;
  double best = 1e18;
  for (int r = 0; r < 5; r++) {
    double t0 = now_ns();
    for (long i = 0; i < per_round; i++) op();
    double ns = (now_ns() - t0) / (double)per_round;
    if (ns < best) best = ns;
  }
  return best;
}

static void on_sigsys(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)si, (void)uc;
}

static int install(unsigned action, unsigned flags) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getpgid, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, action),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = 4, .filter = f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -1;
  return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

static void *answer(void *arg) {
  int fd = *(int *)arg;
  struct seccomp_notif req;
  struct seccomp_notif_resp resp;
  for (;;) {
    memset(&req, 0, sizeof(req));
    if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
      if (errno == EINTR || errno == ENOENT) continue;
      return NULL;
    }
    memset(&resp, 0, sizeof(resp));
    resp.id = req.id;
    if (ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0 && errno != ENOENT) return NULL;
  }
}

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1
#endif

/* in a child: prints the result itself */
static int bare(const char *name, double budget) {
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    pid_t supervisor = 0;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
    sched_setaffinity(0, sizeof(one), &one); /* supervisor and caller on one CPU */
    if (!strcmp(name, "bare_sigsys")) {
      struct sigaction sa;
      memset(&sa, 0, sizeof(sa));
      sa.sa_sigaction = on_sigsys;
      sa.sa_flags = SA_SIGINFO;
      sigaction(SIGSYS, &sa, NULL);
      if (install(SECCOMP_RET_TRAP, 0) < 0) _exit(2);
    } else {
      int fd = install(SECCOMP_RET_USER_NOTIF, SECCOMP_FILTER_FLAG_NEW_LISTENER);
      if (fd < 0) _exit(2);
      (void)ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
      static int lfd;
      lfd = fd;
      if (!strcmp(name, "bare_notify_process")) {
        /* the answering process inherits the filter too, but makes no getpgid call */
        supervisor = fork();
        if (supervisor < 0) _exit(2);
        if (supervisor == 0) {
          answer(&lfd);
          _exit(0);
        }
      } else {
        pthread_t t;
        if (pthread_create(&t, NULL, answer, &lfd) != 0) _exit(2);
      }
    }
    printf("{\"%s\": %.1f}\n", name, time_op(op_getpgid, budget));
    fflush(stdout);
    if (supervisor > 0) { /* it would wait in RECV for ever */
      kill(supervisor, SIGKILL);
      waitpid(supervisor, NULL, 0);
    }
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "gate_roundtrip: %s: could not install its own filter\n", name);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  double budget = (argc > 2 ? atof(argv[2]) : 200) * 1e6;
  const char *op = argv[1];
  if (!strcmp(op, "getppid"))
    printf("{\"getppid\": %.1f}\n", time_op(op_getppid, budget));
  else if (!strcmp(op, "sysinfo"))
    printf("{\"sysinfo\": %.1f}\n", time_op(op_sysinfo, budget));
  else if (!strcmp(op, "bare_sigsys") || !strcmp(op, "bare_notify") ||
           !strcmp(op, "bare_notify_process"))
    return bare(op, budget);
  else
    return 2;
  return 0;
}
