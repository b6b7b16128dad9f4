#!/usr/bin/env bash
# Creates an OCI bundle whose rootfs is Debian's busybox-static, with a config.json from
# `runcell spec` adjusted for a non-interactive run.
# Usage: make-busybox-bundle.sh DIR RUNCELL_BINARY [ARGS...]
set -euo pipefail
dir=${1:?usage: make-busybox-bundle.sh DIR RUNCELL_BINARY [ARGS...]}
runcell=${2:?runcell binary}
shift 2
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "busybox-static is not installed (scripts/install-deps.sh)" >&2; exit 1; }
rm -rf "$dir"
mkdir -p "$dir/rootfs"/{bin,etc,proc,sys,dev,tmp,root}
cp "$busybox" "$dir/rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$dir/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/rootfs/etc/passwd"
echo 'root:x:0:' >"$dir/rootfs/etc/group"
(cd "$dir" && "$runcell" spec)
# A non-interactive default so the quickstart works without a terminal; the args given on
# the command line (if any) replace `sh`.
python3 - "$dir/config.json" "$@" <<'PY'
import json, sys
path, args = sys.argv[1], sys.argv[2:]
cfg = json.load(open(path))
cfg["process"]["terminal"] = False
if args:
    cfg["process"]["args"] = args
json.dump(cfg, open(path, "w"), indent=2)
PY
