#include "sidecar/redeemer.hpp"

#include "sidecar/log.hpp"
#include "sidecar/pg_result.hpp"
#include "sidecar/pg_session.hpp"

#include <cstring>

namespace pga::sidecar {
namespace {

constexpr const char *kStatement = "pga_redeem";
constexpr const char *kAuditStatement = "pga_audit_trade";
constexpr const char *kAuditCall = "SELECT alpaca._audit_trade($1, $2, $3, $4)";
// A procedure that commits the single-use mark and the audit row before it returns the keys.
constexpr const char *kRedeemCall = "CALL alpaca.redeem_ticket($1, $2, NULL, NULL, NULL, NULL)";

using Result = PgResult;

}  // namespace

Redeemer::Redeemer(std::string conninfo, int pool_size)
    : conninfo_(std::move(conninfo)), pool_size_(pool_size) {}

int Redeemer::open_connections() {
    std::lock_guard<std::mutex> lock(mu_);
    return open_;
}

Redeemer::Conn Redeemer::connect(std::string &error) {
    Conn conn = open_session(conninfo_, error);
    if (!conn) return nullptr;
    const Oid types[2] = {25, 25};  // text, text
    Result prep(PQprepare(conn.get(), kStatement, kRedeemCall, 2, types));
    if (!prep || PQresultStatus(prep.get()) != PGRES_COMMAND_OK) {
        error = "cannot prepare the redeem statement: " + one_line(PQerrorMessage(conn.get()));
        return nullptr;
    }
    const Oid audit_types[4] = {25, 25, 25, 25};
    Result prep_audit(PQprepare(conn.get(), kAuditStatement, kAuditCall, 4, audit_types));
    if (!prep_audit || PQresultStatus(prep_audit.get()) != PGRES_COMMAND_OK) {
        error = "cannot prepare the trade audit statement: " + one_line(PQerrorMessage(conn.get()));
        return nullptr;
    }
    return conn;
}

Redeemer::Conn Redeemer::acquire(Clock::time_point deadline, std::string &error) {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
        if (!idle_.empty()) {
            Conn c = std::move(idle_.back());
            idle_.pop_back();
            return c;
        }
        if (open_ < pool_size_) {
            ++open_;
            lock.unlock();
            Conn c = connect(error);
            if (!c) {
                lock.lock();
                --open_;
                cv_.notify_one();
            }
            return c;
        }
        if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
            error = "all " + std::to_string(pool_size_) + " database connections stayed busy";
            return nullptr;
        }
    }
}

void Redeemer::release(Conn conn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (conn && PQstatus(conn.get()) == CONNECTION_OK &&
        PQtransactionStatus(conn.get()) == PQTRANS_IDLE) {
        idle_.push_back(std::move(conn));
    } else {
        --open_;
    }
    cv_.notify_one();
}

void Redeemer::discard_idle() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ -= int(idle_.size());
    idle_.clear();
    cv_.notify_all();
}

RedeemResult Redeemer::redeem(const SecureBytes &ticket, const std::string &purpose,
                              Clock::time_point deadline) {
    RedeemResult out;
    SecureBytes ticket_z(ticket);  // libpq wants a NUL-terminated parameter
    ticket_z.push_back(0);
    const char *params[2] = {reinterpret_cast<const char *>(ticket_z.data()), purpose.c_str()};

    // A pooled connection may have died with a PostgreSQL restart; the statement never reached
    // the server then, so one more try on a fresh connection is safe (a ticket that *was*
    // consumed would be refused as a replay, never used twice).
    for (int attempt = 0; attempt < 2; ++attempt) {
        std::string error;
        Conn conn = acquire(deadline, error);
        if (!conn) {
            out.status = RedeemStatus::DatabaseError;
            out.message = error;
            return out;
        }
        Result res(PQexecPrepared(conn.get(), kStatement, 2, params, nullptr, nullptr, 0));
        const bool lost = PQstatus(conn.get()) != CONNECTION_OK;
        if (res && PQresultStatus(res.get()) == PGRES_TUPLES_OK && PQntuples(res.get()) == 1 &&
            PQnfields(res.get()) == 4) {
            RedeemedCredential &c = out.credential;
            c.credential_id = PQgetvalue(res.get(), 0, 0);
            c.environment = PQgetvalue(res.get(), 0, 1);
            c.api_key = secure_copy(
                {PQgetvalue(res.get(), 0, 2), std::size_t(PQgetlength(res.get(), 0, 2))});
            c.secret_key = secure_copy(
                {PQgetvalue(res.get(), 0, 3), std::size_t(PQgetlength(res.get(), 0, 3))});
            out.status = RedeemStatus::Ok;
            release(std::move(conn));
            return out;
        }
        if (lost) {
            out.status = RedeemStatus::DatabaseError;
            out.message = "lost the database connection: " + one_line(PQerrorMessage(conn.get()));
            release(std::move(conn));
            // A restart kills every pooled connection at once: retry on a fresh one.
            discard_idle();
            continue;
        }
        const char *state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
        const char *primary =
            res ? PQresultErrorField(res.get(), PG_DIAG_MESSAGE_PRIMARY) : nullptr;
        const std::string sqlstate = state ? state : "";
        out.message = (sqlstate.empty() ? std::string() : sqlstate + ": ") +
                      one_line(primary ? primary
                                       : (res && PQresultStatus(res.get()) == PGRES_TUPLES_OK
                                              ? "alpaca.redeem_ticket returned no row"
                                              : PQerrorMessage(conn.get())));
        if (sqlstate.rfind("42", 0) == 0 || sqlstate.rfind("22", 0) == 0) {
            out.status = RedeemStatus::Rejected;
        } else if (sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("57P", 0) == 0 ||
                   sqlstate == "25006") {
            // Shutting down, admin restart; or a standby (conninfo does not reach the primary,
            // or this node was demoted): nothing was written, a fresh connection may do better.
            out.status = RedeemStatus::DatabaseError;
        } else {
            out.status = RedeemStatus::Failed;
        }
        if (out.status == RedeemStatus::DatabaseError) {
            // A server ending its sessions (57P01 after a restart, while libpq may still call
            // them open), or pooled connections to a standby (25006): none is kept, so the
            // retry connects afresh (and a host list with target_session_attrs=read-write
            // finds the primary).
            conn.reset();
            discard_idle();
        }
        release(std::move(conn));
        if (out.status != RedeemStatus::DatabaseError) return out;
    }
    return out;
}

bool Redeemer::with_connection(Clock::time_point deadline, const std::function<bool(PGconn *)> &fn,
                               std::string &error) {
    Conn conn = acquire(deadline, error);
    if (!conn) return false;
    if (!fn(conn.get())) {
        // Broken or in an unknown state: never pooled again. A lost connection usually means
        // a PostgreSQL restart, which killed every pooled connection at once.
        const bool lost = PQstatus(conn.get()) != CONNECTION_OK;
        conn.reset();
        release(std::move(conn));
        if (lost) discard_idle();
        return true;
    }
    release(std::move(conn));
    return true;
}

void Redeemer::audit_trade(const SecureBytes &ticket, const std::string &operation,
                           const std::string &client_order_id, const std::string &outcome,
                           Clock::time_point deadline) {
    SecureBytes ticket_z(ticket);
    ticket_z.push_back(0);
    const char *params[4] = {reinterpret_cast<const char *>(ticket_z.data()), operation.c_str(),
                             client_order_id.empty() ? nullptr : client_order_id.c_str(),
                             outcome.c_str()};
    std::string error;
    Conn conn = acquire(deadline, error);
    if (!conn) {
        const std::string msg = "trade audit not written: " + error;
        log_event(LogLevel::Warn, "audit", {{"operation", operation}, {"message", msg}});
        return;
    }
    Result res(PQexecPrepared(conn.get(), kAuditStatement, 4, params, nullptr, nullptr, 0));
    if (!res || PQresultStatus(res.get()) != PGRES_TUPLES_OK) {
        const char *state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
        const char *primary =
            res ? PQresultErrorField(res.get(), PG_DIAG_MESSAGE_PRIMARY) : nullptr;
        const std::string msg = std::string("trade audit not written: ") + (state ? state : "") +
                                " " + one_line(primary ? primary : PQerrorMessage(conn.get()));
        log_event(LogLevel::Warn, "audit", {{"operation", operation}, {"message", msg}});
    }
    release(std::move(conn));
}

}  // namespace pga::sidecar
