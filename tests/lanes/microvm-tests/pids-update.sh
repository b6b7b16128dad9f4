#!/bin/sh
# pids-update: `runcell update --pids-limit` of a running microVM reaches the guest. The
# bundle has no pids limit, yet the agent's guest cgroup is there (pids.max "max"); an
# update to 10 makes the guest's forks fail at 10, -1 lifts the limit again (runc's "no
# limit") and the forks succeed, a value the guest kernel refuses fails the update with
# the guest's reason and leaves the limit as it was, and the VMM's host cgroup never gets
# the workload's number (it counts the VMM's threads, not the guest's processes). A paused
# microVM (whose agent cannot answer) and a created one (whose VMM serves no requests yet)
# refuse the update, saying why.
. /srv/microvm-tests/common.sh
id=mv-pids
cd /srv/bundles/sleep || exit 1
runcell create "$id" </dev/null >/tmp/pids-out 2>/tmp/pids-err || { cat /tmp/pids-err; fail "create"; }
runcell start "$id" || fail "start"
n=0
until grep -q sleeping /tmp/pids-out; do
  n=$((n + 1))
  [ $n -lt 300 ] || fail "the workload never started"
  sleep 0.1
done
cg=/sys/fs/cgroup/container
pids_max() { runcell exec "$id" cat $cg/pids.max; }
# A shell that starts up to 30 sleepers in a subshell; a fork the limit refuses ends the
# subshell (ash gives up on "can't fork"), so "forked 30" means no fork was refused. Its
# errors go to /dev/null (console traffic is what the lane emulator dislikes), and so do
# the sleepers' stdio: holding the exec's output open, they would hold `exec` until they end.
fork_sleepers() {
  runcell exec "$id" sh -c '(i=0; while [ $i -lt 30 ]; do sleep 1000 </dev/null >/dev/null 2>&1 &
    i=$((i + 1)); done; echo forked $i) 2>/dev/null; echo done' 2>&1
}

expect_eq "pids.max without a limit in the bundle" "$(pids_max)" max
bounded 60 "$id" runcell update --pids-limit 10 "$id" || fail "update --pids-limit 10"
out=$(fork_sleepers)
echo "forks under a limit of 10: $out"
case $out in *"forked 30"*) fail "30 forks succeeded under a pids limit of 10" ;; esac
expect_contains "the forking shell" "$out" done
expect_eq "pids.max after update --pids-limit 10" "$(pids_max)" 10
events=$(runcell exec "$id" cat $cg/pids.events) || fail "pids.events"
echo "pids.events: $events"
refused=$(echo "$events" | sed -n 's/^max //p')
[ "${refused:-0}" -ge 1 ] || fail "no fork was refused: $events"
cur=$(runcell exec "$id" cat $cg/pids.current) || fail "pids.current"
echo "pids.current under the limit: $cur"
# the sleepers that were forked stay; the exec'd cat joins the cgroup over the limit
# (migration is allowed to): one over at most
[ "$cur" -le 11 ] || fail "the guest went past its pids limit: $cur"
[ "$cur" -ge 5 ] || fail "pids.current $cur: the sleepers forked up to the limit are not counted"

# the VMM's host cgroup keeps no pids limit of the workload's
vmm=$(runcell state "$id" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
host_cg=/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$vmm/cgroup")
if [ -f "$host_cg/pids.max" ]; then
  expect_eq "the VMM's host pids.max" "$(cat "$host_cg/pids.max")" max
else
  echo "no pids controller on the VMM's host cgroup $host_cg"
fi

# -1 is runc's "no limit": the guest's pids.max goes back to max and forks succeed
bounded 60 "$id" runcell update --pids-limit -1 "$id" || fail "update --pids-limit -1"
expect_eq "pids.max after update --pids-limit -1" "$(pids_max)" max
out=$(fork_sleepers)
echo "forks without a limit: $out"
expect_contains "forks after lifting the limit" "$out" "forked 30"

# a number the guest kernel refuses (past PID_MAX_LIMIT): update fails with the guest's
# reason, pids.max stays as it was and the container goes on
err=$(bounded 60 "$id" runcell update --pids-limit 99999999999 "$id" 2>&1) &&
  fail "update --pids-limit 99999999999 succeeded: $err"
echo "update --pids-limit 99999999999: $err"
expect_contains "the refusal" "$err" "Invalid argument"
expect_eq "pids.max after the refused update" "$(pids_max)" max
err=$(runcell update --pids-limit lots "$id" 2>&1) && fail "update --pids-limit lots succeeded"
echo "update --pids-limit lots: $err"
expect_contains "state after the refused updates" "$(runcell state "$id")" '"status": "running"'
bounded 60 "$id" runcell update --pids-limit 500 "$id" || fail "update --pids-limit 500"
expect_eq "pids.max after update --pids-limit 500" "$(pids_max)" 500
# events --stats reports the guest's limit (the host cgroup has none)
stats=$(runcell events --stats "$id") || fail "events --stats"
expect_eq "pids.limit in events --stats" \
  "$(echo "$stats" | sed -n 's/.*"pids":{"current":[0-9]*,"limit":\([0-9]*\).*/\1/p')" 500
runcell pause "$id" || fail "pause"
err=$(bounded 60 "$id" runcell update --pids-limit 20 "$id" 2>&1) &&
  fail "update of a paused microVM succeeded: $err"
echo "update --pids-limit of a paused microVM: $err"
expect_contains "the paused refusal" "$err" "paused"
runcell resume "$id" || fail "resume"
expect_eq "pids.max after the paused update" "$(pids_max)" 500

# a created microVM: its VMM serves no requests until start
runcell create "$id-created" </dev/null >/dev/null 2>/tmp/pids-err || {
  cat /tmp/pids-err
  fail "create $id-created"
}
err=$(bounded 60 "$id-created" runcell update --pids-limit 20 "$id-created" 2>&1) &&
  fail "update of a created microVM succeeded: $err"
echo "update --pids-limit of a created microVM: $err"
expect_contains "the created refusal" "$err" "before it is started"
runcell delete --force "$id-created" || fail "delete $id-created"
nothing_left "$id-created"

kill_and_delete "$id"
