// CALL alpaca.redeem_ticket(ticket, purpose, NULL, NULL, NULL, NULL): the only way a plaintext
// key leaves the vault for a ticket. A C procedure (not SECURITY DEFINER, no SET clause,
// EXECUTE granted to alpaca_sidecar alone), because only a procedure called outside a
// transaction block can commit, and the promise is: plaintext never leaves PostgreSQL before
// the single-use mark and the `decrypt` audit row of this redeem are committed, whatever the
// caller does with its transaction afterwards. So, in this order (extension/committed_redeem):
//   1. refuse an atomic context (inside BEGIN, a function, a DO block with an exception
//      handler, a multi-statement implicit transaction, PREPARE TRANSACTION's block), and a
//      hot standby (25006: the sidecar must redeem on the primary);
//   2. as alpaca_owner, here in C: verify the ticket (format, key, MAC, expiry) and its
//      purpose, make its user the application user, mark its nonce (single use), read the
//      credential under RLS as that user (owned, active, the live two-key rule for 'trade'),
//      write the audit row, now and then purge old nonces, end the user. Each statement is
//      prepared once per backend (kept plans) and resolves nothing through search_path (the
//      procedure has none pinned, and a kept plan is re-parsed under the caller's). A refusal
//      raises before the commit, so the transaction rolls back and nothing of it stays;
//   3. decrypt the two envelopes (a failure here rolls everything back: nothing left);
//   4. COMMIT (SPI_commit) and flush that commit to the WAL: the nonce row and the audit row are
//      durable even with synchronous_commit off;
//   5. only then return the keys as the OUT parameters, and wipe our copies.
#include <cstring>
#include <string>
#include <string_view>

#include "extension/tickets.hpp"
#include "extension/sidecar_transport.hpp"
#include "extension/vault_state.hpp"

#include "extension/committed_redeem.hpp"

#include <vector>

extern "C" {
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "utils/array.h"
}

namespace {

// Statement texts: every name schema-qualified, every operator OPERATOR(pg_catalog.…), every
// parameter typed by OID. Measured with callgrind (bench/README.md): these three simple
// statements (four when purging) cost about a third less per redeem than plpgsql's
// alpaca._redeem_prepare with its one statement of data-modifying CTEs did.
constexpr const char *kMarkNonce =
    "INSERT INTO alpaca.redeemed_tickets (nonce, expires_at) VALUES ($1, $2) "
    "ON CONFLICT DO NOTHING";
constexpr const char *kReadCredential =
    "SELECT c.environment, c.api_key, c.secret_key, c.is_active, c.live_trading "
    "FROM alpaca.credentials c WHERE c.id OPERATOR(pg_catalog.=) $1";
constexpr const char *kAudit =
    "INSERT INTO alpaca.audit_log (app_user, credential_id, action, purpose, outcome) "
    "VALUES ($1, $2, 'decrypt', $3, 'ok')";
// At most 1 000 of the oldest expired nonces, found through redeemed_tickets_expires_idx
// (ORDER BY its column with a LIMIT) and deleted by row id. A plain `expires_at < $1` was
// planned as a sequential scan of the whole table whenever the estimate of expired rows was
// high (a generic plan's one-third guess, or dead rows not yet vacuumed): under load that read
// every nonce of the last 90 s on one redeem in a hundred (bench/README.md, "Fifth pass"). One
// purge in a hundred redeems removing up to 1 000 rows clears ten nonces a redeem.
constexpr const char *kPurge =
    "DELETE FROM alpaca.redeemed_tickets r WHERE r.ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
    "SELECT x.ctid FROM alpaca.redeemed_tickets x WHERE x.expires_at OPERATOR(pg_catalog.<) $1 "
    "ORDER BY x.expires_at LIMIT 1000))";

SPIPlanPtr g_mark = nullptr, g_read = nullptr, g_audit = nullptr, g_purge = nullptr;

// A refusal of the redeem (42501): the application user is ended first, and the raise rolls
// back the nonce row with everything else.
[[noreturn]] void refuse(const char *message) {
    pga::ext::end_user();
    throw pga::pg::PgError(ERRCODE_INSUFFICIENT_PRIVILEGE, message);
}

int execute(SPIPlanPtr plan, Datum *args, long limit) {
    return pga::pg::call([&] { return SPI_execute_plan(plan, args, nullptr, false, limit); });
}

Datum column(int col, bool *isnull) {
    return pga::pg::call(
        [&] { return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull); });
}

// The redeem's checks and writes, as alpaca_owner inside the open SPI connection. The order of
// the checks (and so which message a ticket failing several gets) is the one of 0.2.0's
// alpaca._redeem_prepare: ticket valid, purpose, user, already redeemed, credential found
// under RLS, active, live two-key rule.
void prepare_ticket(Datum ticket_arg, Datum purpose_arg, pga::ext::CommittedKeys &out,
                    std::string &api, std::string &secret) {
    const pga::TicketClaims claims =
        pga::ext::verified_ticket(pga::pg::text_view(ticket_arg), false);
    const std::string_view purpose = pga::pg::text_view(purpose_arg);
    if (claims.purpose != purpose)
        throw pga::pg::PgError(ERRCODE_INSUFFICIENT_PRIVILEGE,
                               "ticket was issued for another purpose");
    pga::ext::set_app_user(claims.app_user);

    // Single use: the nonce row (a concurrent redeem of the same ticket waits for this one's
    // commit or rollback, then finds the row or inserts it).
    bytea *nonce = pga::pg::call([&] { return (bytea *)palloc(VARHDRSZ + claims.nonce.size()); });
    SET_VARSIZE(nonce, VARHDRSZ + claims.nonce.size());
    std::memcpy(VARDATA(nonce), claims.nonce.data(), claims.nonce.size());
    Oid mark_types[2] = {BYTEAOID, TIMESTAMPTZOID};
    Datum mark_args[2] = {
        PointerGetDatum(nonce),
        TimestampTzGetDatum(pga::pg::unix_ms_to_timestamptz(claims.expires_at_ms))};
    if (execute(pga::ext::kept_plan(&g_mark, kMarkNonce, 2, mark_types), mark_args, 0) !=
            SPI_OK_INSERT ||
        SPI_processed != 1)
        refuse("ticket was already redeemed");

    // The credential under RLS as the ticket's user: one it does not own is not found.
    Oid read_types[1] = {UUIDOID};
    Datum cred = pga::pg::uuid_datum(claims.credential_id);
    if (execute(pga::ext::kept_plan(&g_read, kReadCredential, 1, read_types), &cred, 2) !=
            SPI_OK_SELECT ||
        SPI_processed != 1)
        refuse(
            "ticket names a credential that does not exist, is not committed yet, or is not "
            "owned by its user");
    bool isnull = false;
    out.credential_id = claims.credential_id;
    out.environment = std::string(pga::pg::text_view(column(1, &isnull)));
    api = std::string(pga::pg::text_view(column(2, &isnull)));
    secret = std::string(pga::pg::text_view(column(3, &isnull)));
    const bool active = DatumGetBool(column(4, &isnull));
    const bool live_trading = DatumGetBool(column(5, &isnull));
    if (!active) refuse("ticket names a deactivated credential");
    // The two keys of live trading, checked again where the keys leave (README, "Trading").
    if (purpose == "trade" && out.environment == "live" &&
        !(pga::ext::live_trading_allowed() && live_trading))
        refuse("live trading is not enabled for the credential of this ticket");

    Oid audit_types[3] = {TEXTOID, UUIDOID, TEXTOID};
    Datum audit_args[3] = {pga::pg::text_datum(claims.app_user), cred,
                           pga::pg::text_datum(purpose)};
    if (execute(pga::ext::kept_plan(&g_audit, kAudit, 3, audit_types), audit_args, 0) !=
        SPI_OK_INSERT)
        throw pga::pg::PgError(ERRCODE_INTERNAL_ERROR, "pg_alpaca: the decrypt audit row failed");

    // Old nonces go now and then (a ticket past its expiry is refused before its nonce counts).
    if (pg_prng_double(&pg_global_prng_state) < 0.01) {
        Oid purge_types[1] = {TIMESTAMPTZOID};
        Datum cutoff = TimestampTzGetDatum(GetCurrentTimestamp() - 60 * USECS_PER_SEC);
        (void)execute(pga::ext::kept_plan(&g_purge, kPurge, 1, purge_types), &cutoff, 0);
    }
    pga::ext::end_user();
}

}  // namespace

PGA_FUNCTION(pga_redeem_ticket) {
    pga::ext::require_nonatomic_call(
        fcinfo, "alpaca.redeem_ticket", "single-use mark and the decrypt audit row",
        "CALL alpaca.redeem_ticket(ticket, purpose, NULL, NULL, NULL, NULL)");
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
        throw pga::Error(pga::ErrorCode::InvalidParameter, "ticket and purpose must not be null");
    const Datum ticket = PG_GETARG_DATUM(0), purpose = PG_GETARG_DATUM(1);
    pga::ext::CommittedKeys keys = pga::ext::redeem_and_commit(
        [&](pga::ext::CommittedKeys &out, std::string &api, std::string &secret) {
            prepare_ticket(ticket, purpose, out, api, secret);
        });
    return pga::ext::keys_row(fcinfo, keys);
}

namespace {

// How many tickets one CALL alpaca.redeem_tickets may redeem (the sidecar sends at most 32).
constexpr int kMaxBatch = 64;

// The elements of a one-dimensional text[] argument without NULLs.
std::vector<Datum> text_elements(Datum array, const char *name) {
    ArrayType *a = pga::pg::call([&] { return DatumGetArrayTypeP(array); });
    if (ARR_NDIM(a) > 1)
        throw pga::Error(pga::ErrorCode::InvalidParameter,
                         std::string(name) + " must be a one-dimensional array");
    Datum *elems = nullptr;
    bool *nulls = nullptr;
    int n = 0;
    pga::pg::call(
        [&] { deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n); });
    for (int i = 0; i < n; ++i)
        if (nulls[i])
            throw pga::Error(pga::ErrorCode::InvalidParameter,
                             std::string(name) + " must not contain NULL");
    return std::vector<Datum>(elems, elems + n);
}

}  // namespace

// CALL alpaca.redeem_tickets(tickets, purposes, NULL, NULL, NULL, NULL): the sidecar's redeem of
// several tickets waiting at once, in one transaction with one commit and one WAL flush. Each
// ticket is checked, marked and audited exactly as alpaca.redeem_ticket does it, in array order;
// a refusal of any ticket (or any error) rolls back every mark and audit row of the call and
// names the ticket in DETAIL (redeem_each_and_commit), so the sidecar answers that one and
// redeems the others again. The four OUT arrays are in the order of `tickets`.
PGA_FUNCTION(pga_redeem_tickets) {
    pga::ext::require_nonatomic_call(
        fcinfo, "alpaca.redeem_tickets", "single-use marks and the decrypt audit rows",
        "CALL alpaca.redeem_tickets(tickets, purposes, NULL, NULL, NULL, NULL)");
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
        throw pga::Error(pga::ErrorCode::InvalidParameter, "tickets and purposes must not be null");
    const std::vector<Datum> tickets = text_elements(PG_GETARG_DATUM(0), "tickets");
    const std::vector<Datum> purposes = text_elements(PG_GETARG_DATUM(1), "purposes");
    if (tickets.size() != purposes.size())
        throw pga::Error(pga::ErrorCode::InvalidParameter,
                         "tickets and purposes must have as many elements");
    if (tickets.empty() || tickets.size() > std::size_t(kMaxBatch))
        throw pga::Error(
            pga::ErrorCode::InvalidParameter,
            "alpaca.redeem_tickets takes 1 to " + std::to_string(kMaxBatch) + " tickets");
    const std::vector<pga::ext::CommittedKeys> keys = pga::ext::redeem_each_and_commit(
        tickets.size(),
        [&](std::size_t i, pga::ext::CommittedKeys &out, std::string &api, std::string &secret) {
            prepare_ticket(tickets[i], purposes[i], out, api, secret);
        });

    std::vector<Datum> ids, environments, apis, secrets;
    pga::ext::SecretTexts texts;  // wiped on the way out
    for (const pga::ext::CommittedKeys &k : keys) {
        ids.push_back(pga::pg::uuid_datum(k.credential_id));
        environments.push_back(pga::pg::text_datum(k.environment));
        apis.push_back(texts.add(k.api_key));
        secrets.push_back(texts.add(k.secret_key));
    }
    auto array = [](std::vector<Datum> &items, Oid type, int len, bool byval, char align) {
        return pga::pg::call([&] {
            return construct_array(items.data(), (int)items.size(), type, len, byval, align);
        });
    };
    ArrayType *api_array = array(apis, TEXTOID, -1, false, TYPALIGN_INT);
    ArrayType *secret_array = array(secrets, TEXTOID, -1, false, TYPALIGN_INT);
    Datum values[4] = {PointerGetDatum(array(ids, UUIDOID, 16, false, TYPALIGN_CHAR)),
                       PointerGetDatum(array(environments, TEXTOID, -1, false, TYPALIGN_INT)),
                       PointerGetDatum(api_array), PointerGetDatum(secret_array)};
    bool nulls[4] = {false, false, false, false};
    Datum row = pga::pg::composite_datum(fcinfo, values, nulls);
    // Our copies go (the texts with `texts`); the row's copy is PostgreSQL's to send.
    for (ArrayType *a : {api_array, secret_array})
        pga::secure_wipe(ARR_DATA_PTR(a), VARSIZE(a) - ARR_DATA_OFFSET(a));
    return row;
}
