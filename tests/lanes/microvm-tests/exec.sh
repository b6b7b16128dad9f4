#!/bin/sh
# exec and ps: processes started in a running microVM by its guest agent, through the
# VMM's control socket — stdio, exit status (code and signal), env/cwd/user, --process,
# a terminal through --console-socket whose size changes reach the guest, --detach with a
# pid file whose process (the stand-in) exits as the guest process did and forwards
# signals, runc's words for a missing binary and a stopped container; ps lists the guest's
# processes (guest pids); nothing is left after delete.
. /srv/microvm-tests/common.sh
id=mv-exec
cd /srv/bundles/sleep || exit 1
runcell create "$id" </dev/null >/tmp/exec-ctr.out 2>/tmp/exec-ctr.err || {
  cat /tmp/exec-ctr.err
  fail "create"
}
err=$(runcell exec "$id" true 2>&1) && fail "exec before start succeeded"
expect_contains "exec before start" "$err" "only once it is started"
expect_eq "ps before start" "$(runcell ps --format json "$id")" "[]"
runcell start "$id" || fail "start"

out=$(runcell exec "$id" echo hello from exec 2>&1) || fail "exec echo: $out"
expect_eq "exec echo" "$out" "hello from exec"

runcell exec "$id" sh -c 'echo out; echo err >&2; exit 3' >/tmp/x.out 2>/tmp/x.err
expect_eq "exit status" "$?" 3
expect_eq "exec stdout" "$(cat /tmp/x.out)" out
expect_eq "exec stderr" "$(cat /tmp/x.err)" err
runcell exec "$id" sh -c 'kill -9 $$'
expect_eq "exit status of a process killed by SIGKILL" "$?" 137

out=$(runcell exec --env FOO=bar --cwd /tmp --user 65534:65534 --additional-gids 5 "$id" \
  sh -c 'echo $FOO $(pwd) $(id -u) $(id -g) $(id -G)')
expect_eq "env, cwd, user" "$out" "bar /tmp 65534 65534 65534 5"

out=$(printf 'line one\nline two\n' | runcell exec "$id" sh -c 'cat; echo done')
expect_eq "stdin piped through" "$out" "$(printf 'line one\nline two\ndone')"
# more than a flow-control window each way
out=$(seq 1 200000 | runcell exec "$id" sh -c 'wc -l; seq 1 300000 | tail -1')
expect_eq "stdin and stdout beyond a window" "$(echo $out)" "200000 300000"

cat >/tmp/exec-proc.json <<'EOF'
{"args": ["sh", "-c", "echo $A; pwd"], "env": ["A=from-file", "PATH=/bin"], "cwd": "/root",
 "user": {"uid": 0, "gid": 0}}
EOF
out=$(runcell exec --process /tmp/exec-proc.json "$id")
expect_eq "exec --process" "$out" "$(printf 'from-file\n/root')"
# the process's own rlimits and umask (runc applies the --process file's; without one, the
# container's: NOFILE 1024 in the bundle, umask 0022)
cat >/tmp/exec-limits.json <<'EOF'
{"args": ["sh", "-c", "echo $(ulimit -Sn) $(ulimit -Hn) $(umask)"], "cwd": "/",
 "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0, "umask": 23},
 "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}]}
EOF
expect_eq "exec --process rlimits and umask" \
  "$(runcell exec --process /tmp/exec-limits.json "$id")" "123 456 0027"
expect_eq "exec's rlimits and umask without --process" \
  "$(runcell exec "$id" sh -c 'echo $(ulimit -Sn) $(ulimit -Hn) $(umask)')" "1024 1024 0022"

err=$(runcell exec "$id" nope 2>&1) && fail "exec of a missing binary succeeded"
expect_contains "missing binary" "$err" 'exec: "nope": executable file not found in $PATH'

# ps: the workload (guest pids), as JSON and as a table
json=$(runcell ps --format json "$id") || fail "ps --format json"
case $json in \[[0-9]*\]) ;; *) fail "ps --format json: '$json'" ;; esac
table=$(runcell ps "$id") || fail "ps"
expect_contains "ps table header" "$table" "UID"
expect_contains "ps table" "$table" "sleep 1000"

# a terminal: the master goes to the console socket, the guest process has a tty, and the
# size the receiver sets (33x77) reaches it
rm -f /tmp/console.sock
console-receiver /tmp/console.sock >/tmp/tty.out &
recv=$!
i=0
while [ ! -S /tmp/console.sock ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
subreaper /tmp/tty.pid runcell exec --tty --console-socket /tmp/console.sock --detach \
  --pid-file /tmp/tty.pid "$id" sh -c 'tty; sleep 3; stty size; exit 5' >/tmp/tty.status ||
  fail "exec --tty --detach"
wait $recv
expect_eq "stand-in exit status (tty)" "$(cat /tmp/tty.status)" "exit 5"
tty_out=$(tr -d '\r' </tmp/tty.out)
expect_contains "tty in the guest" "$tty_out" "/dev/pts/"
expect_contains "window size in the guest" "$tty_out" "33 77"

# --detach: the pid file's process forwards signals and exits like the guest process
subreaper /tmp/det.pid runcell exec --detach --pid-file /tmp/det.pid "$id" \
  sh -c 'trap "echo got TERM; exit 7" TERM; echo trapping; while :; do sleep 0.1; done' \
  >/tmp/det.status 2>/tmp/det.err </dev/null &
sr=$!
i=0
while [ ! -s /tmp/det.pid ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
sleep 1
kill -TERM "$(cat /tmp/det.pid)" || fail "signal the stand-in"
wait $sr
expect_eq "stand-in exit status after SIGTERM" "$(cat /tmp/det.status)" "$(printf 'trapping\ngot TERM\nexit 7')"

# a detached process still running when the container stops is killed with it
subreaper /tmp/long.pid runcell exec --detach --pid-file /tmp/long.pid "$id" sleep 1000 \
  >/tmp/long.status </dev/null &
sr=$!
i=0
while [ ! -s /tmp/long.pid ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
sleep 1
vmm=$(runcell state "$id" | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
runcell kill "$id" KILL || fail "kill"
wait $sr
expect_eq "stand-in of a process killed with the container" "$(cat /tmp/long.status)" "signal 9"
i=0
while [ -d "/proc/$vmm" ] && [ "$(cut -d' ' -f3 "/proc/$vmm/stat" 2>/dev/null)" != Z ] && [ $i -lt 300 ]; do
  sleep 0.1
  i=$((i + 1))
done
err=$(runcell exec "$id" true 2>&1) && fail "exec into a stopped container succeeded"
expect_contains "exec into a stopped container" "$err" "cannot exec in a stopped container"
runcell delete "$id" || fail "delete"
nothing_left "$id"
