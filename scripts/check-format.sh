#!/usr/bin/env bash
# Fails when a C++ file is not clang-formatted (.clang-format at the root). The kernel-
# style C of bpf/ and maps/abi/ is kept by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files '*.cpp' '*.h' | grep -v -e '^maps/abi/' -e '^bpf/' | xargs clang-format --dry-run -Werror
echo "format: ok"
