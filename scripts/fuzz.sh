#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and fuzzes them, PGA_FUZZ_JOBS (default 2)
# at a time. Seeds come from fuzz/corpus/<target> and fuzz/regressions/<target> (inputs that
# once broke a target: every run replays them first); new inputs go to build-fuzz/corpus/<target>;
# crashes to build-fuzz/crashes/. A crash fails the run: keep the input in
# fuzz/regressions/<target>/ (test/unit/fuzz_regressions_test.cpp replays it) and fix the code.
#
#   scripts/fuzz.sh [--long] [--merge] [TARGET...]
#
# How long each target runs:
#   default      a wall-clock budget, PGA_FUZZ_BUDGET seconds (default 120, what scripts/test.sh
#                spends in CI), split by the weights below over PGA_FUZZ_JOBS lanes;
#   --long       60 s per target (PGA_FUZZ_LONG_SECONDS), for a deeper local run;
#   PGA_FUZZ_SECONDS=N  N seconds per target (overrides both).
# --merge: afterwards, minimise what the run found into fuzz/corpus/<target> (-merge=1, edge
#   coverage only: -use_counters=0 keeps the set small), so the repository's corpus keeps the
#   new coverage (commit the small files it adds).
#
# The split (weights are shares of the budget; with 120 s on 2 lanes, 240 target-seconds):
#   hostile input, from the network or from other users:
#     wire_fuzz           45   frames read from the socket (a peer may be anything)
#     alpaca_models_fuzz  45   Alpaca JSON from the network
#     mcp_fuzz            30   JSON-RPC from agents at /mcp, and Alpaca's answers to its tools
#     ticket_fuzz         35   ticket text from SQL callers (forgers)
#     envelope_fuzz       35   alpaca_secret text from INSERT/COPY
#     fernet_fuzz         25   tokens imported from the earlier system
#     occ_symbol_fuzz     20   option symbols inside Alpaca JSON (a small parser)
#     jwt_fuzz            25   JWTs from alpaca_set_user_jwt callers; the JWKS file
#   operator input (root-owned files):
#     sidecar_config_fuzz 15   the sidecar's configuration file
#     keyring_fuzz        15   the key file
# Total weight 290, so with 120 s on 2 lanes a weight of 45 gets 37 s (35: 29, 30: 24, 25: 20,
# 20: 16, 15: 12). Longest first, each target to the lane that frees first: wire 37 + ticket 29 +
# mcp 24 + occ 16 + config 12 = 118 s and alpaca 37 + envelope 29 + fernet 20 + jwt 20 +
# keyring 12 = 118 s.
source "$(dirname "$0")/lib.sh"
BUILD=$PGA_ROOT/build-fuzz
JOBS=${PGA_FUZZ_JOBS:-2}
BUDGET=${PGA_FUZZ_BUDGET:-120}
LONG=0
MERGE=0
targets=()
for arg in "$@"; do
    case $arg in
        --long) LONG=1 ;;
        --merge) MERGE=1 ;;
        -*) die "unknown option $arg (use --long, --merge)" ;;
        *) targets+=("$arg") ;;
    esac
done

declare -A WEIGHT=(
    [wire_fuzz]=45 [alpaca_models_fuzz]=45 [mcp_fuzz]=30 [ticket_fuzz]=35 [envelope_fuzz]=35
    [fernet_fuzz]=25 [jwt_fuzz]=25 [occ_symbol_fuzz]=20 [sidecar_config_fuzz]=15 [keyring_fuzz]=15
)

ensure_packages
CC=clang-14 CXX=clang++-14 build_cmake "$BUILD" -DPGA_FUZZ=ON -DPGA_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ ${#targets[@]} -eq 0 ]; then
    for src in "$PGA_ROOT"/fuzz/*_fuzz.cpp; do targets+=("$(basename "$src" .cpp)"); done
fi

# Seconds per target.
declare -A SECS=()
total_weight=0
for t in "${targets[@]}"; do
    [ -x "$BUILD/$t" ] || die "no fuzz target $t"
    total_weight=$((total_weight + ${WEIGHT[$t]:-20}))
done
for t in "${targets[@]}"; do
    if [ -n "${PGA_FUZZ_SECONDS:-}" ]; then
        SECS[$t]=$PGA_FUZZ_SECONDS
    elif [ $LONG -eq 1 ]; then
        SECS[$t]=${PGA_FUZZ_LONG_SECONDS:-60}
    else
        s=$((BUDGET * JOBS * ${WEIGHT[$t]:-20} / total_weight))
        SECS[$t]=$((s < 5 ? 5 : s))
    fi
done
# Longest first, so the lanes finish together.
mapfile -t targets < <(for t in "${targets[@]}"; do echo "${SECS[$t]} $t"; done | sort -rn | cut -d' ' -f2)

LOGS=$BUILD/logs
mkdir -p "$LOGS" "$BUILD/crashes"
run_one() {
    local t=$1 corpus=$BUILD/corpus/$1 seeds=() d
    mkdir -p "$corpus"
    for d in "$PGA_ROOT/fuzz/corpus/$t" "$PGA_ROOT/fuzz/regressions/$t"; do
        [ -d "$d" ] && seeds+=("$d")
    done
    UBSAN_OPTIONS=suppressions=$PGA_ROOT/fuzz/ubsan.supp:print_stacktrace=1 "$BUILD/$t" \
        -max_total_time="${SECS[$t]}" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$BUILD/crashes/$t-" -print_final_stats=1 "$corpus" "${seeds[@]}" \
        >"$LOGS/$t.log" 2>&1 && echo 0 >"$LOGS/$t.rc" || echo $? >"$LOGS/$t.rc"
}
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    rm -f "$LOGS/$t.rc"
    run_one "$t" &
done
wait

total_runs=0
crashes=0
for t in "${targets[@]}"; do
    out=$(cat "$LOGS/$t.log")
    rc=$(cat "$LOGS/$t.rc" 2>/dev/null || echo 1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' <<<"$out" | tail -1)
    runs=${runs:-0}
    total_runs=$((total_runs + runs))
    if [ "$rc" -ne 0 ]; then
        crashes=$((crashes + 1))
        echo "$out" | grep -E 'ERROR|SUMMARY|Test unit written' | head -10
        echo "[count] $t: $runs executions, CRASHED (log: $LOGS/$t.log)"
    else
        echo "[count] $t: $runs executions in ${SECS[$t]}s, no crash"
    fi
done
echo "[count] fuzzing: ${#targets[@]} targets, $total_runs executions, $crashes crashed"

if [ $MERGE -eq 1 ]; then
    for t in "${targets[@]}"; do
        mkdir -p "$PGA_ROOT/fuzz/corpus/$t"
        before=$(find "$PGA_ROOT/fuzz/corpus/$t" -type f | wc -l)
        UBSAN_OPTIONS=suppressions=$PGA_ROOT/fuzz/ubsan.supp "$BUILD/$t" -merge=1 -use_counters=0 \
            -timeout=10 \
            "$PGA_ROOT/fuzz/corpus/$t" "$BUILD/corpus/$t" >"$LOGS/$t.merge.log" 2>&1 ||
            die "merge failed for $t (see $LOGS/$t.merge.log)"
        after=$(find "$PGA_ROOT/fuzz/corpus/$t" -type f | wc -l)
        echo "[count] $t: corpus $before -> $after files"
    done
fi
[ $crashes -eq 0 ]
