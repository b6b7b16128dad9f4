/* What containerd's shim does with `exec --detach --pid-file`, for tests: becomes a child
 * subreaper, runs the command, reads the pid it wrote to PIDFILE (no trailing newline),
 * waits for that process (reparented to us) and prints how it ended: "exit N" or
 * "signal N". Usage: subreaper PIDFILE COMMAND [ARG...] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: subreaper PIDFILE COMMAND [ARG...]\n");
    return 2;
  }
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
    perror("subreaper: PR_SET_CHILD_SUBREAPER");
    return 1;
  }
  pid_t cmd = fork();
  if (cmd < 0) return 1;
  if (cmd == 0) {
    execvp(argv[2], argv + 2);
    perror("subreaper: exec");
    _exit(127);
  }
  int status = 0;
  while (waitpid(cmd, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "subreaper: %s failed (status 0x%x)\n", argv[2], status);
    return 1;
  }
  FILE *f = fopen(argv[1], "r");
  char buf[32] = "";
  if (!f || !fgets(buf, sizeof(buf), f)) {
    fprintf(stderr, "subreaper: no pid in %s\n", argv[1]);
    return 1;
  }
  fclose(f);
  char *end;
  long pid = strtol(buf, &end, 10);
  if (end == buf || *end != '\0' || pid <= 0) {
    fprintf(stderr, "subreaper: pid file holds \"%s\"\n", buf);
    return 1;
  }
  while (waitpid((pid_t)pid, &status, 0) < 0) {
    if (errno == EINTR) continue;
    perror("subreaper: wait for the pid");
    return 1;
  }
  if (WIFSIGNALED(status))
    printf("signal %d\n", WTERMSIG(status));
  else
    printf("exit %d\n", WEXITSTATUS(status));
  return 0;
}
