#!/bin/sh
# terminal: a container with process.terminal gets a pty in the guest (its stdin is a
# tty there) and its output comes back through the pty runcell's console proxy relays.
. /srv/microvm-tests/common.sh
out=$(cd /srv/bundles/tty && runcell run mv-tty </dev/null 2>/tmp/err)
rc=$?
cat /tmp/err
expect_eq "exit status" "$rc" 0
expect_contains "tty output" "$out" "/dev/pts/"
expect_contains "tty output" "$out" "is-a-tty"
nothing_left mv-tty
