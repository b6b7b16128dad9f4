#include "runcell/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int rc_err(struct rc_error *err, int errnum, const char *fmt, ...) {
  if (!err) return -1;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof(err->msg)) n = (int)sizeof(err->msg) - 1;
  if (errnum != 0) snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s", strerror(errnum));
  err->code = errnum;
  return -1;
}

int rc_err_wrap(struct rc_error *err, const char *fmt, ...) {
  if (!err) return -1;
  char prefix[RC_ERROR_MAX];
  char old[RC_ERROR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof(prefix), fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof(old));
  old[sizeof(old) - 1] = '\0';
  snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
  return -1;
}

void rc_err_clear(struct rc_error *err) {
  if (!err) return;
  err->code = 0;
  err->msg[0] = '\0';
}
