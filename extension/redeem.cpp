// CALL alpaca.redeem_ticket(ticket, purpose, NULL, NULL, NULL, NULL): the only way a plaintext
// key leaves the vault. A C procedure (not SECURITY DEFINER, no SET clause, EXECUTE granted to
// alpaca_sidecar alone), because only a procedure called outside a transaction block can
// commit, and the promise is: plaintext never leaves PostgreSQL before the single-use mark and
// the `decrypt` audit row of this redeem are committed, whatever the caller does with its
// transaction afterwards. So, in this order:
//   1. refuse an atomic context (inside BEGIN, a function, a DO block with an exception
//      handler, a multi-statement implicit transaction, PREPARE TRANSACTION's block), and a
//      hot standby (25006: the sidecar must redeem on the primary);
//   2. run alpaca._redeem_prepare(ticket, purpose) as alpaca_owner: it verifies MAC, expiry,
//      purpose, single use (nonce row), owner and active flag under RLS as the ticket's user,
//      and writes the audit row;
//   3. decrypt the two envelopes (a failure here rolls everything back: nothing left);
//   4. COMMIT (SPI_commit) and flush that commit to the WAL: the nonce row and the audit row are
//      durable even with synchronous_commit off;
//   5. only then return the keys as the OUT parameters, and wipe our copies.
#include <string>
#include <vector>

#include "common/envelope.hpp"
#include "extension/pg_guard.hpp"
#include "extension/pg_values.hpp"
#include "extension/vault_state.hpp"

extern "C" {
#include "access/xlog.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
}

namespace {

struct Envelopes {
    pga::Uuid credential_id{};
    std::string environment, api_key, secret_key;
};

// Runs the SPI work as alpaca_owner (who owns and may execute alpaca._redeem_prepare); the
// previous user and security context come back when this object goes, on every path.
// (On an error PostgreSQL's transaction abort restores them too.)
class AsRole {
  public:
    explicit AsRole(Oid role) {
        GetUserIdAndSecContext(&saved_user_, &saved_context_);
        SetUserIdAndSecContext(role, saved_context_ | SECURITY_LOCAL_USERID_CHANGE);
    }
    ~AsRole() { SetUserIdAndSecContext(saved_user_, saved_context_); }
    AsRole(const AsRole &) = delete;
    AsRole &operator=(const AsRole &) = delete;

  private:
    Oid saved_user_ = InvalidOid;
    int saved_context_ = 0;
};

std::string spi_text(int col) {
    char *v = pga::pg::call(
        [&] { return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col); });
    return v ? std::string(v) : std::string();
}

// Step 2, inside an open SPI connection. The statement is fully schema-qualified (the
// procedure has no pinned search_path: a SET clause would make it atomic).
Envelopes prepare_redeem(Datum ticket, Datum purpose) {
    Oid owner = pga::pg::call([] { return get_role_oid("alpaca_owner", false); });
    Envelopes out;
    AsRole as_owner(owner);
    Datum args[2] = {ticket, purpose};
    int rc = pga::pg::call([&] {
        // Planned once per backend (the plan cache re-plans it if the function is replaced).
        static SPIPlanPtr plan = nullptr;
        if (plan == nullptr) {
            Oid types[2] = {TEXTOID, TEXTOID};
            SPIPlanPtr p = SPI_prepare(
                "SELECT r.credential_id, r.environment, r.api_key::pg_catalog.text, "
                "r.secret_key::pg_catalog.text FROM alpaca._redeem_prepare($1, $2) r",
                2, types);
            if (p == nullptr || SPI_keepplan(p) != 0)
                elog(ERROR, "pg_alpaca: could not prepare the redeem query");
            plan = p;
        }
        return SPI_execute_plan(plan, args, nullptr, false, 2);
    });
    if (rc != SPI_OK_SELECT || SPI_processed != 1)
        throw pga::pg::PgError(ERRCODE_INSUFFICIENT_PRIVILEGE, "ticket refused");
    bool isnull = false;
    Datum cred = pga::pg::call(
        [&] { return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull); });
    out.credential_id = pga::pg::uuid_value(cred);
    out.environment = spi_text(2);
    out.api_key = spi_text(3);
    out.secret_key = spi_text(4);
    return out;
}

bool nonatomic_call(FunctionCallInfo fcinfo) {
    return fcinfo->context != nullptr && IsA(fcinfo->context, CallContext) &&
           !castNode(CallContext, fcinfo->context)->atomic;
}

}  // namespace

PGA_FUNCTION(pga_redeem_ticket) {
    if (!nonatomic_call(fcinfo))
        throw pga::pg::PgError(
            ERRCODE_INVALID_TRANSACTION_TERMINATION,
            "alpaca.redeem_ticket must be called with CALL outside a transaction block",
            "The single-use mark and the decrypt audit row are committed before the keys are "
            "returned, so a redeem cannot be part of a larger transaction.",
            "Run CALL alpaca.redeem_ticket(ticket, purpose, NULL, NULL, NULL, NULL) on its own, "
            "in autocommit mode.");
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
        throw pga::Error(pga::ErrorCode::InvalidParameter, "ticket and purpose must not be null");
    // The nonce row and the decrypt row are written here: a standby cannot (its sidecar redeems
    // on the primary).
    if (RecoveryInProgress())
        throw pga::pg::PgError(
            ERRCODE_READ_ONLY_SQL_TRANSACTION,
            "tickets are redeemed on the primary, not on a hot standby", "",
            "Point the sidecar's conninfo at the primary, or list the nodes with "
            "target_session_attrs=read-write.");
    const pga::KeyRing &ring = pga::ext::keyring();

    pga::pg::call([] {
        if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
            elog(ERROR, "pg_alpaca: SPI_connect failed");
    });
    Envelopes env = prepare_redeem(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1));
    pga::SecureBytes api = pga::open_secret(ring, env.api_key, env.credential_id, "api_key");
    pga::SecureBytes secret =
        pga::open_secret(ring, env.secret_key, env.credential_id, "secret_key");
    // Fails with 2D000 inside a subtransaction (a plpgsql block with an exception handler).
    pga::pg::call([] { SPI_commit(); });
    // Durable before the keys leave, whatever synchronous_commit says (any role may turn it off
    // for its session): a crash right after this cannot lose the mark and let the ticket work
    // again.
    pga::pg::call([] { XLogFlush(XactLastCommitEnd); });
    pga::pg::call([] { SPI_finish(); });

    std::vector<text *> owned;
    auto secret_text = [&](const pga::SecureBytes &b) {
        std::string_view s = pga::as_view(b);
        text *t = pga::pg::call([&] { return cstring_to_text_with_len(s.data(), (int)s.size()); });
        owned.push_back(t);
        return PointerGetDatum(t);
    };
    Datum values[4] = {pga::pg::uuid_datum(env.credential_id), pga::pg::text_datum(env.environment),
                       secret_text(api), secret_text(secret)};
    bool nulls[4] = {false, false, false, false};
    Datum row = pga::pg::composite_datum(fcinfo, values, nulls);
    for (text *t : owned) pga::secure_wipe(VARDATA(t), VARSIZE(t) - VARHDRSZ);
    return row;
}
