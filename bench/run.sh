#!/usr/bin/env bash
# Configures, builds and runs persona_bench (needs root: it loads BPF programs and makes a
# private cgroup tree; nothing is attached). Extra arguments go to the benchmark, e.g.
#   bench/run.sh --benchmark_filter='Rules/.*'
# Environment: BUILD_DIR (default <repo>/build-bench), JOBS (default 2).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$repo/build-bench}"
jobs="${JOBS:-2}"

cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPERSONABPF_BENCH=ON
cmake --build "$build" --target persona_bench -j"$jobs"

if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: persona_bench needs root" >&2
    exit 1
fi
if [ "$#" -eq 0 ]; then
    set -- --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
fi
exec "$build/bench/persona_bench" "$@"
