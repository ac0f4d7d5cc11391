// Tickets: alpaca._issue_ticket, alpaca._mint_ticket and alpaca._verify_ticket, the SQL face of
// common/ticket.hpp. A ticket is an HMAC (under a key derived from the ring's primary key) over
// credential id, application user, purpose, expiry, a nonce and the caller's database role (its
// session user, for the call's audit row that the sidecar writes afterwards);
// alpaca.redeem_ticket trades one for keys.
// EXECUTE is revoked from PUBLIC; the SQL script's SECURITY DEFINER functions call these.
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include "common/secure_memory.hpp"
#include "common/ticket.hpp"
#include "extension/kept_plan.hpp"
#include "extension/tickets.hpp"
#include "extension/vault_state.hpp"

#include "extension/pg_values.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/errcodes.h"
#include "utils/timestamp.h"
}

using pga::pg::text_datum;
using pga::pg::text_view;

namespace {

using pga::pg::PgError;

// The credential look-up of every ticket issued, prepared once per backend (kept across
// transactions). Schema-qualified, its operator OPERATOR(pg_catalog.=) and its parameter typed
// by OID: re-analysed under another search_path it finds the same objects.
constexpr const char *kIsActiveQuery =
    "SELECT c.is_active FROM alpaca.credentials c WHERE c.id OPERATOR(pg_catalog.=) $1";
SPIPlanPtr g_is_active_plan = nullptr;

enum class CredentialState { Missing, Inactive, Active };

// The credential as the application user sees it (RLS): missing (or another user's),
// deactivated, or active. cred null: missing, as `WHERE c.id = NULL` finds nothing.
CredentialState credential_state(const pga::Uuid *cred) {
    if (cred == nullptr) return CredentialState::Missing;
    pga::pg::call([] {
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "pg_alpaca: SPI_connect failed");
    });
    Oid types[1] = {UUIDOID};
    SPIPlanPtr plan = pga::ext::kept_plan(&g_is_active_plan, kIsActiveQuery, 1, types);
    pg_uuid_t id;
    std::memcpy(id.data, cred->data(), sizeof id.data);
    Datum args[1] = {UUIDPGetDatum(&id)};
    // Not read_only: a fresh snapshot, as the VOLATILE plpgsql function had.
    const bool found = pga::pg::call([&] {
        const int rc = SPI_execute_plan(plan, args, nullptr, false, 1);
        if (rc != SPI_OK_SELECT)
            elog(ERROR, "pg_alpaca: credential look-up failed: %s", SPI_result_code_string(rc));
        return SPI_processed > 0;
    });
    bool active = true;  // plpgsql's IF NOT active let a NULL through (the column is NOT NULL)
    if (found) {
        bool isnull = false;
        const Datum d = pga::pg::call([&] {
            return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        });
        if (!isnull) active = DatumGetBool(d);
    }
    pga::pg::call([] { SPI_finish(); });
    if (!found) return CredentialState::Missing;
    return active ? CredentialState::Active : CredentialState::Inactive;
}

// The credential in messages: its canonical text, or "<NULL>" as plpgsql's RAISE printed it.
std::string cred_text(const pga::Uuid *cred) {
    return cred ? pga::format_uuid(*cred) : std::string("<NULL>");
}

// The application user set for this transaction; 42501 without one.
std::string required_app_user() {
    std::optional<std::string> user = pga::ext::current_app_user();
    if (!user)
        throw PgError(ERRCODE_INSUFFICIENT_PRIVILEGE,
                      "no application user is set for this transaction", "",
                      "Call alpaca_set_user(user_id) inside the same transaction first.");
    return std::move(*user);
}

// issue_ticket for user: the credential under RLS, then the ticket.
pga::SecureBytes ticket_for(std::string user, const pga::Uuid *cred, const char *purpose,
                            std::int64_t expires_at_ms) {
    switch (credential_state(cred)) {
        case CredentialState::Missing:
            throw PgError(ERRCODE_INSUFFICIENT_PRIVILEGE,
                          "credential " + cred_text(cred) +
                              " does not exist or does not belong to the current user");
        case CredentialState::Inactive:
            throw PgError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                          "credential " + cred_text(cred) + " is deactivated", "",
                          "Reactivate it with alpaca_update_credential(id, is_active => true).");
        case CredentialState::Active:
            break;
    }
    pga::TicketClaims claims;
    claims.credential_id = *cred;
    claims.app_user = std::move(user);
    claims.purpose = purpose;
    claims.expires_at_ms = expires_at_ms;
    std::string minted = pga::ext::mint_session_ticket(std::move(claims));
    pga::SecureBytes ticket = pga::secure_copy(minted);
    pga::secure_wipe(minted.data(), minted.size());
    return ticket;
}

}  // namespace

namespace pga::ext {

pga::SecureBytes issue_ticket(const pga::Uuid *cred, const char *purpose,
                              std::int64_t expires_at_ms) {
    return ticket_for(required_app_user(), cred, purpose, expires_at_ms);
}

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

// alpaca._issue_ticket(cred uuid, purpose text, ttl interval) RETURNS text, SECURITY DEFINER as
// alpaca_owner (the credential read under its FORCEd policy): the checks in the order the
// plpgsql function had them (user, purpose, ttl, credential), then the ticket. Writes nothing.
PGA_FUNCTION(pga_issue_ticket) {
    pga::Uuid storage;
    const pga::Uuid *cred = pga::pg::uuid_arg_or_null(fcinfo, 0, storage);
    std::string user = required_app_user();
    const std::string purpose = PG_ARGISNULL(1) ? "" : std::string(text_view(PG_GETARG_DATUM(1)));
    if (purpose != "validate" && purpose != "account" && purpose != "positions" &&
        purpose != "orders" && purpose != "clock" && purpose != "trade")
        throw PgError(ERRCODE_INVALID_PARAMETER_VALUE, "unknown ticket purpose", "",
                      "Use validate, account, positions, orders, clock or trade.");
    // Compared as interval's own ordering does (interval_cmp), the expiry as
    // `clock_timestamp() + ttl` computes it.
    Interval *ttl = PG_ARGISNULL(2) ? nullptr : PG_GETARG_INTERVAL_P(2);
    Interval zero{}, five_minutes{};
    five_minutes.time = 5 * USECS_PER_MINUTE;
    auto cmp = [&](Interval *a, Interval *b) {
        return pga::pg::call([&] {
            return DatumGetInt32(
                DirectFunctionCall2(interval_cmp, PointerGetDatum(a), PointerGetDatum(b)));
        });
    };
    if (ttl == nullptr || cmp(ttl, &zero) <= 0 || cmp(ttl, &five_minutes) > 0)
        throw PgError(ERRCODE_INVALID_PARAMETER_VALUE,
                      "ticket ttl must be more than 0 and at most 5 minutes");
    const TimestampTz expires = pga::pg::call([&] {
        return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
                                                       TimestampTzGetDatum(GetCurrentTimestamp()),
                                                       PointerGetDatum(ttl)));
    });
    pga::SecureBytes ticket = ticket_for(std::move(user), cred, purpose.c_str(),
                                         pga::pg::timestamptz_to_unix_ms(expires));
    return text_datum(pga::as_view(ticket));
}

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
