#!/usr/bin/env bash
# pg_alpaca benchmarks: every figure of bench/README.md against its baseline, in one run, on a
# throwaway stack of its own (cluster + stand-in + sidecar). Prints one table and writes it.
#
#   scripts/bench.sh              full run (about 20 minutes): writes bench/results.md
#   scripts/bench.sh --smoke      tiny sizes (under 2 minutes): writes DIR/results.md only
#   options: --only B1,B3   run some figures;  --keep   leave the stack up;  --no-build
#            --dir DIR      stack folder (default: a new mktemp -d folder)
#            --before REV   first measure the code of commit REV on this machine (its own
#                           bench.sh --only B3,B4,B5, and B10 from this bench.py), and set those
#                           figures beside this run's in results.md (adds about 8 minutes)
#   sizes: PGA_BENCH_<NAME>=N, names in bench/bench.py (e.g. PGA_BENCH_B6_LARGE=200000)
#
# Exit status: 0 when every target holds, 3 when one does not, anything else on a failure.
# Never part of CI's pass/fail path except as a smoke run (whose sizes are too small for targets:
# check its exit status for 0 or 3).
source "$(dirname "$0")/lib.sh"

SMOKE=0 KEEP=0 BUILD=1 ONLY=B1,B2,B3,B4,B5,B6,B7,B8,B9,B10,B11 DIR= BEFORE=
while [ $# -gt 0 ]; do
    case $1 in
        --smoke) SMOKE=1; shift ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --only) ONLY=$2; shift 2 ;;
        --dir) DIR=$2; shift 2 ;;
        --before) BEFORE=$2; shift 2 ;;
        *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done

BEFORE_ARGS=()
if [ -n "$BEFORE" ]; then
    # The earlier code, exported from git into a folder of its own, measured by its own bench.sh
    # (which builds and installs its extension: ours is installed again below).
    REV=$(git -C "$PGA_ROOT" rev-parse --short "$BEFORE^{commit}") || die "--before: no commit $BEFORE"
    BEFORE_DIR=$(mktemp -d -t pga-before.XXXXXX)
    chmod 755 "$BEFORE_DIR"
    mkdir "$BEFORE_DIR/src"
    git -C "$PGA_ROOT" archive "$REV" | tar -x -C "$BEFORE_DIR/src"
    when=$(date -u '+%Y-%m-%d %H:%M UTC')
    log "measuring $REV first (B3, B4, B5 by its bench.sh; B10 by this bench.py)"
    set +e
    (cd "$BEFORE_DIR/src" && PGA_BUILD_DIR=$BEFORE_DIR/build scripts/bench.sh --only B3,B4,B5 \
        --keep --dir "$BEFORE_DIR/stack")
    rc=$?
    [ $rc -eq 0 ] || [ $rc -eq 3 ] || die "the bench of $REV failed (its stack: $BEFORE_DIR/stack)"
    (source "$BEFORE_DIR/stack/stack.env" && /usr/bin/python3 "$PGA_ROOT/bench/bench.py" \
        --crypto-bench /bin/false --only B10 --out "$BEFORE_DIR/b10.md" >/dev/null)
    rc=$?
    set -e
    "$BEFORE_DIR/src/scripts/stack.sh" down "$BEFORE_DIR/stack" >/dev/null 2>&1 || true
    [ $rc -eq 0 ] || [ $rc -eq 3 ] || die "B10 of $REV failed"
    BEFORE_ARGS=(--before "$BEFORE_DIR/src/bench/results.md" --before "$BEFORE_DIR/b10.md"
                 --before-rev "$REV" --before-when "$when")
    BUILD=1  # the extension installed now is REV's
fi

BUILD_DIR=${PGA_BUILD_DIR:-$PGA_ROOT/build-bench}
if [ $BUILD -eq 1 ]; then
    ensure_packages
    log "building (CMake with -DPGA_BENCH=ON into $BUILD_DIR, and the extension)"
    build_cmake "$BUILD_DIR" -DPGA_BENCH=ON -DPGA_TESTS=OFF
    build_extension
fi
[ -x "$BUILD_DIR/crypto_bench" ] && [ -x "$BUILD_DIR/alpaca-sidecar" ] ||
    die "missing $BUILD_DIR/crypto_bench or alpaca-sidecar: run without --no-build"

OWN_DIR=
if [ -z "$DIR" ]; then OWN_DIR=$(mktemp -d -t pga-bench.XXXXXX); chmod 755 "$OWN_DIR"; DIR=$OWN_DIR/stack; fi
STACKSH=$PGA_ROOT/scripts/stack.sh

# Fixtures: one account each with 10, 100 and 1 000 positions (deterministic).
FIXTURES=$(mktemp -d -t pga-bench-fixtures.XXXXXX)
cleanup() {
    local rc=$?
    if [ $KEEP -eq 0 ]; then
        "$STACKSH" down "$DIR" >/dev/null 2>&1 || true
        [ -z "$OWN_DIR" ] || rm -rf "$OWN_DIR"
    fi
    rm -rf "$FIXTURES"
    [ -z "${BEFORE_DIR:-}" ] || rm -rf "$BEFORE_DIR"
    exit $rc
}
trap cleanup EXIT
for n in 10 100 1000; do
    /usr/bin/python3 "$PGA_ROOT/test/standin/make_fixtures.py" "$FIXTURES" "PKBENCH$n" \
        --positions $n --orders 20 --seed $n >/dev/null
done
chmod -R a+rX "$FIXTURES"

PGA_BUILD_DIR=$BUILD_DIR "$STACKSH" up "$DIR" --fixtures "$FIXTURES"
# shellcheck disable=SC1091
source "$DIR/stack.env"

# PostgreSQL's default 128 MB of shared buffers is no setting for a million credentials (B6,
# B7): give it 1 GB, a modest share of any machine that would hold such a vault.
"$STACKSH" set-pg "$DIR" shared_buffers 1GB
# B5 reports where a call's time goes: the WAL flushes' own time (pg_stat_wal) ...
"$STACKSH" set-pg "$DIR" track_wal_io_timing on
"$STACKSH" restart-pg "$DIR"

# The sidecar as a benchmark needs it: enough workers for 32 concurrent calls that each wait
# 20 ms upstream, and a per-credential rate limit above what one credential is asked here
# (Alpaca's own 200 a minute would make every figure a rate-limit test). Restart it so.
"$STACKSH" set-sidecar "$DIR" workers 64
"$STACKSH" set-sidecar "$DIR" rate_limit_per_minute 100000
# ... and the sidecar's own timings of the redeem and of the upstream call (GET /metrics).
PGA_BENCH_METRICS=127.0.0.1:$(cd "$PGA_ROOT/scripts" && /usr/bin/python3 -c 'import stackctl; print(stackctl.free_port())')
export PGA_BENCH_METRICS
"$STACKSH" set-sidecar "$DIR" metrics_listen "$PGA_BENCH_METRICS"
"$STACKSH" restart-sidecar "$DIR"
# B9: the gateway on, and the official SDKs it is measured with (pinned, test/clients).
if [[ ",$ONLY," == *",B9,"* ]]; then
    "$STACKSH" gateway "$DIR" on >/dev/null
    export PGA_BUILD_DIR=$BUILD_DIR
    ensure_test_clients
fi

if [ $SMOKE -eq 1 ]; then OUT=$DIR/results.md; else OUT=$PGA_ROOT/bench/results.md; fi
args=(--crypto-bench "$BUILD_DIR/crypto_bench" --only "$ONLY" --out "$OUT" "${BEFORE_ARGS[@]}")
[ $SMOKE -eq 0 ] || args+=(--smoke)
set +e
/usr/bin/python3 "$PGA_ROOT/bench/bench.py" "${args[@]}"
rc=$?
set -e
[ $rc -eq 0 ] || [ $rc -eq 3 ] || die "benchmark failed (logs in $DIR/log; rerun with --keep to inspect)"
log "results written to $OUT"
exit $rc
