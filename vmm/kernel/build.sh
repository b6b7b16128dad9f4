#!/usr/bin/env bash
# Build runcell's guest kernel from Debian's linux-source-6.1 package.
#
#   vmm/kernel/build.sh            -> prints the output directory (last stdout line)
#
# Result layout (CACHE = ${RUNCELL_CACHE_DIR:-/var/cache/runcell}/guest-kernel):
#   CACHE/<key>/vmlinux     uncompressed ELF (what runcell's VMM loads; has a PVH note)
#   CACHE/<key>/bzImage     compressed image for QEMU / boot-protocol loaders
#   CACHE/<key>/config      the final .config
#   CACHE/<key>/System.map  symbols, for debugging guest hangs
#   CACHE/<key>/build-info  source version, key inputs, build time
#   CACHE/src/<srcid>/linux-source-6.1/   the extracted, untouched source (once)
#   CACHE/build/<srcid>/                   the out-of-tree object dir (reused, so a
#                                          config change rebuilds incrementally)
# <key> = first 16 hex digits of sha256(source version, guest.config, RECIPE).
# A second run with the result present prints its path and exits at once.
#
# Environment: RUNCELL_CACHE_DIR, RUNCELL_LINUX_SOURCE (tarball, default
# /usr/src/linux-source-6.1.tar.xz), RUNCELL_JOBS (default: nproc).
#
# Needs (Debian 12): linux-source-6.1 gcc make flex bison bc libelf-dev
# xz-utils tar gzip util-linux(flock) coreutils.

set -euo pipefail

# Bump when the build steps change in a way that changes the output.
readonly RECIPE=1

# Everything but the final path goes to stderr, so `dir=$(build.sh)` works.
exec 3>&1 1>&2

die() {
	echo "guest-kernel: error: $*" >&2
	exit 1
}
log() { echo "guest-kernel: $*" >&2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fragment="$here/guest.config"
tarball=${RUNCELL_LINUX_SOURCE:-/usr/src/linux-source-6.1.tar.xz}
cache=${RUNCELL_CACHE_DIR:-/var/cache/runcell}/guest-kernel
jobs=${RUNCELL_JOBS:-$(nproc)}

[[ -r $fragment ]] || die "missing $fragment"
[[ -r $tarball ]] || die "kernel source $tarball not found (apt-get install linux-source-6.1)"

# --- identify the source --------------------------------------------------
# The Debian package version is exact and free to read; a tarball from
# elsewhere is identified by its content hash.
srcver=""
if [[ -z ${RUNCELL_LINUX_SOURCE:-} ]] && command -v dpkg-query >/dev/null; then
	srcver=$(dpkg-query -W -f '${Version}' linux-source-6.1 2>/dev/null || true)
	[[ -n $srcver ]] && srcver="debian-linux-source-6.1-$srcver"
fi
if [[ -z $srcver ]]; then
	srcver="sha256-$(sha256sum "$tarball" | cut -c1-16)"
fi
srcid=${srcver//[^A-Za-z0-9._+-]/_}

key=$( {
	printf 'source %s\nrecipe %s\n' "$srcver" "$RECIPE"
	cat "$fragment"
} | sha256sum | cut -c1-16)
out="$cache/$key"

# "latest" names the kernel this recipe builds: runcell finds its guest kernel there when
# $RUNCELL_GUEST_KERNEL is not set (src/microvm_plan.c). Replaced atomically.
point_latest() {
	ln -sfn "$key" "$cache/.latest.$$" && mv -T "$cache/.latest.$$" "$cache/latest"
}

if [[ -f $out/vmlinux && -f $out/bzImage && -f $out/config ]]; then
	log "up to date: $out"
	point_latest
	echo "$out" >&3
	exit 0
fi

# --- tools ------------------------------------------------------------------
missing=()
for tool in gcc make flex bison bc tar xz gzip flock sha256sum; do
	command -v "$tool" >/dev/null || missing+=("$tool")
done
# objtool (built during the kernel build) links against libelf.
if ! printf '#include <gelf.h>\nint main(void){return 0;}\n' |
	gcc -x c -o /dev/null - -lelf 2>/dev/null; then
	missing+=("libelf-dev")
fi
((${#missing[@]} == 0)) || die "missing build tools: ${missing[*]} (see the header of $0)"

mkdir -p "$cache" || die "cannot create $cache"
# One build at a time per cache: the object dir is shared between keys.
exec 9>"$cache/.lock"
flock 9

# Another process may have finished the same key while we waited.
if [[ -f $out/vmlinux && -f $out/bzImage && -f $out/config ]]; then
	log "up to date: $out"
	point_latest
	echo "$out" >&3
	exit 0
fi

# --- extract once -------------------------------------------------------------
srcroot="$cache/src/$srcid"
src="$srcroot/linux-source-6.1"
if [[ ! -f $srcroot/.extracted ]]; then
	log "extracting $tarball into $srcroot"
	rm -rf "$srcroot" "$srcroot.tmp"
	mkdir -p "$srcroot.tmp"
	tar -xJf "$tarball" -C "$srcroot.tmp" || die "extracting $tarball failed"
	[[ -f $srcroot.tmp/linux-source-6.1/Makefile ]] ||
		die "$tarball has no linux-source-6.1/Makefile"
	touch "$srcroot.tmp/.extracted"
	mv "$srcroot.tmp" "$srcroot"
fi

# --- configure ----------------------------------------------------------------
obj="$cache/build/$srcid"
mkdir -p "$obj"
kmake=(make -C "$src" O="$obj" ARCH=x86_64 -j"$jobs")

start=$(date +%s)
log "configuring in $obj"
# Kconfig chatter (fragment overrides) goes to a log, shown only on failure.
cfglog="$obj/config.log"
: >"$cfglog"
kconfig() {
	if ! "$@" >>"$cfglog" 2>&1; then
		cat "$cfglog" >&2
		die "configuration step failed: $*"
	fi
}
kconfig "${kmake[@]}" tinyconfig
# merge_config.sh -m: merge only (no alldefconfig), -O: output dir.
kconfig "$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$fragment"
kconfig "${kmake[@]}" olddefconfig

# Every line of the fragment must have survived olddefconfig.
bad=()
while IFS= read -r line; do
	if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
		grep -qxF -- "$line" "$obj/.config" ||
			bad+=("${BASH_REMATCH[1]}: wanted ${BASH_REMATCH[2]}, got $(grep -E "^(# )?${BASH_REMATCH[1]}[= ]" "$obj/.config" || echo 'absent (dependency missing?)')")
	elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
		if grep -qE "^${BASH_REMATCH[1]}=" "$obj/.config"; then
			bad+=("${BASH_REMATCH[1]}: wanted off, got $(grep -E "^${BASH_REMATCH[1]}=" "$obj/.config")")
		fi
	fi
done <"$fragment"
if ((${#bad[@]} > 0)); then
	printf 'guest-kernel:   %s\n' "${bad[@]}" >&2
	die "${#bad[@]} option(s) of guest.config did not survive olddefconfig"
fi
log "all $(grep -cE '^(CONFIG_|# CONFIG_.* is not set)' "$fragment") options of guest.config verified"

# --- build --------------------------------------------------------------------
log "building with -j$jobs (log: $obj/build.log)"
if ! "${kmake[@]}" vmlinux bzImage >"$obj/build.log" 2>&1; then
	tail -n 40 "$obj/build.log" >&2
	die "kernel build failed, full log in $obj/build.log"
fi
secs=$(($(date +%s) - start))

# --- install atomically ---------------------------------------------------------
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp "$obj/vmlinux" "$out.tmp/vmlinux"
cp "$obj/arch/x86/boot/bzImage" "$out.tmp/bzImage"
cp "$obj/.config" "$out.tmp/config"
cp "$obj/System.map" "$out.tmp/System.map"
{
	echo "source $srcver"
	echo "recipe $RECIPE"
	echo "kernelrelease $("${kmake[@]}" -s kernelrelease)"
	echo "compiler $(gcc --version | head -n1)"
	echo "jobs $jobs"
	echo "build_seconds $secs"
} >"$out.tmp/build-info"
rm -rf "$out"
mv "$out.tmp" "$out"

log "built in ${secs}s: vmlinux $(stat -c %s "$out/vmlinux") bytes, bzImage $(stat -c %s "$out/bzImage") bytes"
point_latest
echo "$out" >&3
