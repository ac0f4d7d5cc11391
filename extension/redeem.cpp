// alpaca_redeem_ticket(ticket text, purpose text): the only way a plaintext key leaves the
// vault. SECURITY DEFINER; EXECUTE is granted to alpaca_sidecar alone. The checks (MAC, expiry,
// single use, purpose, owner, active) and the audit row are made by alpaca._redeem_prepare
// under row-level security as the ticket's user; this function then decrypts the two
// envelopes, hands the row to the executor and wipes its own copies.
#include <string>

#include "common/envelope.hpp"
#include "extension/pg_guard.hpp"
#include "extension/pg_values.hpp"
#include "extension/vault_state.hpp"

extern "C" {
#include "executor/spi.h"
}

namespace {

struct Envelopes {
    pga::Uuid credential_id{};
    std::string environment, api_key, secret_key;
};

std::string spi_text(int col) {
    char *v = pga::pg::call(
        [&] { return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col); });
    return v ? std::string(v) : std::string();
}

Envelopes fetch_envelopes(Datum ticket, Datum purpose) {
    Envelopes out;
    pga::pg::call([&] {
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "pg_alpaca: SPI_connect failed");
    });
    Datum args[2] = {ticket, purpose};
    int rc = pga::pg::call([&] {
        // Planned once per backend (the plan cache re-plans it if the function is replaced).
        static SPIPlanPtr plan = nullptr;
        if (plan == nullptr) {
            Oid types[2] = {TEXTOID, TEXTOID};
            SPIPlanPtr p = SPI_prepare(
                "SELECT credential_id, environment, api_key::text, secret_key::text "
                "FROM alpaca._redeem_prepare($1, $2)",
                2, types);
            if (p == nullptr || SPI_keepplan(p) != 0)
                elog(ERROR, "pg_alpaca: could not prepare the redeem query");
            plan = p;
        }
        return SPI_execute_plan(plan, args, nullptr, false, 2);
    });
    if (rc != SPI_OK_SELECT || SPI_processed != 1) {
        pga::pg::call([&] { SPI_finish(); });
        throw pga::pg::PgError(ERRCODE_INSUFFICIENT_PRIVILEGE, "ticket refused");
    }
    bool isnull = false;
    Datum cred = pga::pg::call(
        [&] { return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull); });
    out.credential_id = pga::pg::uuid_value(cred);
    out.environment = spi_text(2);
    out.api_key = spi_text(3);
    out.secret_key = spi_text(4);
    pga::pg::call([&] { SPI_finish(); });
    return out;
}

Datum wiped_later_text(std::string_view s, std::vector<text *> &owned) {
    text *t = pga::pg::call([&] { return cstring_to_text_with_len(s.data(), (int)s.size()); });
    owned.push_back(t);
    return PointerGetDatum(t);
}

}  // namespace

PGA_FUNCTION(pga_redeem_ticket) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
        throw pga::Error(pga::ErrorCode::InvalidParameter, "ticket and purpose must not be null");
    const pga::KeyRing &ring = pga::ext::keyring();
    Envelopes env = fetch_envelopes(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1));
    pga::SecureBytes api = pga::open_secret(ring, env.api_key, env.credential_id, "api_key");
    pga::SecureBytes secret =
        pga::open_secret(ring, env.secret_key, env.credential_id, "secret_key");

    ReturnSetInfo *rsinfo = pga::pg::begin_materialized_srf(fcinfo);
    std::vector<text *> owned;
    Datum values[4] = {pga::pg::uuid_datum(env.credential_id), pga::pg::text_datum(env.environment),
                       wiped_later_text(pga::as_view(api), owned),
                       wiped_later_text(pga::as_view(secret), owned)};
    bool nulls[4] = {false, false, false, false};
    pga::pg::put_row(rsinfo, values, nulls);
    for (text *t : owned) pga::secure_wipe(VARDATA(t), VARSIZE(t) - VARHDRSZ);
    return (Datum)0;
}
