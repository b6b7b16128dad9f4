#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, with clang, ASan and UBSan) in build-fuzz/ and
# runs each for SECONDS (default 10) over a copy of its seed corpus, so that the runs do not
# grow the repository's corpus. Fails when any target finds a crash, a leak or a hang; the
# input that did it is kept in build-fuzz/artifacts/ and the fuzzer's log is printed.
#   scripts/fuzz.sh [SECONDS]           every target
#   FUZZ_TARGETS="cli state" scripts/fuzz.sh 600   some of them, longer (tests/fuzz/README.md)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
seconds=${1:-10}
build=${FUZZ_BUILD_DIR:-build-fuzz}

cmake -S . -B "$build" -DRUNCELL_FUZZ=ON -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz >"$build/fuzz-build.log" 2>&1 || {
  tail -40 "$build/fuzz-build.log"
  echo "fuzz.sh: build failed (log: $build/fuzz-build.log)" >&2
  exit 1
}

# UBSan's findings fail the run too (by default it reports and goes on, so undefined
# behaviour the fuzzer reached went unnoticed)
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
targets=${FUZZ_TARGETS:-$(cd tests/fuzz && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/artifacts"
failed=()
for t in $targets; do
  mkdir -p "$work/$t"
  cp -r "tests/fuzz/corpus/$t/." "$work/$t/"
  log="$build/fuzz-$t.log"
  # -timeout: an input that takes longer is a hang; -rss_limit_mb: one that eats memory
  if "$build/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" "$work/$t" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz $t: ok (${runs:-?} runs in ${seconds}s)"
  else
    tail -60 "$log"
    echo "fuzz $t: FAILED (log: $log; input: $build/artifacts/$t-*)"
    failed+=("$t")
  fi
done
if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz.sh: failed: ${failed[*]}" >&2
  exit 1
fi
