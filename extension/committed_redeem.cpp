#include "common/envelope.hpp"
#include "extension/committed_redeem.hpp"
#include "extension/vault_state.hpp"

#include <memory>

extern "C" {
#include "access/xlog.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
}

namespace pga::ext {
namespace {

// Runs the SPI work as alpaca_owner (who owns and may execute the prepare functions); the
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

bool nonatomic_call(FunctionCallInfo fcinfo) {
    return fcinfo->context != nullptr && IsA(fcinfo->context, CallContext) &&
           !castNode(CallContext, fcinfo->context)->atomic;
}

// Runs prepare as alpaca_owner, inside the open SPI connection, then opens the two envelopes.
CommittedKeys run_prepare(Oid owner, const SealedPrepare &prepare) {
    CommittedKeys out;
    std::string api, secret;
    {
        AsRole as_owner(owner);
        prepare(out, api, secret);
    }
    const pga::KeyRing &ring = keyring();
    out.api_key = pga::open_secret(ring, api, out.credential_id, "api_key");
    out.secret_key = pga::open_secret(ring, secret, out.credential_id, "secret_key");
    return out;
}

// The open nonatomic SPI connection of a redeem: work() runs inside it, then COMMIT and the
// flush of that commit to the WAL.
template <typename Work>
auto committed(Work &&work) {
    pga::pg::call([] {
        if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
            elog(ERROR, "pg_alpaca: SPI_connect failed");
    });
    auto keys = work(pga::pg::call([] { return get_role_oid("alpaca_owner", false); }));
    // Fails with 2D000 inside a subtransaction (a plpgsql block with an exception handler).
    pga::pg::call([] { SPI_commit(); });
    // Durable before the keys leave, whatever synchronous_commit says (any role may turn it off
    // for its session): a crash right after this cannot lose the mark and let it work again.
    pga::pg::call([] { XLogFlush(XactLastCommitEnd); });
    pga::pg::call([] { SPI_finish(); });
    return keys;
}

}  // namespace

void require_nonatomic_call(FunctionCallInfo fcinfo, const char *procedure, const char *marks,
                            const char *call_form) {
    // The marks are written here: a standby cannot (the sidecar beside it redeems on the
    // primary).
    if (RecoveryInProgress())
        throw pga::pg::PgError(
            ERRCODE_READ_ONLY_SQL_TRANSACTION,
            std::string(procedure) + " runs on the primary, not on a hot standby", "",
            "Point the sidecar's conninfo at the primary, or list the nodes "
            "with target_session_attrs=read-write.");
    if (nonatomic_call(fcinfo)) return;
    throw pga::pg::PgError(
        ERRCODE_INVALID_TRANSACTION_TERMINATION,
        std::string(procedure) + " must be called with CALL outside a transaction block",
        std::string("The ") + marks +
            " are committed before the keys are returned, so a redeem cannot be part of a "
            "larger transaction.",
        std::string("Run ") + call_form + " on its own, in autocommit mode.");
}

CommittedKeys redeem_and_commit(SPIPlanPtr *plan, const char *query, int nargs, Oid *types,
                                Datum *args, int extra_cols, const char *refusal) {
    return redeem_and_commit([&](CommittedKeys &out, std::string &api, std::string &secret) {
        // Planned once per backend (the plan cache re-plans it if the function is replaced).
        SPIPlanPtr p = kept_plan(plan, query, nargs, types);
        int rc = pga::pg::call([&] { return SPI_execute_plan(p, args, nullptr, false, 2); });
        if (rc != SPI_OK_SELECT || SPI_processed != 1)
            throw pga::pg::PgError(ERRCODE_INSUFFICIENT_PRIVILEGE, refusal);
        bool isnull = false;
        Datum cred = pga::pg::call([&] {
            return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        });
        out.credential_id = pga::pg::uuid_value(cred);
        out.environment = spi_text(2);
        api = spi_text(3);
        secret = spi_text(4);
        for (int i = 0; i < extra_cols; ++i) out.extra.push_back(spi_text(5 + i));
    });
}

CommittedKeys redeem_and_commit(const SealedPrepare &prepare) {
    return committed([&](Oid owner) { return run_prepare(owner, prepare); });
}

std::vector<CommittedKeys> redeem_each_and_commit(std::size_t count,
                                                  const SealedPrepareEach &prepare) {
    return committed([&](Oid owner) {
        std::vector<CommittedKeys> all;
        all.reserve(count);
        for (std::size_t i = 0; i < count; ++i) {
            // A failure names its ticket in DETAIL ("ticket 3 of 7"): the sidecar answers that
            // one with it and redeems the others again without it.
            const std::string which =
                "ticket " + std::to_string(i + 1) + " of " + std::to_string(count);
            try {
                all.push_back(
                    run_prepare(owner, [&](CommittedKeys &out, std::string &api,
                                           std::string &secret) { prepare(i, out, api, secret); }));
            } catch (const pga::pg::PgError &e) {
                throw pga::pg::PgError(e.sqlstate(), e.what(), which, e.hint());
            } catch (const pga::Error &e) {
                throw pga::pg::PgError(pga::pg::sqlstate_for(e.code()), e.what(), which, e.hint());
            }
        }
        return all;
    });
}

SecretTexts::~SecretTexts() {
    for (text *t : owned_) pga::secure_wipe(VARDATA(t), VARSIZE(t) - VARHDRSZ);
}

Datum SecretTexts::add(const pga::SecureBytes &key) {
    std::string_view s = pga::as_view(key);
    text *t = pga::pg::call([&] { return cstring_to_text_with_len(s.data(), (int)s.size()); });
    owned_.push_back(t);
    return PointerGetDatum(t);
}

Datum keys_row(FunctionCallInfo fcinfo, const CommittedKeys &keys,
               const std::vector<Datum> &extra) {
    SecretTexts texts;
    std::vector<Datum> values = {pga::pg::uuid_datum(keys.credential_id),
                                 pga::pg::text_datum(keys.environment), texts.add(keys.api_key),
                                 texts.add(keys.secret_key)};
    values.insert(values.end(), extra.begin(), extra.end());
    std::unique_ptr<bool[]> nulls = std::make_unique<bool[]>(values.size());  // all false
    return pga::pg::composite_datum(fcinfo, values.data(), nulls.get(), int(values.size()));
}

}  // namespace pga::ext
