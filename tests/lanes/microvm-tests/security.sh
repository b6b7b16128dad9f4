#!/bin/sh
# security: the container's security settings beyond its privileges apply inside the guest
# as runc applies them on the host: process.oomScoreAdj, linux.sysctl, readonlyPaths (runc's
# /proc/sys, and a directory of the image's), maskedPaths (a file and a directory of the
# image's; runc's defaults that the guest kernel lacks are skipped, as runc skips them),
# and linux.seccomp (compiled on the host, loaded by the agent) — for the container's
# process and for an exec'd one. The unmasked neighbour (/etc/visible) and a plain touch
# show the reads and writes the settings refuse would work otherwise.
. /srv/microvm-tests/common.sh
cd /srv/bundles/security || exit 1
check() { # $1: what ran, $2: its output
  field() { echo "$2" | sed -n "s/^$1: //p"; }
  expect_eq "$1 oom_score_adj" "$(field oom "$2")" 123
  expect_eq "$1 sysctl net.ipv4.ip_forward" "$(field forward "$2")" 1
  expect_eq "$1 write under read-only /proc/sys" "$(field procsys "$2")" refused
  expect_eq "$1 unmasked file" "$(field visible "$2")" shown
  expect_eq "$1 masked file" "$(field secret "$2")" "[]"
  expect_eq "$1 masked directory" "$(field secretdir "$2")" "[]"
  expect_eq "$1 write in the masked directory" "$(field secretdir-write "$2")" refused
  expect_eq "$1 write in a read-only path" "$(field ro-write "$2")" refused
  expect_eq "$1 read in a read-only path" "$(field ro-read "$2")" kept
  expect_eq "$1 mkdir (refused by the profile)" "$(field mkdir "$2")" refused
  expect_eq "$1 touch (allowed by the profile)" "$(field touch "$2")" done
  echo "$2" | grep -qE '^Seccomp:[[:space:]]+2' || fail "$1: no seccomp filter on the process"
}
out=$(runcell run mv-sec 2>/tmp/sec-err </dev/null) || { cat /tmp/sec-err; fail "run"; }
echo "$out"
check run "$out"
nothing_left mv-sec

# an exec'd process: the same filter, oom_score_adj and mounts (the container's process
# runs the probe too, then waits)
cd /srv/bundles/security-wait || exit 1
runcell create mv-sec-exec </dev/null >/dev/null 2>/tmp/sec-err || { cat /tmp/sec-err; fail "create"; }
runcell start mv-sec-exec || fail "start"
out=$(runcell exec mv-sec-exec sh /bin/security-probe </dev/null) || fail "exec: $out"
echo "$out"
check exec "$out"
runcell delete --force mv-sec-exec || fail "delete --force"
nothing_left mv-sec-exec

# a profile the kernel refuses fails create with the reason, and leaves nothing
mkdir -p /tmp/badsec && cd /tmp/badsec || exit 1
sed 's/"SCMP_ACT_ERRNO"/"SCMP_ACT_NOTIFY"/' /srv/bundles/security/config.json > config.json
if runcell create mv-sec-bad </dev/null >/dev/null 2>/tmp/sec-err; then
  runcell delete --force mv-sec-bad
  fail "create accepted a profile with SCMP_ACT_NOTIFY"
fi
cat /tmp/sec-err
grep -q seccomp /tmp/sec-err || fail "the refusal does not name seccomp"
nothing_left mv-sec-bad
