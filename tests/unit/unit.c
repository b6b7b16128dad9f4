#include "unit.h"

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
