// The calls to Alpaca, each one C function: alpaca_account, alpaca_positions, alpaca_orders
// and alpaca_validate_credential. Each does in one frame what alpaca._call (plpgsql) did
// through alpaca._issue_ticket and alpaca._alpaca_get: checks the application user, reads the
// credential's is_active under row-level security (so a credential of another user is not
// found), mints a ticket, asks alpaca-sidecar, and parses the answer straight into the
// function's result (no second tuplestore, no plpgsql, no SET clause to save and restore).
// The errors, SQLSTATEs and hints are those of the plpgsql functions they replace.
//
// The functions are SECURITY DEFINER (owned by alpaca_owner, as before: the credential is read
// with alpaca_owner's rights, under its FORCEd policy) without a SET search_path clause: no
// name here resolves through the caller's search_path. The one SQL statement names its table
// with its schema, its operator as OPERATOR(pg_catalog.=) and its parameter's type by OID, so
// when the plan cache re-analyses the kept statement under another search_path (it does when
// the path changes) it finds the same objects; the policies are stored expressions (OIDs); the
// result row type is the function's declared one.
//
// Nothing is written in the caller's transaction (a ticket costs nothing until the sidecar
// redeems it, and the redeem's decrypt row is the record), so calls work in READ ONLY
// transactions and on hot standbys.
#include "common/encoding.hpp"
#include "common/secure_memory.hpp"
#include "common/ticket.hpp"
#include "common/wire.hpp"

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "extension/alpaca_rows.hpp"
#include "extension/kept_plan.hpp"
#include "extension/sidecar_call.hpp"
#include "extension/sidecar_sqlstate.hpp"
#include "extension/tickets.hpp"
#include "extension/vault_state.hpp"

#include "extension/pg_values.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/errcodes.h"
}

namespace {

using pga::pg::PgError;

// How long a call's ticket is good for (alpaca._call's interval '30 seconds').
constexpr std::int64_t kTicketTtlMs = 30 * 1000;

// alpaca._issue_ticket's look-up, prepared once per backend (kept across transactions).
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

// alpaca._issue_ticket(cred, purpose, interval '30 seconds'), in C: the application user, the
// credential under RLS, then a ticket with the claims alpaca._mint_ticket gives it.
pga::SecureBytes issue_ticket(const pga::Uuid *cred, const char *purpose) {
    std::optional<std::string> user = pga::ext::current_app_user();
    if (!user)
        throw PgError(ERRCODE_INSUFFICIENT_PRIVILEGE,
                      "no application user is set for this transaction", "",
                      "Call alpaca_set_user(user_id) inside the same transaction first.");
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
    claims.app_user = std::move(*user);
    claims.purpose = purpose;
    claims.expires_at_ms = pga::pg::now_unix_ms() + kTicketTtlMs;
    std::string minted = pga::ext::mint_session_ticket(std::move(claims));
    pga::SecureBytes ticket = pga::secure_copy(minted);
    pga::secure_wipe(minted.data(), minted.size());
    return ticket;
}

// One call: ticket, request, answer. True with the 2xx body as text (database encoding);
// false when accept_unauthorized and Alpaca refused the keys (401, 403); an error otherwise.
bool call_alpaca(const pga::Uuid *cred, const char *op,
                 std::vector<std::pair<std::string, std::string>> query, bool accept_unauthorized,
                 Datum &body) {
    pga::SidecarRequest req;
    req.operation = op;
    req.ticket = issue_ticket(cred, op);
    req.query = std::move(query);
    req.request_id = pga::ext::random_request_id();
    pga::SidecarResponse resp;
    if (pga::ext::exchange_for_body(req, body, resp)) return true;
    if (accept_unauthorized && pga::ext::keys_refused(resp)) return false;
    pga::ext::throw_for_response(resp, pga::format_uuid(*cred));
}

// The uuid argument, or null.
const pga::Uuid *cred_arg(FunctionCallInfo fcinfo, int n, pga::Uuid &storage) {
    if (PG_ARGISNULL(n)) return nullptr;
    storage = pga::pg::uuid_value(PG_GETARG_DATUM(n));
    return &storage;
}

// A call whose answer becomes rows (rsinfo: begin_rows' result for kind).
Datum fetch_rows(FunctionCallInfo fcinfo, ReturnSetInfo *rsinfo, pga::ext::RowKind kind,
                 const char *op, std::vector<std::pair<std::string, std::string>> query = {}) {
    pga::Uuid storage;
    const pga::Uuid *cred = cred_arg(fcinfo, 0, storage);
    Datum body = 0;
    call_alpaca(cred, op, std::move(query), false, body);
    pga::ext::put_rows(rsinfo, kind, pga::pg::text_view(body));
    return (Datum)0;
}

}  // namespace

// alpaca_account(cred uuid) RETURNS SETOF alpaca.account_row
PGA_FUNCTION(pga_call_account) {
    ReturnSetInfo *rsinfo = pga::ext::begin_rows(fcinfo, pga::ext::RowKind::Account);
    return fetch_rows(fcinfo, rsinfo, pga::ext::RowKind::Account, "account");
}

// alpaca_positions(cred uuid) RETURNS SETOF alpaca.position_row
PGA_FUNCTION(pga_call_positions) {
    ReturnSetInfo *rsinfo = pga::ext::begin_rows(fcinfo, pga::ext::RowKind::Positions);
    return fetch_rows(fcinfo, rsinfo, pga::ext::RowKind::Positions, "positions");
}

// alpaca_orders(cred uuid, status text DEFAULT 'open', max_rows int DEFAULT 50)
// RETURNS SETOF alpaca.order_row. The arguments are checked before anything else (as
// alpaca._orders_query did, an argument of the call).
PGA_FUNCTION(pga_call_orders) {
    ReturnSetInfo *rsinfo = pga::ext::begin_rows(fcinfo, pga::ext::RowKind::Orders);
    std::string status;
    if (!PG_ARGISNULL(1)) status = std::string(pga::pg::text_view(PG_GETARG_DATUM(1)));
    if (PG_ARGISNULL(1) || (status != "open" && status != "closed" && status != "all"))
        throw PgError(ERRCODE_INVALID_PARAMETER_VALUE, "status must be open, closed or all");
    if (PG_ARGISNULL(2) || PG_GETARG_INT32(2) < 1 || PG_GETARG_INT32(2) > 500)
        throw PgError(ERRCODE_INVALID_PARAMETER_VALUE, "max_rows must be between 1 and 500");
    return fetch_rows(
        fcinfo, rsinfo, pga::ext::RowKind::Orders, "orders",
        {{"status", status}, {"limit", std::to_string(PG_GETARG_INT32(2))}, {"nested", "true"}});
}

// alpaca_validate_credential(id uuid) RETURNS boolean: false when Alpaca refused the keys
// (401, 403); Alpaca or the sidecar unreachable is an error, not false.
PGA_FUNCTION(pga_call_validate) {
    pga::Uuid storage;
    const pga::Uuid *cred = cred_arg(fcinfo, 0, storage);
    Datum body = 0;
    PG_RETURN_BOOL(call_alpaca(cred, "validate", {}, true, body));
}
