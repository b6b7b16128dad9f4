/* Stands in for mkfs.erofs in tests/unit/test_microvm_plan.c to show what the process
 * that reads a microVM's image tree can reach (src/microvm_mkfs.c confines it). Called as
 * the tool is, `mkfs.erofs --quiet OUT SRC`, it writes to OUT instead of an image:
 *   try PATH: ok N BYTES... | error MESSAGE   for each line of SRC/.probe
 *   root: NAME...                            the entries of its /
 *   caps: HEX                                its effective capabilities
 *   unshare: ok | error MESSAGE              whether it could make a mount namespace
 *   fds: N...                                the descriptors above 2 it was started with
 * Static, so that it runs wherever it is started. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  char inherited[512] = "";
  size_t used = 0;
  for (int fd = 3; fd < 1024 && used + 8 < sizeof(inherited); fd++)
    if (fcntl(fd, F_GETFD) >= 0) used += (size_t)snprintf(inherited + used, 8, " %d", fd);
  FILE *out = fopen(argv[2], "w");
  if (!out) return 3;
  char list[4096];
  snprintf(list, sizeof(list), "%s/.probe", argv[3]);
  FILE *in = fopen(list, "r");
  char line[1024];
  while (in && fgets(line, sizeof(line), in)) {
    line[strcspn(line, "\n")] = '\0';
    int fd = open(line, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      fprintf(out, "try %s: error %s\n", line, strerror(errno));
      continue;
    }
    char buf[256];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0) {
      fprintf(out, "try %s: error %s\n", line, strerror(errno));
      continue;
    }
    buf[n] = '\0';
    for (ssize_t i = 0; i < n; i++)
      if (buf[i] == '\n') buf[i] = ' ';
    fprintf(out, "try %s: ok %zd %s\n", line, n, buf);
  }
  if (in) fclose(in);
  fprintf(out, "root:");
  DIR *d = opendir("/");
  for (struct dirent *e; d && (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) fprintf(out, " %s", e->d_name);
  if (d) closedir(d);
  fprintf(out, "\n");
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
  struct __user_cap_data_struct data[2] = {0};
  if (syscall(SYS_capget, &hdr, data) == 0)
    fprintf(out, "caps: %llx\n",
            (unsigned long long)data[1].effective << 32 | (unsigned long long)data[0].effective);
  fprintf(out, "fds:%s\n", inherited);
  if (unshare(CLONE_NEWNS) == 0)
    fprintf(out, "unshare: ok\n");
  else
    fprintf(out, "unshare: error %s\n", strerror(errno));
  return fclose(out) == 0 ? 0 : 4;
}
