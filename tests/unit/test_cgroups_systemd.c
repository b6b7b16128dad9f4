/* The systemd cgroup driver's pure parts: unit names and cgroup paths from cgroupsPath (as
 * runc's docs/systemd.md and systemd's slice naming), the org.systemd.property.* GVariant
 * values, and cpuset lists as systemd's CPU masks. The D-Bus side is tested against a
 * real systemd (tests/integration/test_systemd_cgroup.py). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runcell/cgroups_systemd.h"
#include "unit.h"

static void check_resolve(const char *cgroups_path, const char *id, const char *unit,
                          const char *slice, const char *path) {
  struct rc_systemd_unit u;
  struct rc_error err = {0};
  int r = rc_systemd_resolve(cgroups_path, id, &u, &err);
  CHECK(r == 0);
  if (r < 0) {
    fprintf(stderr, "  %s: %s\n", cgroups_path ? cgroups_path : "(null)", err.msg);
    return;
  }
  CHECK_STR_EQ(u.unit, unit);
  CHECK_STR_EQ(u.slice, slice);
  CHECK_STR_EQ(u.path, path);
  CHECK_STR_EQ(rc_systemd_unit_of(u.path), unit);
  rc_systemd_unit_free(&u);
}

static const char *resolve_error(const char *cgroups_path) {
  static struct rc_error err;
  struct rc_systemd_unit u;
  if (rc_systemd_resolve(cgroups_path, "c1", &u, &err) == 0) {
    rc_systemd_unit_free(&u);
    return "(accepted)";
  }
  return err.msg;
}

static void test_resolve(void) {
  check_resolve(NULL, "c1", "runcell-c1.scope", "system.slice", "/system.slice/runcell-c1.scope");
  check_resolve("", "c1", "runcell-c1.scope", "system.slice", "/system.slice/runcell-c1.scope");
  check_resolve("system.slice:docker:abc", "x", "docker-abc.scope", "system.slice",
                "/system.slice/docker-abc.scope");
  /* what containerd's CRI plugin gives with SystemdCgroup = true */
  check_resolve("kubepods-besteffort-pod1234.slice:cri-containerd:abc", "abc",
                "cri-containerd-abc.scope", "kubepods-besteffort-pod1234.slice",
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/"
                "cri-containerd-abc.scope");
  check_resolve(":p:n", "x", "p-n.scope", "system.slice", "/system.slice/p-n.scope");
  check_resolve("-:p:n", "x", "p-n.scope", "-.slice", "/p-n.scope");
  check_resolve("-.slice:p:n", "x", "p-n.scope", "-.slice", "/p-n.scope");
  /* systemd's cg_escape: "_" before a name starting with "_" or ".", or "<controller>.x" */
  check_resolve("system.slice:_p:n", "x", "_p-n.scope", "system.slice",
                "/system.slice/__p-n.scope");
  check_resolve("system.slice:.p:n", "x", ".p-n.scope", "system.slice",
                "/system.slice/_.p-n.scope");
  check_resolve("pids.slice:p:n", "x", "p-n.scope", "pids.slice", "/_pids.slice/p-n.scope");
  check_resolve("cpu-a.slice:p:n", "x", "p-n.scope", "cpu-a.slice",
                "/_cpu.slice/cpu-a.slice/p-n.scope");
  check_resolve("-:bpf:firewall", "x", "bpf-firewall.scope", "-.slice", "/_bpf-firewall.scope");
  check_resolve("system.slice:cpuset:n", "x", "cpuset-n.scope", "system.slice",
                "/system.slice/cpuset-n.scope");

  CHECK_CONTAINS(resolve_error("nocolon"), "must be \"slice:prefix:name\"");
  CHECK_CONTAINS(resolve_error("too:many:colons:here"), "must be \"slice:prefix:name\"");
  CHECK_CONTAINS(resolve_error("a/b.slice:p:n"), "invalid slice name \"a/b.slice\"");
  CHECK_CONTAINS(resolve_error("system:p:n"), "invalid slice name \"system\"");
  CHECK_CONTAINS(resolve_error("a--b.slice:p:n"), "hold two in a row");
  CHECK_CONTAINS(resolve_error("-a.slice:p:n"), "cannot start or end");
  CHECK_CONTAINS(resolve_error("a-.slice:p:n"), "cannot start or end");
  CHECK_CONTAINS(resolve_error("system.slice:p:"), "the name part is empty");
  CHECK_CONTAINS(resolve_error("system.slice:p:n/m"), "unit name \"p-n/m.scope\" is not valid");
  CHECK_CONTAINS(resolve_error("system.slice:p:n m"), "is not valid for systemd");
  /* a slice holds no processes (runc asks for one with PIDs, which systemd refuses) */
  CHECK_CONTAINS(resolve_error("a.slice:ignored:a-b.slice"),
                 "name a-b.slice is a slice, which cannot hold the container's processes");
  CHECK_CONTAINS(resolve_error("-:x:memory.slice"), "is a slice");
}

static void test_expand_slice(void) {
  static const char *const cases[][2] = {
      {"-.slice", "/"},
      {"system.slice", "/system.slice"},
      {"a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"},
      {"user-1000.slice", "/user.slice/user-1000.slice"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *out = NULL;
    struct rc_error err;
    CHECK(rc_systemd_expand_slice(cases[i][0], &out, &err) == 0);
    CHECK_STR_EQ(out, cases[i][1]);
    free(out);
  }
  char *out = NULL;
  struct rc_error err;
  CHECK(rc_systemd_expand_slice("a.scope", &out, &err) < 0 && out == NULL);
  CHECK(rc_systemd_expand_slice(".slice", &out, &err) < 0);
}

static void check_property(const char *name, const char *text, const char *want_name, char type) {
  struct rc_systemd_value v;
  struct rc_error err;
  int r = rc_systemd_parse_property(name, text, &v, &err);
  CHECK(r == 0);
  if (r < 0) {
    fprintf(stderr, "  %s=%s: %s\n", name, text, err.msg);
    return;
  }
  CHECK_STR_EQ(v.name, want_name);
  CHECK(v.type == type);
  rc_systemd_value_free(&v);
}

static struct rc_systemd_value property(const char *name, const char *text) {
  struct rc_systemd_value v;
  struct rc_error err;
  if (rc_systemd_parse_property(name, text, &v, &err) < 0) memset(&v, 0, sizeof(v));
  return v;
}

static const char *property_error(const char *name, const char *text) {
  static struct rc_error err;
  struct rc_systemd_value v;
  if (rc_systemd_parse_property(name, text, &v, &err) == 0) {
    rc_systemd_value_free(&v);
    return "(accepted)";
  }
  return err.msg;
}

static void test_properties(void) {
  /* runc's documented examples */
  struct rc_systemd_value v = property("TimeoutStopUSec", "uint64 123456789");
  CHECK(v.type == 't' && v.u == 123456789ULL);
  rc_systemd_value_free(&v);
  v = property("CollectMode", "'inactive-or-failed'");
  CHECK(v.type == 's');
  CHECK_STR_EQ(v.s, "inactive-or-failed");
  rc_systemd_value_free(&v);
  /* "Sec" names are given to systemd in microseconds, under their "USec" name */
  v = property("TimeoutStopSec", "5");
  CHECK(v.type == 't' && v.u == 5000000ULL);
  CHECK_STR_EQ(v.name, "TimeoutStopUSec");
  rc_systemd_value_free(&v);
  v = property("RuntimeMaxSec", "1.5");
  CHECK(v.type == 't' && v.u == 1500000ULL);
  rc_systemd_value_free(&v);

  check_property("SendSIGKILL", "true", "SendSIGKILL", 'b');
  check_property("CPUWeight", "@t 100", "CPUWeight", 't');
  check_property("Nice", "int32 -5", "Nice", 'i');
  check_property("Description", "\"a \\\"quoted\\\" word\"", "Description", 's');
  check_property("Foo", "42", "Foo", 'i');
  check_property("Bar", "0.25", "Bar", 'd');
  check_property("Baz", "byte 255", "Baz", 'y');
  v = property("Description", "'it\\'s'");
  CHECK_STR_EQ(v.s, "it's");
  rc_systemd_value_free(&v);

  CHECK_CONTAINS(property_error("lowercase", "1"), "not a systemd property name");
  CHECK_CONTAINS(property_error("Bad-Name", "1"), "not a systemd property name");
  CHECK_CONTAINS(property_error("X", "uint64 -1"), "not a GVariant text value");
  CHECK_CONTAINS(property_error("X", "byte 256"), "not a GVariant text value");
  CHECK_CONTAINS(property_error("X", "int32 3000000000"), "not a GVariant text value");
  CHECK_CONTAINS(property_error("X", "unquoted words"), "not a GVariant text value");
  CHECK_CONTAINS(property_error("X", "['array']"), "not a GVariant text value");
  CHECK_CONTAINS(property_error("X", "'unterminated"), "not a GVariant text value");
  CHECK_CONTAINS(property_error("TimeoutStopSec", "-1"), "non-negative number");
  CHECK_CONTAINS(property_error("Slice", "'user.slice'"), "runcell sets Slice itself");
  CHECK_CONTAINS(property_error("Delegate", "false"), "runcell sets Delegate itself");
  CHECK_CONTAINS(property_error("PIDs", "uint32 1"), "runcell sets PIDs itself");
  CHECK_CONTAINS(property_error("TimeoutStopSec", "'soon'"), "non-negative number");
  /* NaN is no number of seconds (its conversion to microseconds was undefined) */
  CHECK_CONTAINS(property_error("TimeoutStopSec", "nan"), "non-negative number");
  CHECK_CONTAINS(property_error("TimeoutStopSec", "@d -nan"), "non-negative number");
  CHECK_CONTAINS(property_error("TimeoutStopSec", "inf"), "non-negative number");
}

static void test_cpuset_mask(void) {
  unsigned char *m = NULL;
  size_t n = 0;
  struct rc_error err;
  CHECK(rc_systemd_cpuset_mask("0-3,7", &m, &n, &err) == 0);
  CHECK(n == 1 && m && m[0] == 0x8f);
  free(m);
  CHECK(rc_systemd_cpuset_mask("9", &m, &n, &err) == 0);
  CHECK(n == 2 && m && m[0] == 0 && m[1] == 0x02);
  free(m);
  CHECK(rc_systemd_cpuset_mask("0,8-9,16", &m, &n, &err) == 0);
  CHECK(n == 3 && m && m[0] == 0x01 && m[1] == 0x03 && m[2] == 0x01);
  free(m);
  CHECK(rc_systemd_cpuset_mask("", &m, &n, &err) == 0 && n == 0);
  free(m);
  CHECK(rc_systemd_cpuset_mask("3-1", &m, &n, &err) < 0);
  CHECK_CONTAINS(err.msg, "cpuset list \"3-1\" is not valid");
  CHECK(rc_systemd_cpuset_mask("a", &m, &n, &err) < 0);
  CHECK(rc_systemd_cpuset_mask("1,,2", &m, &n, &err) < 0);
  CHECK(rc_systemd_cpuset_mask("99999", &m, &n, &err) < 0);
}

UNIT_MAIN("cgroups_systemd", UNIT_CASE(test_resolve), UNIT_CASE(test_expand_slice),
          UNIT_CASE(test_properties), UNIT_CASE(test_cpuset_mask))
