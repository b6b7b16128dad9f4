#!/usr/bin/env bash
# The README's first command: install what is needed, build runcell, make a busybox bundle
# and run a container from it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
bundle=$top/examples/quickstart-bundle
scripts/make-busybox-bundle.sh "$bundle" "$top/build/runcell" \
  sh -c 'echo "hello from a runcell container: $(hostname), pid $$, uid $(id -u)"; uname -sr'
id="quickstart-$$"
echo "+ runcell run --bundle $bundle $id"
status=0
build/runcell run --bundle "$bundle" "$id" || status=$?
echo "container exited with status $status"
exit "$status"
