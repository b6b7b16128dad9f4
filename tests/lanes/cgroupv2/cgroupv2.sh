#!/bin/sh
# cgroup v2, runcell next to Debian's runc, in a lane guest with a pure cgroup2 hierarchy
# (the development host is hybrid: its integration tests meet runcell's v1 code; Debian 12
# and Kubernetes nodes run pure v2). The host side (tests/integration/test_cgroup_v2_lane.py)
# brings runc with its shared libraries, runcell, a busybox rootfs and a bundle per scenario
# and instance, /srv/bundles/<scenario>-<instance>: the same config.json for every instance
# but cgroupsPath /<scenario>-<instance> (and /<scenario>-<instance>/c, /a/b where a
# scenario says so) and the annotations. Instances: runc (the reference), native (runcell,
# gate off) and cell (runcell's default mode with the notify placement named by
# annotation). Each check compares what runcell did with what runc did in this guest.
set -u
G=/sys/fs/cgroup
LOG=/tmp/cg2.log
R="runcell --log $LOG"
IDS="" # every container id created, for cleanup
DIRS="" # cgroups made by this script, removed last (deepest first as listed)

cleanup() {
  for id in $IDS; do
    case $id in
      *-runc) runc delete --force "$id" >/dev/null 2>&1 ;;
      *) $R delete --force "$id" >/dev/null 2>&1 ;;
    esac
  done
  for d in $DIRS; do rmdir "$d" 2>/dev/null; done
}
fail() {
  echo "FAIL: $*"
  [ -f $LOG ] && tail -3 $LOG
  cleanup
  exit 1
}
expect() { # WHAT GOT WANT
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
  echo "ok: $1: $2"
}
rt() { # ID: the runtime of this instance
  case $1 in
    *-runc) echo runc ;;
    *) echo "$R" ;;
  esac
}
create() { # ID: create from /srv/bundles/ID (errors in /tmp/create.err)
  IDS="$IDS $1"
  $(rt "$1") create --no-pivot --bundle "/srv/bundles/$1" "$1" 2>/tmp/create.err
}
status() { $(rt "$1") state "$1" 2>/dev/null | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p'; }
wait_status() { # ID STATUS: polls for 10 s
  n=0
  while [ "$(status "$1")" != "$2" ]; do
    n=$((n + 1))
    [ $n -lt 100 ] || fail "$1: state $(status "$1"), want $2"
    sleep 0.1
  done
}
val() { # FILE: its content on one line, or (none)
  if [ -e "$1" ]; then tr '\n' ' ' <"$1" | sed 's/ *$//'; else echo "(none)"; fi
}
# FILE: a runtime's error, its last line: runc's msg="..." or runcell's message, the end
# of it when it is long (where the reason is)
last_line() {
  grep . "$1" | tail -1 | sed 's/.*level=[a-z]* msg="\(.*\)"$/\1/; s/^runcell: //' |
    awk '{ print (length($0) > 200 ? "..." substr($0, length($0) - 199) : $0) }'
}

# The files runc or runcell write (or might, by mistake) in a container's cgroup.
FILES="cgroup.type cgroup.subtree_control cgroup.max.descendants cgroup.max.depth cgroup.freeze
memory.max memory.low memory.min memory.high memory.swap.max memory.swap.high memory.oom.group
cpu.max cpu.weight cpu.weight.nice cpu.max.burst cpu.idle cpuset.cpus cpuset.mems pids.max
io.weight io.max hugetlb.2MB.max hugetlb.2MB.rsvd.max hugetlb.1GB.max rdma.max misc.max"
SHOW="memory.max memory.low memory.high memory.swap.max cpu.max cpu.weight cpuset.cpus pids.max io.weight"
same_cg() { # WHAT RUNC_DIR DIR...: every file of $FILES the same in each DIR as in runc's
  what=$1 ref=$2
  shift 2
  diffs=""
  for f in $FILES; do
    want=$(val "$ref/$f")
    for d in "$@"; do
      got=$(val "$d/$f")
      [ "$got" = "$want" ] || diffs="$diffs
  $f: runc's $ref has '$want', $d has '$got'"
    done
  done
  [ -z "$diffs" ] || fail "$what: cgroup files differ from runc's:$diffs"
  shown=""
  for f in $SHOW; do shown="$shown $f=$(val "$ref/$f");"; done
  echo "ok: $what: the same as runc's:$shown"
}

# JSON on stdin to one "path=value" line per leaf (array items as path[]), for the
# events output: busybox has no JSON tool.
flat() {
  awk '
  function ws() { while (i <= n && substr(s, i, 1) ~ /^[ \t\r\n]$/) i++ }
  function str(   o, c) {
    i++; o = ""
    while (i <= n && (c = substr(s, i, 1)) != "\"") {
      if (c == "\\") { o = o c; i++; c = substr(s, i, 1) }
      o = o c; i++
    }
    i++; return o
  }
  function val(p,   c, k) {
    ws(); c = substr(s, i, 1)
    if (c == "{") {
      i++; ws()
      if (substr(s, i, 1) == "}") { i++; print p "={}"; return }
      for (;;) {
        ws(); k = str(); ws(); i++; val(p "." k); ws()
        c = substr(s, i, 1); i++
        if (c != ",") return
      }
    }
    if (c == "[") {
      i++; ws()
      if (substr(s, i, 1) == "]") { i++; print p "=[]"; return }
      for (;;) { val(p "[]"); ws(); c = substr(s, i, 1); i++; if (c != ",") return }
    }
    if (c == "\"") { print p "=" str(); return }
    k = ""
    while (i <= n && (c = substr(s, i, 1)) ~ /^[-+0-9.eEa-z]$/) { k = k c; i++ }
    if (k == "") { print "JSON-ERROR=at " i; i = n + 1; return }
    print p "=" k
  }
  { s = s $0 "\n" }
  END { n = length(s); i = 1; val("") }'
}
get() { grep "^$1=" "$2" | head -1 | cut -d= -f2-; } # KEY FLATFILE
has_inotify() { # PID
  for f in /proc/$1/fd/*; do
    [ "$(readlink "$f" 2>/dev/null)" = "anon_inode:inotify" ] && return 0
  done
  return 1
}

if [ ! -d $G/init.scope ] && ! grep -q " $G cgroup2 " /proc/mounts; then
  mount -t cgroup2 none $G || exit 1
fi
for c in cpu cpuset memory pids io hugetlb; do
  grep -qw $c $G/cgroup.controllers || fail "the guest's cgroup2 has no $c controller"
done
[ -b /dev/ram0 ] || fail "no /dev/ram0 (the brd module): the io.max checks need a block device"
echo "runc: $(runc --version | head -1); controllers: $(cat $G/cgroup.controllers)"

# ---- create with linux.resources: memory (limit, reservation, swap), cpu (shares, quota,
# period, mems), pids, blockIO (weight, two throttles on /dev/ram0), hugetlb 2MB, unified
# (memory.high, cgroup.max.descendants)
M="main-runc main-native main-cell"
for id in $M; do create $id || fail "create $id: $(cat /tmp/create.err)"; done
grep -q "container main-cell: cell mode .*cell kernel placement notify" $LOG ||
  fail "the log does not say main-cell is a cell in the notify placement"
same_cg "create" $G/main-runc $G/main-native $G/main-cell
for id in $M; do $(rt $id) start $id || fail "start $id"; done
same_cg "after start" $G/main-runc $G/main-native $G/main-cell

# ---- cgroup namespace: the container sees its own cgroup as / and its own limits
for id in $M; do
  x="$(rt $id) exec $id"
  expect "$id: /proc/self/cgroup" "$($x cat /proc/self/cgroup)" "0::/"
  expect "$id: its /sys/fs/cgroup/pids.max" "$($x cat /sys/fs/cgroup/pids.max)" "$(cat $G/$id/pids.max)"
  expect "$id: its /sys/fs/cgroup/memory.max" "$($x cat /sys/fs/cgroup/memory.max)" "$(cat $G/$id/memory.max)"
done
for id in main-runc main-native; do
  expect "$id: cgroups below its own" "$($(rt $id) exec $id find /sys/fs/cgroup -mindepth 1 -type d)" ""
done
# SECURITY.md: a cell's cell kernels are in <cell>/runcell-cellk (on a v2 cpu controller)
expect "main-cell: cgroups below its own (SECURITY.md: runcell-cellk)" \
  "$($R exec main-cell find /sys/fs/cgroup -mindepth 1 -type d)" "/sys/fs/cgroup/runcell-cellk"

# ---- events --stats: the same keys as runc's and the same limits
for id in $M; do
  $(rt $id) events --stats $id >/tmp/ev-$id.json 2>/tmp/ev.err || fail "events --stats $id: $(cat /tmp/ev.err)"
  flat </tmp/ev-$id.json >/tmp/ev-$id.flat
  grep -q JSON-ERROR /tmp/ev-$id.flat && fail "events --stats $id: not JSON: $(cat /tmp/ev-$id.json)"
done
# Keys runc leaves out when their value is 0 (omitempty): activity decides whether they
# are there. Their values, the raw memory.stat ones, pids.current and the id are not
# compared either.
OMITEMPTY='^\.data\.(cpu\.(usage|throttling)\.|blkio\.|memory\.(cache|[A-Za-z]*\.(usage|max))$|hugetlb\.[^.]*\.(usage|max)$)'
VOLATILE="$OMITEMPTY|^\.data\.memory\.raw\.|^\.data\.pids\.current$|^\.id$"
keys_of() { cut -d= -f1 "$1" | grep -Ev "$OMITEMPTY" | sort -u; }
vals_of() { awk -F= -v re="$VOLATILE" '$1 !~ re' "$1" | sort; }
keys_of /tmp/ev-main-runc.flat >/tmp/keys-runc
vals_of /tmp/ev-main-runc.flat >/tmp/vals-runc
for i in native cell; do
  d=$(keys_of /tmp/ev-main-$i.flat | diff /tmp/keys-runc - | grep '^[-+]\.')
  [ -z "$d" ] || fail "events --stats main-$i: keys differ from runc's (- runc, + runcell): $d"
  d=$(vals_of /tmp/ev-main-$i.flat | diff /tmp/vals-runc - | grep '^[-+]\.')
  [ -z "$d" ] || fail "events --stats main-$i: values differ from runc's (- runc, + runcell): $d"
  echo "ok: events --stats main-$i: the same $(wc -l </tmp/keys-runc) keys and values as runc's:" \
    "memory limit $(get .data.memory.usage.limit /tmp/ev-main-$i.flat)," \
    "memory+swap $(get .data.memory.swap.limit /tmp/ev-main-$i.flat)," \
    "pids $(get .data.pids.limit /tmp/ev-main-$i.flat)"
done
for id in $M; do
  u=$(get .data.memory.usage.usage /tmp/ev-$id.flat)
  l=$(get .data.memory.usage.limit /tmp/ev-$id.flat)
  [ -n "$u" ] && [ "$u" -gt 0 ] && [ "$u" -lt "$l" ] || fail "events --stats $id: memory usage '$u' of $l"
  expect "events --stats $id: memory usage is memory.current (+- 1 MiB)" \
    "$(awk -v a="$u" -v b="$(cat $G/$id/memory.current)" 'BEGIN { d = a - b; print (d < 1048576 && d > -1048576) ? "yes" : "no: " a " vs " b }')" "yes"
done
expect "events --stats main-native: pids.current" "$(get .data.pids.current /tmp/ev-main-native.flat)" \
  "$(get .data.pids.current /tmp/ev-main-runc.flat)"
# SECURITY.md: a cell's pids.current counts its cell kernel's tasks (three with views)
expect "events --stats main-cell: pids.current (runc's + the cell kernel's 3 with views: its main, listener and size-hint threads, SECURITY.md)" \
  "$(get .data.pids.current /tmp/ev-main-cell.flat)" "$(($(get .data.pids.current /tmp/ev-main-runc.flat) + 3))"

# ---- ps: the container's processes (a cell's cell kernels are not)
for id in $M; do
  $(rt $id) exec -d $id sleep 999 </dev/null >/dev/null 2>&1 || fail "exec -d $id"
done
for id in $M; do
  n=$($(rt $id) ps --format json $id | tr -c '0-9\n' ' ' | wc -w)
  expect "ps $id: processes (init and an exec'd sleep)" "$n" 2
  t=$($(rt $id) ps $id | grep -c 'sleep 999')
  expect "ps $id: the table lists the exec'd sleep" "$t" 1
done

# ---- update, flag by flag, then with -r: the same files afterwards (and both refuse the
# same: --memory-swap alone, which v2 cannot turn into a swap limit without memory's)
for args in "--memory 300m" "--memory-swap 700m" "--memory 200m --memory-swap 400m" \
  "--memory-reservation 100m" "--cpu-quota 30000" "--cpu-period 200000" "--cpu-quota -1" \
  "--cpu-share 2048" "--pids-limit 99" "--cpuset-cpus 0" "--cpuset-mems 0" \
  "--blkio-weight 800" "--memory -1" "-r /srv/cgroupv2/resources.json"; do
  codes=""
  for id in $M; do
    # shellcheck disable=SC2086 # the flags are words
    $(rt $id) update $args $id >/tmp/upd-$id.err 2>&1
    codes="$codes $?"
  done
  case $codes in
    " 0 0 0") same_cg "update $args" $G/main-runc $G/main-native $G/main-cell ;;
    " 1 1 1") echo "ok: update $args: refused by all (runc: $(last_line /tmp/upd-main-runc.err);" \
      "runcell: $(last_line /tmp/upd-main-native.err))" ;;
    *) fail "update $args: exit codes$codes (runc, native, cell): $(cat /tmp/upd-main-*.err)" ;;
  esac
done

# ---- pause and resume: cgroup.freeze and the state
for id in $M; do
  $(rt $id) pause $id || fail "pause $id"
  expect "pause $id: state, cgroup.freeze, frozen" \
    "$(status $id) $(cat $G/$id/cgroup.freeze) $(grep frozen $G/$id/cgroup.events)" "paused 1 frozen 1"
done
for id in $M; do
  $(rt $id) resume $id || fail "resume $id"
  expect "resume $id: state, cgroup.freeze, frozen" \
    "$(status $id) $(cat $G/$id/cgroup.freeze) $(grep frozen $G/$id/cgroup.events)" "running 0 frozen 0"
done

# ---- kill --all, then delete: the cgroup goes, with one made below it by hand
for id in $M; do
  $(rt $id) kill --all $id KILL || fail "kill --all $id"
  wait_status $id stopped
  expect "kill --all $id: processes left in its cgroup" "$(cat $G/$id/cgroup.procs)" ""
  mkdir $G/$id/sub || fail "mkdir $G/$id/sub"
done
for id in $M; do
  $(rt $id) delete $id || fail "delete $id"
  [ -d $G/$id ] && fail "delete $id left $G/$id: $(find $G/$id -type d)"
  echo "ok: delete $id removed its cgroup and the one below it"
done
[ -d $G/main-cell.runcell-parked ] && fail "delete main-cell left main-cell.runcell-parked"
left=$(find $G -name 'runcell-cellk' -o -name '*.runcell-parked')
[ -z "$left" ] || fail "cell kernel cgroups left: $left"

# ---- unified overrides the converted values (it is applied last), core files included
for id in override-runc override-native; do
  create $id || fail "create $id: $(cat /tmp/create.err)"
done
same_cg "unified pids.max, cpu.weight, cgroup.max.descendants over pids.limit and cpu.shares" \
  $G/override-runc $G/override-native
expect "unified values" "$(cat $G/override-native/pids.max $G/override-native/cpu.weight \
  $G/override-native/cgroup.max.descendants | tr '\n' ' ')" "33 77 5 "
for id in override-runc override-native; do $(rt $id) delete $id || fail "delete $id"; done

# ---- a device weight the kernel refuses (ram0's scheduler weighs no cgroups): runc leaves
# weightDevice out on v2; runcell runs the container too and says the weight is not applied
for id in weightdev-runc weightdev-native; do
  create $id || fail "create $id: $(cat /tmp/create.err)"
done
same_cg "blockIO weight with a weightDevice the kernel refuses" $G/weightdev-runc $G/weightdev-native
warned=$(grep 'weightdev-native: blockIO.weightDevice 1:0 is not applied' "$LOG" | tail -1)
[ -n "$warned" ] || fail "runcell did not log that weightDevice 1:0 was not applied"
echo "ok: weightDevice: runcell logs: $(echo "$warned" | grep -o 'weightDevice 1:0.*' | head -c 160)"
for id in weightdev-runc weightdev-native; do $(rt $id) delete $id || fail "delete $id"; done

# ---- configs both refuse, leaving no cgroup behind: an rdma device the host lacks, unified
# keys that are not a file of the container's cgroup
for s in rdma unified-slash unified-nofile; do
  for id in $s-runc $s-native; do
    create $id && fail "create $id succeeded; runc's and runcell's refuse this config"
    cp /tmp/create.err /tmp/create-$id.err
    [ -d $G/$id ] && fail "the refused create $id left $G/$id"
  done
  echo "ok: $s: refused by both, no cgroup left (runc: $(last_line /tmp/create-$s-runc.err);" \
    "runcell: $(last_line /tmp/create-$s-native.err))"
done

# ---- a cgroupsPath of several components whose parents do not exist: created with their
# controllers enabled on the way down; delete removes the container's own and, as runc's
# does, leaves the parents
for id in deep-runc deep-native; do
  DIRS="$G/$id/a $G/$id $DIRS"
  create $id || fail "create $id: $(cat /tmp/create.err)"
  $(rt $id) start $id || fail "start $id"
done
same_cg "nested /deep-*/a/b" $G/deep-runc/a/b $G/deep-native/a/b
for p in "" /a; do
  expect "nested: subtree_control of /deep-*$p" "$(val $G/deep-native$p/cgroup.subtree_control)" \
    "$(val $G/deep-runc$p/cgroup.subtree_control)"
done
expect "nested: /proc/self/cgroup" "$($R exec deep-native cat /proc/self/cgroup)" "0::/"
for id in deep-runc deep-native; do $(rt $id) delete --force $id || fail "delete $id"; done
expect "nested: what delete leaves (runc, runcell)" \
  "$([ -d $G/deep-runc/a/b ] && echo leaf)$([ -d $G/deep-runc/a ] && echo parents) $(
    [ -d $G/deep-native/a/b ] && echo leaf)$([ -d $G/deep-native/a ] && echo parents)" "parents parents"

# ---- a cgroupsPath below a "domain threaded" cgroup (one with a threaded child): the new
# cgroup is "domain invalid". runc makes it threaded when the config sets no domain
# controller (memory, io, cpu, hugetlb: pids only here), and refuses one that does before
# changing anything. A cell there: its cell kernel's runcell-cellk (and the parked sibling
# of a pause) are threaded too.
for i in runc native cell; do
  for p in thr thrm; do
    [ $p-$i = thrm-cell ] && continue
    mkdir -p $G/$p-$i/t || fail "mkdir $G/$p-$i/t"
    echo threaded >$G/$p-$i/t/cgroup.type || fail "make $G/$p-$i/t threaded"
    DIRS="$DIRS $G/$p-$i/t $G/$p-$i"
  done
done
for id in thr-runc thr-native thr-cell; do
  create $id || fail "create $id (pids only, below a domain threaded cgroup): $(cat /tmp/create.err)"
  $(rt $id) start $id || fail "start $id"
  $(rt $id) exec -d $id sleep 999 </dev/null >/dev/null 2>&1 || fail "exec -d $id"
done
same_cg "below a domain threaded cgroup, pids only" $G/thr-runc/c $G/thr-native/c $G/thr-cell/c
for i in native cell; do
  expect "threaded $i: the parent's subtree_control" "$(val $G/thr-$i/cgroup.subtree_control)" \
    "$(val $G/thr-runc/cgroup.subtree_control)"
done
expect "threaded: cgroup.type, pids.max" "$(cat $G/thr-native/c/cgroup.type $G/thr-native/c/pids.max | tr '\n' ' ')" \
  "threaded 40 "
# a threaded cgroup lists threads only (its cgroup.procs is EOPNOTSUPP)
expect "threaded cell: its cell kernel's cgroup" "$(cat $G/thr-cell/c/runcell-cellk/cgroup.type)" threaded
[ -n "$(cat $G/thr-cell/c/runcell-cellk/cgroup.threads)" ] || fail "threaded cell: no cell kernel in runcell-cellk"
expect "threaded cell: views" "$($R exec thr-cell sh -c "free -m | awk '/Mem:/ {print \$2}'")" \
  "$(free -m | awk '/Mem:/ {print $2}')"
# runc lists (ps) and signals (kill --all) a container's processes from its cgroup.procs,
# which the kernel refuses to read in a threaded cgroup: runc's fail there. runcell's read
# its cgroup.threads.
runc ps thr-runc >/dev/null 2>/tmp/ps.err && echo "(runc's ps works in a threaded cgroup)" ||
  echo "runc's ps in a threaded cgroup fails, not compared: $(last_line /tmp/ps.err)"
for id in thr-native thr-cell; do
  expect "threaded: ps $id (init and an exec'd sleep)" \
    "$($R ps --format json $id | tr -c '0-9\n' ' ' | wc -w)" 2
done
for id in thr-runc thr-native thr-cell; do
  $(rt $id) pause $id || fail "pause $id"
  expect "threaded: pause $id" "$(status $id) $(grep frozen $G/$id/c/cgroup.events)" "paused frozen 1"
  if [ $id = thr-cell ]; then
    expect "threaded: the cell kernels parked" "$(cat $G/$id/c.runcell-parked/cgroup.type) $(
      wc -l <$G/$id/c/runcell-cellk/cgroup.threads)" "threaded 0"
  fi
  $(rt $id) resume $id || fail "resume $id"
  expect "threaded: resume $id" "$(status $id) $(grep frozen $G/$id/c/cgroup.events)" "running frozen 0"
done
for id in thr-native thr-cell; do
  $R kill --all $id KILL || fail "kill --all $id"
  wait_status $id stopped
  expect "threaded: kill --all $id: threads left" "$(cat $G/$id/c/cgroup.threads)" ""
  $R delete $id || fail "delete $id"
done
runc delete --force thr-runc || fail "delete --force thr-runc"
left=$(find $G/thr-runc $G/thr-native $G/thr-cell -mindepth 1 -type d ! -name t)
[ -z "$left" ] || fail "delete left threaded cgroups: $left"
echo "ok: threaded: delete removed the container cgroups (and the cell's runcell-cellk)"
for id in thrm-runc thrm-native; do
  create $id && fail "create $id (memory, below a domain threaded cgroup) succeeded"
  cp /tmp/create.err /tmp/create-$id.err
  [ -d $G/$id/c ] && fail "the refused create $id left $G/$id/c"
done
expect "threaded, memory refused: the parent's subtree_control" \
  "$(val $G/thrm-native/cgroup.subtree_control)" "$(val $G/thrm-runc/cgroup.subtree_control)"
grep -q "threaded" /tmp/create-thrm-native.err ||
  fail "runcell's refusal does not say why: $(cat /tmp/create-thrm-native.err)"
echo "ok: threaded, memory: refused by both, nothing changed (runc: $(last_line /tmp/create-thrm-runc.err);" \
  "runcell: $(last_line /tmp/create-thrm-native.err))"

# ---- OOM: a memory hog under 32 MiB (memory+swap the same) -> an oom event in the events
# stream and memory.events' oom_kill; the container's init (sh) goes on. The cell's bundle
# names no placement: the default on this PKU CPU is notify (the log says).
for i in runc native cell; do
  id=oom-$i
  create $id || fail "create $id: $(cat /tmp/create.err)"
  $(rt $id) events --interval 60s $id >/tmp/oomev-$i 2>&1 &
  ev=$!
  # both watch memory.events with inotify: start the hog once the watch is there
  n=0
  until has_inotify $ev; do
    n=$((n + 1))
    [ $n -lt 100 ] || { kill $ev; fail "$id: events has no inotify watch after 10 s: $(cat /tmp/oomev-$i)"; }
    sleep 0.1
  done
  $(rt $id) start $id || fail "start $id"
  n=0
  while ! grep -q '"oom"' /tmp/oomev-$i; do
    n=$((n + 1))
    [ $n -lt 60 ] || { kill $ev; fail "$id: no oom event in 30 s: $(cat /tmp/oomev-$i)"; }
    sleep 0.5
  done
  kill $ev
  wait $ev 2>/dev/null
  expect "$id: the oom event" "$(grep '"oom"' /tmp/oomev-$i | head -1)" "{\"type\":\"oom\",\"id\":\"$id\"}"
  k=$(awk '/^oom_kill / {print $2}' $G/$id/memory.events)
  [ "$k" -gt 0 ] || fail "$id: memory.events oom_kill $k"
  expect "$id: still running after the OOM kill (oom_kill $k)" "$(status $id)" running
done
grep -q "container oom-cell: cell mode (default), gate on (default), cell kernel placement notify" $LOG ||
  fail "the default placement on this CPU is not notify: $(grep 'container oom-cell' $LOG)"
echo "ok: the default placement on this PKU CPU is notify"
expect "oom-cell: views after the OOM kill (the cell kernel lives)" \
  "$($R exec oom-cell sh -c "free -m | awk '/Mem:/ {print \$2}'")" "32"
for i in runc native cell; do $(rt oom-$i) delete --force oom-$i || fail "delete oom-$i"; done

# ---- a fork bomb under pids.max 32 (and 0.2 CPU): bounded, the guest and the runtime fine
for i in runc native cell; do
  id=bomb-$i
  create $id || fail "create $id: $(cat /tmp/create.err)"
  $(rt $id) start $id || fail "start $id"
  $(rt $id) exec -d $id sh -c 'f() { f | f & }; f' </dev/null >/dev/null 2>&1 || fail "exec -d the bomb in $id"
  n=0
  until [ "$(awk '/^max / {print $2}' $G/$id/pids.events)" -gt 10 ]; do
    n=$((n + 1))
    [ $n -lt 300 ] || fail "$id: the bomb did not reach pids.max in 30 s: $(cat $G/$id/pids.current)"
    sleep 0.1
  done
  cur=$(cat $G/$id/pids.current)
  max=$(awk '/^max / {print $2}' $G/$id/pids.events)
  [ "$cur" -le 32 ] || fail "$id: pids.current $cur over pids.max 32"
  expect "$id: the guest still forks" "$(echo fine | cat)" fine
  expect "$id: state while the bomb runs" "$(status $id)" running
  $(rt $id) kill --all $id KILL || fail "kill --all $id"
  wait_status $id stopped
  $(rt $id) delete $id || fail "delete $id"
  [ -d $G/$id ] && fail "delete $id left $G/$id"
  echo "ok: $id: pids.current $cur <= 32, $max forks refused; kill --all and delete end it"
done

cleanup
echo "all cgroup v2 checks passed"
