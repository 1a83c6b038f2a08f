#!/usr/bin/env bash
# Fuzzes the PDL front end (compile, lower, format; tests/fuzz/pdl_fuzz.cpp), or the geo
# dataset's CSV parser (tests/fuzz/geo_csv_fuzz.cpp), with libFuzzer for a bounded time. Exits non-zero when the fuzzer finds a crash, sanitizer report,
# timeout, OOM or property violation; the reproducer is left under build-fuzz/artifacts/.
#
#   scripts/fuzz.sh [SECONDS=60] [TARGET=pdl_fuzz|geo_csv_fuzz]
#
# Builds the standalone clang project tests/fuzz into build-fuzz/ (reused when present;
# FUZZ_BUILD_DIR overrides). Seeds: tests/fuzz/seeds, examples/*.pdl and
# tests/unit/golden/*.pdl (geo_csv_fuzz: tests/fuzz/geo-seeds), copied into a temporary
# corpus (the repo is never written).
# Needs clang, libclang-rt-14-dev and nlohmann-json3-dev (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

duration=${1:-60}
target=${2:-pdl_fuzz}
if ! [[ $duration =~ ^[0-9]+$ ]] || ((duration < 1)) ||
  [[ $target != pdl_fuzz && $target != geo_csv_fuzz ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS=60] [TARGET=pdl_fuzz|geo_csv_fuzz]" >&2
  exit 2
fi

build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
fuzz_cc=${FUZZ_CC:-clang}
fuzz_cxx=${FUZZ_CXX:-clang++}

if [[ ! -f $build/CMakeCache.txt ]]; then
  mkdir -p "$build"
  if ! CC=$fuzz_cc CXX=$fuzz_cxx cmake -S tests/fuzz -B "$build" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build/configure.log" 2>&1; then
    cat "$build/configure.log" >&2
    rm -f "$build/CMakeCache.txt"  # configure again next time
    echo "fuzz: FAILED to configure (needs clang, libclang-rt-14-dev, nlohmann-json3-dev)" >&2
    exit 1
  fi
fi
if ! cmake --build "$build" -j"$(nproc)" --target "$target" >"$build/build.log" 2>&1; then
  cat "$build/build.log" >&2
  echo "fuzz: FAILED to build (log: $build/build.log)" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pdl-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
fuzz_args=()
if [[ $target == pdl_fuzz ]]; then
  cp tests/fuzz/seeds/* "$work/corpus/"
  for f in examples/*.pdl tests/unit/golden/*.pdl; do
    [[ -f $f ]] && cp "$f" "$work/corpus/$(echo "$f" | tr / _)"
  done
  fuzz_args+=(-dict=tests/fuzz/pdl.dict)
  log=$build/fuzz.log
else
  cp tests/fuzz/geo-seeds/* "$work/corpus/"
  log=$build/$target.log
fi
nseeds=$(find "$work/corpus" -type f | wc -l)

artifacts=$build/artifacts
mkdir -p "$artifacts"

set +e
"$build/$target" "$work/corpus" \
  "${fuzz_args[@]}" \
  -max_total_time="$duration" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1
rc=$?
set -e

# "#123456 DONE cov: 1234 ft: 5678 corp: 90/12Kb ..." (absent after a crash).
done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
runs=$(grep -oE '^stat::number_of_executed_units: [0-9]+' "$log" | awk '{print $2}' | tail -1)
cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$done_line")
corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$done_line")

if ((rc == 0)); then
  echo "fuzz: ok ($target), ${runs:-?} runs in ${duration}s from $nseeds seeds, cov ${cov:-?}, corpus ${corp:-?} (log: $log)"
  exit 0
fi

tail -n 60 "$log" >&2
artifact=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -1 | sed 's/Test unit written to //' || true)
reason=$(grep -m1 -oE 'ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer|libFuzzer): [^ ]+( [^ ]+)?|runtime error: .*|[a-z_]+ property violated: .*' "$log" || true)
echo "fuzz: FAILED (exit $rc) after ${runs:-?} runs: ${reason:-see log}; reproducer: ${artifact:-none} (log: $log; rerun: $build/$target ${artifact:-FILE})" >&2
exit 1
