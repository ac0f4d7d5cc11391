// CALL alpaca.redeem_session(token, method, path, NULL, ...): the gateway's way to the keys, for
// alpaca_sidecar alone. Like alpaca.redeem_ticket (extension/committed_redeem): refuses an
// atomic context, runs alpaca._session_redeem_prepare as alpaca_owner (token valid, not revoked
// or expired, scope allows method + path, credential active, live two-key rule for trading;
// last_used_at and the `gateway` audit row, whose id comes back for the status), decrypts,
// commits and flushes, and only then returns the keys.
#include "extension/committed_redeem.hpp"

PGA_FUNCTION(pga_redeem_session) {
    pga::ext::require_nonatomic_call(
        fcinfo, "alpaca.redeem_session", "use record and the gateway audit row",
        "CALL alpaca.redeem_session(token, method, path, NULL, NULL, NULL, NULL, NULL, NULL, "
        "NULL, NULL)");
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
        throw pga::Error(pga::ErrorCode::InvalidParameter,
                         "token, method and path must not be null");
    static SPIPlanPtr plan = nullptr;
    Oid types[3] = {TEXTOID, TEXTOID, TEXTOID};
    Datum args[3] = {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), PG_GETARG_DATUM(2)};
    pga::ext::CommittedKeys keys = pga::ext::redeem_and_commit(
        &plan,
        "SELECT r.credential_id, r.environment, r.api_key::pg_catalog.text, "
        "r.secret_key::pg_catalog.text, r.session_id::pg_catalog.text, r.scope, r.route, "
        "r.audit_id::pg_catalog.text FROM alpaca._session_redeem_prepare($1, $2, $3) r",
        3, types, args, 4, "session token refused");
    // OUT session_id text, scope text, route text, audit_id text: the sidecar reads text.
    std::vector<Datum> extra;
    for (const std::string &s : keys.extra) extra.push_back(pga::pg::text_datum(s));
    return pga::ext::keys_row(fcinfo, keys, extra);
}
