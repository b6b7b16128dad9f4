#!/bin/sh
# runcell: the runcell binary added to the lane (lane.py run --add build/runcell) starts in
# the guest with the shared libraries the lane brought for it, and answers --version.
if ! command -v runcell >/dev/null; then
  echo "runcell was not added to this lane run (lane.py run --add build/runcell)"
  exit 77
fi
runcell --version || exit 1
runcell --version | grep -q '^runcell version ' || exit 1
