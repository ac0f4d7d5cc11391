#!/usr/bin/env bash
# Builds pg_alpaca and runs every test: unit tests (plus an ASan+UBSan build of them), the
# pg_regress suite and the integration tests against a throwaway stack (real PostgreSQL
# cluster, real sidecar, the Alpaca stand-in over HTTPS), then short fuzz runs and a benchmark
# smoke run.
# Installs missing Debian packages itself. Usage: scripts/test.sh [--quick] (no sanitizer/fuzz)
source "$(dirname "$0")/lib.sh"

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
PASSED=0
FAILED=0
FAILED_STAGES=()
record() {  # record STAGE PASSED FAILED
    PASSED=$((PASSED + $2)); FAILED=$((FAILED + $3))
    [ "$3" -eq 0 ] || FAILED_STAGES+=("$1")
    log "$1: $2 passed, $3 failed"
}

# ctest's summary line: "100% tests passed, 0 tests failed out of 57"
run_ctest() {
    local stage=$1 dir=$2 out
    out=$(cd "$dir" && ctest -j"$(nproc)" --output-on-failure 2>&1) || true
    local total failed
    total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' <<<"$out" | tail -1)
    failed=$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' <<<"$out" | tail -1)
    if [ -z "$total" ]; then echo "$out" | tail -30; record "$stage" 0 1; return; fi
    [ "$failed" -eq 0 ] || echo "$out" | grep -E 'Failed|FAILED|\*\*\*' | head -40
    record "$stage" $((total - failed)) "$failed"
}

cd "$PGA_ROOT"
log "dependencies"
ensure_packages

log "build (CMake: common, sidecar, keygen, unit tests)"
build_cmake "$PGA_ROOT/build"
run_ctest "unit tests" "$PGA_ROOT/build"

if [ $QUICK -eq 0 ]; then
    log "build unit tests with AddressSanitizer + UndefinedBehaviorSanitizer"
    build_cmake "$PGA_ROOT/build-asan" -DPGA_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_ctest "unit tests (asan+ubsan)" "$PGA_ROOT/build-asan"
fi

log "build and install the extension"
build_extension

STACK=$(mktemp -d /tmp/pg_alpaca_test.XXXXXX)
chmod 755 "$STACK"
cleanup() { "$PGA_ROOT/scripts/stack.sh" down "$STACK/stack" >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$PGA_ROOT/scripts/stack.sh" up "$STACK/stack"
# shellcheck disable=SC1091
source "$STACK/stack/stack.env"

log "key files for the key ring tests"
KEYS=$STACK/stack/keys
as_runner bash -euo pipefail -c "
    cd '$KEYS'; umask 077
    cp pg_alpaca.keys two.keys && '$STACK/stack/bin/alpaca-keygen' add two.keys >/dev/null
    grep '^2 ' two.keys > only2.keys
    cp pg_alpaca.keys public.keys && chmod 644 public.keys
    printf '# a comment\n\n1 not-base64!!\n' > bad_line.keys
    printf '1 %s\n' \"\$(openssl rand -base64 16)\" > short.keys
    printf '1 %s\n1 %s\n' \"\$(openssl rand -base64 32)\" \"\$(openssl rand -base64 32)\" > dup.keys
    printf '# no keys here\n\n' > empty.keys"
export PGA_TEST_KEYS_TWO=$KEYS/two.keys PGA_TEST_KEYS_ONLY2=$KEYS/only2.keys \
    PGA_TEST_KEYS_PUBLIC=$KEYS/public.keys PGA_TEST_KEYS_BAD_LINE=$KEYS/bad_line.keys \
    PGA_TEST_KEYS_SHORT=$KEYS/short.keys PGA_TEST_KEYS_DUP=$KEYS/dup.keys \
    PGA_TEST_KEYS_EMPTY=$KEYS/empty.keys

log "pg_regress"
rm -rf "$PGA_ROOT/results" "$PGA_ROOT/regression.diffs"
regress_out=$(make -C "$PGA_ROOT" -s installcheck 2>&1) || true
# PostgreSQL 15's pg_regress prints "test NAME ... ok|FAILED" (the lines appear twice in the
# make output: count the first summary only).
regress_lines=$(grep -E '^test [a-z_0-9]+ +\.\.\. ' <<<"$regress_out" | awk '!seen[$2]++' || true)
echo "$regress_lines"
r_total=$(grep -c . <<<"$regress_lines" || true)
r_failed=$(grep -cvE '\.\.\. ok ' <<<"$regress_lines" || true)
if [ "$r_total" -eq 0 ]; then echo "$regress_out" | tail -20; r_failed=1; fi
[ "$r_failed" -eq 0 ] || { [ -f "$PGA_ROOT/regression.diffs" ] && head -150 "$PGA_ROOT/regression.diffs"; }
record "pg_regress" $((r_total - r_failed)) "$r_failed"

shopt -s nullglob
for t in "$PGA_ROOT"/test/integration/test_*.py; do
    name=$(basename "$t" .py)
    log "integration: $name"
    out=$(cd "$PGA_ROOT/test/integration" && timeout 900 /usr/bin/python3 -m unittest -v "$name" 2>&1) || true
    echo "$out" | grep -E '^(test_|Ran |OK|FAILED|[A-Z]+:)|^\[count\]' || true
    ran=$(sed -n 's/^Ran \([0-9]*\) test.*/\1/p' <<<"$out")
    bad=$(sed -n 's/^FAILED (\(.*\))/\1/p' <<<"$out" | { grep -oE '[0-9]+' || true; } | awk '{s+=$1} END {if (NR) print s}')
    [ -n "$ran" ] || { echo "$out" | tail -30; ran=1; bad=1; }
    [ -z "$bad" ] || echo "$out" | grep -A25 -E '^(FAIL|ERROR):' | head -80
    record "$name" $((ran - ${bad:-0})) "${bad:-0}"
done

for t in "$PGA_ROOT"/test/integration/test_*.sh; do
    name=$(basename "$t" .sh)
    log "integration: $name"
    if out=$(timeout 900 bash "$t" 2>&1); then record "$name" 1 0; echo "$out" | grep -E '^\[count\]' || true
    else echo "$out" | tail -40; record "$name" 0 1; fi
done

# The attack suite: each test is an attack that must fail. Judged by the runner's exit status.
log "security: attack suite (test/security)"
sec_out=$(cd "$PGA_ROOT/test/security" && PYTHONPATH="$PGA_ROOT/test/integration" \
    timeout 1500 /usr/bin/python3 -m unittest discover -v -p 'test_*.py' 2>&1) && sec_rc=0 || sec_rc=$?
echo "$sec_out" | grep -E '^(test_|Ran |OK|FAILED)|^\[count\]' || true
sec_ran=$(sed -n 's/^Ran \([0-9]*\) test.*/\1/p' <<<"$sec_out")
sec_bad=$(sed -n 's/^FAILED (\(.*\))/\1/p' <<<"$sec_out" | { grep -oE '[0-9]+' || true; } | awk '{s+=$1} END {print s+0}')
[ -n "$sec_ran" ] || sec_ran=0
if [ "$sec_rc" -ne 0 ]; then
    echo "$sec_out" | grep -A25 -E '^(FAIL|ERROR):' | head -120
    [ "$sec_bad" -gt 0 ] || sec_bad=1
fi
log "security: attacks tried: $sec_ran, attacks that worked: $sec_bad"
record "security (attacks that failed)" $((sec_ran - sec_bad > 0 ? sec_ran - sec_bad : 0)) "$sec_bad"

if grep -q "terminated by signal" "$PGA_POSTGRES_LOG"; then
    log "the server log says a backend was terminated by a signal:"
    grep -B2 -A2 "terminated by signal" "$PGA_POSTGRES_LOG" | head -20
    record "no backend crash" 0 1
else
    record "no backend crash" 1 0
fi

if [ $QUICK -eq 0 ] && [ -x "$PGA_ROOT/scripts/fuzz.sh" ]; then
    log "fuzz run (a ${PGA_FUZZ_BUDGET:-120} s budget weighted toward hostile-input parsers; see scripts/fuzz.sh)"
    if out=$(PGA_FUZZ_BUDGET=${PGA_FUZZ_BUDGET:-120} bash "$PGA_ROOT/scripts/fuzz.sh" 2>&1); then
        echo "$out" | grep -E '^\[count\]' || true; record "fuzz" 1 0
    else echo "$out" | tail -40; record "fuzz" 0 1; fi
fi

if [ $QUICK -eq 0 ]; then
    # The benchmark harness itself, with tiny sizes: it must run end to end. Its verdicts mean
    # nothing at these sizes (exit 3 = a target missed), so only a broken run fails here.
    log "benchmark smoke run"
    out=$(timeout 600 bash "$PGA_ROOT/scripts/bench.sh" --smoke 2>&1) && rc=0 || rc=$?
    if [ $rc -eq 0 ] || [ $rc -eq 3 ]; then record "bench smoke" 1 0
    else echo "$out" | tail -30; record "bench smoke" 0 1; fi
fi

echo
[ ${#FAILED_STAGES[@]} -eq 0 ] || log "failed stages: ${FAILED_STAGES[*]}"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
