#!/bin/sh
# lifecycle: create (the guest boots to its agent and waits), state, start, kill with
# SIGTERM forwarded into the guest, state stopped, delete; the VMM is the container's pid
# and exits with the workload's status.
. /srv/microvm-tests/common.sh
id=mv-life
cd /srv/bundles/sleep || exit 1
runcell --log /tmp/life.log --log-format json create "$id" </dev/null >/tmp/out 2>/tmp/err ||
  { cat /tmp/err; fail "create"; }
# The vCPUs start parked: the guest's first instruction comes after the VMM's jail (a
# negative time here is a guest that ran while the VMM still had the host).
jail_to_entry=$(sed -n 's/.*"msg":"microvm phases: .*jail-to-guest-entry \([-0-9.]*\) ms.*/\1/p' /tmp/life.log)
case $jail_to_entry in
  [0-9]*) ;;
  *) fail "jail-to-guest-entry '$jail_to_entry' (the guest ran before the jail?)" ;;
esac
st=$(runcell state "$id")
expect_contains "state after create" "$st" '"status": "created"'
expect_contains "state annotations" "$st" '"run.runcell.mode": "microvm"'
pid=$(echo "$st" | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
[ -n "$pid" ] && [ -d "/proc/$pid" ] || fail "no VMM process for pid '$pid'"
runcell start "$id" || fail "start"
expect_contains "state after start" "$(runcell state "$id")" '"status": "running"'
# The running VMM is jailed on every thread — the vCPU and I/O threads run the device
# models, so they are what a hostile guest would take over: no capability, bounding set
# included (they are per thread), no_new_privs, the syscall allow-list, an empty root
# with nothing mounted in its namespace but that root.
threads=0
for task in /proc/$pid/task/*; do
  threads=$((threads + 1))
  for set in CapEff CapPrm CapAmb CapBnd; do
    expect_eq "VMM thread $task $set" "$(sed -n "s/^$set:\t//p" "$task/status")" 0000000000000000
  done
  expect_eq "VMM thread $task NoNewPrivs" "$(sed -n 's/^NoNewPrivs:\t//p' "$task/status")" 1
  expect_eq "seccomp mode of VMM thread $task" "$(sed -n 's/^Seccomp:\t//p' "$task/status")" 2
  expect_eq "VMM thread $task root" "$(ls -A "$task/root/" 2>&1)" ""
done
[ "$threads" -ge 3 ] || fail "the VMM has $threads threads (expected the main one, a vCPU, I/O)"
expect_eq "VMM mounts" "$(wc -l <"/proc/$pid/mountinfo")" 1
expect_contains "VMM root mount" "$(cat "/proc/$pid/mountinfo")" " / / ro,"
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
