#!/usr/bin/env bash
# pg_alpaca end to end: builds everything, starts a throwaway stack (PostgreSQL cluster, the
# sidecar and the bundled Alpaca stand-in over HTTPS), stores two users' keys and shows their
# broker data as SQL tables. With APCA_API_KEY_ID and APCA_API_SECRET_KEY set in the
# environment it uses real Alpaca paper trading instead of the stand-in.
#
#   scripts/demo.sh [--keep]     --keep leaves the stack running (stop: scripts/stack.sh down DIR)
source "$(dirname "$0")/lib.sh"
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

ensure_packages
log "building"
build_cmake "$PGA_ROOT/build"
build_extension

DIR=$(mktemp -d -t pg_alpaca_demo.XXXXXX)
chmod 755 "$DIR"
if [ $KEEP -eq 0 ]; then trap '"$PGA_ROOT/scripts/stack.sh" down "$DIR/stack" >/dev/null 2>&1 || true' EXIT; fi

if [ -n "${APCA_API_KEY_ID:-}" ] && [ -n "${APCA_API_SECRET_KEY:-}" ]; then
    MODE=real
    "$PGA_ROOT/scripts/stack.sh" up "$DIR/stack" --real-alpaca
else
    MODE=standin
    "$PGA_ROOT/scripts/stack.sh" up "$DIR/stack"
fi
source "$DIR/stack/stack.env"

# The application connects as the login role `app` (member of alpaca_app).
app_psql() { "$PGA_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -U app "$@"; }
title() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ $MODE = real ]; then
    USERS=(you)
    KEY_IDS=("$APCA_API_KEY_ID")
    SECRETS=("$APCA_API_SECRET_KEY")
else
    USERS=(alice bob)
    KEY_IDS=(PKTESTALICE000000001 PKTESTBOB00000000002)
    SECRETS=("$(cat "$PGA_STACK_DIR/standin/fixtures/PKTESTALICE000000001/secret")"
             "$(cat "$PGA_STACK_DIR/standin/fixtures/PKTESTBOB00000000002/secret")")
fi

title "storing credentials (encrypted on the way in; passed through the environment, never argv)"
for i in "${!USERS[@]}"; do
    PGA_DEMO_KEY=${KEY_IDS[$i]} PGA_DEMO_SECRET=${SECRETS[$i]} app_psql -v user="${USERS[$i]}" <<'SQL'
\getenv key PGA_DEMO_KEY
\getenv secret PGA_DEMO_SECRET
BEGIN;
SELECT alpaca_set_user(:'user') \g /dev/null
SELECT alpaca_create_account(:'user' || '''s brokerage') AS account \gset
SELECT alpaca_store_credential(:'account', :'key', :'secret', 'paper', 'demo') \g /dev/null
COMMIT;
SQL
done
unset SECRETS

for user in "${USERS[@]}"; do
    title "user $user"
    app_psql -v user="$user" <<'SQL'
\pset footer off
BEGIN;
SELECT alpaca_set_user(:'user') \g /dev/null
SELECT id AS cred FROM alpaca_list_credentials() LIMIT 1 \gset
\echo '-- alpaca_list_credentials(): metadata only, never a key'
SELECT label, environment, key_hint, is_active, created_at::timestamp(0) AS created FROM alpaca_list_credentials();
\echo '-- alpaca_validate_credential()'
SELECT alpaca_validate_credential(:'cred') AS valid;
\echo '-- alpaca_account()'
SELECT account_number, status, currency, cash, buying_power, equity, portfolio_value FROM alpaca_account(:'cred');
\echo '-- alpaca_positions()'
SELECT symbol, asset_class, side, qty, avg_entry_price, market_value, unrealized_pl, underlying, expiration, option_type, strike
FROM alpaca_positions(:'cred') ORDER BY asset_class, symbol;
\echo '-- options grouped by underlying (the earlier system''s options view, as one GROUP BY)'
SELECT underlying, count(*) AS contracts, sum(qty) AS qty, sum(market_value) AS market_value, sum(unrealized_pl) AS unrealized_pl
FROM alpaca_positions(:'cred') WHERE underlying IS NOT NULL GROUP BY underlying ORDER BY underlying;
\echo '-- alpaca_orders(cred, ''all'', 10)'
SELECT symbol, side, type, qty, filled_qty, limit_price, status, order_class, submitted_at::timestamp(0) AS submitted, jsonb_array_length(legs) AS legs
FROM alpaca_orders(:'cred', 'all', 10);
COMMIT;
SQL
done

title "isolation: bob asks for alice's credential"
cred=$(app_psql -tA -v user="${USERS[0]}" <<'SQL'
BEGIN;
SELECT alpaca_set_user(:'user') \g /dev/null
SELECT id FROM alpaca_list_credentials() LIMIT 1;
COMMIT;
SQL
)
app_psql -v cred="$cred" <<'SQL' 2>&1 | sed 's/^/  /' || true
BEGIN;
SELECT alpaca_set_user('bob') \g /dev/null
SELECT count(*) FROM alpaca_positions(:'cred');
ROLLBACK;
SQL

title "audit log (as alpaca_admin)"
"$PGA_PG_BIN/psql" -X -q -U admin -c "SELECT app_user, action, purpose, outcome, count(*) FROM alpaca.audit_log GROUP BY 1,2,3,4 ORDER BY 1,2,3"
title "sidecar log (one line per request, no keys)"
tail -n 5 "$PGA_SIDECAR_LOG"
if [ $KEEP -eq 1 ]; then
    title "the stack keeps running: source $DIR/stack/stack.env; stop it with scripts/stack.sh down $DIR/stack"
fi
