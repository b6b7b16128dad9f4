#!/bin/sh
# lifecycle: create (the guest boots to its agent and waits), state, start, kill with
# SIGTERM forwarded into the guest, state stopped, delete; the VMM is the container's pid
# and exits with the workload's status.
. /srv/microvm-tests/common.sh
id=mv-life
cd /srv/bundles/sleep || exit 1
runcell create "$id" </dev/null >/tmp/out 2>/tmp/err || { cat /tmp/err; fail "create"; }
st=$(runcell state "$id")
expect_contains "state after create" "$st" '"status": "created"'
expect_contains "state annotations" "$st" '"run.runcell.mode": "microvm"'
pid=$(echo "$st" | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
[ -n "$pid" ] && [ -d "/proc/$pid" ] || fail "no VMM process for pid '$pid'"
runcell start "$id" || fail "start"
expect_contains "state after start" "$(runcell state "$id")" '"status": "running"'
# the running VMM holds no capability and cannot gain any
expect_eq "VMM CapEff" "$(sed -n 's/^CapEff:\t//p' "/proc/$pid/status")" 0000000000000000
expect_eq "VMM CapBnd" "$(sed -n 's/^CapBnd:\t//p' "/proc/$pid/status")" 0000000000000000
expect_eq "VMM NoNewPrivs" "$(sed -n 's/^NoNewPrivs:\t//p' "/proc/$pid/status")" 1
# ... and runs under its syscall allow-list, on every thread (vCPUs included)
for task in /proc/$pid/task/*; do
  expect_eq "seccomp mode of VMM thread $task" "$(sed -n 's/^Seccomp:\t//p' "$task/status")" 2
done
# exec reaches the guest (tests/lanes/microvm-tests/exec.sh has the rest), and the jailed
# VMM serves it
expect_eq "exec into the running microVM" "$(runcell exec "$id" echo exec-ok 2>&1)" exec-ok
sleep 1
runcell kill "$id" TERM || fail "kill"
i=0
while [ -d "/proc/$pid" ] && [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ] && [ $i -lt 300 ]; do
  sleep 0.1
  i=$((i + 1))
done
expect_contains "state after kill" "$(runcell state "$id")" '"status": "stopped"'
expect_eq "workload output" "$(cat /tmp/out)" "sleeping"
runcell delete "$id" || fail "delete"
nothing_left "$id"
# delete --force of a running microVM
runcell create mv-force </dev/null >/dev/null 2>&1 || fail "create mv-force"
runcell start mv-force || fail "start mv-force"
runcell delete --force mv-force || fail "delete --force"
nothing_left mv-force
