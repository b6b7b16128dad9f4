#!/bin/sh
# crash-safety: runcell killed with SIGKILL part-way through create, start, delete --force
# and exec of a microVM, at delays swept from 0 to 1.25 times each command's own duration
# (measured first, here). After each kill `state` parses or says the container does not
# exist and `list` parses; the container is still usable where the command was not meant
# to end it (a killed start is followed by a start that starts it or finds it running; a
# killed exec by an exec that works); and `delete --force` leaves no state directory,
# cgroup or VMM process behind. (The native and cell modes have test_crash_safety.py.)
. /srv/microvm-tests/common.sh
cd /srv/bundles/sleep || exit 1
ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }

# check ID: what a later command finds after a kill
check() {
  st=$(runcell state "$1" 2>&1)
  case $st in
    *'"status"'*) echo "$st" | grep -q '"id": "'"$1"'"' || fail "state of $1 after a kill: $st" ;;
    *"does not exist"*) ;;
    *) fail "state of $1 after a kill: $st" ;;
  esac
  runcell list --format json >/tmp/list.json 2>&1 || fail "list after a kill: $(cat /tmp/list.json)"
  # (runc prints null for no containers)
  case $(cat /tmp/list.json) in \[*\] | null) ;; *) fail "list --format json: $(cat /tmp/list.json)" ;; esac
}

# a command's duration: the slowest of two full runs
t0=$(ms); runcell create mv-crash-m </dev/null >/dev/null 2>&1 || fail "create"; t1=$(ms)
runcell start mv-crash-m || fail "start"; t2=$(ms)
runcell delete --force mv-crash-m || fail "delete"; t3=$(ms)
create_ms=$((t1 - t0)); start_ms=$((t2 - t1)); delete_ms=$((t3 - t2))
echo "create ${create_ms} ms, start ${start_ms} ms, delete --force ${delete_ms} ms"
nothing_left mv-crash-m

POINTS=8
k=0
while [ $k -lt $POINTS ]; do
  delay=$((create_ms * 5 / 4 * k / (POINTS - 1)))
  id=mv-crash-c$k
  runcell create "$id" </dev/null >/dev/null 2>&1 &
  pid=$!
  sleep "$(awk "BEGIN{print $delay/1000}")"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  check "$id"
  runcell delete --force "$id" >/tmp/del.err 2>&1 ||
    grep -q "does not exist" /tmp/del.err || fail "delete --force after create killed at $delay ms: $(cat /tmp/del.err)"
  nothing_left "$id"
  echo "create killed at $delay ms: clean"
  k=$((k + 1))
done

# killed_at ID DELAY_MS COMMAND...: runs COMMAND in the background and SIGKILLs it after
# DELAY_MS
killed_at() {
  id=$1 delay=$2
  shift 2
  "$@" </dev/null >/dev/null 2>&1 &
  pid=$!
  sleep "$(awk "BEGIN{print $delay/1000}")"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
}

k=0
while [ $k -lt $POINTS ]; do
  delay=$((start_ms * 5 / 4 * k / (POINTS - 1)))
  id=mv-crash-s$k
  runcell create "$id" </dev/null >/dev/null 2>&1 || fail "create $id"
  killed_at "$id" $delay runcell start "$id"
  check "$id"
  # the container is still usable: started now, or already running
  out=$(runcell start "$id" 2>&1) || expect_contains "start after a killed start" "$out" "running"
  st=$(runcell state "$id")
  expect_contains "status after a killed start and a start" "$st" '"status": "running"'
  runcell delete --force "$id" || fail "delete --force after start killed at $delay ms"
  nothing_left "$id"
  echo "start killed at $delay ms: clean"
  k=$((k + 1))
done

k=0
while [ $k -lt $POINTS ]; do
  delay=$((delete_ms * 5 / 4 * k / (POINTS - 1)))
  id=mv-crash-d$k
  runcell create "$id" </dev/null >/dev/null 2>&1 || fail "create $id"
  runcell start "$id" || fail "start $id"
  killed_at "$id" $delay runcell delete --force "$id"
  check "$id"
  runcell delete --force "$id" >/tmp/del.err 2>&1 ||
    grep -q "does not exist" /tmp/del.err || fail "delete --force after delete killed at $delay ms: $(cat /tmp/del.err)"
  nothing_left "$id"
  echo "delete --force killed at $delay ms: clean"
  k=$((k + 1))
done

# exec: the container runs on and takes the next exec
id=mv-crash-e
runcell create "$id" </dev/null >/dev/null 2>&1 || fail "create $id"
runcell start "$id" || fail "start $id"
t0=$(ms); runcell exec "$id" true || fail "exec"; exec_ms=$(($(ms) - t0))
k=0
while [ $k -lt $POINTS ]; do
  delay=$((exec_ms * 5 / 4 * k / (POINTS - 1)))
  killed_at "$id" $delay runcell exec "$id" sh -c 'echo started; sleep 0.5'
  check "$id"
  out=$(runcell exec "$id" echo still here 2>&1) || fail "exec after an exec killed at $delay ms: $out"
  expect_eq "exec after an exec killed at $delay ms" "$out" "still here"
  echo "exec killed at $delay ms: the container runs on"
  k=$((k + 1))
done
runcell delete --force "$id" || fail "delete --force $id"
nothing_left "$id"
