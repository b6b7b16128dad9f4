#!/bin/sh
# exhaustion: a fork bomb and a full disk inside a microVM. Under a pids limit of 40 the
# guest's forks fail at the limit as under runc (the agent's guest cgroup with that
# pids.max, which exec'd processes join too; the container's cgroup mount is read-only
# even where the bundle asks otherwise, so the limit stays), while the host still forks and
# runcell still answers; a workload that fills its root gets ENOSPC from its own guest (the
# writable layer is the guest's memory, bounded by the VM's) and the container goes on.
# Nothing is left after delete.
. /srv/microvm-tests/common.sh
cd /srv/bundles/forkbomb || exit 1
runcell create mv-bomb </dev/null >/dev/null 2>/tmp/bomb-err || { cat /tmp/bomb-err; fail "create"; }
runcell start mv-bomb || fail "start"
n=0
until cur=$(runcell exec mv-bomb cat /sys/fs/cgroup/container/pids.current 2>/tmp/bomb-err) &&
  [ "$cur" -ge 38 ]; do
  n=$((n + 1))
  [ $n -lt 120 ] || fail "the bomb never reached the limit: pids.current '$cur' ($(cat /tmp/bomb-err))"
  sleep 1
done
echo "pids.current $cur"
expect_eq "pids.max in the guest" "$(runcell exec mv-bomb cat /sys/fs/cgroup/container/pids.max)" 40
events=$(runcell exec mv-bomb cat /sys/fs/cgroup/container/pids.events) || fail "pids.events"
echo "pids.events: $events"
refused=$(echo "$events" | sed -n 's/^max //p')
[ "${refused:-0}" -ge 1 ] || fail "no fork was refused: $events"
sleep 2
cur=$(runcell exec mv-bomb cat /sys/fs/cgroup/container/pids.current) || fail "pids.current"
# the exec'd cat itself joins the cgroup: one over is what migration allows
[ "$cur" -le 41 ] || fail "the guest went past its pids limit: $cur"
# the host is unaffected: it forks, and runcell answers
i=0
while [ $i -lt 20 ]; do
  /bin/true || fail "the host could not fork"
  i=$((i + 1))
done
runcell state mv-bomb | grep -q '"status": "running"' || fail "state: $(runcell state mv-bomb)"
# the limit cannot be lifted from inside: the cgroup mount is read-only though the bundle
# asked for it writable (echo and the redirection need no fork)
out=$(runcell exec mv-bomb sh -c 'echo max >/sys/fs/cgroup/container/pids.max && echo raised' 2>&1)
echo "raise pids.max: $out"
case $out in *raised*) fail "the workload raised its own pids.max" ;; esac
expect_contains "raise pids.max" "$out" "Read-only file system"
expect_eq "pids.max after" "$(runcell exec mv-bomb cat /sys/fs/cgroup/container/pids.max)" 40

# a full disk: the writable layer ends, the container goes on
out=$(runcell exec mv-bomb dd if=/dev/zero of=/fill bs=1M 2>&1)
rc=$?
echo "dd: exit $rc: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
[ $rc -ne 0 ] || fail "dd filled no disk"
expect_contains "dd's error" "$out" "No space left on device"
runcell exec mv-bomb rm /fill || fail "rm /fill"
expect_eq "exec after the full disk" "$(runcell exec mv-bomb echo still-here)" "still-here"

kill_and_delete mv-bomb
