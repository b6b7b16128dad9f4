#!/bin/sh
# chroot-escape: the workload of a microVM, root with containerd's default capabilities
# (CAP_SYS_CHROOT among them), tries the classic chroot escapes (chroot into a
# subdirectory, then ".." from the cwd or a descriptor left above it; the agent's
# /proc/1/root and /proc/1/cwd) to reach the initramfs the agent runs from: the agent puts
# the container's root over the initramfs's "/" by MS_MOVE and chroot, not pivot_root, so
# the initramfs stays the mount namespace's root mount, underneath. Every attempt must run
# (chroot allowed, or the test proves nothing) and end inside the container's root: ".."
# at the root of a mount stacked on the namespace's root mount stays where it is (the
# kernel's choose_mountpoint finds no mountpoint to climb to), as on any host whose "/"
# switch_root moved over the rootfs. The same from a process exec'd into the running
# container. The probe is tests/lanes/microvm-tests/chroot_escape.c.
. /srv/microvm-tests/common.sh
[ -x /usr/local/bin/chroot-escape ] || fail "the probe /usr/local/bin/chroot-escape is missing"
# a rootfs and bundle of its own: the busybox rootfs with the probe, containerd's defaults
root=/tmp/chroot-escape/rootfs
bundle=/tmp/chroot-escape/bundle
rm -rf /tmp/chroot-escape
mkdir -p "$bundle" && cp -a /srv/rootfs "$root" || fail "copy the rootfs"
cp /usr/local/bin/chroot-escape "$root/bin/chroot-escape" || fail "copy the probe"
caps='"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_SYS_CHROOT", "CAP_KILL",'
sed -e "s#\"path\": \"/srv/rootfs\"#\"path\": \"$root\"#" \
  -e 's#^\( *\)"echo",$#\1"/bin/chroot-escape",#' -e 's#"hello from a microvm"#"probe"#' \
  -e "s#\"CAP_KILL\",#$caps#" /srv/bundles/echo/config.json >"$bundle/config.json"
grep -q "\"path\": \"$root\"" "$bundle/config.json" || fail "could not set the root in the bundle"
grep -q '"/bin/chroot-escape"' "$bundle/config.json" || fail "could not set the args in the bundle"
expect_eq "bundle sets with CAP_SYS_CHROOT" "$(grep -c CAP_SYS_CHROOT "$bundle/config.json")" 4

cd "$bundle" || exit 1
out=$(bounded 240 mv-chroot runcell run mv-chroot </dev/null 2>/tmp/chroot-escape/err)
rc=$?
echo "$out"
cat /tmp/chroot-escape/err
case $out in *ESCAPED*) fail "the workload got out of its root (exit $rc)" ;; esac
[ $rc -eq 0 ] || fail "the probe exited $rc"
for a in cwd-dotdot fd-dotdot openat-dotdot proc-1-root proc-1-cwd; do
  echo "$out" | grep -q "^attempt $a: contained" || fail "attempt $a: no verdict"
done
# the escapes were real attempts: chroot was allowed (a refused one says "could not be made")
case $out in *"could not be made"*) fail "an attempt could not be made" ;; esac
expect_contains "verdict" "$out" "every attempt stayed in the container's root"
nothing_left mv-chroot

# an exec'd process (setns into the workload's mount namespace, whose root mount is the
# initramfs: setns takes what is mounted on top of its "/") gets no further
sed -e 's#"/bin/chroot-escape",#"/bin/sleep",#' -e 's#"probe"#"1000"#' "$bundle/config.json" \
  >/tmp/chroot-escape/config.json && mv /tmp/chroot-escape/config.json "$bundle/config.json"
grep -q '"/bin/sleep"' "$bundle/config.json" || fail "could not set the sleeper's args"
bounded 240 mv-chroot runcell create mv-chroot </dev/null >/dev/null 2>/tmp/chroot-escape/err ||
  { cat /tmp/chroot-escape/err; fail "create"; }
bounded 60 mv-chroot runcell start mv-chroot || fail "start"
out=$(bounded 120 mv-chroot runcell exec mv-chroot /bin/chroot-escape </dev/null 2>&1)
rc=$?
echo "$out"
case $out in *ESCAPED*) fail "the exec'd process got out of its root (exit $rc)" ;; esac
[ $rc -eq 0 ] || fail "the exec'd probe exited $rc"
expect_contains "exec verdict" "$out" "every attempt stayed in the container's root"
bounded 60 mv-chroot runcell delete --force mv-chroot || fail "delete --force"
nothing_left mv-chroot
rm -rf /tmp/chroot-escape
