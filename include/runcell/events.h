/* `events`: a container's cgroup statistics and OOM notifications as runc's JSON event
 * lines ({"type":"stats"|"oom","id":...,"data":...}, one per line, in runc 1.1's
 * types.Event and types.Stats shapes), once (--stats) or as a stream that ends when the
 * container's cgroup goes away. */
#ifndef RUNCELL_EVENTS_H
#define RUNCELL_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "runcell/cgroups.h"
#include "runcell/cli.h"
#include "runcell/error.h"

/* The CLI command (cmd_events.c). */
extern const struct rc_command rc_cmd_events;

/* Parses a Go time.Duration string ("5s", "500ms", "1m30s", "1.5h", "-2s", "0"), as
 * runc's --interval flag takes it, into nanoseconds. Returns -1 if it does not parse or
 * overflows. */
int rc_parse_go_duration(const char *s, int64_t *ns);

/* The stats event for s, with the fields types.Stats omits when empty left out; one
 * line without a newline. Heap string. */
char *rc_events_stats_json(const char *id, const struct rc_cgroup_stats *s);
/* {"type":"oom","id":ID}. Heap string. */
char *rc_events_oom_json(const char *id);

/* The command's work after option parsing: checks the container and the interval in
 * runc's order and words, then prints one stats event (stats_only) or streams a stats
 * event every interval_ns and an oom event per OOM in the container's cgroup, until the
 * cgroup is removed (v1) or has no process left (v2). */
int rc_container_events(const char *root, const char *id, int64_t interval_ns, bool stats_only,
                        struct rc_error *err);

#endif
