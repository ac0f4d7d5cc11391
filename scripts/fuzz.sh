#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for PGA_FUZZ_SECONDS
# (default 300; scripts/test.sh runs a short smoke pass). Seeds come from fuzz/corpus/<target>
# when present; new inputs go to build-fuzz/corpus/<target>; crashes to build-fuzz/crashes/.
# A crash fails the run: turn it into a regression test in test/unit.
#   scripts/fuzz.sh [TARGET...]
source "$(dirname "$0")/lib.sh"
SECONDS_EACH=${PGA_FUZZ_SECONDS:-300}
BUILD=$PGA_ROOT/build-fuzz
ensure_packages
CC=clang-14 CXX=clang++-14 build_cmake "$BUILD" -DPGA_FUZZ=ON -DPGA_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for src in "$PGA_ROOT"/fuzz/*_fuzz.cpp; do targets+=("$(basename "$src" .cpp)"); done
fi
total_runs=0
crashes=0
for t in "${targets[@]}"; do
    corpus=$BUILD/corpus/$t
    mkdir -p "$corpus" "$BUILD/crashes"
    seeds=()
    [ -d "$PGA_ROOT/fuzz/corpus/$t" ] && seeds=("$PGA_ROOT/fuzz/corpus/$t")
    out=$(UBSAN_OPTIONS=suppressions=$PGA_ROOT/fuzz/ubsan.supp:print_stacktrace=1 "$BUILD/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$BUILD/crashes/$t-" -print_final_stats=1 "$corpus" "${seeds[@]}" 2>&1) && rc=0 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' <<<"$out" | tail -1)
    runs=${runs:-0}
    total_runs=$((total_runs + runs))
    if [ $rc -ne 0 ]; then
        crashes=$((crashes + 1))
        echo "$out" | grep -E 'ERROR|SUMMARY|Test unit written' | head -10
        echo "[count] $t: $runs executions, CRASHED"
    else
        echo "[count] $t: $runs executions in ${SECONDS_EACH}s, no crash"
    fi
done
echo "[count] fuzzing: ${#targets[@]} targets, $total_runs executions, $crashes crashed"
[ $crashes -eq 0 ]
