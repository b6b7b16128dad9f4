#!/usr/bin/env bash
# Static checks: clang-format (formatting), clang-tidy (.clang-tidy at the repo root) and
# cppcheck. Prints what each tool finds and exits non-zero if any of them complains.
#   scripts/lint.sh            all three
#   scripts/lint.sh format     only one of: format, tidy, cppcheck (several may be given)
# Tools: apt-get install -y clang-format clang-tidy cppcheck (override the binaries with
# CLANG_FORMAT, CLANG_TIDY, CPPCHECK). Compile commands come from a build-lint/ configure
# (no compilation). Fix formatting with: clang-format -i FILE...
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
CLANG_TIDY=${CLANG_TIDY:-clang-tidy}
CPPCHECK=${CPPCHECK:-cppcheck}
jobs=$(nproc 2>/dev/null || echo 2)
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(format tidy cppcheck)

for tool in "$CLANG_FORMAT" "$CLANG_TIDY" "$CPPCHECK"; do
  if ! command -v "$tool" >/dev/null; then
    echo "lint: $tool not found (apt-get install -y clang-format clang-tidy cppcheck)" >&2
    exit 2
  fi
done

# Sorted, NUL-separated file lists, so that output is stable.
sources() { find "$@" -type f -name '*.c' -print0 | sort -z; }
sources_and_headers() { find "$@" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z; }

failed=()

run_format() {
  echo "== clang-format"
  if sources_and_headers include oci src vmm tests/unit tests/fuzz tests/lanes tools |
    xargs -0 "$CLANG_FORMAT" --dry-run --Werror; then
    echo "ok"
  else
    failed+=(clang-format)
  fi
}

run_tidy() {
  echo "== clang-tidy"
  cmake -S . -B build-lint -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
  # the one generated header sources include (the xgate cell kernel's addresses): it
  # needs runcell-xgate built, a few seconds
  cmake --build build-lint --target runcell-xgate-layout >/dev/null
  # A file compiled into two targets (src/error.c: the core and the static guest agent)
  # has two entries; clang-tidy would run both in one process, which trips the same
  # analyzer state leak as below. The first entry per file is enough.
  jq 'unique_by(.file)' build-lint/compile_commands.json >build-lint/compile_commands.json.tmp
  mv build-lint/compile_commands.json.tmp build-lint/compile_commands.json
  local out
  out=$(mktemp -d)
  # One file per clang-tidy process: in clang-tidy 14 the static analyzer's va_list checker
  # leaks state from one translation unit into the next one in the same process and then
  # reports vsnprintf(..., ap) after va_start as "uninitialized va_list".
  # The compile commands are gcc's: -Wno-unknown-warning-option keeps clang from failing
  # on gcc-only flags (-Wno-format-truncation) under -Werror.
  local status=0
  # shellcheck disable=SC2016 # $0 and $1 are the inner shell's
  sources oci src vmm tests/unit tools | xargs -0 -P"$jobs" -n1 sh -c '
      f=$1; log=$0/$(echo "$f" | tr / _).log
      "$CLANG_TIDY" -p build-lint --quiet --warnings-as-errors="*" \
        --extra-arg=-Wno-unknown-warning-option "$f" >"$log" 2>&1 ||
        { echo "$f" >>"$0/failed"; exit 1; }' "$out" || status=$?
  # Drop clang-tidy's "N warnings generated." chatter; keep the findings.
  find "$out" -name '*.log' -print0 | sort -z | xargs -0 cat |
    grep -Ev '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' || true
  if [ "$status" -ne 0 ] || [ -s "$out/failed" ]; then
    echo "clang-tidy complained about: $(sort "$out/failed" 2>/dev/null | tr '\n' ' ')"
    failed+=(clang-tidy)
  else
    echo "ok"
  fi
  rm -rf "$out"
}

run_cppcheck() {
  echo "== cppcheck"
  if "$CPPCHECK" --enable=warning,performance,portability --inline-suppr --error-exitcode=1 \
    --std=c11 -I include -D_GNU_SOURCE --suppress=missingIncludeSystem --quiet -j"$jobs" \
    oci/ src/ vmm/; then
    echo "ok"
  else
    failed+=(cppcheck)
  fi
}

export CLANG_TIDY
for step in "${steps[@]}"; do
  case $step in
    format) run_format ;;
    tidy) run_tidy ;;
    cppcheck) run_cppcheck ;;
    *)
      echo "lint: unknown step '$step' (format, tidy, cppcheck)" >&2
      exit 2
      ;;
  esac
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "lint: FAILED: ${failed[*]}"
  exit 1
fi
echo "lint: all clean"
