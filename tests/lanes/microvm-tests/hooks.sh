#!/bin/sh
# hooks: a microVM's createContainer and startContainer hooks run on the host in the
# container's namespaces with its state, at their moments — while the VMM itself is jailed
# from before the guest reads the container (every thread: no capability, its filter, an
# empty root), so the startContainer hooks come from a privileged runner the VMM forked
# before its jail, which holds none of the VMM's sockets or its console log and is gone
# once they ran; both hooks are told the VMM's pid. A failing startContainer hook fails start
# with its message and leaves nothing behind.
. /srv/microvm-tests/common.sh
rm -rf /tmp/hooks
mkdir -p /tmp/hooks

id=mv-hooks
cd /srv/bundles/hooks || exit 1
runcell create "$id" </dev/null >/tmp/hooks-out 2>&1 || { cat /tmp/hooks-out; fail "create"; }
expect_contains "createContainer hook's state" "$(cat /tmp/hooks/create.json)" "$id"
[ ! -e /tmp/hooks/start.json ] || fail "the startContainer hook ran at create"
pid=$(runcell state "$id" | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
[ -n "$pid" ] && [ -d "/proc/$pid" ] || fail "no VMM process for pid '$pid'"
# created: the guest is up and holds the configured container, the VMM is jailed already
for task in /proc/$pid/task/*; do
  for set in CapEff CapBnd; do
    expect_eq "created VMM thread $task $set" "$(sed -n "s/^$set:\t//p" "$task/status")" \
      0000000000000000
  done
  expect_eq "created VMM thread $task seccomp" "$(sed -n 's/^Seccomp:\t//p' "$task/status")" 2
  expect_eq "created VMM thread $task root" "$(ls -A "$task/root/" 2>&1)" ""
done
runner=$(cat /proc/$pid/task/*/children | tr -d ' ')
[ -n "$runner" ] && [ -d "/proc/$runner" ] || fail "no startContainer hooks' runner under the VMM"
# it waits, holding none of the VMM's descriptors but its pipes (its stdio is the
# container's, as the VMM's own was when it ran the hooks itself)
expect_eq "the runner's state" "$(sed -n 's/^State:\t//p' "/proc/$runner/status" | cut -c1)" S
[ -n "$(ls "/proc/$runner/fd")" ] || fail "the runner holds no descriptor (has it exited?)"
for fd in /proc/$runner/fd/*; do
  case $(readlink "$fd") in
    *console.log* | *control* | socket:*) fail "the runner holds $(readlink "$fd")" ;;
  esac
done
runcell start "$id" 2>/tmp/hooks-err || { cat /tmp/hooks-err; fail "start"; }
expect_contains "startContainer hook's state" "$(cat /tmp/hooks/start.json)" "$id"
pid_of() { sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$1"; }
[ -n "$(pid_of /tmp/hooks/create.json)" ] || fail "no pid in $(cat /tmp/hooks/create.json)"
expect_eq "the pid the startContainer hook is told" "$(pid_of /tmp/hooks/start.json)" \
  "$(pid_of /tmp/hooks/create.json)"
expect_eq "children of the VMM after start" "$(cat /proc/$pid/task/*/children | tr -d ' ')" ""
expect_contains "state after start" "$(runcell state "$id")" '"status": "running"'
runcell delete --force "$id" || fail "delete --force"
nothing_left "$id"

id=mv-hooks-fail
cd /srv/bundles/hooks-fail || exit 1
runcell create "$id" </dev/null >/tmp/hooks-out 2>&1 || { cat /tmp/hooks-out; fail "create $id"; }
if runcell start "$id" 2>/tmp/hooks-err; then fail "start with a failing startContainer hook"; fi
expect_contains "start's error" "$(cat /tmp/hooks-err)" "startContainer"
expect_contains "start's error" "$(cat /tmp/hooks-err)" "the hook says no"
runcell delete --force "$id" || fail "delete --force $id"
nothing_left "$id"
echo ok
