#!/bin/sh
# hostile-agent: guests whose PID 1 breaks the host<->agent protocol (tests/lanes/hostile/
# hostile_agent.c): random bytes, a frame announcing 16 MiB, output flooded after start by
# an agent that never reads its channel, and an agent that never speaks. Each fails the container with a
# clear error; the VMM is gone and nothing is left behind.
. /srv/microvm-tests/common.sh
cd /srv/bundles/echo || exit 1
if [ ! -f /srv/hostile/garbage.initrd ]; then
  echo "the hostile agents were not built for this lane run"
  exit 77
fi
expect_fail() { # NAME WANTED-TEXT
  bounded 180 mv-$1 env RUNCELL_AGENT_INITRD=/srv/hostile/$1.initrd \
    RUNCELL_MICROVM_BOOT_TIMEOUT_MS=${TMO:-120000} \
    runcell --log /tmp/$1.log run mv-$1 </dev/null >/tmp/$1.out 2>/tmp/$1.err
  rc=$?
  if [ $rc -eq 124 ]; then
    cat /tmp/$1.out | tail -40
    runcell delete --force mv-$1 2>/dev/null
    fail "$1: runcell run hung"
  fi
  err=$(cat /tmp/$1.err)
  echo "$1: exit $rc, $(wc -c </tmp/$1.out) bytes of output: $err $(cat /tmp/$1.log 2>/dev/null)"
  [ $rc -ne 0 ] || fail "$1: the container did not fail"
  expect_contains "$1" "$err $(cat /tmp/$1.log 2>/dev/null)" "$2"
  nothing_left mv-$1
}
expect_fail garbage "agent protocol: bad frame magic"
expect_fail oversize "bytes (limit 65536)"
TMO=5000 expect_fail silent "no answer from the guest agent while booting within 5000 ms"
# the agent never reads its channel, so it never sees a credit: past the window its
# output breaks the protocol
expect_fail flood "more output than it was credited"
