#!/usr/bin/env bash
# The thief with a dump, a base backup or the WAL (README security model), against the running
# stack (source DIR/stack.env first):
#  - canary keys stored through the API never reach a heap page or the WAL (byte search of the
#    whole data directory after CHECKPOINT and a WAL switch), nor a pg_dump;
#  - pg_dump restored into a fresh cluster with the same key file still decrypts (nothing is
#    encrypted twice); with a key file lacking the key, use fails naming the missing key id;
#    with a different key under the same id, use fails as "does not decrypt", never garbage.
source "$(dirname "$0")/../../scripts/lib.sh"
: "${PGA_STACK_DIR:?source the stack.env of a running stack first}"
STACKSH=$PGA_ROOT/scripts/stack.sh  # the restores are bare clusters of the one stack controller
WORK=$(mktemp -d -t pga_disk.XXXXXX); chmod 755 "$WORK"
PSQL=("$PGA_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -tA)
cleanup() {
    for d in "$WORK"/restore*; do
        [ -d "$d" ] && "$STACKSH" bare-down "$d" >/dev/null 2>&1
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

CANARY_KEY="PKCANARY$(openssl rand -hex 6 | tr a-f A-F)"
CANARY_SECRET="canarysecret$(openssl rand -hex 14)"
CONTROL="labelcontrol$(openssl rand -hex 8)"  # stored in clear on purpose: proves the search works
cred=$("${PSQL[@]}" <<SQL
BEGIN;
SELECT alpaca_set_user('disk-canary') \g /dev/null
SELECT alpaca_create_account('disk') AS a \gset
SELECT alpaca_store_credential(:'a', '$CANARY_KEY', '$CANARY_SECRET', 'paper', '$CONTROL');
COMMIT;
SQL
)
"${PSQL[@]}" -c "CHECKPOINT" -c "SELECT pg_switch_wal()" -c "CHECKPOINT" >/dev/null
found=$( (grep -r -a -l -e "$CANARY_KEY" -e "$CANARY_SECRET" "$PGA_STACK_DIR/pgdata/" || true) | wc -l)
echo "[count] data directory files holding a canary: $found"
[ "$found" -eq 0 ] || { echo "canary found on disk"; exit 1; }
control=$( (grep -r -a -l -e "$CONTROL" "$PGA_STACK_DIR/pgdata/" || true) | wc -l)
echo "[count] data directory files holding the clear-text control label: $control (must be > 0)"
[ "$control" -gt 0 ] || { echo "the byte search does not work: control label not found"; exit 1; }

"$PGA_PG_BIN/pg_dump" -Fp -d alpaca --no-owner >"$WORK/dump.sql"
found=$(grep -c -e "$CANARY_KEY" -e "$CANARY_SECRET" "$WORK/dump.sql" || true)
echo "[count] canaries in pg_dump output: $found"
[ "$found" -eq 0 ] || exit 1
grep -q "pgak1:" "$WORK/dump.sql" || { echo "dump holds no envelope"; exit 1; }

# restore_into NAME KEYFILE -> starts a fresh cluster, restores the dump, prints its port
restore_into() {
    local d=$WORK/$1 port
    port=$("$STACKSH" bare-up "$d" "$2")
    "${PSQL[@]}" -h "$d/run" -p "$port" -U postgres -d postgres -c "CREATE DATABASE alpaca" >/dev/null
    "$PGA_PG_BIN/psql" -X -q -h "$d/run" -p "$port" -U postgres -d alpaca -f "$WORK/dump.sql" >"$d/restore.out" 2>&1
    "${PSQL[@]}" -h "$d/run" -p "$port" -U postgres -d alpaca -c "CREATE ROLE sc IN ROLE alpaca_sidecar" >/dev/null
    echo "$port"
}
# redeem_in NAME PORT -> prints "api_key|secret_key" or the error
redeem_in() {
    "$PGA_PG_BIN/psql" -X -q -tA -h "$WORK/$1/run" -p "$2" -U postgres -d alpaca 2>&1 <<SQL
BEGIN;
SELECT alpaca_set_user('disk-canary') \g /dev/null
SELECT alpaca_issue_ticket('$cred', 'account') AS t \gset
COMMIT;
SET ROLE sc;
CALL alpaca.redeem_ticket(:'t', 'account', NULL, NULL, NULL, NULL) \\gset r_
\\echo :r_api_key|:r_secret_key
SQL
}

port=$(restore_into restore_same "$PGA_KEY_FILE")
got=$(redeem_in restore_same "$port")
[ "$got" = "$CANARY_KEY|$CANARY_SECRET" ] || { echo "restore with the same key file: got '$got'"; cat "$WORK/restore_same/restore.out"; exit 1; }
echo "restore with the same key file: credentials decrypt"

# The key the canary is sealed under (the stack's primary; other tests may have added keys).
kid=$("${PSQL[@]}" -c "SELECT alpaca._secret_key_id(api_key) FROM alpaca.credentials WHERE id = '$cred'")
[ -n "$kid" ] || { echo "cannot find the canary's key id"; exit 1; }
keyfile_with() {  # keyfile_with OUT AWK-PROGRAM: the stack's key file rewritten, mode 0600
    (umask 077; awk "$2" "$PGA_KEY_FILE" >"$1")
}
# Every other key, plus an unrelated one so the ring is never empty.
keyfile_with "$WORK/without.keys" "\$1 != \"$kid\" { print } END { print $((kid + 1000)), \"$(openssl rand -base64 32)\" }"
port=$(restore_into restore_missing "$WORK/without.keys")
got=$(redeem_in restore_missing "$port")
grep -q "key id $kid is not in the key ring" <<<"$got" || { echo "missing key: got '$got'"; exit 1; }
echo "restore without key $kid: '$(grep -o 'ERROR:.*' <<<"$got" | head -1)'"

keyfile_with "$WORK/other.keys" "\$1 == \"$kid\" { print \$1, \"$(openssl rand -base64 32)\"; next } { print }"
port=$(restore_into restore_other "$WORK/other.keys")
got=$(redeem_in restore_other "$port")
grep -q "does not decrypt" <<<"$got" || { echo "other key under id $kid: got '$got'"; exit 1; }
echo "restore with another key under id $kid: '$(grep -o 'ERROR:.*' <<<"$got" | head -1)'"
