#!/bin/sh
# stdio-volume: 4 MiB of workload output and 1 MiB of input pass through the VMM and the
# agent byte for byte and in order, past the 256 KiB flow-control windows both ways.
. /srv/microvm-tests/common.sh
want=$(seq 1 600000 | md5sum | cut -d' ' -f1)
got=$(cd /srv/bundles/seq && runcell run mv-seq 2>/tmp/err </dev/null | md5sum | cut -d' ' -f1)
cat /tmp/err
expect_eq "md5 of 4 MiB of output" "$got" "$want"
nothing_left mv-seq
head -c 1048576 /dev/urandom >/tmp/input
want=$(md5sum </tmp/input | cut -d' ' -f1)
got=$(cd /srv/bundles/cat && runcell run mv-cat 2>/tmp/err </tmp/input | md5sum | cut -d' ' -f1)
cat /tmp/err
expect_eq "md5 of 1 MiB through stdin and back" "$got" "$want"
nothing_left mv-cat
