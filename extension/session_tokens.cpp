// Gateway session tokens, the SQL face of common/session_token.hpp: alpaca._mint_session_token
// (a fresh token and its keyed hash; alpaca_open_session stores only the hash) and
// alpaca._session_token_hash (the hash of a presented token, NULL when it is malformed or
// under a key no longer in the ring: never an error that could carry the token). The GUC
// pg_alpaca.max_session_ttl bounds alpaca_open_session's ttl. EXECUTE is revoked from PUBLIC.
#include <string>

#include "common/session_token.hpp"
#include "extension/session_tokens.hpp"
#include "extension/vault_state.hpp"

#include "extension/pg_values.hpp"

extern "C" {
#include "utils/guc.h"
}

namespace {

int g_max_session_ttl_s = 86400;

Datum bytea_datum(const std::uint8_t *data, std::size_t len) {
    bytea *b = pga::pg::call([&] { return (bytea *)palloc(VARHDRSZ + len); });
    SET_VARSIZE(b, VARHDRSZ + len);
    std::memcpy(VARDATA(b), data, len);
    return PointerGetDatum(b);
}

}  // namespace

namespace pga::ext {

void define_session_gucs() {
    DefineCustomIntVariable(
        "pg_alpaca.max_session_ttl",
        "The longest lifetime alpaca_open_session grants a gateway session.",
        "Only a superuser can change it; sessions already open keep their expiry.",
        &g_max_session_ttl_s, 86400, 1, 31 * 86400, PGC_SUSET, GUC_UNIT_S, nullptr, nullptr,
        nullptr);
}

}  // namespace pga::ext

// alpaca._mint_session_token(OUT token text, OUT token_hash bytea)
PGA_FUNCTION(pga_mint_session_token) {
    pga::MintedSessionToken t = pga::mint_session_token(pga::ext::keyring());
    Datum values[2] = {pga::pg::text_datum(pga::as_view(t.token)),
                       bytea_datum(t.hash.data(), t.hash.size())};
    bool nulls[2] = {false, false};
    return pga::pg::composite_datum(fcinfo, values, nulls);
}

// alpaca._session_token_hash(token text) RETURNS bytea (STRICT; NULL for a token that is not
// one of ours)
PGA_FUNCTION(pga_session_token_hash) {
    std::optional<pga::Sha256> h =
        pga::session_token_hash(pga::ext::keyring(), pga::pg::text_view(PG_GETARG_DATUM(0)));
    if (!h) PG_RETURN_NULL();
    return bytea_datum(h->data(), h->size());
}

// alpaca._max_session_ttl() RETURNS int: pg_alpaca.max_session_ttl in seconds
PGA_FUNCTION(pga_max_session_ttl) {
    return Int32GetDatum(g_max_session_ttl_s);
}
