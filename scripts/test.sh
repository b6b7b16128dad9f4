#!/usr/bin/env bash
# The README's second command: the whole test suite. Installs dependencies, builds runcell
# twice (plain, and with ASan/UBSan for the unit tests), runs the unit tests with ctest, the
# fuzz targets briefly (scripts/fuzz.sh) and the linters, then the integration and
# differential tests (against Debian's runc) with pytest, which include the microVM tests
# in the QEMU hardware lane (tests/lanes) with the guest kernel vmm/kernel/build.sh makes.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/install-deps.sh
jobs=$(nproc)

echo "== build (release and sanitizers)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRUNCELL_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"

echo "== guest kernel for microVMs (built once into the cache, reused after)"
vmm/kernel/build.sh >/dev/null

echo "== unit tests (ASan/UBSan)"
(cd build-asan && ctest --output-on-failure)

echo "== fuzz targets (10 s each)"
scripts/fuzz.sh 10

echo "== lint (clang-format, clang-tidy, cppcheck)"
scripts/lint.sh

echo "== integration and differential tests"
RUNCELL_BIN="$top/build/runcell" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration "$@"
