#!/usr/bin/env bash
# Builds pg_alpaca and runs every test: unit tests (plus an ASan+UBSan build of them), the
# pg_regress suite and the integration tests against a throwaway stack (real PostgreSQL
# cluster, real sidecar, the Alpaca stand-in over HTTPS), then short fuzz runs and a benchmark
# smoke run. Every stage is judged by its runner's exit status.
# Installs missing Debian packages itself. Usage: scripts/test.sh [--quick] (no sanitizer/fuzz)
source "$(dirname "$0")/lib.sh"

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
PASSED=0
FAILED=0
SKIPPED=0
FAILED_STAGES=()
# record STAGE PASSED FAILED [SKIPPED]: the caller judged the stage by its runner's exit status
# (FAILED > 0 exactly when that status was not 0); the counts are for the reader.
record() {
    PASSED=$((PASSED + $2)); FAILED=$((FAILED + $3)); SKIPPED=$((SKIPPED + ${4:-0}))
    [ "$3" -eq 0 ] || FAILED_STAGES+=("$1")
    log "$1: $2 passed, $3 failed${4:+, $4 could not run}"
}

# run_ctest STAGE BUILD-DIR. Counts from ctest's "100% tests passed, 0 tests failed out of 57".
run_ctest() {
    local stage=$1 dir=$2 out rc total failed
    out=$(cd "$dir" && ctest -j"$(nproc)" --output-on-failure 2>&1) && rc=0 || rc=$?
    total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' <<<"$out" | tail -1)
    failed=$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' <<<"$out" | tail -1)
    if [ "$rc" -eq 0 ]; then record "$stage" "${total:-0}" 0; return; fi
    echo "$out" | grep -E 'Failed|FAILED|\*\*\*' | head -40 || true
    [ -n "$total" ] || echo "$out" | tail -30
    [ "${failed:-0}" -gt 0 ] || failed=1
    record "$stage" $((${total:-0} - failed > 0 ? ${total:-0} - failed : 0)) "$failed"
}

# run_unittest STAGE DIR ARGS...: python3 -m unittest -v ARGS in DIR (test/integration on
# PYTHONPATH). Judged by its exit status; counts from "Ran N" and "FAILED (...)"/"(skipped=N)".
UT_RAN=0 UT_BAD=0 UT_SKIPPED=0
run_unittest() {
    local stage=$1 dir=$2 out rc; shift 2
    local args=(-v "$@")
    [ "${1:-}" != discover ] || args=(discover -v "${@:2}")
    out=$(cd "$dir" && PYTHONPATH=$PGA_ROOT/test/integration timeout 1500 /usr/bin/python3 -m unittest "${args[@]}" 2>&1) && rc=0 || rc=$?
    echo "$out" | grep -E '^(test_|Ran |OK|FAILED|[A-Z]+:)|^\[count\]|skipped' || true
    UT_RAN=$(sed -n 's/^Ran \([0-9]*\) test.*/\1/p' <<<"$out" | tail -1); UT_RAN=${UT_RAN:-0}
    UT_SKIPPED=$(grep -oE '^(OK|FAILED) \(.*skipped=[0-9]+' <<<"$out" | grep -oE '[0-9]+$' | tail -1 || true)
    UT_SKIPPED=${UT_SKIPPED:-0}
    UT_BAD=0
    if [ "$rc" -ne 0 ]; then
        UT_BAD=$(sed -n 's/^FAILED (\(.*\))/\1/p' <<<"$out" | { grep -oE '(failures|errors|unexpected successes)=[0-9]+' || true; } |
            { grep -oE '[0-9]+' || true; } | awk '{s+=$1} END {print s+0}')
        echo "$out" | grep -A25 -E '^(FAIL|ERROR):' | head -120 || true
        [ "$UT_BAD" -gt 0 ] || { echo "$out" | tail -30; UT_BAD=1; }
    fi
    local ok=$((UT_RAN - UT_BAD - UT_SKIPPED))
    record "$stage" $((ok > 0 ? ok : 0)) "$UT_BAD" $([ "$UT_SKIPPED" -eq 0 ] || echo "$UT_SKIPPED")
}

# run_command STAGE CMD...: one check; passed or failed by the command's exit status.
run_command() {
    local stage=$1 out; shift
    if out=$("$@" 2>&1); then echo "$out" | grep -E '^\[count\]|^OK' || true; record "$stage" 1 0
    else echo "$out" | tail -40; record "$stage" 0 1; fi
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

log "the Alpaca stand-in's own tests"
run_unittest "stand-in self-test" "$PGA_ROOT/test/standin" test_standin
log "fixtures against Alpaca's spec"
run_command "fixture validator" /usr/bin/python3 "$PGA_ROOT/test/standin/validate_fixtures.py"

log "build and install the extension"
build_extension

STACK=$(mktemp -d -t pg_alpaca_test.XXXXXX)
chmod 755 "$STACK"
cleanup() { "$PGA_ROOT/scripts/stack.sh" down "$STACK/stack" >/dev/null 2>&1 || true; rm -rf "$STACK"; }
trap cleanup EXIT
"$PGA_ROOT/scripts/stack.sh" up "$STACK/stack"
# shellcheck disable=SC1091
source "$STACK/stack/stack.env"

# make installcheck makes the key ring test's key files itself (scripts/regress_keys.sh).
log "pg_regress"
rm -rf "$PGA_ROOT/results" "$PGA_ROOT/regression.diffs"
regress_out=$(make -C "$PGA_ROOT" -s installcheck 2>&1) && rc=0 || rc=$?
# PostgreSQL 15's pg_regress prints "test NAME ... ok|FAILED" (the lines appear twice in the
# make output: count the first summary only).
regress_lines=$(grep -E '^test [a-z_0-9]+ +\.\.\. ' <<<"$regress_out" | awk '!seen[$2]++' || true)
echo "$regress_lines"
r_total=$(grep -c . <<<"$regress_lines" || true)
r_failed=0
if [ "$rc" -ne 0 ]; then
    r_failed=$(grep -cvE '\.\.\. ok ' <<<"$regress_lines" || true)
    [ "$r_failed" -gt 0 ] || { echo "$regress_out" | tail -20; r_failed=1; }
    [ -f "$PGA_ROOT/regression.diffs" ] && head -150 "$PGA_ROOT/regression.diffs"
fi
record "pg_regress" $((r_total - r_failed > 0 ? r_total - r_failed : 0)) "$r_failed"

log "test clients (official SDKs, pinned: test/clients)"
ensure_test_clients

shopt -s nullglob
for t in "$PGA_ROOT"/test/integration/test_*.py; do
    name=$(basename "$t" .py)
    log "integration: $name"
    run_unittest "$name" "$PGA_ROOT/test/integration" "$name"
done

for t in "$PGA_ROOT"/test/integration/test_*.sh; do
    name=$(basename "$t" .sh)
    log "integration: $name"
    run_command "$name" timeout 900 bash "$t"
done

# The attack suite: each test is an attack that must fail. Judged by the runner's exit status;
# an attack that cannot be tried here (e.g. no root or sudo for the sidecar's own OS user) is
# reported as such, never as a failed attack.
log "security: attack suite (test/security)"
run_unittest "security (attacks that failed)" "$PGA_ROOT/test/security" discover -p 'test_*.py'
log "security: attacks tried: $((UT_RAN - UT_SKIPPED)), attacks that worked: $UT_BAD, could not run here: $UT_SKIPPED"

if grep -q "terminated by signal" "$PGA_POSTGRES_LOG"; then
    log "the server log says a backend was terminated by a signal:"
    grep -B2 -A2 "terminated by signal" "$PGA_POSTGRES_LOG" | head -20
    record "no backend crash" 0 1
else
    record "no backend crash" 1 0
fi

if [ $QUICK -eq 0 ] && [ -x "$PGA_ROOT/scripts/fuzz.sh" ]; then
    log "fuzz run (a ${PGA_FUZZ_BUDGET:-120} s budget weighted toward hostile-input parsers; see scripts/fuzz.sh)"
    export PGA_FUZZ_BUDGET=${PGA_FUZZ_BUDGET:-120}
    run_command "fuzz" bash "$PGA_ROOT/scripts/fuzz.sh"
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
[ "$SKIPPED" -eq 0 ] || log "$SKIPPED checks could not run here (see above)"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
