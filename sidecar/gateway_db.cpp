#include "sidecar/gateway_db.hpp"

#include "sidecar/pg_result.hpp"

#include <cstring>

namespace pga::sidecar::gateway {
namespace {

struct Statement {
    const char *name;
    const char *sql;
    int nparams;
};

constexpr Statement kRedeem = {
    "pga_gw_redeem",
    "CALL alpaca.redeem_session($1, $2, $3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)", 3};
constexpr Statement kCheck = {"pga_gw_check",
                              "SELECT s.session_id, s.credential_id, s.scope, s.environment "
                              "FROM alpaca._gateway_session($1) s",
                              1};
constexpr Statement kStatus = {"pga_gw_status", "SELECT alpaca._gateway_status($1, $2)", 2};
constexpr Statement kUsed = {
    "pga_gw_used",
    "SELECT alpaca._gateway_used($1::pg_catalog.uuid[], $2::pg_catalog.timestamptz[])", 2};
constexpr Statement kRefused = {"pga_gw_refused", "SELECT alpaca._gateway_refused($1, $2, $3)", 3};

// Runs a statement prepared on first use on this connection (a pooled connection may come
// from the ticket path, which prepares only its own).
PgResult exec(PGconn *conn, const Statement &st, const char *const *params) {
    PgResult res(PQexecPrepared(conn, st.name, st.nparams, params, nullptr, nullptr, 0));
    const char *state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
    if (state == nullptr || std::strcmp(state, "26000") != 0) return res;
    PgResult prep(PQprepare(conn, st.name, st.sql, st.nparams, nullptr));
    if (!prep || PQresultStatus(prep.get()) != PGRES_COMMAND_OK) return prep;
    return PgResult(PQexecPrepared(conn, st.name, st.nparams, params, nullptr, nullptr, 0));
}

// Runs st and classifies its end; on success calls take(result). Returns the status and
// sets message.
template <typename Take>
DbStatus run_once(Redeemer &db, const Statement &st, const char *const *params, int want_fields,
                  Redeemer::Clock::time_point deadline, std::string &message, bool &lost,
                  Take take) {
    DbStatus status = DbStatus::Failed;
    std::string error;
    const bool got = db.with_connection(
        deadline,
        [&](PGconn *conn) {
            PgResult res = exec(conn, st, params);
            if (PQstatus(conn) != CONNECTION_OK) {
                lost = true;
                status = DbStatus::DatabaseError;
                message = "lost the database connection: " + one_line(PQerrorMessage(conn));
                return false;
            }
            if (res && PQresultStatus(res.get()) == PGRES_TUPLES_OK &&
                PQnfields(res.get()) == want_fields && PQntuples(res.get()) == 1) {
                take(res.get());
                status = DbStatus::Ok;
                return true;
            }
            const char *state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
            const char *primary =
                res ? PQresultErrorField(res.get(), PG_DIAG_MESSAGE_PRIMARY) : nullptr;
            const std::string sqlstate = state ? state : "";
            message = one_line(primary ? primary : PQerrorMessage(conn));
            if (sqlstate.rfind("28", 0) == 0)
                status = DbStatus::BadToken;
            else if (sqlstate.rfind("42", 0) == 0)
                status = DbStatus::Forbidden;
            else if (sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("57P", 0) == 0) {
                // The server is ending this session (a restart's "terminating connection",
                // 57P01) while libpq still calls it open: lost all the same, never pooled again,
                // and the statement is tried once more on a fresh connection.
                status = DbStatus::DatabaseError;
                lost = true;
                return false;
            } else
                message = (sqlstate.empty() ? "" : sqlstate + ": ") + message;
            return PQtransactionStatus(conn) == PQTRANS_IDLE;
        },
        error);
    if (!got) {
        message = error;
        return DbStatus::DatabaseError;
    }
    if (lost) db.discard_idle();  // the others died with this one
    return status;
}

// A pooled connection may have died with a PostgreSQL restart: the statement then never ran
// (or, for the redeem, ran and committed a use record and audit row that a second run merely
// repeats; nothing is single-use here), so one more try on a fresh connection is safe.
template <typename Take>
DbStatus run(Redeemer &db, const Statement &st, const char *const *params, int want_fields,
             Redeemer::Clock::time_point deadline, std::string &message, Take take) {
    bool lost = false;
    DbStatus status = run_once(db, st, params, want_fields, deadline, message, lost, take);
    if (status == DbStatus::DatabaseError && lost) {
        lost = false;
        status = run_once(db, st, params, want_fields, deadline, message, lost, take);
    }
    return status;
}

std::string text_at(PGresult *r, int col) {
    return std::string(PQgetvalue(r, 0, col), std::size_t(PQgetlength(r, 0, col)));
}

SecureBytes token_param(const SecureBytes &token) {
    SecureBytes z(token);  // libpq wants a NUL-terminated parameter
    z.push_back(0);
    return z;
}

}  // namespace

SessionKeys redeem_session(Redeemer &db, const SecureBytes &token, const std::string &method,
                           const std::string &path, Redeemer::Clock::time_point deadline) {
    SessionKeys out;
    const SecureBytes tz = token_param(token);
    const char *params[3] = {reinterpret_cast<const char *>(tz.data()), method.c_str(),
                             path.c_str()};
    out.status = run(db, kRedeem, params, 8, deadline, out.message, [&](PGresult *r) {
        out.session.credential_id = text_at(r, 0);
        out.session.environment = text_at(r, 1);
        out.api_key = secure_copy({PQgetvalue(r, 0, 2), std::size_t(PQgetlength(r, 0, 2))});
        out.secret_key = secure_copy({PQgetvalue(r, 0, 3), std::size_t(PQgetlength(r, 0, 3))});
        out.session.id = text_at(r, 4);
        out.session.scope = text_at(r, 5);
        out.route = text_at(r, 6);
        out.audit_id = text_at(r, 7);
    });
    return out;
}

SessionCheck check_session(Redeemer &db, const SecureBytes &token,
                           Redeemer::Clock::time_point deadline) {
    SessionCheck out;
    const SecureBytes tz = token_param(token);
    const char *params[1] = {reinterpret_cast<const char *>(tz.data())};
    out.status = run(db, kCheck, params, 4, deadline, out.message, [&](PGresult *r) {
        out.session.id = text_at(r, 0);
        out.session.credential_id = text_at(r, 1);
        out.session.scope = text_at(r, 2);
        out.session.environment = text_at(r, 3);
    });
    return out;
}

bool record_status(Redeemer &db, const std::string &audit_id, int http_status,
                   Redeemer::Clock::time_point deadline, std::string &error) {
    const std::string status = std::to_string(http_status);
    const char *params[2] = {audit_id.c_str(), status.c_str()};
    const DbStatus st = run(db, kStatus, params, 1, deadline, error, [](PGresult *) {});
    return st == DbStatus::Ok;
}

bool record_used(Redeemer &db, const std::string &session_ids, const std::string &used_at,
                 Redeemer::Clock::time_point deadline, std::string &error) {
    const char *params[2] = {session_ids.c_str(), used_at.c_str()};
    return run(db, kUsed, params, 1, deadline, error, [](PGresult *) {}) == DbStatus::Ok;
}

bool record_refusal(Redeemer &db, const SecureBytes &token, const std::string &method,
                    const std::string &path, Redeemer::Clock::time_point deadline,
                    std::string &error) {
    const SecureBytes tz = token_param(token);
    const char *params[3] = {reinterpret_cast<const char *>(tz.data()), method.c_str(),
                             path.c_str()};
    return run(db, kRefused, params, 1, deadline, error, [](PGresult *) {}) == DbStatus::Ok;
}

}  // namespace pga::sidecar::gateway
