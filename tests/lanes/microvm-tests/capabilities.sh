#!/bin/sh
# capabilities: the OCI process's capability sets and noNewPrivileges apply inside the
# guest, to the container's process and to exec'd ones, as runc applies them on the host.
# The bundle is runc's default spec: bounding, effective and permitted are AUDIT_WRITE,
# KILL and NET_BIND_SERVICE (bits 29, 5, 10 = 0x20000420), nothing inheritable or
# ambient, no_new_privs on.
. /srv/microvm-tests/common.sh
cd /srv/bundles/caps || exit 1
out=$(runcell run mv-caps 2>/tmp/caps-err </dev/null) || { cat /tmp/caps-err; fail "run"; }
echo "$out"
field() { echo "$out" | sed -n "s/^$1:\t//p"; }
expect_eq "CapBnd" "$(field CapBnd)" 0000000020000420
expect_eq "CapEff" "$(field CapEff)" 0000000020000420
expect_eq "CapPrm" "$(field CapPrm)" 0000000020000420
expect_eq "CapInh" "$(field CapInh)" 0000000000000000
expect_eq "CapAmb" "$(field CapAmb)" 0000000000000000
expect_eq "NoNewPrivs" "$(field NoNewPrivs)" 1
# without CAP_SYS_ADMIN, root in the guest cannot mount
echo "$out" | grep -q "^mount: refused" || fail "the workload could mount without CAP_SYS_ADMIN"
nothing_left mv-caps

# an exec'd process gets the same sets
cd /srv/bundles/sleep || exit 1
runcell create mv-caps-exec </dev/null >/dev/null 2>/tmp/caps-err || { cat /tmp/caps-err; fail "create"; }
runcell start mv-caps-exec || fail "start"
out=$(runcell exec mv-caps-exec grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status) ||
  fail "exec: $out"
expect_eq "exec'd CapBnd" "$(field CapBnd)" 0000000020000420
expect_eq "exec'd CapEff" "$(field CapEff)" 0000000020000420
expect_eq "exec'd NoNewPrivs" "$(field NoNewPrivs)" 1
runcell delete --force mv-caps-exec || fail "delete --force"
nothing_left mv-caps-exec
