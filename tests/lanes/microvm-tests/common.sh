# Sourced by every microVM lane test (tests/lanes/microvm-tests/*.sh): the environment
# runcell needs in the lane guest, and checks that a container left nothing behind.
# The host side (tests/integration/test_microvm_lane.py) brings runcell, mkfs.erofs, the
# guest kernel and agent initrd (/srv/guest), a busybox rootfs (/srv/rootfs), one bundle
# per scenario (/srv/bundles/NAME/config.json, root.path /srv/rootfs) and a bind mount
# source (/srv/bindsrc).
set -u
if [ ! -d /sys/fs/cgroup/init.scope ] && ! grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts; then
  mount -t cgroup2 none /sys/fs/cgroup || exit 1
fi
export RUNCELL_GUEST_KERNEL=/srv/guest/vmlinux
export RUNCELL_AGENT_INITRD=/srv/guest/agent.initrd
export RUNCELL_CACHE_DIR=/tmp/runcell-cache
# nested guests under QEMU's software emulation boot in seconds, not milliseconds
export RUNCELL_MICROVM_BOOT_TIMEOUT_MS=120000

fail() {
  echo "FAIL: $*"
  exit 1
}

# expect_eq WHAT GOT WANT
expect_eq() {
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

# expect_contains WHAT TEXT NEEDLE
expect_contains() {
  case $2 in
    *"$3"*) ;;
    *) fail "$1: '$2' does not contain '$3'" ;;
  esac
}

# nothing_left ID: no state directory, no cgroup, no VMM process of the container
nothing_left() {
  [ ! -e "/run/runcell/$1" ] || fail "state directory /run/runcell/$1 left behind"
  if find /sys/fs/cgroup -type d -name "*$1*" | grep -q .; then
    fail "cgroup left behind: $(find /sys/fs/cgroup -type d -name "*$1*")"
  fi
  # (cmdline's arguments end in NUL each: the last one is followed by a space here)
  for p in /proc/[0-9]*; do
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "runcell.* $1 \$"; then
      fail "process left behind: $(tr '\0' ' ' <"$p/cmdline")"
    fi
  done
  return 0
}

# kill_and_delete ID: SIGKILL, wait (30 s at most) for "stopped", delete, nothing_left
kill_and_delete() {
  runcell kill "$1" KILL || fail "kill $1"
  n=0
  until runcell state "$1" | grep -q '"status": "stopped"'; do
    n=$((n + 1))
    [ $n -lt 300 ] || fail "$1 did not stop"
    sleep 0.1
  done
  runcell delete "$1" || fail "delete $1"
  nothing_left "$1"
}

# bounded SECONDS ID COMMAND...: runs COMMAND (a runcell command on container ID) with its
# own deadline. A command still running then is a hang to diagnose, not a reason to hold
# the whole lane until its deadline: every thread of the container's runcell processes is
# printed (state, wait channel, kernel stack, syscall) with the end of the guest console,
# the command is killed and bounded returns 124. Otherwise COMMAND's exit status.
bounded() {
  limit=$1
  bid=$2
  shift 2
  "$@" &
  bpid=$!
  i=0
  while kill -0 $bpid 2>/dev/null && [ $i -lt $((limit * 5)) ]; do
    sleep 0.2
    i=$((i + 1))
  done
  if kill -0 $bpid 2>/dev/null; then
    echo "HANG: '$*' still running after $limit s; the container's processes:"
    for p in /proc/[0-9]*; do
      tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "runcell.* $bid \$" || continue
      echo "pid ${p#/proc/}: $(tr '\0' ' ' <"$p/cmdline")"
      for t in "$p"/task/*; do
        echo "  task ${t##*/} $(cat "$t/comm") state $(cut -d' ' -f3 "$t/stat") wchan $(cat "$t/wchan") syscall $(cut -d' ' -f1 "$t/syscall" 2>/dev/null)"
        head -10 "$t/stack" 2>/dev/null | sed 's/^/    /'
      done
    done
    tr -c '[:print:]\n' '?' <"/run/runcell/$bid/console.log" 2>/dev/null | tail -5
    kill -9 $bpid
    wait $bpid 2>/dev/null
    return 124
  fi
  wait $bpid
}
