// SQL-callable primitives of the vault: encryption of credential columns, fingerprints,
// tickets, the key ring listing and the application user. The SQL script wraps them in
// SECURITY DEFINER functions that enforce ownership; EXECUTE on these is revoked from PUBLIC.
#include <string>

#include "common/envelope.hpp"
#include "common/fernet.hpp"
#include "common/ticket.hpp"
#include "extension/pg_guard.hpp"
#include "extension/pg_values.hpp"
#include "extension/vault_state.hpp"

extern "C" {
#include "utils/guc.h"
}

using pga::pg::text_datum;
using pga::pg::text_view;

// alpaca._seal(plaintext text, cred uuid, column_name text) RETURNS alpaca_secret
PGA_FUNCTION(pga_seal) {
    std::string env =
        pga::seal_secret(pga::ext::keyring(), text_view(PG_GETARG_DATUM(0)),
                         pga::pg::uuid_value(PG_GETARG_DATUM(1)), text_view(PG_GETARG_DATUM(2)));
    return text_datum(env);
}

// alpaca._reseal_credential(api_key alpaca_secret, secret_key alpaca_secret, cred uuid,
//   OUT api_key alpaca_secret, OUT secret_key alpaca_secret, OUT fingerprint text)
// Re-encrypts both secrets of one credential under the primary key and recomputes the
// fingerprint; plaintext never leaves this function and is wiped.
PGA_FUNCTION(pga_reseal_credential) {
    const pga::KeyRing &ring = pga::ext::keyring();
    pga::Uuid cred = pga::pg::uuid_value(PG_GETARG_DATUM(2));
    std::string api_env, secret_env, fp;
    {
        pga::SecureBytes api =
            pga::open_secret(ring, text_view(PG_GETARG_DATUM(0)), cred, "api_key");
        pga::SecureBytes secret =
            pga::open_secret(ring, text_view(PG_GETARG_DATUM(1)), cred, "secret_key");
        api_env = pga::seal_secret(ring, pga::as_view(api), cred, "api_key");
        secret_env = pga::seal_secret(ring, pga::as_view(secret), cred, "secret_key");
        fp = pga::fingerprint(ring.primary(), pga::as_view(api));
    }
    Datum values[3] = {text_datum(api_env), text_datum(secret_env), text_datum(fp)};
    bool nulls[3] = {false, false, false};
    return pga::pg::composite_datum(fcinfo, values, nulls);
}

// alpaca._fingerprints(api_key text) RETURNS text[]: one per key in the ring, primary first.
PGA_FUNCTION(pga_fingerprints) {
    const pga::KeyRing &ring = pga::ext::keyring();
    std::string_view api_key = text_view(PG_GETARG_DATUM(0));
    std::vector<std::string> fps;
    fps.push_back(pga::fingerprint(ring.primary(), api_key));
    for (std::uint32_t id : ring.ids())
        if (id != ring.primary_id()) fps.push_back(pga::fingerprint(ring.require(id), api_key));
    return pga::pg::text_array_datum(fps);
}

// alpaca._mint_ticket(cred uuid, app_user text, purpose text, expires_at timestamptz) RETURNS text
PGA_FUNCTION(pga_mint_ticket) {
    pga::TicketClaims claims;
    claims.credential_id = pga::pg::uuid_value(PG_GETARG_DATUM(0));
    claims.app_user = std::string(text_view(PG_GETARG_DATUM(1)));
    claims.purpose = std::string(text_view(PG_GETARG_DATUM(2)));
    claims.expires_at_ms = pga::pg::timestamptz_to_unix_ms(PG_GETARG_TIMESTAMPTZ(3));
    pga::SecureBytes ticket = pga::secure_copy(pga::mint_ticket(pga::ext::keyring(), claims));
    return text_datum(pga::as_view(ticket));
}

// alpaca._verify_ticket(ticket text, OUT credential_id uuid, OUT app_user text,
//   OUT purpose text, OUT expires_at timestamptz, OUT nonce bytea, OUT key_id bigint)
PGA_FUNCTION(pga_verify_ticket) {
    pga::TicketClaims c;
    try {
        c = pga::verify_ticket(pga::ext::keyring(), text_view(PG_GETARG_DATUM(0)),
                               pga::pg::now_unix_ms());
    } catch (const pga::Error &e) {
        // A ticket under a key that is not (or no longer) in the ring is simply not valid.
        if (e.code() != pga::ErrorCode::KeyMissing) throw;
        throw pga::Error(pga::ErrorCode::TicketInvalid, std::string("ticket refused: ") + e.what());
    }
    bytea *nonce = pga::pg::call([&] { return (bytea *)palloc(VARHDRSZ + c.nonce.size()); });
    SET_VARSIZE(nonce, VARHDRSZ + c.nonce.size());
    std::memcpy(VARDATA(nonce), c.nonce.data(), c.nonce.size());
    Datum values[6] = {pga::pg::uuid_datum(c.credential_id),
                       text_datum(c.app_user),
                       text_datum(c.purpose),
                       TimestampTzGetDatum(pga::pg::unix_ms_to_timestamptz(c.expires_at_ms)),
                       PointerGetDatum(nonce),
                       Int64GetDatum((int64)c.key_id)};
    bool nulls[6] = {false, false, false, false, false, false};
    return pga::pg::composite_datum(fcinfo, values, nulls);
}

// alpaca._key_ring() RETURNS TABLE(key_id bigint, is_primary boolean)
PGA_FUNCTION(pga_key_ring) {
    const pga::KeyRing &ring = pga::ext::keyring();
    ReturnSetInfo *rsinfo = pga::pg::begin_materialized_srf(fcinfo);
    for (std::uint32_t id : ring.ids()) {
        Datum values[2] = {Int64GetDatum((int64)id), BoolGetDatum(id == ring.primary_id())};
        bool nulls[2] = {false, false};
        pga::pg::put_row(rsinfo, values, nulls);
    }
    return (Datum)0;
}

// alpaca_current_user() RETURNS text: NULL when no application user is set.
PGA_FUNCTION(pga_current_user) {
    std::optional<std::string> user = pga::ext::current_app_user();
    if (!user) PG_RETURN_NULL();
    return text_datum(*user);
}

// alpaca._user_setting_name() RETURNS text
PGA_FUNCTION(pga_user_setting_name) {
    return text_datum(pga::ext::user_setting_name());
}

// alpaca_set_user(user_id text) RETURNS void: transaction-scoped (like SET LOCAL), passed as a
// value and never spliced into SQL text, so it cannot inject.
PGA_FUNCTION(pga_set_user) {
    if (PG_ARGISNULL(0))
        throw pga::Error(pga::ErrorCode::InvalidParameter, "application user id must not be null");
    std::string user(text_view(PG_GETARG_DATUM(0)));
    if (user.empty() || user.size() > 256)
        throw pga::Error(pga::ErrorCode::InvalidParameter,
                         "application user id must be 1 to 256 bytes long");
    for (unsigned char ch : user)
        if (ch < 0x20 || ch == 0x7f)
            throw pga::Error(pga::ErrorCode::InvalidParameter,
                             "application user id must not contain control characters");
    const char *name = pga::ext::user_setting_name();
    pga::pg::call([&] {
        (void)set_config_option(name, user.c_str(), PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
                                true, 0, false);
    });
    PG_RETURN_VOID();
}

// alpaca._fernet_decrypt(token text, fernet_key text, what text) RETURNS text
// Verifies and decrypts a Fernet token of the earlier Python system. Token age is ignored:
// stored tokens are old by nature. Every failure is 22023 naming `what`, never the token.
PGA_FUNCTION(pga_fernet_decrypt) {
    std::string what(text_view(PG_GETARG_DATUM(2)));
    pga::SecureBytes plain;
    try {
        pga::FernetKey key = pga::FernetKey::parse(text_view(PG_GETARG_DATUM(1)));
        plain = pga::fernet_decrypt(key, text_view(PG_GETARG_DATUM(0)), std::nullopt, 0);
    } catch (const pga::Error &e) {
        throw pga::Error(pga::ErrorCode::InvalidParameter,
                         pga::escape_for_error(what) + ": " + e.what(),
                         "Check that the Fernet key is the one the earlier system used.");
    }
    return text_datum(pga::as_view(plain));
}
