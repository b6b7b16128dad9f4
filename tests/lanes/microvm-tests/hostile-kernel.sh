#!/bin/sh
# hostile-kernel: the VMM boots tests/lanes/hostile/hostile_kernel.c instead of Linux: a
# guest kernel that first reads every device register at every size and sprays unassigned
# ports, MMIO and the serial port ("hostile kernel: sprayed" once all of it came back),
# then drives the virtio devices over garbage rings and writes random values all over
# their registers, in a different order and sequence every boot. Each of four boots must
# fail create with a clear error: the device the guest broke and why, the garbage that
# reached the agent channel and what the host's decoder made of it, or the reset the
# kernel asks for if nothing broke; with the console's tail, the VMM's own memory bounded
# and nothing left behind.
. /srv/microvm-tests/common.sh
if [ ! -f /srv/hostile/kernel.elf ]; then
  echo "the hostile kernel was not built for this lane run"
  exit 77
fi
cd /srv/bundles/echo || exit 1

# sample_memory ID: the anonymous memory (guest RAM is a memfd, not counted) of every
# process of the container (runcell create and the VMM), once a second, into /tmp/hk-rss
sample_memory() {
  seen=0
  i=0
  while [ $i -lt 600 ]; do
    found=0
    for p in /proc/[0-9]*; do
      tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "runcell.* $1 \$" || continue
      found=1
      sed -n 's/^Anonymous: *\([0-9]*\) kB/\1/p' "$p/smaps_rollup" 2>/dev/null >>/tmp/hk-rss
    done
    [ $found = 1 ] && seen=1
    [ $seen = 1 ] && [ $found = 0 ] && break
    sleep 0.5
    i=$((i + 1))
  done
}

rm -f /tmp/hk-rss /tmp/hk-reasons
for n in 1 2 3 4; do
  id=mv-hkernel-$n
  sample_memory "$id" </dev/null >/dev/null 2>&1 &
  sampler=$!
  # bounded (common.sh): a create still there after 150 s is a hang to diagnose, not a
  # reason to hold the whole lane until its deadline
  bounded 150 "$id" env RUNCELL_GUEST_KERNEL=/srv/hostile/kernel.elf \
    RUNCELL_MICROVM_BOOT_TIMEOUT_MS=60000 \
    runcell --log /tmp/hk-$n.log create "$id" </dev/null >/tmp/hk.out 2>/tmp/hk.err
  rc=$?
  if [ $rc -eq 124 ]; then
    tail -40 /tmp/hk.out # the diagnosis went where create's output goes
    runcell delete --force "$id" 2>/dev/null
    fail "boot $n: create hung"
  fi
  wait $sampler
  err=$(cat /tmp/hk.err)
  echo "boot $n: create exit $rc: $err"
  [ $rc -ne 0 ] || fail "boot $n: create succeeded with a hostile kernel"
  expect_contains "boot $n: the first part came through" "$err" "hostile kernel: sprayed"
  case $err in
    *"hostile kernel: done"*"it reset or powered off"* | *"it reset or powered off"*"hostile kernel: done"*)
      echo "reset: nothing broke" >>/tmp/hk-reasons ;;
    *"(fault: virtio device "*)
      grep -q "the guest broke a device: " /tmp/hk-$n.log ||
        fail "boot $n: the log does not name the device the guest broke"
      echo "$err" | grep -o 'virtio-[a-z]*: [^;]*' | sed 's/)$//' | cut -c1-90 >>/tmp/hk-reasons ;;
    *"microVM: agent while booting: agent protocol: "* | *"microVM: the guest agent sent "*)
      # the garbage reached the agent channel intact as bytes: the host's decoder refused
      # it (the machine still ran; the console's tail came with the error)
      echo "$err" | sed -n 's/.*\(agent protocol: [^;:]*\).*/agent channel: \1/p; s/.*\(the guest agent sent [^;]*\).*/agent channel: \1/p' |
        cut -c1-90 >>/tmp/hk-reasons ;;
    *) fail "boot $n: neither a device fault, garbage on the agent channel nor the kernel's reset: $err" ;;
  esac
  runcell delete --force "$id" 2>/dev/null
  nothing_left "$id"
done
echo "how the boots ended:"
sort /tmp/hk-reasons | uniq -c
max=$(sort -n /tmp/hk-rss | tail -n 1)
echo "anonymous memory samples (kB): $(sort -n /tmp/hk-rss | uniq | tr '\n' ' ')"
[ -n "$max" ] || fail "no memory sample of the VMM was taken"
[ "$max" -lt 65536 ] || fail "the VMM's anonymous memory reached $max kB"
