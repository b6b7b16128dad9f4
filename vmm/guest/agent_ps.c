/* PS: the guest's processes for `runcell ps`. Every process in the guest but the agent
 * itself (PID 1) and the kernel's threads belongs to the container, so the list is /proc
 * without those: pid, parent, owner, terminal, CPU time and command line. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

#define PF_KTHREAD 0x00200000u

/* The stat fields after the command name: "S ppid pgrp session tty_nr tpgid flags minflt
 * cminflt majflt cmajflt utime stime ...". */
struct stat_fields {
  unsigned long ppid, tty_nr, flags, utime, stime;
};

static bool read_stat(int dir, struct stat_fields *s) {
  char buf[1024];
  int fd = openat(dir, "stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  /* the command name may hold anything, spaces and parentheses included: skip to the last ')' */
  char *p = strrchr(buf, ')');
  if (!p) return false;
  /* fields 3.. (state first): keep 4 ppid, 7 tty_nr, 9 flags, 14 utime, 15 stime */
  unsigned long *keep[16] = {
      [4] = &s->ppid, [7] = &s->tty_nr, [9] = &s->flags, [14] = &s->utime, [15] = &s->stime};
  char *save = NULL;
  int field = 3;
  for (char *tok = strtok_r(p + 1, " ", &save); tok && field <= 15;
       tok = strtok_r(NULL, " ", &save), field++) {
    if (!keep[field]) continue;
    char *end;
    /* tty_nr and tpgid may be negative elsewhere; these five never are */
    *keep[field] = strtoul(tok, &end, 10);
    if (end == tok) return false;
  }
  return field > 15;
}

/* The command line with its NULs as spaces; "[comm]" when it has none (a zombie). */
static void read_cmd(int dir, char *out, size_t size) {
  out[0] = '\0';
  int fd = openat(dir, "cmdline", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, out, size - 1) : -1;
  if (fd >= 0) close(fd);
  if (n > 0) {
    while (n > 0 && out[n - 1] == '\0') n--;
    for (ssize_t i = 0; i < n; i++)
      if (out[i] == '\0') out[i] = ' ';
    out[n] = '\0';
    return;
  }
  char comm[64] = "";
  fd = openat(dir, "comm", O_RDONLY | O_CLOEXEC);
  n = fd >= 0 ? read(fd, comm, sizeof(comm) - 1) : -1;
  if (fd >= 0) close(fd);
  if (n > 0) comm[n] = '\0';
  comm[strcspn(comm, "\n")] = '\0';
  snprintf(out, size, "[%s]", comm);
}

int agent_list_processes(struct agent_ps_reply *r, struct rc_error *err) {
  r->n = 0;
  r->truncated = false;
  r->entries = calloc(AGENT_MAX_PS_ENTRIES, sizeof(*r->entries));
  if (!r->entries) return rc_err(err, ENOMEM, "ps");
  DIR *d = opendir("/proc");
  if (!d) {
    free(r->entries);
    r->entries = NULL;
    return rc_err(err, errno, "open /proc");
  }
  const struct dirent *e;
  while ((e = readdir(d))) {
    char *end;
    unsigned long pid = strtoul(e->d_name, &end, 10);
    if (*end || pid <= 1 || pid > (1u << 22)) continue;
    int pfd = openat(dirfd(d), e->d_name, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0) continue; /* gone meanwhile */
    struct stat_fields sf;
    struct stat st;
    if (!read_stat(pfd, &sf) || (sf.flags & PF_KTHREAD) || fstat(pfd, &st) < 0) {
      close(pfd);
      continue;
    }
    if (r->n == AGENT_MAX_PS_ENTRIES) {
      close(pfd);
      r->truncated = true;
      break;
    }
    struct agent_ps_entry *p = &r->entries[r->n++];
    p->pid = (uint32_t)pid;
    p->ppid = (uint32_t)sf.ppid;
    p->uid = (uint32_t)st.st_uid;
    p->tty_nr = (uint32_t)sf.tty_nr;
    p->cpu_ticks = (uint64_t)sf.utime + sf.stime;
    read_cmd(pfd, p->cmd, sizeof(p->cmd));
    close(pfd);
  }
  closedir(d);
  return 0;
}
