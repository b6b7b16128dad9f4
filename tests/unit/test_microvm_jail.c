/* The VMM's jail (src/microvm_jail.c), on a process shaped like the VMM: a main thread and
 * worker threads (the vCPUs and I/O threads) that exist before the jail is entered,
 * started as the VMM's are (vmm_thread_start: without capabilities).
 * A guest that took over the VMM runs on one of those workers, so each check is made on
 * every thread: what the kernel says about it in /proc, and what the thread itself can do.
 * Runs on any host as root (no KVM needed): the jail is host-side process confinement. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/microvm.h"
#include "runcell/vmm/thread.h"
#include "unit.h"

#define WORKERS 2

/* What a thread of the jailed process finds it can do, as one line of text. Before the
 * syscall filter: the entries in its root, whether /etc/passwd opens, its uid. After it
 * (filtered): whether its root still opens. */
static void probe(bool filtered, char *out, size_t size) {
  if (filtered) {
    int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    snprintf(out, size, "filtered open=%s", fd >= 0 ? "open" : strerror(errno));
    return;
  }
  int entries = -1;
  DIR *d = opendir("/");
  if (d) {
    entries = 0;
    struct dirent *e;
    while ((e = readdir(d)))
      if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) entries++;
    closedir(d);
  }
  int passwd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
  int passwd_errno = errno;
  if (passwd >= 0) close(passwd);
  snprintf(out, size, "entries=%d passwd=%s uid=%u", entries,
           passwd >= 0 ? "open" : strerror(passwd_errno), (unsigned)getuid());
}

struct worker {
  int go[2];     /* the main thread's "probe now" */
  int result[2]; /* the worker's probe line */
};

static void *worker_main(void *arg) {
  struct worker *w = arg;
  char c;
  /* asked twice: after the jail, then under the filter */
  while (read(w->go[0], &c, 1) == 1) {
    char line[256];
    probe(c == 'f', line, sizeof(line));
    if (write(w->result[1], line, strlen(line) + 1) < 0) return NULL;
  }
  return NULL;
}

static void probe_all(struct worker *w, bool filtered, int report) {
  char line[256];
  probe(filtered, line, sizeof(line));
  dprintf(report, "main %s\n", line);
  for (int i = 0; i < WORKERS; i++) {
    char c = filtered ? 'f' : 'j';
    if (write(w[i].go[1], &c, 1) != 1 || read(w[i].result[0], line, sizeof(line)) <= 0)
      syscall(SYS_exit_group, 1);
    line[sizeof(line) - 1] = '\0';
    dprintf(report, "worker %s\n", line);
  }
}

/* The child: threads first, then the jail, then every thread probes and reports on fd
 * report; it waits to be killed so that the parent can read its /proc. */
__attribute__((noreturn)) static void jailed_child(int report) {
  struct rc_error err = {0};
  if (rc_microvm_jail_prepare(&err) < 0) {
    dprintf(report, "prepare: %s\n", err.msg);
    syscall(SYS_exit_group, 1);
  }
  struct worker w[WORKERS];
  pthread_t t[WORKERS];
  for (int i = 0; i < WORKERS; i++) {
    /* started as the VMM starts its vCPU and I/O threads */
    if (pipe(w[i].go) < 0 || pipe(w[i].result) < 0 ||
        vmm_thread_start(&t[i], worker_main, &w[i], &err) < 0)
      syscall(SYS_exit_group, 1);
  }
  if (rc_microvm_jail_enter(&err) < 0) {
    dprintf(report, "jail: %s\n", err.msg);
    syscall(SYS_exit_group, 1);
  }
  probe_all(w, false, report);
  if (rc_microvm_jail_syscalls(&err) < 0) {
    dprintf(report, "filter: %s\n", err.msg);
    syscall(SYS_exit_group, 1);
  }
  probe_all(w, true, report);
  dprintf(report, "done\n");
  /* waits to be killed, in a call the filter allows (pause is not one: no VMM makes it) */
  char c;
  while (read(w[0].go[0], &c, 1) != 0) {
  }
  syscall(SYS_exit_group, 1);
  __builtin_unreachable();
}

static char *read_proc(pid_t pid, const char *task, const char *file) {
  char path[128];
  snprintf(path, sizeof(path), "/proc/%d/task/%s/%s", (int)pid, task, file);
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  static char buf[8192];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  return buf;
}

static void field_is(const char *status, const char *field, const char *want) {
  char key[64];
  snprintf(key, sizeof(key), "\n%s:\t", field);
  const char *p = status ? strstr(status, key) : NULL;
  char got[128] = "(missing)";
  if (p) {
    p += strlen(key);
    size_t n = strcspn(p, "\n");
    while (n > 0 && p[n - 1] == ' ') n--; /* the kernel ends Groups with a space */
    snprintf(got, sizeof(got), "%.*s", (int)n, p);
  }
  if (strcmp(got, want) != 0) fprintf(stderr, "%s: \"%s\", expected \"%s\"\n", field, got, want);
  CHECK_STR_EQ(got, want);
}

static bool skip_unless_root(void) {
  if (geteuid() == 0) return false;
  printf("SKIP: the jail needs root (mount namespaces, pivot_root)\n");
  return true;
}

static void every_thread_is_jailed(void) {
  if (skip_unless_root()) return;
  int rep[2];
  CHECK(pipe(rep) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid < 0) return;
  if (pid == 0) {
    close(rep[0]);
    jailed_child(rep[1]);
  }
  close(rep[1]);
  char report[4096] = "";
  size_t len = 0;
  while (len < sizeof(report) - 1 && !strstr(report, "done\n")) {
    ssize_t n = read(rep[0], report + len, sizeof(report) - 1 - len);
    if (n <= 0) break;
    len += (size_t)n;
    report[len] = '\0';
  }
  close(rep[0]);
  CHECK_CONTAINS(report, "done\n");
  /* from inside, on the main thread and both workers: nothing in the root (uid 0 and no
   * capability: a root-owned file would open were one there);
   * then under the filter an open is refused (EACCES) and the thread lives on */
  static const char *const want[] = {"entries=0 passwd=No such file or directory uid=0",
                                     "filtered open=Permission denied"};
  for (size_t i = 0; i < 2; i++) {
    char line[300];
    snprintf(line, sizeof(line), "main %s\nworker %s\nworker %s\n", want[i], want[i], want[i]);
    CHECK_CONTAINS(report, line);
  }
  if (!strstr(report, "done\n")) fprintf(stderr, "child's report: %s\n", report);

  /* from the host: each thread's capability sets, ids, no_new_privs, filter and root */
  char dir[64];
  snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
  DIR *d = opendir(dir);
  CHECK(d != NULL);
  int threads = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    threads++;
    const char *st = read_proc(pid, e->d_name, "status");
    CHECK(st != NULL);
    static const char *const zero_sets[] = {"CapPrm", "CapEff", "CapAmb", "CapBnd"};
    for (size_t i = 0; i < sizeof(zero_sets) / sizeof(zero_sets[0]); i++)
      field_is(st, zero_sets[i], "0000000000000000");
    field_is(st, "NoNewPrivs", "1");
    field_is(st, "Seccomp", "2");
    char root[128];
    snprintf(root, sizeof(root), "/proc/%d/task/%s/root", (int)pid, e->d_name);
    DIR *r = opendir(root);
    if (!r) fprintf(stderr, "opendir %s: %s\n", root, strerror(errno));
    CHECK(r != NULL);
    int entries = 0;
    struct dirent *re;
    while (r && (re = readdir(r)))
      if (strcmp(re->d_name, ".") != 0 && strcmp(re->d_name, "..") != 0) entries++;
    if (r) closedir(r);
    CHECK(entries == 0);
  }
  if (d) closedir(d);
  CHECK(threads == 1 + WORKERS);
  /* its namespace holds one mount, read-only */
  char tid[32];
  snprintf(tid, sizeof(tid), "%d", (int)pid);
  const char *mi = read_proc(pid, tid, "mountinfo");
  CHECK(mi != NULL && strchr(mi, '\n') == mi + strlen(mi) - 1);
  CHECK_CONTAINS(mi, " / / ro,");
  kill(pid, SIGKILL);
  CHECK(waitpid(pid, NULL, 0) == pid);
}

/* ---- the filter: what it kills, what it lets through ------------------------------------- */

enum attempt {
  TGKILL_OTHER,
  TIOCSTI_INJECT,
  NEW_SOCKET,
  EXECVE,
  DUMPABLE,
  SIGNAL_BY_FCNTL,
  ALLOWED_CALLS
};

static int attempt_under_filter(enum attempt a) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    struct rc_error err = {0};
    int fds[2];
    if (pipe(fds) < 0) syscall(SYS_exit_group, 4);
    if (rc_microvm_jail_syscalls(&err) < 0) syscall(SYS_exit_group, 3);
    char c = 'x';
    switch (a) {
      case TGKILL_OTHER: /* signal 0 only asks: the filter must not let it be asked */
        syscall(SYS_tgkill, getppid(), getppid(), 0);
        break;
      case TIOCSTI_INJECT:
        ioctl(0, TIOCSTI, &c);
        break;
      case NEW_SOCKET:
        syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
        break;
      case EXECVE:
        syscall(SYS_execve, "/bin/true", (char *[]){"true", NULL}, (char *[]){NULL});
        break;
      case DUMPABLE: /* would open the VMM to ptrace by its uid */
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        break;
      case SIGNAL_BY_FCNTL: /* the kernel would signal the owner on I/O */
        fcntl(fds[0], F_SETOWN, getppid());
        fcntl(fds[0], F_SETFL, O_ASYNC | O_NONBLOCK);
        break;
      case ALLOWED_CALLS: {
        struct winsize ws;
        /* allowed requests answer (ENOTTY on a pipe is an answer); a signal to itself */
        if (ioctl(fds[0], TIOCGWINSZ, &ws) == 0 || errno != ENOTTY) syscall(SYS_exit_group, 5);
        if (syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), 0) < 0) syscall(SYS_exit_group, 6);
        if (openat(AT_FDCWD, "/", O_RDONLY | O_DIRECTORY) >= 0 || errno != EACCES)
          syscall(SYS_exit_group, 7);
        /* create's end (the parent-death signal off), reaping the hooks' runner */
        if (prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0) < 0) syscall(SYS_exit_group, 8);
        /* its own flags: non-blocking, close-on-exec */
        if (fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK) < 0 ||
            fcntl(fds[0], F_SETFD, FD_CLOEXEC) < 0)
          syscall(SYS_exit_group, 10);
        if (waitpid(-1, NULL, WNOHANG) >= 0 || errno != ECHILD) syscall(SYS_exit_group, 9);
        syscall(SYS_exit_group, 0);
      }
    }
    syscall(SYS_exit_group, 2); /* the filter let it through */
  }
  int st = 0;
  if (waitpid(pid, &st, 0) != pid) return -1;
  return st;
}

static void filter_kills_what_a_vmm_never_does(void) {
  if (skip_unless_root()) return;
  static const struct {
    enum attempt a;
    const char *what;
  } kills[] = {{TGKILL_OTHER, "a signal to another process"},
               {TIOCSTI_INJECT, "an ioctl outside the list"},
               {NEW_SOCKET, "a new socket"},
               {EXECVE, "execve"},
               {DUMPABLE, "prctl(PR_SET_DUMPABLE)"},
               {SIGNAL_BY_FCNTL, "fcntl(F_SETOWN)"}};
  for (size_t i = 0; i < sizeof(kills) / sizeof(kills[0]); i++) {
    int st = attempt_under_filter(kills[i].a);
    if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS))
      fprintf(stderr, "%s: status 0x%x, not killed by SIGSYS\n", kills[i].what, st);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
  }
  int st = attempt_under_filter(ALLOWED_CALLS);
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) fprintf(stderr, "allowed calls: status 0x%x\n", st);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

UNIT_MAIN("microvm_jail", UNIT_CASE(every_thread_is_jailed),
          UNIT_CASE(filter_kills_what_a_vmm_never_does))
