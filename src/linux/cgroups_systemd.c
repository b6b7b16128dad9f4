/* The systemd cgroup driver: a container's cgroup is a transient systemd unit, made and
 * changed over D-Bus (include/runcell/cgroups_systemd.h says what and why).
 *
 * The facts this follows (systemd's org.freedesktop.systemd1 API, runc's docs/systemd.md):
 * - StartTransientUnit(name, mode, properties a(sv), aux a(sa(sv))) returns a job; the
 *   unit exists once the Manager's JobRemoved(id, job, unit, result) signal names that job
 *   with result "done". StopUnit and the job's end work the same way.
 * - A scope must be started with at least one process (PIDs); systemd moves it in.
 * - Delegate=yes hands the scope's subtree to us (runcell-cellk below it, v2 controllers).
 * - DevicePolicy/DeviceAllow go in with the start, as runc gives them: a unit with a device
 *   policy of its own keeps it through systemd's realizes (daemon-reload, property changes)
 *   whatever a systemd version does for a unit without one. Given after the start (runc
 *   1.1.5 sets them with SetUnitProperties), systemd 252 moves the container out of the
 *   scope's v1 devices cgroup into the slice's, which allows every device. */
#include "runcell/cgroups_systemd.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "cgroups_internal.h"
#include "runcell/log.h"
#include "runcell/util.h"

#define SYSTEMD_DEST "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER "org.freedesktop.systemd1.Manager"
/* How long a job (start or stop) may take before the command gives up, as runc. */
#define JOB_TIMEOUT_MS 30000
#define USEC_INFINITY UINT64_MAX
#define DEFAULT_CPU_PERIOD 100000
#define MAX_CPUSET_ID 8191

/* ---------------------------------------------------------------------------------------
 * libsystemd, loaded on first use
 * ------------------------------------------------------------------------------------- */

#define SD_FUNCTIONS(X)             \
  X(sd_bus_open_system)             \
  X(sd_bus_new)                     \
  X(sd_bus_set_address)             \
  X(sd_bus_start)                   \
  X(sd_bus_flush_close_unref)       \
  X(sd_bus_message_new_method_call) \
  X(sd_bus_message_append)          \
  X(sd_bus_message_append_basic)    \
  X(sd_bus_message_append_array)    \
  X(sd_bus_message_open_container)  \
  X(sd_bus_message_close_container) \
  X(sd_bus_message_unref)           \
  X(sd_bus_message_read)            \
  X(sd_bus_call)                    \
  X(sd_bus_call_method)             \
  X(sd_bus_match_signal)            \
  X(sd_bus_slot_unref)              \
  X(sd_bus_process)                 \
  X(sd_bus_wait)                    \
  X(sd_bus_get_property_string)     \
  X(sd_bus_error_free)              \
  X(sd_bus_error_has_name)

static struct {
  bool loaded;
#define SD_MEMBER(f) __typeof__(f) *(f);
  SD_FUNCTIONS(SD_MEMBER)
#undef SD_MEMBER
} sd;

static int load_libsystemd(struct rc_error *err) {
  if (sd.loaded) return 0;
  /* Never unloaded: the pointers below stay valid for the process's life. */
  void *lib = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
  if (!lib)
    return rc_err(err, 0,
                  "systemd cgroup driver: cannot load libsystemd.so.0 (%s); install libsystemd0 "
                  "or run without --systemd-cgroup",
                  dlerror());
#define SD_LOAD(f)                         \
  sd.f = (__typeof__(sd.f))dlsym(lib, #f); \
  if (!sd.f) return rc_err(err, 0, "systemd cgroup driver: libsystemd.so.0 has no %s", #f);
  SD_FUNCTIONS(SD_LOAD)
#undef SD_LOAD
  sd.loaded = true;
  return 0;
}

static void bus_close(sd_bus **bus) {
  if (*bus) sd.sd_bus_flush_close_unref(*bus);
  *bus = NULL;
}

static void message_unref(sd_bus_message **m) {
  if (*m) sd.sd_bus_message_unref(*m);
  *m = NULL;
}

static void bus_error_free(sd_bus_error *e) {
  if (sd.loaded) sd.sd_bus_error_free(e);
}

#define cleanup_bus __attribute__((cleanup(bus_close)))
#define cleanup_message __attribute__((cleanup(message_unref)))
#define cleanup_bus_error __attribute__((cleanup(bus_error_free)))

static const char *bus_address(void) {
  const char *a = getenv("DBUS_SYSTEM_BUS_ADDRESS");
  return a && *a ? a : "unix:path=/run/dbus/system_bus_socket";
}

#define SYSTEMD_PRIVATE_SOCKET "/run/systemd/private"

/* systemd's own socket, for root: a direct connection (no bus daemon, so no Hello), on
 * which systemd sends every connection its job signals. */
static int open_private(sd_bus **bus) {
  sd_bus *b = NULL;
  int r = sd.sd_bus_new(&b);
  if (r < 0) return r;
  r = sd.sd_bus_set_address(b, "unix:path=" SYSTEMD_PRIVATE_SOCKET);
  if (r >= 0) r = sd.sd_bus_start(b);
  if (r < 0) {
    sd.sd_bus_flush_close_unref(b);
    return r;
  }
  *bus = b;
  return 0;
}

/* The system bus (DBUS_SYSTEM_BUS_ADDRESS or its default), and for root systemd's private
 * socket when that fails: as runc (go-systemd) does, so a host whose D-Bus daemon is down
 * or absent still works. */
static int bus_open(sd_bus **bus, struct rc_error *err) {
  if (load_libsystemd(err) < 0) return -1;
  int r = sd.sd_bus_open_system(bus);
  if (r >= 0) return 0;
  int r_private = -EPERM;
  if (geteuid() == 0) {
    r_private = open_private(bus);
    if (r_private >= 0) {
      rc_debug("systemd cgroup driver: system bus at %s: %s; using %s", bus_address(), strerror(-r),
               SYSTEMD_PRIVATE_SOCKET);
      return 0;
    }
  }
  /* sd_booted()'s test, which runc's IsRunningSystemd uses too: say it in runc's words */
  struct stat st;
  bool booted = lstat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode);
  return rc_err(err, 0, "%s (--systemd-cgroup): the system bus at %s: %s; %s: %s",
                booted ? "systemd cgroup driver: cannot reach systemd"
                       : "systemd not running on this host, cannot use systemd cgroups manager",
                bus_address(), strerror(-r), SYSTEMD_PRIVATE_SOCKET,
                geteuid() == 0 ? strerror(-r_private) : "only for root");
}

/* The text of a failed call: the D-Bus error's message, else the errno's. */
static const char *call_error(const sd_bus_error *e, int r) {
  if (e && e->message) return e->message;
  if (e && e->name) return e->name;
  return strerror(-r);
}

/* ---------------------------------------------------------------------------------------
 * Names and paths
 * ------------------------------------------------------------------------------------- */

/* systemd's unit name characters (unit_name_is_valid): letters, digits and ":-_.\". */
static bool unit_chars_valid(const char *s) {
  for (const char *c = s; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
          strchr(":-_.\\", *c)))
      return false;
  return true;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t ls = strlen(s), lx = strlen(suffix);
  return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* systemd's cg_escape (252): the cgroup directory of a unit, and of each slice above it, is
 * the unit's name with a "_" put before it when the name starts with "_" or ".", is a
 * cgroup file's name, or is "<controller>.<suffix>" ("pids.slice", "cpu.slice"). Without
 * it runcell made and joined "/pids.slice/..." while systemd's unit was "/_pids.slice/...":
 * the container ran outside its unit (which went inactive once the stand-in ended). */
static char *cg_escape(const char *name) {
  /* systemd 252's cgroup_controller_table */
  static const char controllers[] =
      " cpu cpuacct cpuset io blkio memory devices pids bpf-firewall bpf-devices bpf-foreign "
      "bpf-socket-bind bpf-restrict-network-interfaces ";
  bool prefix = name[0] == '_' || name[0] == '.' || strcmp(name, "notify_on_release") == 0 ||
                strcmp(name, "release_agent") == 0 || strcmp(name, "tasks") == 0 ||
                strncmp(name, "cgroup.", 7) == 0;
  const char *dot = strrchr(name, '.');
  if (!prefix && dot && dot > name) {
    cleanup_free char *word = rc_xasprintf(" %.*s ", (int)(dot - name), name);
    prefix = strstr(controllers, word) != NULL;
  }
  return rc_xasprintf("%s%s", prefix ? "_" : "", name);
}

int rc_systemd_expand_slice(const char *slice, char **out, struct rc_error *err) {
  *out = NULL;
  if (strcmp(slice, "-.slice") == 0) {
    *out = rc_xstrdup("/");
    return 0;
  }
  /* The failures return -1 themselves: the analyzer cannot see that rc_err always does. */
  if (!ends_with(slice, ".slice") || strchr(slice, '/') || !unit_chars_valid(slice)) {
    rc_err(err, 0, "invalid slice name \"%s\": want NAME.slice, without '/'", slice);
    return -1;
  }
  size_t len = strlen(slice) - strlen(".slice");
  if (len == 0 || slice[0] == '-' || slice[len - 1] == '-' || strstr(slice, "--")) {
    rc_err(err, 0,
           "invalid slice name \"%s\": dashes separate the parent slices' names, so the name "
           "cannot start or end with one or hold two in a row",
           slice);
    return -1;
  }
  /* "a-b-c.slice" lives in "a-b.slice", which lives in "a.slice" (each escaped). */
  size_t cap = 2 * (len + 2) * (len + 2) + 16, used = 0;
  char *p = rc_xmalloc(cap);
  for (size_t i = 0; i <= len; i++) {
    if (i < len && slice[i] != '-') continue;
    cleanup_free char *name = rc_xasprintf("%.*s.slice", (int)i, slice);
    cleanup_free char *dir = cg_escape(name);
    used += (size_t)snprintf(p + used, cap - used, "/%s", dir);
  }
  *out = p;
  return 0;
}

void rc_systemd_unit_free(struct rc_systemd_unit *u) {
  free(u->unit);
  free(u->slice);
  free(u->path);
  *u = (struct rc_systemd_unit){0};
}

const char *rc_systemd_unit_of(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *dir = slash ? slash + 1 : path;
  /* cg_escape's "_" (cg_unescape): an unescaped unit name never starts with one */
  return dir[0] == '_' ? dir + 1 : dir;
}

int rc_systemd_resolve(const char *cgroups_path, const char *id, struct rc_systemd_unit *out,
                       struct rc_error *err) {
  *out = (struct rc_systemd_unit){0};
  cleanup_free char *spec = NULL;
  if (!cgroups_path || !*cgroups_path)
    spec = rc_xasprintf(":runcell:%s", id ? id : "");
  else
    spec = rc_xstrdup(cgroups_path);
  /* what the messages name: the config's, or for none the default it stands for (a NULL
   * given to "%s" printed "(null)") */
  cleanup_free char *shown = rc_xstrdup(spec);
  char *c1 = strchr(spec, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
  if (!c1 || !c2 || strchr(c2 + 1, ':'))
    return rc_err(err, 0,
                  "cgroupsPath \"%s\": with --systemd-cgroup it must be \"slice:prefix:name\" "
                  "(e.g. \"system.slice:runcell:<id>\")",
                  shown);
  *c1 = *c2 = '\0';
  const char *slice = *spec ? spec : "system.slice", *prefix = c1 + 1, *name = c2 + 1;
  if (strcmp(slice, "-") == 0) slice = "-.slice";
  if (!*name) return rc_err(err, 0, "cgroupsPath \"%s\": the name part is empty", shown);
  cleanup_free char *parent = NULL;
  if (rc_systemd_expand_slice(slice, &parent, err) < 0)
    return rc_err_wrap(err, "cgroupsPath \"%s\"", shown);
  /* runc would make a slice unit of it, with PIDs, which systemd refuses: a slice holds
   * units, not processes. */
  if (ends_with(name, ".slice"))
    return rc_err(err, 0,
                  "cgroupsPath \"%s\": name %s is a slice, which cannot hold the container's "
                  "processes (systemd refuses them); give a scope name (slice:prefix:name "
                  "makes prefix-name.scope)",
                  shown, name);
  cleanup_free char *unit = rc_xasprintf("%s-%s.scope", prefix, name);
  if (!unit_chars_valid(unit) || strlen(unit) > 255)
    return rc_err(err, 0,
                  "cgroupsPath \"%s\": unit name \"%s\" is not valid for systemd (letters, "
                  "digits and \":-_.\\\" only, at most 255 characters)",
                  shown, unit);
  cleanup_free char *dir = cg_escape(unit);
  out->path = rc_xasprintf("%s/%s", strcmp(parent, "/") ? parent : "", dir);
  out->slice = rc_xstrdup(slice);
  out->unit = unit;
  unit = NULL;
  return 0;
}

/* ---------------------------------------------------------------------------------------
 * Property values
 * ------------------------------------------------------------------------------------- */

void rc_systemd_value_free(struct rc_systemd_value *v) {
  free(v->name);
  free(v->s);
  v->name = v->s = NULL;
}

static bool parse_ll(const char *s, long long *out) {
  char *end;
  errno = 0;
  *out = strtoll(s, &end, 0);
  return errno == 0 && end != s && *end == '\0';
}

static bool parse_ull(const char *s, unsigned long long *out) {
  char *end;
  errno = 0;
  if (*s == '-') return false;
  *out = strtoull(s, &end, 0);
  return errno == 0 && end != s && *end == '\0';
}

/* A GVariant text string literal: '...' or "..." with backslash escapes of the quote and
 * the backslash. */
static bool parse_string(const char *s, char **out) {
  size_t n = strlen(s);
  if (n < 2 || (s[0] != '\'' && s[0] != '"') || s[n - 1] != s[0]) return false;
  char *o = rc_xmalloc(n), *w = o;
  for (size_t i = 1; i < n - 1; i++) {
    if (s[i] == s[0]) {
      free(o);
      return false;
    }
    if (s[i] == '\\' && i + 1 < n - 1) i++;
    *w++ = s[i];
  }
  *w = '\0';
  *out = o;
  return true;
}

struct type_word {
  const char *word;
  char type;
};

static const struct type_word type_words[] = {
    {"boolean", 'b'}, {"byte", 'y'},  {"int16", 'n'},  {"uint16", 'q'}, {"int32", 'i'},
    {"uint32", 'u'},  {"int64", 'x'}, {"uint64", 't'}, {"double", 'd'}, {"string", 's'},
};

static bool integer_fits(char type, long long i, unsigned long long u, bool is_unsigned) {
  switch (type) {
    case 'y':
      return is_unsigned && u <= UINT8_MAX;
    case 'q':
      return is_unsigned && u <= UINT16_MAX;
    case 'u':
      return is_unsigned && u <= UINT32_MAX;
    case 't':
      return is_unsigned;
    case 'n':
      return !is_unsigned && i >= INT16_MIN && i <= INT16_MAX;
    case 'i':
      return !is_unsigned && i >= INT32_MIN && i <= INT32_MAX;
    case 'x':
      return !is_unsigned;
    default:
      return false;
  }
}

static int parse_typed(char type, const char *text, struct rc_systemd_value *v) {
  v->type = type;
  switch (type) {
    case 'b':
      if (strcmp(text, "true") == 0)
        v->i = 1;
      else if (strcmp(text, "false") == 0)
        v->i = 0;
      else
        return -1;
      return 0;
    case 's':
      return parse_string(text, &v->s) ? 0 : -1;
    case 'd': {
      char *end;
      errno = 0;
      v->d = strtod(text, &end);
      return errno == 0 && end != text && *end == '\0' ? 0 : -1;
    }
    case 'y':
    case 'q':
    case 'u':
    case 't':
      return parse_ull(text, &v->u) && integer_fits(type, 0, v->u, true) ? 0 : -1;
    default:
      return parse_ll(text, &v->i) && integer_fits(type, v->i, 0, false) ? 0 : -1;
  }
}

int rc_systemd_parse_property(const char *name, const char *text, struct rc_systemd_value *out,
                              struct rc_error *err) {
  *out = (struct rc_systemd_value){0};
  bool name_ok = name && *name >= 'A' && *name <= 'Z';
  for (const char *c = name ? name : ""; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
      name_ok = false;
  if (!name_ok)
    return rc_err(err, 0,
                  "annotation org.systemd.property.%s: not a systemd property name (a capital "
                  "letter, then letters and digits)",
                  name ? name : "");
  /* What places the unit and makes its cgroup runcell's: changed, runcell would manage a
   * cgroup the container is not in (runc lets them through). */
  static const char *const reserved[] = {"Slice", "PIDs", "Delegate"};
  for (size_t i = 0; i < RC_ARRAY_SIZE(reserved); i++)
    if (strcmp(name, reserved[i]) == 0)
      return rc_err(err, 0,
                    "annotation org.systemd.property.%s: runcell sets %s itself (from "
                    "cgroupsPath and for the container's cgroup to be runcell's)",
                    name, name);
  while (*text == ' ') text++;
  int r = -1;
  if (text[0] == '\'' || text[0] == '"') {
    r = parse_typed('s', text, out);
  } else if (text[0] == '@' && text[1] && text[2] == ' ') {
    r = parse_typed(text[1], text + 3, out);
  } else {
    const char *space = strchr(text, ' ');
    for (size_t i = 0; space && i < RC_ARRAY_SIZE(type_words); i++)
      if (strlen(type_words[i].word) == (size_t)(space - text) &&
          strncmp(text, type_words[i].word, (size_t)(space - text)) == 0) {
        r = parse_typed(type_words[i].type, space + 1, out);
        space = NULL;
        break;
      }
    if (space) {
      r = -1;
    } else if (r < 0 && !strchr(text, ' ')) {
      /* Untyped: GVariant's defaults (int32 for an integer, double for a real). */
      if (parse_typed('b', text, out) == 0 || parse_typed('s', text, out) == 0 ||
          parse_typed('i', text, out) == 0 || parse_typed('d', text, out) == 0)
        r = 0;
    }
  }
  if (r < 0 || !strchr("bsyqutnixd", out->type)) {
    rc_systemd_value_free(out);
    return rc_err(err, 0,
                  "annotation org.systemd.property.%s: value %s: not a GVariant text value "
                  "runcell understands (true, false, 'string', 123, 1.5, \"uint64 123\", "
                  "\"@t 123\" and the other basic types)",
                  name, text);
  }
  size_t nl = strlen(name);
  if (nl > 3 && strcmp(name + nl - 3, "Sec") == 0 && !(nl > 4 && name[nl - 4] == 'U')) {
    /* runc's convenience: TimeoutStopSec=5 is TimeoutStopUSec=5000000. */
    double secs;
    if (out->type == 'd')
      secs = out->d;
    else if (strchr("yqut", out->type))
      secs = (double)out->u;
    else if (strchr("nix", out->type))
      secs = (double)out->i;
    else
      secs = -1;
    /* written so that NaN ("nan", "@d nan") fails too: its conversion below is undefined
     * (found by tests/fuzz/fuzz_systemd_props with UBSan) */
    if (!(secs >= 0 && secs <= 1.8e13)) {
      rc_systemd_value_free(out);
      return rc_err(err, 0,
                    "annotation org.systemd.property.%s: value %s: a time in seconds must be a "
                    "non-negative number",
                    name, text);
    }
    out->type = 't';
    out->u = (unsigned long long)(secs * 1e6 + 0.5);
    out->name = rc_xasprintf("%.*sUSec", (int)(nl - 3), name);
    return 0;
  }
  out->name = rc_xstrdup(name);
  return 0;
}

int rc_systemd_cpuset_mask(const char *list, unsigned char **mask, size_t *len,
                           struct rc_error *err) {
  *mask = NULL;
  *len = 0;
  size_t cap = 0;
  unsigned char *m = NULL;
  for (const char *p = list; *p;) {
    char *end;
    errno = 0;
    unsigned long a = strtoul(p, &end, 10), b = a;
    if (end == p || errno || a > MAX_CPUSET_ID) goto bad;
    p = end;
    if (*p == '-') {
      b = strtoul(p + 1, &end, 10);
      if (end == p + 1 || errno || b > MAX_CPUSET_ID || b < a) goto bad;
      p = end;
    }
    if (*p == ',')
      p++;
    else if (*p)
      goto bad;
    if (!m || b / 8 + 1 > cap) {
      size_t ncap = b / 8 + 1;
      m = rc_xrealloc(m, ncap);
      memset(m + cap, 0, ncap - cap);
      cap = ncap;
    }
    for (unsigned long i = a; i <= b; i++) m[i / 8] |= (unsigned char)(1u << (i % 8));
  }
  *mask = m;
  *len = cap;
  return 0;
bad:
  free(m);
  return rc_err(err, 0, "cpuset list \"%s\" is not valid (want e.g. \"0-3,7\")", list);
}

/* ---------------------------------------------------------------------------------------
 * Building the property list
 * ------------------------------------------------------------------------------------- */

struct props {
  sd_bus_message *m;
  int r; /* the first failure; later appends are skipped */
  const char *unit;
  unsigned version; /* systemd's major version, 0 until asked */
  sd_bus *bus;
  bool update; /* SetUnitProperties of a started unit (its devices cgroup realized) */
};

static void prop_basic(struct props *p, const char *name, char type, const void *value) {
  if (p->r < 0) return;
  char sig[2] = {type, '\0'};
  int r = sd.sd_bus_message_open_container(p->m, 'r', "sv");
  if (r >= 0) r = sd.sd_bus_message_append_basic(p->m, 's', name);
  if (r >= 0) r = sd.sd_bus_message_open_container(p->m, 'v', sig);
  if (r >= 0) r = sd.sd_bus_message_append_basic(p->m, type, value);
  if (r >= 0) r = sd.sd_bus_message_close_container(p->m);
  if (r >= 0) r = sd.sd_bus_message_close_container(p->m);
  if (r < 0) p->r = r;
}

static void prop_bool(struct props *p, const char *name, bool v) {
  int b = v;
  prop_basic(p, name, 'b', &b);
}

static void prop_u64(struct props *p, const char *name, uint64_t v) {
  prop_basic(p, name, 't', &v);
}

static void prop_str(struct props *p, const char *name, const char *v) {
  prop_basic(p, name, 's', v);
}

static void prop_bytes(struct props *p, const char *name, const unsigned char *v, size_t n) {
  if (p->r < 0) return;
  int r = sd.sd_bus_message_open_container(p->m, 'r', "sv");
  if (r >= 0) r = sd.sd_bus_message_append_basic(p->m, 's', name);
  if (r >= 0) r = sd.sd_bus_message_open_container(p->m, 'v', "ay");
  if (r >= 0) r = sd.sd_bus_message_append_array(p->m, 'y', v, n);
  if (r >= 0) r = sd.sd_bus_message_close_container(p->m);
  if (r >= 0) r = sd.sd_bus_message_close_container(p->m);
  if (r < 0) p->r = r;
}

static unsigned systemd_version(struct props *p) {
  if (p->version) return p->version;
  cleanup_bus_error sd_bus_error e = SD_BUS_ERROR_NULL;
  char *v = NULL;
  if (sd.sd_bus_get_property_string(p->bus, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, "Version",
                                    &e, &v) >= 0 &&
      v) {
    /* "252.38-1~deb12u1", "v255", "249 (249.11-0ubuntu3)" */
    const char *d = v;
    while (*d && (*d < '0' || *d > '9')) d++;
    p->version = (unsigned)strtoul(d, NULL, 10);
  }
  free(v);
  if (!p->version) p->version = 1; /* unknown: as the oldest, leave newer properties out */
  return p->version;
}

static void prop_cpu_quota(struct props *p, int64_t quota, uint64_t period) {
  if (period != 0) {
    if (systemd_version(p) >= 242)
      prop_u64(p, "CPUQuotaPeriodUSec", period);
    else
      rc_warn(
          "systemd unit %s: systemd %u cannot set CPUQuotaPeriodUSec (needs 242); the "
          "cgroup's file is still written",
          p->unit, systemd_version(p));
  }
  if (quota == 0 && period == 0) return;
  uint64_t per_sec = USEC_INFINITY;
  if (quota > 0) {
    if (period == 0) period = DEFAULT_CPU_PERIOD;
    per_sec = (uint64_t)quota * 1000000u / period;
    /* systemd keeps it as a whole percent of a CPU: round up to 10 ms, or the cgroup's own
     * quota (written after) would exceed what the unit allows its children. */
    if (per_sec % 10000) per_sec = (per_sec / 10000 + 1) * 10000;
  }
  prop_u64(p, "CPUQuotaPerSecUSec", per_sec);
}

static int prop_cpuset(struct props *p, const char *name, const char *list, struct rc_error *err) {
  if (!list || !*list) return 0;
  if (systemd_version(p) < 244) {
    rc_warn(
        "systemd unit %s: systemd %u cannot set %s (needs 244); the cgroup's file is still "
        "written",
        p->unit, systemd_version(p), name);
    return 0;
  }
  cleanup_free unsigned char *mask = NULL;
  size_t n;
  if (rc_systemd_cpuset_mask(list, &mask, &n, err) < 0) return rc_err_wrap(err, "%s", name);
  prop_bytes(p, name, mask, n);
  return 0;
}

static uint64_t limit_or_infinity(int64_t v) {
  return v < 0 ? USEC_INFINITY : (uint64_t)v;
}

/* A unified map value for a memory or pids file: "max" or a number. */
static int unified_number(const char *key, const char *value, uint64_t *out, struct rc_error *err) {
  unsigned long long u;
  if (strcmp(value, "max") == 0)
    *out = UINT64_MAX;
  else if (parse_ull(value, &u))
    *out = u;
  else
    return rc_err(err, 0,
                  "linux.resources.unified \"%s\": value \"%s\" is not a number or "
                  "\"max\"",
                  key, value);
  return 0;
}

static int props_unified(struct props *p, const struct oci_key_value *kv, size_t n,
                         struct rc_error *err) {
  static const struct {
    const char *key, *prop;
  } numbers[] = {{"memory.high", "MemoryHigh"},        {"memory.low", "MemoryLow"},
                 {"memory.min", "MemoryMin"},          {"memory.max", "MemoryMax"},
                 {"memory.swap.max", "MemorySwapMax"}, {"pids.max", "TasksMax"}};
  for (size_t i = 0; i < n; i++) {
    const char *key = kv[i].key ? kv[i].key : "", *value = kv[i].value ? kv[i].value : "";
    uint64_t v = 0;
    for (size_t j = 0; j < RC_ARRAY_SIZE(numbers); j++)
      if (strcmp(key, numbers[j].key) == 0) {
        if (unified_number(key, value, &v, err) < 0) return -1;
        prop_u64(p, numbers[j].prop, v);
      }
    if (strcmp(key, "cpu.weight") == 0) {
      unsigned long long w;
      if (!parse_ull(value, &w) || w < 1 || w > 10000)
        return rc_err(err, 0,
                      "linux.resources.unified \"cpu.weight\": value \"%s\" is not "
                      "1..10000",
                      value);
      prop_u64(p, "CPUWeight", w);
    } else if (strcmp(key, "cpu.max") == 0) {
      /* "QUOTA [PERIOD]" or "max [PERIOD]" */
      char quota[32] = "";
      const char *sp = strchr(value, ' ');
      size_t ql = sp ? (size_t)(sp - value) : strlen(value);
      unsigned long long period = 0;
      long long q = 0;
      bool ok = ql > 0 && ql < sizeof(quota) && (!sp || parse_ull(sp + 1, &period));
      if (ok) memcpy(quota, value, ql);
      if (!ok || (strcmp(quota, "max") != 0 && (!parse_ll(quota, &q) || q <= 0)))
        return rc_err(err, 0,
                      "linux.resources.unified \"cpu.max\": value \"%s\" is not "
                      "\"QUOTA|max [PERIOD]\"",
                      value);
      prop_cpu_quota(p, strcmp(quota, "max") == 0 ? -1 : q, period);
    } else if (strcmp(key, "cpuset.cpus") == 0) {
      if (prop_cpuset(p, "AllowedCPUs", value, err) < 0) return -1;
    } else if (strcmp(key, "cpuset.mems") == 0) {
      if (prop_cpuset(p, "AllowedMemoryNodes", value, err) < 0) return -1;
    }
  }
  return 0;
}

/* runc's tables (docs/systemd.md): what systemd can hold of linux.resources. */
static int props_resources(struct props *p, const struct oci_resources *r, bool v2,
                           struct rc_error *err) {
  if (!r) return 0;
  const struct oci_memory *m = &r->memory;
  const struct oci_cpu *c = &r->cpu;
  if (r->has_memory && m->has_limit && m->limit != 0)
    prop_u64(p, v2 ? "MemoryMax" : "MemoryLimit", limit_or_infinity(m->limit));
  if (v2 && r->has_memory && m->has_reservation && m->reservation != 0)
    prop_u64(p, "MemoryLow", limit_or_infinity(m->reservation));
  if (v2 && r->has_memory) {
    char swap[32];
    if (rc_cg_v2_swap_value(m, swap, sizeof(swap), err) < 0) return -1;
    if (*swap)
      prop_u64(p, "MemorySwapMax",
               strcmp(swap, "max") == 0 ? UINT64_MAX : strtoull(swap, NULL, 10));
  }
  if (r->has_cpu && c->has_shares && c->shares != 0) {
    if (v2)
      prop_u64(p, "CPUWeight", rc_cg_v2_shares_to_weight(c->shares));
    else
      prop_u64(p, "CPUShares", c->shares);
  }
  if (!v2 && r->has_blkio && r->blkio.has_weight && r->blkio.weight != 0)
    prop_u64(p, "BlockIOWeight", r->blkio.weight);
  if (r->has_pids_limit && r->pids_limit != 0)
    prop_u64(p, "TasksMax", limit_or_infinity(r->pids_limit));
  if (r->has_cpu) prop_cpu_quota(p, c->has_quota ? c->quota : 0, c->has_period ? c->period : 0);
  if (r->has_cpu && prop_cpuset(p, "AllowedCPUs", c->cpus, err) < 0) return -1;
  if (r->has_cpu && prop_cpuset(p, "AllowedMemoryNodes", c->mems, err) < 0) return -1;
  if (v2 && props_unified(p, r->unified, r->n_unified, err) < 0) return -1;
  return 0;
}

/* The name /proc/devices gives a major number ("char-pts"), for a rule on all its minors. */
static char *device_group(char type, int64_t major) {
  cleanup_free char *text = NULL;
  struct rc_error ignore;
  if (rc_read_file("/proc/devices", 65536, &text, NULL, &ignore) < 0) return NULL;
  bool in_section = false;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    if (strcmp(line, "Character devices:") == 0) {
      in_section = type == 'c';
      continue;
    }
    if (strcmp(line, "Block devices:") == 0) {
      in_section = type == 'b';
      continue;
    }
    /* "136 pts" */
    char *end;
    errno = 0;
    long long num = strtoll(line, &end, 10);
    if (!in_section || errno || end == line || *end != ' ' || num != major) continue;
    while (*end == ' ') end++;
    if (*end) return rc_xasprintf("%s-%s", type == 'c' ? "char" : "block", end);
  }
  return NULL;
}

static void device_allow(struct props *p, const char *node, unsigned access) {
  if (p->r < 0) return;
  char acc[4], *a = acc;
  if (access & RC_DEV_ACC_READ) *a++ = 'r';
  if (access & RC_DEV_ACC_WRITE) *a++ = 'w';
  if (access & RC_DEV_ACC_MKNOD) *a++ = 'm';
  *a = '\0';
  int r = sd.sd_bus_message_open_container(p->m, 'r', "ss");
  if (r >= 0) r = sd.sd_bus_message_append(p->m, "ss", node, acc);
  if (r >= 0) r = sd.sd_bus_message_close_container(p->m);
  if (r < 0) p->r = r;
}

/* Empties the unit's DeviceAllow list. systemd adds the entries a call gives to those the
 * unit has (a rule an update takes away would stay in systemd's list, and come back with
 * systemd's next realize: on v1 it rewrites the devices cgroup from that list, on v2 its
 * program): runc sends an empty list first too. */
static void device_allow_reset(struct props *p) {
  if (p->r < 0) return;
  int r = sd.sd_bus_message_append(p->m, "(sv)", "DeviceAllow", "a(ss)", 0);
  if (r < 0) p->r = r;
}

struct device_entry {
  char *node;
  unsigned access;
};

/* The device rules as DevicePolicy/DeviceAllow, so that systemd's realize keeps them (on
 * v2 systemd then attaches its own filter beside ours, and both must allow a device).
 * An allow-list translates; what systemd cannot name (a wildcard major with one minor, a
 * major /proc/devices does not list) is left out, which only narrows it. A deny-list is
 * not expressible. Where systemd's list is not the rules themselves:
 *  - v1: as runc, systemd is told "strict" with the list it can hold (nothing for a
 *    deny-list), and the cgroupfs rules written after are exact; systemd's next realize
 *    writes its own list again (the limit docs/systemd-cgroup.md names). "auto" would be
 *    worse there: systemd would then allow every device, or leave the scope's devices
 *    cgroup and move the container to the slice's.
 *  - v2: systemd is told "auto" with no list, so that it attaches no program: its program
 *    would deny what the rules allow (every device, for a deny-list) from its next realize
 *    on (a daemon-reload), while runcell's program holds the rules exactly all along. */
static int props_devices(struct props *p, const struct oci_resources *r, bool v2,
                         struct rc_error *err) {
  struct rc_dev_policy pol;
  if (rc_cg_dev_policy_build(r ? r->devices : NULL, r ? r->n_devices : 0, true, &pol, err) < 0)
    return -1;
  if (pol.default_allow && pol.n == 0) {
    prop_str(p, "DevicePolicy", "auto");
    device_allow_reset(p);
    if (!v2 && p->update && p->r >= 0) {
      /* v1, an update to every device: "auto" with no list takes the devices controller
       * out of the unit, and systemd 252 moved the container to the devices hierarchy's
       * root and removed the unit's devices cgroup under the cgroupfs writes that follow
       * (the update failed with ENOENT, or not, by who came first). Every device by name
       * ("c *:* rwm", "b *:* rwm") keeps the controller and the container in its cgroup. */
      int rr = sd.sd_bus_message_append(p->m, "(sv)", "DeviceAllow", "a(ss)", 2, "char-*", "rwm",
                                        "block-*", "rwm");
      if (rr < 0) p->r = rr;
    }
    rc_cg_dev_policy_free(&pol);
    return 0;
  }
  struct device_entry *entries = rc_xcalloc(pol.n + 1, sizeof(*entries));
  size_t n = 0;
  bool exact = !pol.default_allow;
  for (size_t i = 0; !pol.default_allow && i < pol.n; i++) {
    const struct rc_dev_exception *e = &pol.ex[i];
    const char *kind = e->type == 'c' ? "char" : "block";
    char *node = NULL;
    if (e->major < 0 && e->minor < 0) {
      node = rc_xasprintf("%s-*", kind);
    } else if (e->major >= 0 && e->minor >= 0) {
      node = rc_xasprintf("/dev/%s/%" PRId64 ":%" PRId64, kind, e->major, e->minor);
    } else if (e->major >= 0) {
      node = device_group(e->type, e->major);
      if (!node)
        rc_debug("systemd unit %s: no name for %s major %" PRId64 " in /proc/devices", p->unit,
                 kind, e->major);
    }
    if (node)
      entries[n++] = (struct device_entry){.node = node, .access = e->access};
    else
      exact = false;
  }
  if (v2 && !exact) {
    rc_debug(
        "systemd unit %s: systemd has no form for these device rules (%s): it is given none "
        "(DevicePolicy=auto), and runcell's eBPF filter alone holds them",
        p->unit, pol.default_allow ? "a deny-list" : "a rule it cannot name");
    prop_str(p, "DevicePolicy", "auto");
    device_allow_reset(p);
  } else {
    if (pol.default_allow)
      rc_warn(
          "systemd unit %s: systemd has no deny-list device rules: it is told to allow none, "
          "and the cgroup's own rules decide until systemd realizes the unit again (a "
          "daemon-reload), which leaves the container no device (cgroup v1)",
          p->unit);
    else if (!exact)
      rc_warn(
          "systemd unit %s: systemd cannot name every device rule (a wildcard major with one "
          "minor, a major /proc/devices does not list): the cgroup's own rules allow them until "
          "systemd realizes the unit again (a daemon-reload) from its narrower list (cgroup v1)",
          p->unit);
    prop_str(p, "DevicePolicy", "strict");
    device_allow_reset(p);
    if (p->r >= 0) {
      int rr = sd.sd_bus_message_open_container(p->m, 'r', "sv");
      if (rr >= 0) rr = sd.sd_bus_message_append_basic(p->m, 's', "DeviceAllow");
      if (rr >= 0) rr = sd.sd_bus_message_open_container(p->m, 'v', "a(ss)");
      if (rr >= 0) rr = sd.sd_bus_message_open_container(p->m, 'a', "(ss)");
      if (rr < 0) p->r = rr;
    }
    for (size_t i = 0; i < n; i++) device_allow(p, entries[i].node, entries[i].access);
    if (p->r >= 0) {
      int rr = sd.sd_bus_message_close_container(p->m);
      if (rr >= 0) rr = sd.sd_bus_message_close_container(p->m);
      if (rr >= 0) rr = sd.sd_bus_message_close_container(p->m);
      if (rr < 0) p->r = rr;
    }
  }
  for (size_t i = 0; i < n; i++) free(entries[i].node);
  free(entries);
  rc_cg_dev_policy_free(&pol);
  return 0;
}

static int props_annotations(struct props *p, const struct oci_key_value *a, size_t n,
                             struct rc_error *err) {
  static const char prefix[] = "org.systemd.property.";
  for (size_t i = 0; i < n; i++) {
    if (!a[i].key || strncmp(a[i].key, prefix, sizeof(prefix) - 1) != 0) continue;
    struct rc_systemd_value v;
    if (rc_systemd_parse_property(a[i].key + sizeof(prefix) - 1, a[i].value ? a[i].value : "", &v,
                                  err) < 0)
      return -1;
    uint8_t y = (uint8_t)v.u;
    int16_t nn = (int16_t)v.i;
    uint16_t q = (uint16_t)v.u;
    int32_t ii = (int32_t)v.i;
    uint32_t u = (uint32_t)v.u;
    int64_t x = v.i;
    uint64_t t = v.u;
    int b = (int)v.i;
    const void *value = NULL;
    switch (v.type) {
      case 'b':
        value = &b;
        break;
      case 's':
        value = v.s;
        break;
      case 'y':
        value = &y;
        break;
      case 'n':
        value = &nn;
        break;
      case 'q':
        value = &q;
        break;
      case 'i':
        value = &ii;
        break;
      case 'u':
        value = &u;
        break;
      case 'x':
        value = &x;
        break;
      case 't':
        value = &t;
        break;
      default:
        value = &v.d;
        break;
    }
    prop_basic(p, v.name, v.type, value);
    rc_systemd_value_free(&v);
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------
 * Jobs
 * ------------------------------------------------------------------------------------- */

struct job_wait {
  const char *job; /* set once the method call's reply named it */
  bool done;
  char result[32];
};

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *e) {
  (void)e;
  struct job_wait *w = userdata;
  uint32_t id;
  const char *job, *unit, *result;
  if (sd.sd_bus_message_read(m, "uoss", &id, &job, &unit, &result) < 0) return 0;
  if (w->job && strcmp(job, w->job) == 0) {
    w->done = true;
    snprintf(w->result, sizeof(w->result), "%s", result);
  }
  return 0;
}

/* Sends a Manager method call m that returns a job and waits for the job's end; the
 * JobRemoved match is set before the call so the signal cannot be missed. what names the
 * action in errors. Returns 1 when the method failed with D-Bus error ignore_error (not an
 * error for the caller), 0 when the job finished with "done". */
static int call_job(sd_bus *bus, sd_bus_message *m, const char *unit, const char *what,
                    const char *ignore_error, struct rc_error *err) {
  struct job_wait w = {0};
  sd_bus_slot *slot = NULL;
  int r = sd.sd_bus_match_signal(bus, &slot, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                 "JobRemoved", on_job_removed, &w);
  if (r < 0) return rc_err(err, -r, "systemd unit %s: %s: subscribe to JobRemoved", unit, what);
  cleanup_bus_error sd_bus_error e = SD_BUS_ERROR_NULL;
  cleanup_message sd_bus_message *reply = NULL;
  int ret = -1;
  r = sd.sd_bus_call(bus, m, (uint64_t)JOB_TIMEOUT_MS * 1000, &e, &reply);
  if (r < 0) {
    if (ignore_error && sd.sd_bus_error_has_name(&e, ignore_error)) {
      ret = 1;
    } else {
      rc_err(err, 0, "systemd unit %s: %s: %s", unit, what, call_error(&e, r));
      err->code = -r;
    }
    goto out;
  }
  const char *job = NULL;
  r = sd.sd_bus_message_read(reply, "o", &job);
  if (r < 0) {
    rc_err(err, -r, "systemd unit %s: %s: read the job from the reply", unit, what);
    goto out;
  }
  w.job = job;
  int64_t deadline = rc_now_ms() + JOB_TIMEOUT_MS;
  while (!w.done) {
    r = sd.sd_bus_process(bus, NULL);
    if (r < 0) {
      rc_err(err, -r, "systemd unit %s: %s: lost the bus while waiting for job %s", unit, what,
             job);
      goto out;
    }
    if (r > 0) continue;
    int64_t left = deadline - rc_now_ms();
    if (left <= 0) {
      rc_err(err, ETIMEDOUT, "systemd unit %s: %s: job %s did not finish within %d s", unit, what,
             job, JOB_TIMEOUT_MS / 1000);
      goto out;
    }
    r = sd.sd_bus_wait(bus, (uint64_t)left * 1000);
    if (r < 0 && r != -EINTR) {
      rc_err(err, -r, "systemd unit %s: %s: wait for job %s", unit, what, job);
      goto out;
    }
  }
  if (strcmp(w.result, "done") != 0) {
    rc_err(err, 0, "systemd unit %s: %s: systemd's job ended with result \"%s\"%s", unit, what,
           w.result, strcmp(w.result, "failed") == 0 ? " (see `journalctl -u` for the unit)" : "");
    goto out;
  }
  ret = 0;
out:
  sd.sd_bus_slot_unref(slot);
  return ret;
}

/* ---------------------------------------------------------------------------------------
 * Start, stop, update
 * ------------------------------------------------------------------------------------- */

static bool cgroup_v2(void) {
  return rc_cgroup_mode() == RC_CGROUP_UNIFIED;
}

/* A child of ours that only waits to be killed: the scope's first process. It keeps no
 * descriptor of the runtime's (a lock, the container's stdio) and dies with its parent. */
static int standin_spawn(struct rc_systemd_standin *s, struct rc_error *err) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return rc_err(err, errno, "systemd cgroup driver: fork the scope's stand-in");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    if (syscall(SYS_close_range, 0U, ~0U, 0U) < 0) rc_close_fds_from(0);
    prctl(PR_SET_NAME, "runcell-standin");
    for (;;) pause();
  }
  s->pid = pid;
  return 0;
}

void rc_systemd_standin_end(struct rc_systemd_standin *s) {
  if (s->pid <= 0) return;
  kill(s->pid, SIGKILL);
  while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR) {
  }
  s->pid = 0;
}

static int start_once(sd_bus *bus, const struct rc_systemd_unit *u, const char *id,
                      const struct oci_resources *resources,
                      const struct oci_key_value *annotations, size_t n_annotations, pid_t pid,
                      struct rc_error *err) {
  cleanup_message sd_bus_message *m = NULL;
  int r = sd.sd_bus_message_new_method_call(bus, &m, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                            "StartTransientUnit");
  if (r >= 0) r = sd.sd_bus_message_append(m, "ss", u->unit, "replace");
  if (r >= 0) r = sd.sd_bus_message_open_container(m, 'a', "(sv)");
  if (r < 0) return rc_err(err, -r, "systemd unit %s: build StartTransientUnit", u->unit);
  bool v2 = cgroup_v2();
  struct props p = {.m = m, .unit = u->unit, .bus = bus};
  cleanup_free char *desc = rc_xasprintf("runcell container %s", id);
  prop_str(&p, "Description", desc);
  prop_str(&p, "Slice", u->slice);
  prop_bool(&p, "Delegate", true);
  if (p.r >= 0) {
    r = sd.sd_bus_message_append(m, "(sv)", "PIDs", "au", 1, (uint32_t)pid);
    if (r < 0) p.r = r;
  }
  prop_bool(&p, "DefaultDependencies", false);
  prop_bool(&p, "MemoryAccounting", true);
  prop_bool(&p, "CPUAccounting", true);
  prop_bool(&p, v2 ? "IOAccounting" : "BlockIOAccounting", true);
  prop_bool(&p, "TasksAccounting", true);
  if (props_resources(&p, resources, v2, err) < 0 || props_devices(&p, resources, v2, err) < 0 ||
      props_annotations(&p, annotations, n_annotations, err) < 0)
    return rc_err_wrap(err, "systemd unit %s", u->unit);
  r = p.r;
  if (r >= 0) r = sd.sd_bus_message_close_container(m);
  if (r >= 0) r = sd.sd_bus_message_append(m, "a(sa(sv))", 0);
  if (r < 0) return rc_err(err, -r, "systemd unit %s: build StartTransientUnit", u->unit);
  return call_job(bus, m, u->unit, "start", "org.freedesktop.systemd1.UnitExists", err);
}

/* Forgets a failed unit, freeing its name; nothing to do (the unit is not failed, or
 * not loaded) is not an error. */
static void reset_failed(sd_bus *bus, const char *unit) {
  cleanup_bus_error sd_bus_error e = SD_BUS_ERROR_NULL;
  (void)sd.sd_bus_call_method(bus, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, "ResetFailedUnit",
                              &e, NULL, "s", unit);
}

int rc_systemd_start(const struct rc_systemd_unit *u, const char *id,
                     const struct oci_resources *resources, const struct oci_key_value *annotations,
                     size_t n_annotations, struct rc_systemd_standin *standin,
                     struct rc_error *err) {
  standin->pid = 0;
  cleanup_bus sd_bus *bus = NULL;
  if (bus_open(&bus, err) < 0) return -1;
  if (standin_spawn(standin, err) < 0) return -1;
  int r = start_once(bus, u, id, resources, annotations, n_annotations, standin->pid, err);
  if (r == 1) {
    /* A unit of that name is still loaded: one that failed or was left inactive (a
     * container of the same cgroupsPath that ended) is cleared and the start retried; an
     * active one belongs to someone else. */
    reset_failed(bus, u->unit);
    r = start_once(bus, u, id, resources, annotations, n_annotations, standin->pid, err);
    struct rc_error stop_err;
    if (r == 1 && !rc_cgroup_exists(u->path) && rc_systemd_stop(u->unit, &stop_err) == 0) {
      /* An active scope whose cgroup is gone holds nothing: systemd never saw it empty (a
       * delete that could not reach systemd removed the cgroup before systemd read its
       * cgroup.events), and would keep it, and its name, for ever. Stopped, it goes. */
      rc_info("systemd unit %s: active without a cgroup: stopped, to start it again", u->unit);
      r = start_once(bus, u, id, resources, annotations, n_annotations, standin->pid, err);
    }
    if (r == 1)
      r = rc_err(err, EEXIST,
                 "systemd unit %s already exists and is active: another container (or service) "
                 "has this cgroupsPath",
                 u->unit);
  }
  if (r < 0) rc_systemd_standin_end(standin);
  return r;
}

int rc_systemd_stop(const char *unit, struct rc_error *err) {
  cleanup_bus sd_bus *bus = NULL;
  if (bus_open(&bus, err) < 0) return -1;
  cleanup_message sd_bus_message *m = NULL;
  int r = sd.sd_bus_message_new_method_call(bus, &m, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                            "StopUnit");
  if (r >= 0) r = sd.sd_bus_message_append(m, "ss", unit, "replace");
  if (r < 0) return rc_err(err, -r, "systemd unit %s: build StopUnit", unit);
  r = call_job(bus, m, unit, "stop", "org.freedesktop.systemd1.NoSuchUnit", err);
  if (r < 0) return -1;
  /* A failed scope stays loaded (and its name taken) until reset. */
  reset_failed(bus, unit);
  return 0;
}

int rc_systemd_update(const char *unit, const struct oci_resources *resources,
                      struct rc_error *err) {
  cleanup_bus sd_bus *bus = NULL;
  if (bus_open(&bus, err) < 0) return -1;
  cleanup_message sd_bus_message *m = NULL;
  int r = sd.sd_bus_message_new_method_call(bus, &m, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                            "SetUnitProperties");
  if (r >= 0) r = sd.sd_bus_message_append(m, "sb", unit, 1);
  if (r >= 0) r = sd.sd_bus_message_open_container(m, 'a', "(sv)");
  if (r < 0) return rc_err(err, -r, "systemd unit %s: build SetUnitProperties", unit);
  struct props p = {.m = m, .unit = unit, .bus = bus, .update = true};
  bool v2 = cgroup_v2();
  if (props_resources(&p, resources, v2, err) < 0) return rc_err_wrap(err, "systemd unit %s", unit);
  /* Device rules only when the update names some (as the cgroupfs side does). */
  if (resources && resources->n_devices && props_devices(&p, resources, v2, err) < 0)
    return rc_err_wrap(err, "systemd unit %s", unit);
  r = p.r;
  if (r >= 0) r = sd.sd_bus_message_close_container(m);
  if (r < 0) return rc_err(err, -r, "systemd unit %s: build SetUnitProperties", unit);
  cleanup_bus_error sd_bus_error e = SD_BUS_ERROR_NULL;
  cleanup_message sd_bus_message *reply = NULL;
  r = sd.sd_bus_call(bus, m, (uint64_t)JOB_TIMEOUT_MS * 1000, &e, &reply);
  if (r < 0) {
    rc_err(err, 0, "systemd unit %s: set properties: %s", unit, call_error(&e, r));
    err->code = -r;
    return -1;
  }
  return 0;
}
