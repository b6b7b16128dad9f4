#!/usr/bin/env bash
# Boot runcell's guest kernel in QEMU's microvm machine (TCG, no KVM needed) and
# check what the runtime relies on, without runcell's own VMM:
#
#   vmm/kernel/check-boot.sh [KERNEL_DIR]
#
# KERNEL_DIR holds vmlinux + bzImage (default: whatever vmm/kernel/build.sh
# prints, building first if needed).  Two boots: the bzImage (Linux boot
# protocol) and the uncompressed vmlinux (PVH entry).  Each boot gets a gzip'd
# newc initramfs whose /init (static busybox, a #! script) reports back on the
# serial console, mounts an erofs image from a virtio-blk disk and lists it,
# writes a token to a virtio console (/dev/hvc0), and reboots with reboot=k.
# Prints one PASS/FAIL line per item plus timings; exits 1 if anything failed.
#
# Environment: RUNCELL_QEMU (default qemu-system-x86_64), RUNCELL_BUSYBOX
# (a static busybox, default /bin/busybox), CHECK_BOOT_SMP (vCPUs, default 2),
# CHECK_BOOT_KEEP=1 keeps the work dir (logs) and prints its path.
#
# Needs (Debian 12): qemu-system-x86 busybox-static erofs-utils cpio gzip.

set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
qemu=${RUNCELL_QEMU:-qemu-system-x86_64}
busybox=${RUNCELL_BUSYBOX:-/bin/busybox}
smp=${CHECK_BOOT_SMP:-2}
failures=0

die() {
	echo "check-boot: error: $*" >&2
	exit 2
}
pass() { echo "PASS $*"; }
fail() {
	echo "FAIL $*"
	failures=$((failures + 1))
}

for tool in "$qemu" mkfs.erofs cpio gzip timeout; do
	command -v "$tool" >/dev/null || die "$tool not found"
done
[[ -x $busybox ]] || die "$busybox not found (apt-get install busybox-static)"
# The initramfs has no libc: a dynamic busybox would fail as PID 1.
if command -v file >/dev/null && ! file -L "$busybox" | grep -q 'statically linked'; then
	die "$busybox is not statically linked"
fi

if [[ $# -ge 1 ]]; then
	kdir=$1
else
	kdir=$("$here/build.sh" | tail -n1) || die "build.sh failed"
fi
[[ -f $kdir/bzImage && -f $kdir/vmlinux ]] || die "no bzImage/vmlinux in $kdir"

work=$(mktemp -d /tmp/runcell-check-boot.XXXXXX) || die "mktemp failed"
if [[ ${CHECK_BOOT_KEEP:-0} == 1 ]]; then
	echo "check-boot: logs kept in $work"
else
	trap 'rm -rf "$work"' EXIT
fi

# --- initramfs: static busybox + /init ------------------------------------------
root="$work/initramfs"
mkdir -p "$root"/{bin,dev,proc,sys,mnt}
cp "$busybox" "$root/bin/busybox"
# The kernel's built-in default initramfs already provides /dev/console, which
# is unpacked before this archive, so no device nodes (and no root) are needed.
cat >"$root/init" <<'EOF'
#!/bin/busybox sh
# PID 1 in the guest: report to the serial console, then reset the machine.
bb=/bin/busybox
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
read -r up _ </proc/uptime
echo "CHECK init uptime=$up cpus=$($bb grep -c ^processor /proc/cpuinfo)"
if $bb mount -t erofs -o ro /dev/vda /mnt; then
	echo "CHECK erofs-list $($bb ls /mnt | $bb tr '\n' ' ')"
	echo "CHECK erofs-token $($bb cat /mnt/dir/token)"
else
	echo "CHECK erofs-mount-failed"
fi
$bb mkdir -p /lz4
if $bb mount -t erofs -o ro /dev/vdb /lz4; then
	echo "CHECK erofs-lz4 $($bb md5sum /lz4/big.txt)"
else
	echo "CHECK erofs-lz4-mount-failed"
fi
if echo "hvc-token-7f3a" >/dev/hvc0; then
	echo "CHECK hvc-written"
fi
echo "CHECK rebooting"
$bb reboot -f
echo "CHECK reboot-returned"
EOF
chmod 0755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --owner 0:0 --quiet) | gzip -9 >"$work/initrd.cpio.gz" ||
	die "building the initramfs failed"

# --- erofs disk -------------------------------------------------------------------
mkdir -p "$work/erofs/dir"
echo "erofs-token-c41d" >"$work/erofs/dir/token"
echo "hello" >"$work/erofs/hello.txt"
mkfs.erofs --all-root "$work/disk.erofs" "$work/erofs" >"$work/mkfs.log" 2>&1 || die "mkfs.erofs failed"
# A second, lz4hc-compressed image: image layers may be compressed, which
# needs EROFS_FS_ZIP.  The file is compressible so that mkfs really compresses.
mkdir -p "$work/erofs-lz4"
for i in $(seq 1 4000); do echo "line $i of a compressible erofs test file"; done >"$work/erofs-lz4/big.txt"
big_md5=$(md5sum <"$work/erofs-lz4/big.txt" | cut -d' ' -f1)
mkfs.erofs --all-root -zlz4hc "$work/lz4.erofs" "$work/erofs-lz4" >>"$work/mkfs.log" 2>&1 ||
	die "mkfs.erofs -zlz4hc failed"
(($(stat -c %s "$work/lz4.erofs") < $(stat -c %s "$work/erofs-lz4/big.txt") / 2)) ||
	die "mkfs.erofs -zlz4hc did not compress; the compressed-erofs item would prove nothing"

# --- one boot ---------------------------------------------------------------------
# boot NAME KERNEL: runs QEMU, timestamps every console line (host clock), then
# checks the items against the log.
boot() {
	local name=$1 kernel=$2
	local log="$work/$name.console" hvc="$work/$name.hvc" qlog="$work/$name.qemu"
	: >"$hvc"
	local start end rc
	start=$EPOCHREALTIME
	# acpi=off: the kernel has no ACPI, and only without ACPI does microvm put
	# the virtio-mmio devices on the command line (virtio_mmio.device=...).
	# i8042: microvm has no keyboard controller by default; reboot=k needs one
	# on the board side (runcell's VMM emulates port 0x64 the same way).
	# -d cpu_reset logs "Triple fault" if the reset was not the i8042 one.
	timeout 120 "$qemu" \
		-M microvm,x-option-roms=off,isa-serial=on,rtc=off,acpi=off \
		-accel tcg -cpu max -m 256 -smp "$smp" \
		-nodefaults -no-user-config -nographic -no-reboot \
		-serial stdio \
		-device i8042 \
		-kernel "$kernel" -initrd "$work/initrd.cpio.gz" \
		-append "console=ttyS0 reboot=k panic=-1" \
		-drive id=d,file="$work/disk.erofs",format=raw,if=none,readonly=on \
		-device virtio-blk-device,drive=d \
		-drive id=z,file="$work/lz4.erofs",format=raw,if=none,readonly=on \
		-device virtio-blk-device,drive=z \
		-device virtio-serial-device \
		-device virtconsole,chardev=c \
		-chardev file,id=c,path="$hvc" \
		-d cpu_reset -D "$qlog" \
		</dev/null 2>"$qlog.stderr" |
		while IFS= read -r line; do
			printf '%s %s\n' "$EPOCHREALTIME" "${line%$'\r'}"
		done >"$log"
	rc=${PIPESTATUS[0]}
	end=$EPOCHREALTIME

	local total init_at init_wall up cpus
	total=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.2f", b-a}')
	init_at=$(awk '/ CHECK init /{print $1; exit}' "$log")
	if [[ -n $init_at ]]; then
		init_wall=$(awk -v a="$start" -v b="$init_at" 'BEGIN{printf "%.2f", b-a}')
		up=$(sed -n 's/.* CHECK init uptime=\([0-9.]*\).*/\1/p' "$log")
		cpus=$(sed -n 's/.* CHECK init .*cpus=\([0-9]*\).*/\1/p' "$log")
		pass "$name: reached /init (guest uptime ${up}s, host wall ${init_wall}s from QEMU start)"
		if [[ $cpus == "$smp" ]]; then
			pass "$name: $cpus CPUs online (MP table)"
		else
			fail "$name: $cpus CPUs online, wanted $smp"
		fi
	else
		fail "$name: never reached /init"
	fi

	if grep -q " CHECK erofs-token erofs-token-c41d$" "$log" &&
		grep -q " CHECK erofs-list dir hello.txt $" "$log"; then
		pass "$name: erofs on virtio-blk mounted and listed"
	else
		fail "$name: erofs on virtio-blk ($(grep -m1 ' CHECK erofs' "$log" || echo 'no report'))"
	fi

	# The hvc tty turns "\n" into "\r\n" (ONLCR), so compare without the CRs.
	if grep -q " CHECK erofs-lz4 $big_md5  /lz4/big.txt$" "$log"; then
		pass "$name: lz4hc-compressed erofs read back intact"
	else
		fail "$name: compressed erofs ($(grep -m1 ' CHECK erofs-lz4' "$log" || echo 'no report'))"
	fi

	if tr -d '\r' <"$hvc" | grep -qx "hvc-token-7f3a" && grep -q " CHECK hvc-written$" "$log"; then
		pass "$name: virtio console /dev/hvc0 carried the token"
	else
		fail "$name: virtio console (host side got: $(head -c 80 "$hvc" | tr -c '[:print:]' '.'))"
	fi

	# Linux prints "reboot: Restarting system" before machine_restart(); QEMU
	# exits 0 on the guest reset because of -no-reboot.
	if [[ $rc == 0 ]] && grep -q "reboot: Restarting system" "$log" &&
		! grep -q "Triple fault" "$qlog"; then
		pass "$name: reset through the i8042 port (reboot=k), QEMU exited"
	else
		fail "$name: reset (qemu rc=$rc$(grep -q 'Triple fault' "$qlog" && echo ', fell back to a triple fault'))"
	fi

	if grep -qE "Kernel panic|Oops|BUG:|WARNING:|Call Trace" "$log"; then
		fail "$name: kernel log has a panic/oops/warning: $(grep -m1 -E 'Kernel panic|Oops|BUG:|WARNING:' "$log")"
	else
		pass "$name: no panic/oops/warning in the kernel log"
	fi
	echo "TIME $name: /init at ${init_wall:-?}s host wall (guest uptime ${up:-?}s), QEMU total ${total}s"
}

echo "check-boot: kernel $kdir"
echo "SIZE vmlinux $(stat -c %s "$kdir/vmlinux") bytes, bzImage $(stat -c %s "$kdir/bzImage") bytes"
boot bzImage "$kdir/bzImage"
boot vmlinux-pvh "$kdir/vmlinux"

if ((failures > 0)); then
	echo "check-boot: $failures item(s) FAILED"
	exit 1
fi
echo "check-boot: all items passed"
