#!/usr/bin/env bash
# Configures, builds and runs a benchmark.
#   bench/run.sh [ARGS]      persona_bench (needs root: it loads BPF programs and makes a
#                            private cgroup tree; nothing is attached). ARGS go to the
#                            benchmark, e.g. bench/run.sh --benchmark_filter='Rules/.*'
#   bench/run.sh pdl [ARGS]  pdl_bench on a generated file of 1,000 personas and 100,000
#                            rules (no root): compile + lower time and peak RSS. ARGS go to
#                            pdl_bench, e.g. bench/run.sh pdl --repetitions 20
#   bench/run.sh bind [ARGS] bind_latency (root): a private personabpfd, time from cgroup
#                            mkdir/rmdir to the binding in/out of pbpf_bindings, 1,000
#                            cgroups one at a time and at once. ARGS go to bind_latency,
#                            e.g. bench/run.sh bind --count 1000 --json /tmp/bl.json
# Environment: BUILD_DIR (default <repo>/build-bench), JOBS (default 2).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$repo/build-bench}"
jobs="${JOBS:-2}"

cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPERSONABPF_BENCH=ON

if [ "${1:-}" = pdl ]; then
    shift
    cmake --build "$build" --target pdl_gen pdl_bench -j"$jobs"
    file="$build/bench/pdl-1000x100k.pdl"
    "$build/bench/pdl_gen" --personas 1000 --rules 100000 --seed 1 -o "$file"
    exec "$build/bench/pdl_bench" "$@" "$file"
fi

if [ "${1:-}" = bind ]; then
    shift
    cmake --build "$build" --target bind_latency personabpfd personabpf -j"$jobs"
    if [ "$(id -u)" -ne 0 ]; then
        echo "run.sh: bind_latency needs root" >&2
        exit 1
    fi
    exec "$build/bench/bind_latency" --build "$build" "$@"
fi

cmake --build "$build" --target persona_bench -j"$jobs"

if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: persona_bench needs root" >&2
    exit 1
fi
if [ "$#" -eq 0 ]; then
    set -- --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
fi
exec "$build/bench/persona_bench" "$@"
