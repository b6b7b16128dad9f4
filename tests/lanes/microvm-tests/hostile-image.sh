#!/bin/sh
# hostile-image: a crafted image in a microVM. Its /etc/passwd and /leak are links to a
# file of the host that runs runcell (absolute, and by ..), and a mount's destination goes
# through /escape -> /. The image is turned into a disk on the host without following a
# link (erofs keeps them as links) and the guest resolves every path inside the
# container's root, so the workload sees dangling links, not the host's file; the mount
# lands in the container's own /etc; the host's /etc and the image on the host stay as
# they were.
. /srv/microvm-tests/common.sh
secret="HOST-SECRET-$$-$(cat /proc/sys/kernel/random/uuid)"
echo "$secret" > /srv/host-secret
rm -rf /etc/escaped
cd /srv/bundles/hostile-image || exit 1
out=$(runcell run mv-himg 2>/tmp/himg-err </dev/null)
rc=$?
echo "$out"
cat /tmp/himg-err
[ $rc -eq 0 ] || fail "run exited $rc"
case $out in *"$secret"*) fail "the host's file leaked into the microVM" ;; esac
echo "$out" | grep -q '^leak:\[cat: can.t open ./leak.: No such file or directory\]$' ||
  fail "/leak did not dangle inside the container"
echo "$out" | grep -q '^escaped-mount:inside$' || fail "the mount through /escape is not in the container's /etc"
expect_eq "mounts at /etc/escaped" "$(echo "$out" | tail -n 1)" 1
[ ! -e /etc/escaped ] || fail "the mount's destination was made on the host: /etc/escaped"
[ ! -e /srv/rootfs-hostile/etc/escaped ] || fail "the image on the host was written to"
[ -L /srv/rootfs-hostile/escape ] || fail "the image's link was replaced on the host"
nothing_left mv-himg
rm -f /srv/host-secret
