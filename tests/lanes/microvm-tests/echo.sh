#!/bin/sh
# echo: `runcell run` of busybox echo in a microVM prints exactly its output, exits 0,
# and leaves nothing behind.
. /srv/microvm-tests/common.sh
out=$(cd /srv/bundles/echo && runcell run mv-echo 2>/tmp/err)
rc=$?
cat /tmp/err
expect_eq "exit status" "$rc" 0
expect_eq "output" "$out" "hello from a microvm"
nothing_left mv-echo
