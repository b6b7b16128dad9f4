/* Error reporting: every fallible function takes a struct rc_error and returns <0 on
 * failure after filling it, so the message travels up with its context to the CLI,
 * which prints it once and writes it to the log. */
#ifndef RUNCELL_ERROR_H
#define RUNCELL_ERROR_H

#include <stddef.h>

#define RC_ERROR_MAX 2048

struct rc_error {
  int code;               /* errno of the root cause, 0 if none */
  char msg[RC_ERROR_MAX]; /* human readable, without trailing newline */
};

/* Sets the error to the formatted message; when errnum != 0, appends ": strerror".
 * Always returns -1 so callers can `return rc_err(err, errno, "...")`. */
int rc_err(struct rc_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes context to an error already set: "context: previous message". Returns -1. */
int rc_err_wrap(struct rc_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clears the error. */
void rc_err_clear(struct rc_error *err);

#endif
