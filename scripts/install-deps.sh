#!/usr/bin/env bash
# Installs every dependency needed to build and test runcell on Debian 12, with apt.
# Idempotent: when every package is already installed it does not touch apt at all (fast,
# works offline); `apt-get update` runs only when the package lists are missing or older
# than a day, or when an install from the current lists fails.
# The linters (clang-format, clang-tidy, cppcheck) and clang are required: the test suite
# runs the linters and the fuzz targets (tests/fuzz, built with clang's libFuzzer).
# What the benchmarks (tests/bench) compare and run — runsc (gVisor), matplotlib for
# their charts, redis and nginx with their load generators — is required too: the test
# suite runs the quick benchmark as a smoke test. Nothing is optional at present;
# RUNCELL_DEPS_OPTIONAL=1 installs what `optional` lists as well.
set -euo pipefail

required=(
  build-essential cmake pkg-config
  libjansson-dev libseccomp-dev libcap-dev libmnl-dev # libmnl: microVM tap + tc set-up
  libsystemd-dev # sd-bus's headers for the systemd cgroup driver (libsystemd0 is dlopen'ed)
  systemd dbus-daemon # the systemd driver's tests start a private systemd with its own bus
  busybox-static runc
  python3 python3-pytest
  jq iproute2 util-linux bsdutils procps
  containerd python3-grpcio podman criu
  runsc python3-matplotlib redis-server redis-tools nginx-light wrk
  clang-format clang-tidy cppcheck
  clang libclang-rt-14-dev # libFuzzer and the sanitizer runtimes: only recommended by clang
  # microVM mode: disk images of rootfs trees; the guest kernel's build from Debian's
  # source; the QEMU hardware lane (tests/lanes) and its initramfs
  erofs-utils linux-source-6.1 flex bison bc libelf-dev libssl-dev xz-utils cpio
  qemu-system-x86 lz4 # lz4: the lane unpacks Debian's kernel to boot it uncompressed (faster)
)
optional=()

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo --preserve-env=RUNCELL_DEPS_OPTIONAL "$0" "$@"
  fi
  echo "install-deps.sh: must run as root (and sudo is not installed)" >&2
  exit 1
fi

wanted=("${required[@]}")
if [ "${RUNCELL_DEPS_OPTIONAL:-0}" = 1 ]; then
  wanted+=("${optional[@]}")
fi

# Packages of $wanted that dpkg does not report as "install ok installed".
missing_packages() {
  local pkg status
  for pkg in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || echo "$pkg"
  done
}

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps.sh: all ${#wanted[@]} packages already installed"
  exit 0
fi
echo "install-deps.sh: installing ${missing[*]}"

export DEBIAN_FRONTEND=noninteractive
lists=/var/lib/apt/lists
# The lists are fresh when some Packages index there is younger than a day.
lists_fresh() {
  [ -n "$(find "$lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 -print -quit 2>/dev/null)" ]
}

install() {
  apt-get install -y --no-install-recommends "${missing[@]}"
}

if ! lists_fresh; then
  apt-get update
  install
elif ! install; then
  # The lists may name versions the mirror no longer carries: refresh once and retry.
  apt-get update
  install
fi

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -ne 0 ]; then
  echo "install-deps.sh: still missing after apt-get install: ${missing[*]}" >&2
  exit 1
fi
echo "install-deps.sh: done"
