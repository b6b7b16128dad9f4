#!/bin/sh
# concurrency: microVM commands at once. Six full lifecycles (create, start, exec, kill,
# delete) in parallel on distinct ids while `list` runs in a loop: every command succeeds
# and every list parses. Then, in four rounds, ten commands at once on one id (start, kill,
# delete, state, pause, resume, exec, ps, list, delete --force): each succeeds or fails
# with one of the documented state errors, and delete --force leaves nothing behind.
# (The native and cell modes have test_concurrency.py.)
. /srv/microvm-tests/common.sh
cd /srv/bundles/sleep || exit 1
mkdir -p /tmp/conc && rm -f /tmp/conc/*

lifecycle() {
  id=$1
  runcell create "$id" </dev/null >/dev/null 2>/tmp/conc/$id.err || { echo "create: $(cat /tmp/conc/$id.err)"; return 1; }
  runcell start "$id" 2>/tmp/conc/$id.err || { echo "start: $(cat /tmp/conc/$id.err)"; return 1; }
  out=$(runcell exec "$id" echo "hi from $id" 2>&1) || { echo "exec: $out"; return 1; }
  [ "$out" = "hi from $id" ] || { echo "exec output: $out"; return 1; }
  runcell kill "$id" KILL 2>/tmp/conc/$id.err || { echo "kill: $(cat /tmp/conc/$id.err)"; return 1; }
  i=0
  while ! runcell state "$id" 2>/dev/null | grep -q '"status": "stopped"'; do
    [ $i -lt 300 ] || { echo "not stopped after kill"; return 1; }
    sleep 0.1
    i=$((i + 1))
  done
  runcell delete "$id" 2>/tmp/conc/$id.err || { echo "delete: $(cat /tmp/conc/$id.err)"; return 1; }
}

touch /tmp/conc/listing
(
  while [ -e /tmp/conc/listing ]; do
    out=$(runcell list --format json 2>&1) || { echo "list failed: $out" >>/tmp/conc/list-problems; continue; }
    case $out in \[*\] | null) ;; *) echo "list: $out" >>/tmp/conc/list-problems ;; esac
  done
) &
lister=$!
pids=
for n in 1 2 3 4 5 6; do
  (lifecycle mv-conc-$n >/tmp/conc/life-$n.out 2>&1; echo $? >/tmp/conc/life-$n.rc) &
  pids="$pids $!"
done
for p in $pids; do wait $p; done
rm -f /tmp/conc/listing
wait $lister
for n in 1 2 3 4 5 6; do
  [ "$(cat /tmp/conc/life-$n.rc)" = 0 ] || fail "lifecycle $n: $(cat /tmp/conc/life-$n.out)"
  nothing_left mv-conc-$n
done
[ ! -s /tmp/conc/list-problems ] || fail "$(head -3 /tmp/conc/list-problems)"
echo "6 parallel lifecycles: all succeeded, every list parsed"

# accepted ID CMD RC ERR: a command's result is a success or a documented state error
accepted() {
  [ "$3" = 0 ] && return 0
  msg=$(echo "$4" | head -1 | sed 's/^runcell: //')
  case $msg in
    "container does not exist" | "container not running" | "container not paused" | \
    "cannot start an already running container" | "cannot start a container that has stopped" | \
    "cannot start a container in the paused state" | \
    "cannot delete container $1 that is not stopped: running" | \
    "cannot delete container $1 that is not stopped: paused" | \
    "cannot exec in a paused container" | "cannot exec in a stopped container" | \
    "cannot exec in container $1: a microVM runs processes only once it is started")
      return 0 ;;
  esac
  # an exec'd process killed with its container: killed by SIGKILL, nothing to say
  [ "$2" = exec ] && [ "$3" = 137 ] && [ -z "$4" ] && return 0
  return 1
}

round=0
bad=0
while [ $round -lt 4 ]; do
  id=mv-conc-one-$round
  runcell create "$id" </dev/null >/dev/null 2>&1 || fail "create $id"
  [ $((round % 2)) = 1 ] && { runcell start "$id" || fail "start $id"; }
  c=0
  for cmd in "start $id" "kill $id KILL" "delete $id" "state $id" "pause $id" "resume $id" \
             "exec" "ps $id" "list -q" "delete --force $id"; do
    c=$((c + 1))
    # shellcheck disable=SC2086 # word splitting is the point
    (set -- $cmd
     [ "$1" = exec ] && set -- exec "$id" sh -c 'sleep 0.2'
     runcell "$@" </dev/null >/dev/null 2>/tmp/conc/c$c.err
     echo $? >/tmp/conc/c$c.rc
     echo "$1" >/tmp/conc/c$c.name) &
  done
  wait
  c=0
  while [ $c -lt 10 ]; do
    c=$((c + 1))
    name=$(cat /tmp/conc/c$c.name) rc=$(cat /tmp/conc/c$c.rc) err=$(cat /tmp/conc/c$c.err)
    echo "round $round: $name -> $rc ${err:+($err)}"
    accepted "$id" "$name" "$rc" "$err" || { echo "UNEXPECTED"; bad=$((bad + 1)); }
  done
  st=$(runcell state "$id" 2>&1) || expect_contains "state after round $round" "$st" "does not exist"
  runcell delete --force "$id" || fail "delete --force after round $round"
  nothing_left "$id"
  round=$((round + 1))
done
[ $bad = 0 ] || fail "$bad results were neither a success nor a documented state error"
