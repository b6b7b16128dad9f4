#include "unit.h"

#include <errno.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int unit_failures;
int unit_checks;

int unit_run(const char *suite, const struct unit_case *cases, size_t n) {
  int failed_cases = 0;
  for (size_t i = 0; i < n; i++) {
    int before = unit_failures;
    cases[i].fn();
    int ok = unit_failures == before;
    if (!ok) failed_cases++;
    printf("%s %s.%s\n", ok ? "PASS" : "FAIL", suite, cases[i].name);
  }
  printf("%s: %zu cases, %d failed, %d checks\n", suite, n, failed_cases, unit_checks);
  return failed_cases ? 1 : 0;
}

void unit_in_child(const char *what, void (*fn)(void)) {
  fflush(NULL);
  int before = unit_failures;
  pid_t pid = fork();
  if (pid < 0) {
    CHECK(pid >= 0);
    return;
  }
  if (pid == 0) {
    fn();
    /* The raw syscall: the sanitizers' _exit hook makes syscalls a filter may forbid. */
    syscall(SYS_exit_group, unit_failures == before ? 0 : 1);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fprintf(stderr, "child \"%s\": %s %d\n", what, WIFSIGNALED(st) ? "killed by signal" : "exit",
            WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
