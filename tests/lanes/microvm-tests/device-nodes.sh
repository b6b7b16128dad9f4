#!/bin/sh
# device-nodes: the guest has no device cgroup, so the agent makes every mount of the
# container nodev but the default devices it binds into /dev one by one (and devpts). An
# image whose nodes name the guest's own disk (block, outside /dev, in its /dev when the
# bundle mounts none, in a volume bound with "dev") or a char device runc does not allow
# (/dev/kmsg's 1:11), and a node the root workload makes with CAP_MKNOD, cannot be opened,
# as under runc; /dev/null, zero, full, random, urandom, /dev/tty on a terminal and
# /dev/shm work, with the bundle's /dev tmpfs (devnodes) and with the image's /dev
# (devnodes-imgdev). linux.devices reach the guest (agent protocol 7): each listed node
# exists with its type, number, mode and owner (fuse; tun in /dev/net, which the guest
# makes; /dev/null and /dev/full replacing the defaults; a FIFO in /dev/ctl) and opens as
# far as the guest kernel allows. The lane's initramfs carries no device nodes: the image
# is made here.
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
  # linux.devices: type:major:minor (hex, as stat prints them):mode:uid:gid
  node() { echo "$out" | sed -n "s|^node:$1:||p"; }
  expect_eq "$bundle: /dev/fuse" "$(node /dev/fuse)" "character special file:a:e5:666:0:0"
  expect_eq "$bundle: /dev/net/tun" "$(node /dev/net/tun)" \
    "character special file:a:c8:664:1000:1001"
  expect_eq "$bundle: /dev/null, listed over the default" "$(node /dev/null)" \
    "character special file:1:3:666:1000:1001"
  expect_eq "$bundle: /dev/full, listed over the default" "$(node /dev/full)" \
    "character special file:1:7:640:0:1001"
  expect_eq "$bundle: /dev/ctl/fifo" "$(node /dev/ctl/fifo)" "fifo:0:0:600:1000:0"
  # The guest kernel has neither FUSE nor TUN (vmm/kernel/guest.config): the misc driver
  # finds no device of the minor and answers ENODEV ("No such device"). Were the nodes
  # on a nodev mount the open would answer EACCES; with a driver it must open.
  for name in fuse tun; do
    got=$(echo "$out" | sed -n "s/^open:$name://p")
    case $got in
      "no:No such device" | yes:ok) ;;
      *) fail "$bundle: open of the $name node: '$got' (driver:result)" ;;
    esac
  done
  nothing_left mv-$bundle
done
rm -rf "$root" "$vol"
