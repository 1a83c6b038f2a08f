#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine, as root: install what is missing,
# check formatting, run the unit, CLI and peer-TLS tests under AddressSanitizer + UndefinedBehavior-
# Sanitizer, fuzz the PDL front end for 60 s and the geo CSV parser for 30 s, then build
# and run every ctest suite (unit, bpf, integration). Kernel tests fail rather than skip here (PERSONABPF_REQUIRE_KERNEL=1).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PERSONABPF_REQUIRE_KERNEL=1

"$root/scripts/setup.sh"
"$root/scripts/check-format.sh"

echo "== unit tests under ASan+UBSan"
cmake -S "$root" -B "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug -DPERSONABPF_SANITIZE=ON >/dev/null
cmake --build "$root/build-asan" -j"$(nproc)" --target unit_tests cli_tests peer_tls_tests
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$root/build-asan/tests/unit/unit_tests" --gtest_brief=1
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$root/build-asan/tests/unit/cli_tests" --gtest_brief=1
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$root/build-asan/tests/unit/peer_tls_tests" --gtest_brief=1

echo "== fuzzing the PDL front end (libFuzzer, ASan+UBSan, 60 s)"
"$root/scripts/fuzz.sh" 60
echo "== fuzzing the geo CSV parser (libFuzzer, ASan+UBSan, 30 s)"
"$root/scripts/fuzz.sh" 30 geo_csv_fuzz

echo "== build"
"$root/scripts/build.sh" "$root/build"
echo "== tests (unit, bpf, integration)"
cd "$root/build"
ctest --output-on-failure --timeout 300
