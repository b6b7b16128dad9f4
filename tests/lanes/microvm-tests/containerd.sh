#!/bin/sh
# containerd: microVMs driven by a real containerd (Debian's package) through ctr and the
# runc v2 shim, as a user would run them: `ctr run --runc-binary .../runcell-microvm`
# (the handler name that selects the microVM mode, as a RuntimeClass handler would).
# containerd runs with its own config, root, state and socket under /tmp/ctd, the native
# snapshotter (no overlay module needed) and the busybox OCI image the host built.
# Checks: foreground output and exit status, a detached task's state, exec (output and
# exit status), pause and resume, kill and delete,
# and that nothing is left (runtime state, cgroups, VMM processes).
. /srv/microvm-tests/common.sh
for tool in containerd ctr containerd-shim-runc-v2; do
  if ! command -v $tool >/dev/null; then
    echo "$tool was not brought into the lane (containerd is not installed on the host)"
    exit 77
  fi
done
[ -f /srv/image/busybox-oci.tar ] || fail "the busybox OCI image is missing"
IMAGE=$(cat /srv/image/ref)
ln -sf /usr/local/bin/runcell /usr/local/bin/runcell-microvm

base=/tmp/ctd
mkdir -p $base
cat >$base/config.toml <<EOF
version = 2
root = "$base/root"
state = "$base/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$base/containerd.sock"
[ttrpc]
  address = "$base/containerd.sock.ttrpc"
EOF
containerd --config $base/config.toml >$base/containerd.log 2>&1 &
ctd_pid=$!
stop_containerd() {
  kill $ctd_pid 2>/dev/null
  wait $ctd_pid 2>/dev/null
}
trap stop_containerd EXIT
ctr() { command ctr --address $base/containerd.sock --namespace mv "$@"; }
n=0
until ctr version >/dev/null 2>&1; do
  n=$((n + 1))
  [ $n -lt 100 ] || fail "containerd did not come up: $(tail -5 $base/containerd.log)"
  sleep 0.2
done
ctr images import /srv/image/busybox-oci.tar >/dev/null || fail "image import failed"
RUNTIME="--runtime io.containerd.runc.v2 --runc-binary /usr/local/bin/runcell-microvm --snapshotter native"

# foreground: output and the exit status come back through the shim
out=$(ctr run --rm $RUNTIME "$IMAGE" mv-ctd-echo echo hello from a microvm under containerd 2>&1)
expect_eq "ctr run echo" "$out" "hello from a microvm under containerd"
ctr run --rm $RUNTIME "$IMAGE" mv-ctd-exit sh -c 'exit 7' >/dev/null 2>&1
expect_eq "ctr run exit status" "$?" "7"
# the kernel is the guest's, not the lane's
guest=$(ctr run --rm $RUNTIME "$IMAGE" mv-ctd-uname uname -r 2>&1)
[ "$guest" != "$(uname -r)" ] || fail "the container ran on the lane's kernel ($guest)"

# detached: running, then killed with SIGTERM, deleted
ctr run -d $RUNTIME "$IMAGE" mv-ctd-sleep sleep 1000 >/dev/null || fail "ctr run -d failed"
n=0
until ctr task ls | grep -q "^mv-ctd-sleep .*RUNNING"; do
  n=$((n + 1))
  [ $n -lt 100 ] || fail "the detached task never ran: $(ctr task ls)"
  sleep 0.2
done
pid=$(ctr task ls | awk '$1 == "mv-ctd-sleep" {print $2}')
tr '\0' ' ' </proc/$pid/cmdline | grep -q "runcell" ||
  fail "the task's pid $pid is not runcell's VMM: $(tr '\0' ' ' </proc/$pid/cmdline)"
runcell --root /run/containerd/runc/mv state mv-ctd-sleep | grep -q '"microvm"' ||
  fail "the runtime does not report microvm mode: $(runcell --root /run/containerd/runc/mv state mv-ctd-sleep)"
# exec through the shim (it runs `runcell exec --detach --pid-file`, then waits on the pid)
out=$(ctr task exec --exec-id e1 mv-ctd-sleep echo exec under containerd 2>&1)
expect_eq "ctr task exec" "$out" "exec under containerd"
ctr task exec --exec-id e2 mv-ctd-sleep sh -c 'exit 3' >/dev/null 2>&1
expect_eq "ctr task exec exit status" "$?" "3"
# pause and resume through the shim stop and restart the guest's vCPUs
ctr task pause mv-ctd-sleep || fail "ctr task pause failed"
ctr task ls | grep -q "^mv-ctd-sleep .*PAUSED" || fail "not paused: $(ctr task ls)"
ctr task resume mv-ctd-sleep || fail "ctr task resume failed"
ctr task ls | grep -q "^mv-ctd-sleep .*RUNNING" || fail "not running after resume: $(ctr task ls)"
ctr task kill -s TERM mv-ctd-sleep || fail "ctr task kill failed"
n=0
until ctr task ls | grep -q "^mv-ctd-sleep .*STOPPED"; do
  n=$((n + 1))
  [ $n -lt 150 ] || fail "the task did not stop after SIGTERM: $(ctr task ls)"
  sleep 0.2
done
ctr task delete mv-ctd-sleep >/dev/null || fail "ctr task delete failed"
ctr container rm mv-ctd-sleep || fail "ctr container rm failed"

for id in mv-ctd-echo mv-ctd-exit mv-ctd-uname mv-ctd-sleep; do
  [ ! -e /run/containerd/runc/mv/$id ] || fail "runtime state of $id left behind"
  if find /sys/fs/cgroup -type d -name "$id" | grep -q .; then
    fail "cgroup of $id left behind: $(find /sys/fs/cgroup -type d -name "$id")"
  fi
  for p in /proc/[0-9]*; do
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "runcell.* $id \$"; then
      fail "process left behind: $(tr '\0' ' ' <"$p/cmdline")"
    fi
  done
done
echo "containerd ran microVMs: echo, exit 7, guest kernel $guest, detached + exec + pause/resume + kill + delete"
