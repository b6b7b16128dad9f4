#!/bin/sh
# stdio-scale: 100 MiB of workload output reach the container's stdout (a pipe, as
# containerd's shim gives) complete and in order, and the VMM never holds more than its
# flow-control windows: its own (anonymous) memory is sampled while the data flows.
# The data is a 1,000,003-byte random block written 105 times: the block length is prime,
# so any lost, repeated or reordered 32 KiB frame changes the md5.
. /srv/microvm-tests/common.sh
block=/srv/rootfs-big/block
[ -f $block ] || fail "the test block is missing from the big rootfs"
want=$(i=0; while [ $i -lt 105 ]; do cat $block; i=$((i+1)); done | md5sum | cut -d' ' -f1)
cd /srv/bundles/bigout || exit 1
rm -f /tmp/rss /tmp/bigout-done
(
  # the VMM is the container's init: sample its anonymous RSS (guest RAM is a memfd,
  # counted as shared memory, not here) until it is gone; give up looking for it once the
  # run is over (a run that failed early must not leave this loop waiting forever)
  pid=
  while [ -z "$pid" ] && [ ! -e /tmp/bigout-done ]; do
    pid=$(runcell state mv-bigout 2>/dev/null | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
    [ -n "$pid" ] && [ "$pid" != 0 ] || { pid=; sleep 0.2; }
  done
  # (and stop once the run is over: a VMM nobody has reaped yet stays readable here as a
  # zombie, and a reused pid would be sampled forever; that held the lane to its deadline
  # in CI)
  while [ -n "$pid" ] && [ -r /proc/$pid/smaps_rollup ] && [ ! -e /tmp/bigout-done ]; do
    sed -n 's/^Anonymous: *\([0-9]*\) kB/\1/p' /proc/$pid/smaps_rollup >>/tmp/rss
    sleep 1
  done
) </dev/null >/dev/null 2>&1 &
sampler=$!
# the output goes through a FIFO into md5sum, and the run is bounded: a run that hangs
# prints its processes' states and stacks and fails this test instead of holding the
# whole lane to its deadline (it did, with an idle guest, in CI runs 14 and 16)
rm -f /tmp/bigout.pipe /tmp/bigout.md5
mkfifo /tmp/bigout.pipe || fail "mkfifo"
md5sum </tmp/bigout.pipe >/tmp/bigout.md5 &
reader=$!
start=$(date +%s)
bounded 600 mv-bigout sh -c 'exec runcell run mv-bigout >/tmp/bigout.pipe 2>/tmp/err </dev/null'
rc=$?
end=$(date +%s)
touch /tmp/bigout-done
if [ $rc -eq 124 ]; then
  runcell delete --force mv-bigout
  sleep 1
  kill $reader 2>/dev/null
fi
wait $reader
wait $sampler
cat /tmp/err
[ $rc -ne 124 ] || fail "runcell run hung (see above)"
got=$(cut -d' ' -f1 /tmp/bigout.md5)
expect_eq "md5 of 105,000,315 bytes of output" "$got" "$want"
max=$(sort -n /tmp/rss | tail -n 1)
echo "105 MB in $((end - start)) s; VMM anonymous memory samples (kB): $(tr '\n' ' ' </tmp/rss)"
[ -n "$max" ] || fail "no memory sample of the VMM was taken"
# two 256 KiB windows, frame buffers, the reader: a few MiB; the data itself is 100 MiB
[ "$max" -lt 32768 ] || fail "the VMM's anonymous memory reached $max kB while relaying"
nothing_left mv-bigout
