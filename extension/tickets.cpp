// Tickets: alpaca._mint_ticket and alpaca._verify_ticket, the SQL face of common/ticket.hpp.
// A ticket is an HMAC (under a key derived from the ring's primary key) over credential id,
// application user, purpose, expiry, a nonce and the caller's database role (its session
// user, for the call's audit row that the sidecar writes afterwards); alpaca.redeem_ticket
// trades one for keys.
// EXECUTE is revoked from PUBLIC; the SQL script's SECURITY DEFINER functions call these.
#include <cstring>
#include <string>
#include <utility>

#include "common/ticket.hpp"
#include "extension/tickets.hpp"
#include "extension/vault_state.hpp"

#include "extension/pg_values.hpp"

extern "C" {
#include "miscadmin.h"
}

using pga::pg::text_datum;
using pga::pg::text_view;

namespace pga::ext {

std::string mint_session_ticket(pga::TicketClaims claims) {
    claims.db_role = pga::pg::call([] { return GetUserNameFromId(GetSessionUserId(), false); });
    return pga::mint_ticket(keyring(), claims);
}

pga::TicketClaims verified_ticket(std::string_view ticket, bool any_time) {
    try {
        return pga::verify_ticket(keyring(), ticket,
                                  any_time ? pga::kAnyTime : pga::pg::now_unix_ms());
    } catch (const pga::Error &e) {
        if (e.code() != pga::ErrorCode::KeyMissing) throw;
        throw pga::Error(pga::ErrorCode::TicketInvalid, std::string("ticket refused: ") + e.what());
    }
}

}  // namespace pga::ext

// alpaca._mint_ticket(cred uuid, app_user text, purpose text, expires_at timestamptz) RETURNS text
PGA_FUNCTION(pga_mint_ticket) {
    pga::TicketClaims claims;
    claims.credential_id = pga::pg::uuid_value(PG_GETARG_DATUM(0));
    claims.app_user = std::string(text_view(PG_GETARG_DATUM(1)));
    claims.purpose = std::string(text_view(PG_GETARG_DATUM(2)));
    claims.expires_at_ms = pga::pg::timestamptz_to_unix_ms(PG_GETARG_TIMESTAMPTZ(3));
    pga::SecureBytes ticket = pga::secure_copy(pga::ext::mint_session_ticket(std::move(claims)));
    return text_datum(pga::as_view(ticket));
}

// alpaca._verify_ticket(ticket text, any_time boolean DEFAULT false, OUT credential_id uuid,
//   OUT app_user text, OUT purpose text, OUT expires_at timestamptz, OUT nonce bytea,
//   OUT key_id bigint, OUT db_role text): any_time skips the expiry check (the outcome of a
//   call recorded after its ticket expired; the nonce row proves the redeem); db_role is NULL
//   for a ticket that carries none.
PGA_FUNCTION(pga_verify_ticket) {
    const bool any_time = PG_NARGS() > 1 && PG_GETARG_BOOL(1);
    const pga::TicketClaims c = pga::ext::verified_ticket(text_view(PG_GETARG_DATUM(0)), any_time);
    bytea *nonce = pga::pg::call([&] { return (bytea *)palloc(VARHDRSZ + c.nonce.size()); });
    SET_VARSIZE(nonce, VARHDRSZ + c.nonce.size());
    std::memcpy(VARDATA(nonce), c.nonce.data(), c.nonce.size());
    Datum values[7] = {pga::pg::uuid_datum(c.credential_id),
                       text_datum(c.app_user),
                       text_datum(c.purpose),
                       TimestampTzGetDatum(pga::pg::unix_ms_to_timestamptz(c.expires_at_ms)),
                       PointerGetDatum(nonce),
                       Int64GetDatum((int64)c.key_id),
                       c.db_role.empty() ? (Datum)0 : text_datum(c.db_role)};
    bool nulls[7] = {false, false, false, false, false, false, c.db_role.empty()};
    return pga::pg::composite_datum(fcinfo, values, nulls);
}
