#!/bin/sh
# resources: what a pod's limits become in a microVM and what the runtime's resource
# commands do to it. A 1.5-CPU quota gives 2 vCPUs and a 512 MiB limit 480 MiB of guest
# RAM (limit less the VMM's 32 MiB); `events --stats` reports the guest's own cpu, memory
# and processes; `pause` stops the vCPUs (the workload's ticks stop) and `resume` restarts
# them; `update --memory 256M` shrinks the guest through its balloon (its MemTotal falls)
# before the host limit is lowered.
. /srv/microvm-tests/common.sh
id=mv-res
cd /srv/bundles/ticker || exit 1
runcell create "$id" </dev/null >/tmp/ticks 2>/tmp/res-err || { cat /tmp/res-err; fail "create"; }
runcell start "$id" || fail "start"
n=0
until [ -s /tmp/ticks ]; do
  n=$((n + 1))
  [ $n -lt 300 ] || fail "the workload never ticked"
  sleep 0.1
done

expect_eq "vCPUs for a 1.5-CPU quota" "$(runcell exec "$id" nproc 2>&1)" 2
mem_kb() { runcell exec "$id" sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo; }
total=$(mem_kb)
echo "guest MemTotal at create: $total kB"
# the guest kernel keeps a few MiB for itself: between 400 and 480 MiB are left to it
[ "$total" -gt 409600 ] && [ "$total" -le 491520 ] || fail "MemTotal $total kB for 480 MiB of RAM"

stats=$(runcell events --stats "$id") || fail "events --stats"
echo "events --stats: $stats" | cut -c1-400
limit=$(echo "$stats" | sed -n 's/.*"memory":{[^}]*"usage":{[^}]*"limit":\([0-9]*\).*/\1/p')
pids=$(echo "$stats" | sed -n 's/.*"pids":{"current":\([0-9]*\).*/\1/p')
expect_eq "memory limit in the stats (the guest's MemTotal)" "$limit" $((total * 1024))
[ -n "$pids" ] && [ "$pids" -ge 2 ] || fail "pids.current '$pids' (sh and sleep run in the guest)"

runcell pause "$id" || fail "pause"
expect_contains "state while paused" "$(runcell state "$id")" '"status": "paused"'
sleep 1
before=$(wc -l </tmp/ticks)
sleep 3
after=$(wc -l </tmp/ticks)
expect_eq "ticks while paused" "$after" "$before"
err=$(runcell exec "$id" true 2>&1) && fail "exec into a paused microVM worked"
echo "exec while paused: $err"
runcell resume "$id" || fail "resume"
expect_contains "state after resume" "$(runcell state "$id")" '"status": "running"'
n=0
until [ "$(wc -l </tmp/ticks)" -gt "$after" ]; do
  n=$((n + 1))
  [ $n -lt 100 ] || fail "no tick after resume"
  sleep 0.1
done

runcell update --memory 268435456 "$id" || fail "update --memory"
small=$(mem_kb)
echo "guest MemTotal after update --memory 256M: $small kB"
# 256 MiB less the VMM's 32: the guest keeps 224 MiB, give or take its balloon's rounding
[ "$small" -lt $((total - 200 * 1024)) ] || fail "MemTotal only fell from $total to $small kB"
runcell update --memory 536870912 "$id" || fail "update --memory back to 512M"
# the guest deflates its balloon in its own time: give it a few seconds
n=0
big=$(mem_kb)
while [ "$big" -le $((small + 200 * 1024)) ] && [ $n -lt 20 ]; do
  sleep 0.5
  n=$((n + 1))
  big=$(mem_kb)
done
echo "guest MemTotal after update --memory 512M: $big kB"
[ "$big" -gt $((small + 200 * 1024)) ] || fail "MemTotal did not grow back ($small -> $big kB)"

kill_and_delete "$id"
