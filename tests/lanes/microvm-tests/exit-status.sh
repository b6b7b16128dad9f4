#!/bin/sh
# exit-status: sh -c 'exit 7' exits 7; a workload killed by a signal gives 128 + signal;
# stderr arrives apart from stdout.
. /srv/microvm-tests/common.sh
cd /srv/bundles/exit7 && runcell run mv-exit7 >/tmp/out 2>/tmp/err
expect_eq "exit status of sh -c 'exit 7'" "$?" 7
expect_eq "stdout" "$(cat /tmp/out)" "to stdout"
expect_contains "stderr" "$(cat /tmp/err)" "to stderr"
nothing_left mv-exit7
cd /srv/bundles/selfkill && runcell run mv-selfkill >/tmp/out 2>&1
expect_eq "exit status of a workload killed by SIGKILL" "$?" 137
nothing_left mv-selfkill
