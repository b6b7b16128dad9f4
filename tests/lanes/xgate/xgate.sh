#!/bin/sh
# The MPK placement of the cell kernel (xgate), in a lane guest whose CPU has protection
# keys. The host side (tests/integration/test_xgate_lane.py) brings runcell, a busybox
# rootfs with the probe (tests/lanes/xgate/xgate_probe.c) built static and dynamic (with
# the host's libc and loader), bundles with 256 MiB and 1.5 CPUs in each placement
# (xgate, notify, native = gate off), and /srv/xgate/{gate-insn,kernel-data}: the address
# of the gate's syscall instruction and of the cell kernel's data in runcell-xgate.
set -u
cleanup() {
  for b in xgate notify native nocap pk pk.runcell-parked pd; do
    runcell delete --force xg-$b >/dev/null 2>&1
  done
}
fail() {
  echo "FAIL: $*"
  [ -f /tmp/xg.log ] && tail -5 /tmp/xg.log
  cleanup
  exit 1
}
expect() { # WHAT GOT WANT
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
  echo "ok: $1: $2"
}
if [ ! -d /sys/fs/cgroup/init.scope ] && ! grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts; then
  mount -t cgroup2 none /sys/fs/cgroup || exit 1
fi
grep -q pku /proc/cpuinfo || { echo "this guest's CPU has no protection keys"; exit 77; }
GATE=$(cat /srv/xgate/gate-insn)
KDATA=$(cat /srv/xgate/kernel-data)
R="runcell --log /tmp/xg.log"
CPUS=$(grep -c ^processor /proc/cpuinfo)
WANT_CPUS=$((CPUS < 2 ? CPUS : 2))

# the container's own process, through `run`: loaded by the cell loader
got=$($R run --no-pivot --bundle /srv/bundles/xgate-run xg-run)
expect "run: views (256 MiB, 1.5 CPUs)" "$got" "mem_mib=256 cpus=$WANT_CPUS"
expect "state of a finished run" "$($R list -q | grep -c xg-run)" "0"

for b in xgate notify native; do
  $R create --no-pivot --bundle /srv/bundles/$b xg-$b || fail "create $b"
  $R start xg-$b || fail "start $b"
done
expect "state: placement" "$($R state xg-xgate | grep -o '"run.runcell.placement": *"[a-z]*"' | tr -d ' ')" \
  '"run.runcell.placement":"xgate"'
grep -q "container xg-xgate: .*cell kernel placement xgate" /tmp/xg.log || fail "the log does not name the placement"

x() { $R exec "xg-$1" "$2" "$3" ${4:+"$4"}; }
for probe in /bin/probe-static /bin/probe-dyn; do
  # resource views: the same in both placements, the host's without the gate
  expect "$probe views xgate" "$(x xgate $probe views)" "mem_mib=256 cpus=$WANT_CPUS"
  expect "$probe views notify" "$(x notify $probe views)" "mem_mib=256 cpus=$WANT_CPUS"
  expect "$probe threads xgate" "$(x xgate $probe threads)" "threads ok 8"
  # the cell kernel's memory: a protection-key fault, not a mapping error (probe-dyn: the
  # fault handler's printf binds lazily, so ld.so's XRSTOR is emulated in a signal handler,
  # where the SSE state is initial and XSAVEC leaves MXCSR unwritten)
  expect "$probe write-kernel xgate" "$(x xgate $probe write-kernel $KDATA)" "fault pkuerr"
  expect "$probe read-kernel xgate" "$(x xgate $probe read-kernel $KDATA)" "fault pkuerr"
  expect "$probe write-kernel native (nothing there)" "$(x native $probe write-kernel $KDATA)" "fault maperr"
  # a WRPKRU the program builds: neutralized by the scan, refused when it runs
  expect "$probe wrpkru xgate" "$(x xgate $probe wrpkru)" "sigill"
  case $(x native $probe wrpkru) in
    "ran pkru=0x0") echo "ok: $probe wrpkru native: runs (the test can fail)" ;;
    *) fail "$probe wrpkru native: $(x native $probe wrpkru)" ;;
  esac
  expect "$probe rwx xgate" "$(x xgate $probe rwx)" "rwx errno 13"
  expect "$probe rwx native" "$(x native $probe rwx)" "rwx ok"
  expect "$probe pkey xgate" "$(x xgate $probe pkey)" "pkey errno 28"
  # the gate's syscall instruction called directly: still the gate's policy
  expect "$probe gate xgate" "$(x xgate $probe gate $GATE)" \
    "mount=1 unshare=1 bpf=1 packet=97 ptrace=1 io_uring=38 keyctl=1"
  expect "$probe own SIGSYS handler" "$(x xgate $probe sigsys)" "sigill"
  expect "$probe fp" "$(x xgate $probe fp)" "fp 3.141593 2.718282"
  # XRSTOR's compacted form as the CPU runs it (no gate), and as the gate emulates it
  native_xrstor=$(x native $probe xrstor)
  case $native_xrstor in
    "xrstor init=0x1f80 loaded=0x1fa0" | "xrstor no-xsavec") echo "ok: $probe xrstor native: $native_xrstor" ;;
    *) fail "$probe xrstor native: $native_xrstor" ;;
  esac
  expect "$probe xrstor xgate" "$(x xgate $probe xrstor)" "$native_xrstor"
  # the emulation on its own, against the SDM's rule for the compacted form (the only
  # check of it where the CPU, like the lane's, has no XSAVEC)
  expect "$probe xrstor emulated" "$(x xgate $probe xrstor-emulated)" "xrstor init=0x1f80 loaded=0x1fa0"
  expect "$probe posix_spawn x100" "$(x xgate $probe spawn)" "spawned 100"
  expect "$probe exec /proc/self/exe" "$(x xgate $probe exec-self)" "mem_mib=256 cpus=$WANT_CPUS"
done
# the dynamic loader's XRSTORs (lazy binding) and libc's WRPKRU (pkey_set), as mapped:
# replaced by UD2 in the cell (the fp check above went through the emulated XRSTOR),
# untouched without the gate
native=$(x native /bin/probe-dyn neutralized)
xr=$(echo "$native" | sed 's/.*xrstor=\([0-9]*\).*/\1/')
wr=$(echo "$native" | sed 's/.*wrpkru=\([0-9]*\).*/\1/')
[ "$((xr + wr))" -gt 0 ] || fail "the host's ld.so and libc have no XRSTOR or WRPKRU to neutralize: $native"
expect "neutralized in ld.so and libc (native)" "$native" "xrstor=$xr wrpkru=$wr ud2=0"
expect "neutralized in ld.so and libc (xgate)" "$(x xgate /bin/probe-dyn neutralized)" "xrstor=0 wrpkru=0 ud2=$((xr + wr))"
# busybox through a shell, a pipe and a #! script, all exec'd through the loader
expect "sh pipeline" "$(x xgate /bin/sh -c 'echo hello | tr a-z A-Z')" "HELLO"
expect "free" "$($R exec xg-xgate sh -c "free -m | awk '/Mem:/ {print \$2}'")" "256"
expect "nproc" "$($R exec xg-xgate nproc)" "$WANT_CPUS"
$R exec xg-xgate sh -c 'printf "#!/bin/sh\necho script \$1\n" > /tmp/s.sh && chmod +x /tmp/s.sh'
expect "#! script" "$($R exec xg-xgate /tmp/s.sh arg)" "script arg"
expect "ENOEXEC falls back to sh" "$($R exec xg-xgate sh -c 'printf "echo noshebang\n" > /tmp/n.sh; chmod +x /tmp/n.sh; /tmp/n.sh')" "noshebang"
expect "missing program" "$($R exec xg-xgate sh -c '/nonexistent 2>/dev/null; echo $?')" "127"
expect "comm is the program's" "$($R exec xg-xgate cat /proc/self/comm)" "cat"

# Debian's python3 (when the host brought it): threads, sysconf, a subprocess
if [ -x /srv/rootfs/usr/bin/python3 ]; then
  for b in xgate notify; do
    expect "python3 $b" "$($R exec xg-$b /usr/bin/python3 -S /py_probe.py)" \
      "python cpus=$WANT_CPUS mem_mib=256 threads_agree=True child"
  done
else
  echo "(no python3 in the rootfs: the host has none)"
fi

# cgroup v2 (this guest mounts a pure cgroup2, as Debian 12 does): a cell's cell kernels
# are in <cell>/runcell-cellk, the cell's for cpu, memory and pids, out of the OOM
# killer's reach and out of ps; a pause moves them out of the frozen tree (a process in a
# views read would otherwise keep the freeze from completing) and resume brings them back
grep -qw cpu /sys/fs/cgroup/cgroup.controllers || fail "the guest's cgroup2 offers no cpu controller"
alive() { [ -d /proc/$1 ] && ! grep -q ') Z' /proc/$1/stat; }
for b in xgate notify; do
  CG=/sys/fs/cgroup/runcell/xg-$b
  K=$CG/runcell-cellk
  [ -d $K ] || fail "$b: no $K: the cell kernel is not charged to its cell"
  kpids=$(cat $K/cgroup.procs)
  [ -n "$kpids" ] || fail "$b: $K holds no process"
  listed=" $($R ps --format json xg-$b | tr '[],' '   ') "
  for p in $kpids; do
    expect "$b: $p in runcell-cellk" "$(cat /proc/$p/comm)" "runcell-cellk"
    expect "$b: cell kernel $p's oom_score_adj" "$(cat /proc/$p/oom_score_adj)" "-1000"
    case $listed in *" $p "*) fail "$b: ps lists the cell kernel $p: $listed" ;; esac
  done
  before=$(awk '/^usage_usec/ {print $2}' $K/cpu.stat)
  $R exec xg-$b sh -c 'i=0; while [ $i -lt 200 ]; do cat /proc/meminfo >/dev/null; i=$((i+1)); done'
  after=$(awk '/^usage_usec/ {print $2}' $K/cpu.stat)
  [ "$after" -gt "$before" ] || fail "$b: the views' CPU is not the cell's ($before -> $after us)"
  echo "ok: $b: the cell kernels' CPU counts in the cell: $before -> $after us"
  for r in 1 2 3; do
    $R exec -d xg-$b sh -c 'while :; do cat /proc/meminfo /proc/stat >/dev/null; done' \
      </dev/null >/dev/null 2>&1 || fail "$b: exec -d a views reader"
  done
  sleep 1
  n=$(wc -l <$K/cgroup.procs)
  # without the parking, about one pause in three timed out here ("frozen 1" never came)
  i=0
  while [ $i -lt 10 ]; do
    $R pause xg-$b || fail "$b: pause $i with processes reading views"
    $R resume xg-$b || fail "$b: resume $i"
    i=$((i + 1))
  done
  echo "ok: $b: 10 pauses with views readers running"
  $R pause xg-$b || fail "$b: pause with a process reading views"
  $R state xg-$b | grep -q '"status": *"paused"' || fail "$b: state after pause: $($R state xg-$b)"
  expect "$b: frozen" "$(grep frozen $CG/cgroup.events)" "frozen 1"
  expect "$b: cell kernels parked outside the frozen cell" \
    "$(wc -l <$K/cgroup.procs) $(wc -l <$CG.runcell-parked/cgroup.procs)" "0 $n"
  $R resume xg-$b || fail "$b: resume"
  expect "$b: cell kernels back" "$(wc -l <$K/cgroup.procs) $([ -d $CG.runcell-parked ] && echo parked)" "$n "
  expect "$b: views after resume" "$($R exec xg-$b sh -c "free -m | awk '/Mem:/ {print \$2}'")" "256"
  kpids=$(cat $K/cgroup.procs)
  $R delete --force xg-$b || fail "delete $b"
  [ ! -d $CG ] && [ ! -d $CG.runcell-parked ] || fail "$b: delete left $CG or its parked sibling"
  for p in $kpids; do alive $p && fail "$b: cell kernel $p outlived delete"; done
  echo "ok: $b: delete ended the cell kernels and removed their cgroups"
done

problems=""
bad() { echo "BAD: $*"; problems="$problems; $*"; }
soft() { [ "$2" = "$3" ] && echo "ok: $1: $2" || bad "$1: got '$2', want '$3'"; } # WHAT GOT WANT

# A runtime without CAP_SYS_RESOURCE (a nested host: an unprivileged LXD or Incus
# container, whose root has it only in its own user namespace): the cell kernel cannot
# lower its oom_score_adj below the runtime's, and is still charged to its cell.
NC="/srv/rootfs/bin/probe-static nocap-exec runcell --log /tmp/xg.log"
adj=$(/srv/rootfs/bin/probe-static nocap-exec cat /proc/self/oom_score_adj)
if ! $NC create --no-pivot --bundle /srv/bundles/notify xg-nocap; then
  bad "create without CAP_SYS_RESOURCE: $(tail -1 /tmp/xg.log)"
else
  $NC start xg-nocap || fail "start without CAP_SYS_RESOURCE"
  expect "views without CAP_SYS_RESOURCE" \
    "$($NC exec xg-nocap sh -c "free -m | awk '/Mem:/ {print \$2}'")" "256"
  K=/sys/fs/cgroup/runcell/xg-nocap/runcell-cellk
  kpids=$(cat $K/cgroup.procs)
  [ -n "$kpids" ] || fail "nocap: $K holds no process"
  for p in $kpids; do
    expect "nocap: cell kernel $p's oom_score_adj (the runtime's)" "$(cat /proc/$p/oom_score_adj)" "$adj"
  done
fi
$R delete --force xg-nocap || fail "delete nocap"

# <cell>.runcell-parked is the cell's only: a container cannot be named (or given a
# cgroupsPath) so that its cgroup is that, nor runcell-cellk; and a cgroup of that name
# that is not runcell's (made by hand here, with a process in a mount namespace of its
# own) is never filled, emptied or removed by the cell's pause, resume or delete.
CGA=/sys/fs/cgroup/runcell/xg-pk
P=$CGA.runcell-parked
$R create --no-pivot --bundle /srv/bundles/notify xg-pk || fail "create xg-pk"
$R start xg-pk || fail "start xg-pk"
if $R create --no-pivot --bundle /srv/bundles/native xg-pk.runcell-parked 2>/tmp/pk.err; then
  bad "a container named xg-pk.runcell-parked was created: its cgroup is xg-pk's parked sibling"
  $R delete --force xg-pk.runcell-parked
else
  echo "ok: xg-pk.runcell-parked refused: $(cat /tmp/pk.err)"
fi
[ -d $P ] && rmdir $P
mkdir $P || fail "mkdir $P"
unshare -m sleep 1000 &
foreign=$!
echo $foreign >$P/cgroup.procs || fail "move $foreign to $P"
kpids=$(cat $CGA/runcell-cellk/cgroup.procs)
if $R pause xg-pk 2>/tmp/pk.err; then
  bad "pause went ahead with a foreign $P"
  for p in $kpids; do grep -qx $p $P/cgroup.procs && bad "pause parked the cell kernel $p in the foreign $P"; done
  $R resume xg-pk || bad "resume xg-pk"
else
  echo "ok: pause refused: $(cat /tmp/pk.err)"
  expect "xg-pk not frozen after the refused pause" "$(grep frozen $CGA/cgroup.events)" "frozen 0"
  expect "xg-pk state after the refused pause" "$($R state xg-pk | grep -o '"status": *"[a-z]*"' | tr -d ' ')" '"status":"running"'
fi
soft "the foreign process stays in $P" "$(cat $P/cgroup.procs)" "$foreign"
soft "xg-pk's cell kernels stay in its runcell-cellk" "$(cat $CGA/runcell-cellk/cgroup.procs)" "$kpids"
$R delete --force xg-pk || bad "delete xg-pk: $(tail -1 /tmp/xg.log)"
alive $foreign || bad "delete xg-pk killed the foreign process $foreign"
[ -d $P ] || bad "delete xg-pk removed the foreign $P"
[ -d $CGA ] && bad "delete xg-pk left $CGA"
kill $foreign 2>/dev/null
wait $foreign 2>/dev/null
[ -d $P ] && rmdir $P

# delete --force of a paused cell: its cell kernels (parked outside it) end and both
# cgroups go
CG=/sys/fs/cgroup/runcell/xg-pd
$R create --no-pivot --bundle /srv/bundles/notify xg-pd || fail "create xg-pd"
$R start xg-pd || fail "start xg-pd"
kpids=$(cat $CG/runcell-cellk/cgroup.procs)
$R pause xg-pd || fail "pause xg-pd"
soft "xg-pd: cell kernels parked" "$(cat $CG.runcell-parked/cgroup.procs)" "$kpids"
$R delete --force xg-pd || bad "delete --force of the paused xg-pd: $(tail -1 /tmp/xg.log)"
[ -d $CG ] && bad "delete --force of the paused xg-pd left $CG"
[ -d $CG.runcell-parked ] && bad "delete --force of the paused xg-pd left $CG.runcell-parked"
for p in $kpids; do alive $p && bad "xg-pd: cell kernel $p outlived delete --force while paused"; done

[ -z "$problems" ] || fail "${problems#; }"
echo "ok: the parked sibling is the cell's only; delete --force while paused"

for b in xgate notify native; do
  $R delete --force xg-$b || fail "delete $b"
done
echo "all xgate checks passed"
