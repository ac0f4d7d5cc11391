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

title "trading (paper): alice places a limit order, sees it open, cancels it"
app_psql -v user="${USERS[0]}" <<'SQL'
BEGIN;
SELECT alpaca_set_user(:'user') \g /dev/null
SELECT id AS cred FROM alpaca_list_credentials() LIMIT 1 \gset
\echo '-- alpaca_submit_order(cred, ''AAPL'', ''buy'', qty => 1, type => ''limit'', limit_price => 100, time_in_force => ''gtc'')'
SELECT id AS order_id, client_order_id, symbol, side, type, qty, limit_price, status
FROM alpaca_submit_order(:'cred', 'AAPL', 'buy', qty => 1, type => 'limit', limit_price => 100,
                         time_in_force => 'gtc') \gset
SELECT :'order_id' AS order_id, :'client_order_id' AS client_order_id, :'status' AS status;
\echo '-- in alpaca_orders(cred, ''open'')'
SELECT symbol, side, type, qty, limit_price, status FROM alpaca_orders(:'cred', 'open', 500)
WHERE id = :'order_id';
\echo '-- alpaca_cancel_order(cred, order_id)'
SELECT id, client_order_id, status, canceled_at IS NOT NULL AS canceled FROM alpaca_cancel_order(:'cred', :'order_id');
COMMIT;
SQL

title "agents (MCP) without keys: the app opens sessions, the agent gets a URL and a token"
GATEWAY=$("$PGA_ROOT/scripts/stack.sh" gateway "$DIR/stack" on)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "  (skipped: the agent is a Node.js MCP client and node/npm are not installed)"
elif ! (cd "$PGA_ROOT/test/clients/mcp" && npm ci --ignore-scripts --no-audit --no-fund \
            --loglevel=error >/dev/null); then
    echo "  (skipped: npm could not install the pinned MCP SDK from test/clients/mcp)"
else
    # The application, as alice: one read and one trade (paper) session for her credential.
    open_session() {
        app_psql -tA -v user="${USERS[0]}" -v scope="$1" <<'SQL'
BEGIN;
SELECT alpaca_set_user(:'user') \g /dev/null
SELECT alpaca_open_session(id, :'scope', '15 minutes', 'demo agent ' || :'scope')
FROM alpaca_list_credentials() LIMIT 1;
COMMIT;
SQL
    }
    READ_TOKEN=$(open_session read)
    TRADE_TOKEN=$(open_session trade)
    echo "-- alpaca_open_session(cred, 'read' | 'trade', '15 minutes', label): two tokens (pgas_…, returned once, stored only as keyed hashes)"
    echo "-- the agent is given: MCP_URL=$GATEWAY/mcp and MCP_TOKEN (no Alpaca key)"
    agent() { MCP_URL="$GATEWAY/mcp" MCP_TOKEN="$1" /usr/bin/python3 "$PGA_ROOT/scripts/demo_agent.py" "$2"; }
    echo "-- a read session"
    agent "$READ_TOKEN" read
    echo "-- a trade session (paper)"
    agent "$TRADE_TOKEN" trade
    echo "-- the app revokes the trade session: alpaca_revoke_session(id)"
    app_psql -v user="${USERS[0]}" <<'SQL'
\pset footer off
BEGIN;
SELECT alpaca_set_user(:'user') \g /dev/null
SELECT alpaca_revoke_session(id) AS revoked FROM alpaca_list_sessions() WHERE label = 'demo agent trade';
SELECT label, scope, expires_at > now() AS unexpired, last_used_at IS NOT NULL AS used, revoked_at IS NOT NULL AS revoked
FROM alpaca_list_sessions() ORDER BY label;
COMMIT;
SQL
    agent "$TRADE_TOKEN" after-revoke
    unset READ_TOKEN TRADE_TOKEN
fi

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
"$PGA_PG_BIN/psql" -X -q -U admin -c "SELECT app_user, action, client_order_id, outcome, db_role FROM alpaca.audit_log WHERE purpose = 'trade' AND client_order_id IS NOT NULL ORDER BY id"
title "sidecar log (one line per request, no keys)"
tail -n 5 "$PGA_SIDECAR_LOG"
if [ $KEEP -eq 1 ]; then
    title "the stack keeps running: source $DIR/stack/stack.env; stop it with scripts/stack.sh down $DIR/stack"
fi
