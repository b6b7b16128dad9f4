#!/bin/sh
# bind-mount: a host directory and a host file bound into the container are readable in
# the guest at their destinations, read-only as asked (each reaches the guest as a disk image snapshot), and a
# tmpfs mount is there.
. /srv/microvm-tests/common.sh
out=$(cd /srv/bundles/bind && runcell run mv-bind 2>/tmp/err)
rc=$?
cat /tmp/err
expect_eq "exit status" "$rc" 0
expect_contains "directory bind" "$out" "dir:greetings from the host"
expect_contains "file bind" "$out" "file:greetings from the host"
expect_contains "tmpfs mount" "$out" "tmpfs:/scratch"
expect_contains "a read-only bind" "$out" "data:read-only"
nothing_left mv-bind
