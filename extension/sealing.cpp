// Sealing: the SQL face of common/envelope.hpp. alpaca._seal encrypts one credential column,
// alpaca._reseal_credential re-encrypts both columns of a row under the primary key (rotation),
// alpaca._fingerprints gives the duplicate-detection fingerprints of a key id under every key,
// and alpaca._key_ring lists the ring the envelopes are sealed under. The SQL script wraps them
// in SECURITY DEFINER functions that enforce ownership; EXECUTE on these is revoked from PUBLIC.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/envelope.hpp"
#include "extension/vault_state.hpp"

#include "extension/pg_values.hpp"

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
