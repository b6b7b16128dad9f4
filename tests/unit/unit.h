/* A minimal unit-test harness: CHECK records a failure with file:line and goes on;
 * each test binary returns non-zero if any check failed. */
#ifndef RUNCELL_UNIT_H
#define RUNCELL_UNIT_H

#include <stdio.h>
#include <string.h>

extern int unit_failures;
extern int unit_checks;

#define CHECK(cond)                                                            \
  do {                                                                         \
    unit_checks++;                                                             \
    if (!(cond)) {                                                             \
      unit_failures++;                                                         \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

#define CHECK_STR_EQ(a, b)                                                      \
  do {                                                                          \
    const char *unit_a_ = (a), *unit_b_ = (b);                                  \
    unit_checks++;                                                              \
    if (!unit_a_ || !unit_b_ || strcmp(unit_a_, unit_b_) != 0) {                \
      unit_failures++;                                                          \
      fprintf(stderr, "%s:%d: expected \"%s\" == \"%s\"\n", __FILE__, __LINE__, \
              unit_a_ ? unit_a_ : "(null)", unit_b_ ? unit_b_ : "(null)");      \
    }                                                                           \
  } while (0)

#define CHECK_CONTAINS(hay, needle)                                                  \
  do {                                                                               \
    const char *unit_h_ = (hay), *unit_n_ = (needle);                                \
    unit_checks++;                                                                   \
    if (!unit_h_ || !strstr(unit_h_, unit_n_)) {                                     \
      unit_failures++;                                                               \
      fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, \
              unit_h_ ? unit_h_ : "(null)", unit_n_);                                \
    }                                                                                \
  } while (0)

typedef void (*unit_fn)(void);

/* Runs fn in a forked child (for tests that change the process: seccomp filters, uids,
 * capabilities) and records one failure here if any of its checks failed or it died. */
void unit_in_child(const char *what, void (*fn)(void));
struct unit_case {
  const char *name;
  unit_fn fn;
};
/* Runs the cases, prints one line per case and a summary; returns the exit status. */
int unit_run(const char *suite, const struct unit_case *cases, size_t n);

#define UNIT_MAIN(suite, ...)                                           \
  int main(void) {                                                      \
    static const struct unit_case cases_[] = {__VA_ARGS__};             \
    return unit_run(suite, cases_, sizeof(cases_) / sizeof(cases_[0])); \
  }
#define UNIT_CASE(fn) \
  { #fn, fn }

#endif
