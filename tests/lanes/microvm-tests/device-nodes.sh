#!/bin/sh
# device-nodes: the guest has no device cgroup, so the agent makes every mount of the
# container nodev but the default devices it binds into /dev one by one (and devpts). An
# image whose nodes name the guest's own disk (block, outside /dev, in its /dev when the
# bundle mounts none, in a volume bound with "dev") or a char device runc does not allow
# (/dev/kmsg's 1:11), and a node the root workload makes with CAP_MKNOD, cannot be opened,
# as under runc; /dev/null, zero, full, random, urandom, /dev/tty on a terminal and
# /dev/shm work, with the bundle's /dev tmpfs (devnodes) and with the image's /dev
# (devnodes-imgdev). The lane's initramfs carries no device nodes: the image is made here.
. /srv/microvm-tests/common.sh
root=/srv/rootfs-devnodes
vol=/srv/devnodes-vol
rm -rf "$root" "$vol"
cp -a /srv/rootfs "$root" || fail "copy the rootfs"
mkdir -p "$root/tmp" "$root/dev" "$vol" || fail "mkdir"
# virtio-blk takes the first dynamic block major, counted down from 254
for dir in "$root/tmp" "$root/dev" "$vol"; do
  for maj in 254 253 252; do
    mknod "$dir/vda$maj" b $maj 0 || fail "mknod $dir/vda$maj"
  done
  mknod "$dir/kmsg" c 1 11 || fail "mknod $dir/kmsg"
done

for bundle in devnodes devnodes-imgdev; do
  (cd /srv/bundles/$bundle && bounded 120 mv-$bundle runcell run mv-$bundle </dev/null \
    >/tmp/devnodes-out 2>/tmp/devnodes-err)
  rc=$?
  out=$(tr -d '\r' </tmp/devnodes-out)
  echo "--- $bundle"
  echo "$out"
  cat /tmp/devnodes-err
  expect_eq "$bundle: exit status" "$rc" 0
  expect_contains "$bundle: output" "$out" "done"
  vda=$(echo "$out" | sed -n 's/^vda://p')
  case $vda in
    254:0 | 253:0 | 252:0) ;;
    *) fail "$bundle: the guest's vda is '$vda', not a number the image's nodes name" ;;
  esac
  if echo "$out" | grep '^opened:'; then
    fail "$bundle: a device node from the image, a volume or mknod was opened"
  fi
  # 4 planted in /tmp, 4 in the volume, 4 in the image's /dev when it is the container's,
  # and the 2 the workload makes
  want=10
  [ $bundle = devnodes-imgdev ] && want=14
  expect_eq "$bundle: refused nodes" "$(echo "$out" | grep -c '^refused:')" $want
  for ok in zero null urandom random full tty shm; do
    echo "$out" | grep -qx "ok:$ok" || fail "$bundle: /dev/$ok does not work"
  done
  expect_contains "$bundle: /dev/tty output" "$out" "via-dev-tty"
  expect_contains "$bundle: terminal" "$out" "pts:/dev/pts/"
  nothing_left mv-$bundle
done
# linux.devices does not reach the guest (the agent's CONFIG has no field for it): say so
# rather than hide it
echo "$out" | grep '^fuse:'
rm -rf "$root" "$vol"
