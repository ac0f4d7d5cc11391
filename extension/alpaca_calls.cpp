// The calls to Alpaca, each one C function: alpaca_account, alpaca_positions, alpaca_orders
// and alpaca_validate_credential. Each does in one frame what alpaca._call (plpgsql) did
// through alpaca._issue_ticket and alpaca._alpaca_get: a ticket for the application user's
// credential (extension/tickets.hpp: the user, the credential's is_active under row-level
// security, so a credential of another user is not found), the exchange with alpaca-sidecar,
// and the answer parsed straight into the function's result (no second tuplestore, no plpgsql,
// no SET clause to save and restore). The errors, SQLSTATEs and hints are those of the plpgsql
// functions they replace.
//
// The functions are SECURITY DEFINER (owned by alpaca_owner, as before: the credential is read
// with alpaca_owner's rights, under its FORCEd policy) without a SET search_path clause: no
// name here resolves through the caller's search_path. The one SQL statement names its table
// with its schema, its operator as OPERATOR(pg_catalog.=) and its parameter's type by OID, so
// when the plan cache re-analyses the kept statement under another search_path (it does when
// the path changes) it finds the same objects; the policies are stored expressions (OIDs); the
// result row type is the function's declared one. (The statement is in extension/tickets.cpp.)
//
// Nothing is written in the caller's transaction (a ticket costs nothing until the sidecar
// redeems it, and the redeem's decrypt row is the record), so calls work in READ ONLY
// transactions and on hot standbys.
#include "common/encoding.hpp"
#include "common/secure_memory.hpp"
#include "common/ticket.hpp"
#include "common/wire.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "extension/alpaca_rows.hpp"
#include "extension/sidecar_call.hpp"
#include "extension/sidecar_sqlstate.hpp"
#include "extension/tickets.hpp"

#include "extension/pg_values.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/errcodes.h"
}

namespace {

using pga::pg::PgError;

// How long a call's ticket is good for (alpaca._call's interval '30 seconds').
constexpr std::int64_t kTicketTtlMs = 30 * 1000;

// One call: ticket, request, answer. True with the 2xx body as text (database encoding);
// false when accept_unauthorized and Alpaca refused the keys (401, 403); an error otherwise.
bool call_alpaca(const pga::Uuid *cred, const char *op,
                 std::vector<std::pair<std::string, std::string>> query, bool accept_unauthorized,
                 Datum &body) {
    pga::SidecarRequest req;
    req.operation = op;
    req.ticket = pga::ext::issue_ticket(cred, op, pga::pg::now_unix_ms() + kTicketTtlMs);
    req.query = std::move(query);
    req.request_id = pga::ext::random_request_id();
    pga::SidecarResponse resp;
    if (pga::ext::exchange_for_body(req, body, resp)) return true;
    if (accept_unauthorized && pga::ext::keys_refused(resp)) return false;
    pga::ext::throw_for_response(resp, pga::format_uuid(*cred));
}

// A call whose answer becomes rows (rsinfo: begin_rows' result for kind).
Datum fetch_rows(FunctionCallInfo fcinfo, ReturnSetInfo *rsinfo, pga::ext::RowKind kind,
                 const char *op, std::vector<std::pair<std::string, std::string>> query = {}) {
    pga::Uuid storage;
    const pga::Uuid *cred = pga::pg::uuid_arg_or_null(fcinfo, 0, storage);
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
    const pga::Uuid *cred = pga::pg::uuid_arg_or_null(fcinfo, 0, storage);
    Datum body = 0;
    PG_RETURN_BOOL(call_alpaca(cred, "validate", {}, true, body));
}
