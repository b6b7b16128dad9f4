/* The runtime's log: --log FILE with --log-format text|json. JSON lines are runc's
 * ({"level":"error","msg":"...","time":"RFC 3339"}): containerd's shim reports the last
 * error line's msg when a command fails. Without --log, messages go to stderr only. */
#ifndef RUNCELL_LOG_H
#define RUNCELL_LOG_H

#include <stdbool.h>

enum rc_log_level { RC_LOG_DEBUG, RC_LOG_INFO, RC_LOG_WARN, RC_LOG_ERROR };

/* path NULL: no log file. format "text" or "json". */
int rc_log_init(const char *path, const char *format, bool debug);
void rc_log(enum rc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define rc_debug(...) rc_log(RC_LOG_DEBUG, __VA_ARGS__)
#define rc_info(...) rc_log(RC_LOG_INFO, __VA_ARGS__)
#define rc_warn(...) rc_log(RC_LOG_WARN, __VA_ARGS__)
/* The log file's fd (or -1) so a child can keep writing to it. */
int rc_log_fd(void);
/* The log's descriptor is at least this (see rc_log_init). */
#define RC_LOG_FD_MIN 256
bool rc_log_json(void);

#endif
