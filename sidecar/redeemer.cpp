#include "sidecar/redeemer.hpp"

#include "common/encoding.hpp"
#include "sidecar/log.hpp"
#include "sidecar/metrics.hpp"
#include "sidecar/pg_result.hpp"
#include "sidecar/pg_session.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace pga::sidecar {
namespace {

constexpr const char *kStatement = "pga_redeem";
constexpr const char *kAuditStatement = "pga_audit_trade";
constexpr const char *kAuditCall = "SELECT alpaca._audit_trade($1, $2, $3, $4)";
// A procedure that commits the single-use mark and the audit row before it returns the keys.
constexpr const char *kRedeemCall = "CALL alpaca.redeem_ticket($1, $2, NULL, NULL, NULL, NULL)";
// The same for several tickets in one transaction (sidecar/redeemer.hpp).
constexpr const char *kBatchStatement = "pga_redeem_batch";
constexpr const char *kBatchCall = "CALL alpaca.redeem_tickets($1, $2, NULL, NULL, NULL, NULL)";
constexpr Oid kTextArrayOid = 1009;

std::uint32_t be32(const char *p) {
    const auto *u = reinterpret_cast<const unsigned char *>(p);
    return std::uint32_t(u[0]) << 24 | std::uint32_t(u[1]) << 16 | std::uint32_t(u[2]) << 8 |
           std::uint32_t(u[3]);
}

// The elements of a one-dimensional array in PostgreSQL's binary form, each a view into the
// result; false when it is not that array of exactly `count` elements without NULLs.
bool binary_array(const char *p, std::size_t len, std::size_t count,
                  std::vector<std::string_view> &out) {
    if (len < 20 || be32(p) != 1 || be32(p + 4) != 0 || be32(p + 12) != count) return false;
    std::size_t at = 20;
    out.clear();
    for (std::size_t i = 0; i < count; ++i) {
        if (len - at < 4) return false;
        const std::uint32_t n = be32(p + at);
        at += 4;
        if (n == 0xffffffffu || n > len - at) return false;
        out.emplace_back(p + at, n);
        at += n;
    }
    return at == len;
}

// A redeem's SQLSTATE that refuses the ticket (Rejected), not the database's trouble.
bool refuses_ticket(const std::string &sqlstate) {
    return sqlstate.rfind("42", 0) == 0 || sqlstate.rfind("22", 0) == 0;
}

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
    const Oid batch_types[2] = {kTextArrayOid, kTextArrayOid};
    Result prep_batch(PQprepare(conn.get(), kBatchStatement, kBatchCall, 2, batch_types));
    if (!prep_batch || PQresultStatus(prep_batch.get()) != PGRES_COMMAND_OK) {
        // An extension without alpaca.redeem_tickets: redeem one by one (the pool still works).
        if (batches_.exchange(false))
            log_event(
                LogLevel::Warn, "redeem",
                {{"message", "redeems are not batched: cannot prepare alpaca.redeem_tickets: " +
                                 one_line(PQerrorMessage(conn.get()))}});
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
                slot_freed();
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
    slot_freed();
}

void Redeemer::slot_freed() {
    cv_.notify_one();
    if (!queue_.empty()) queue_.front()->cv.notify_one();
}

void Redeemer::discard_idle() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ -= int(idle_.size());
    idle_.clear();
    cv_.notify_all();
    slot_freed();
}

RedeemResult Redeemer::redeem(const SecureBytes &ticket, const std::string &purpose,
                              Clock::time_point deadline) {
    Waiter me;
    me.ticket = &ticket;
    me.purpose = &purpose;
    std::unique_lock<std::mutex> lock(mu_);
    queue_.push_back(&me);
    for (;;) {
        if (me.done) {
            if (me.alone) {
                // The batch failed as a whole, nothing of it was committed: this ticket alone.
                lock.unlock();
                return redeem_alone(ticket, purpose, deadline, nullptr);
            }
            return std::move(me.result);
        }
        if (!me.taken && (!idle_.empty() || open_ < pool_size_)) {
            // Lead: this redeem, then every other queued one (at most kMaxBatch in all).
            queue_.erase(std::find(queue_.begin(), queue_.end(), &me));
            std::vector<Waiter *> batch{&me};
            while (!queue_.empty() && batch.size() < kMaxBatch) {
                batch.push_back(queue_.front());
                queue_.pop_front();
            }
            for (Waiter *w : batch) w->taken = true;
            Conn conn;
            std::string error;
            if (!idle_.empty()) {
                conn = std::move(idle_.back());
                idle_.pop_back();
            } else {
                ++open_;
                lock.unlock();
                conn = connect(error);
                lock.lock();
                if (!conn) {
                    --open_;
                    slot_freed();
                }
            }
            // More waited than one batch takes, and another connection is free: its turn.
            if (!queue_.empty() && (!idle_.empty() || open_ < pool_size_)) slot_freed();
            lock.unlock();
            if (!conn) {
                for (Waiter *w : batch) {
                    w->result.status = RedeemStatus::DatabaseError;
                    w->result.message = error;
                }
            } else {
                try {
                    serve(batch, std::move(conn), deadline);
                } catch (const std::exception &e) {
                    // Out of memory, most likely. Every waiter of the batch must still end.
                    for (Waiter *w : batch) {
                        w->alone = false;
                        w->result = RedeemResult{};
                        w->result.message = std::string("the redeem failed: ") + e.what();
                    }
                }
            }
            lock.lock();
            for (Waiter *w : batch) {
                w->done = true;
                if (w != &me) w->cv.notify_one();
            }
            continue;
        }
        if (me.taken) {
            me.cv.wait(lock);  // a leader is redeeming it: it ends, one way or another
        } else if (me.cv.wait_until(lock, deadline) == std::cv_status::timeout && !me.taken &&
                   !me.done) {
            queue_.erase(std::find(queue_.begin(), queue_.end(), &me));
            slot_freed();  // a connection freed as this one gave up is the next one's
            RedeemResult out;
            out.status = RedeemStatus::DatabaseError;
            out.message = "all " + std::to_string(pool_size_) + " database connections stayed busy";
            return out;
        }
    }
}

void Redeemer::serve(std::vector<Waiter *> batch, Conn conn, Clock::time_point deadline) {
    // Each round: one CALL alpaca.redeem_tickets; a ticket it refuses gets that refusal as its
    // answer and the others go again without it (nothing of a refused call was committed).
    while (batch.size() > 1 && batches_.load()) {
        bool lost = false;
        std::size_t refused = 0;
        std::string message;
        BatchEnd end = BatchEnd::Failed;
        try {
            end = redeem_batch(conn.get(), batch, lost, refused, message);
        } catch (...) {
            conn.reset();  // in a state nobody knows: closed, and its slot counted back
            release(nullptr);
            throw;
        }
        metrics::count_redeem_batch(batch.size(), end != BatchEnd::Redeemed);
        if (end == BatchEnd::Redeemed) {
            release(std::move(conn));
            return;
        }
        if (end == BatchEnd::Refused) {
            batch[refused]->result.status = RedeemStatus::Rejected;
            batch[refused]->result.message = message;
            batch.erase(batch.begin() + std::ptrdiff_t(refused));
            continue;
        }
        if (end == BatchEnd::Unreadable) {
            // Committed (so spent and audited), but the keys cannot be read: no retry, which
            // would only be refused as a replay.
            for (Waiter *w : batch) {
                w->result = RedeemResult{};
                w->result.message = message;
            }
            release(std::move(conn));
            return;
        }
        // Failed for another reason, or the connection was lost (then it may have committed:
        // each ticket is refused as a replay, never used twice). Each waiter alone.
        if (lost) {
            conn.reset();
            release(nullptr);
            discard_idle();
        } else {
            release(std::move(conn));
        }
        for (Waiter *w : batch) w->alone = true;
        return;
    }
    if (batch.size() == 1) {
        batch[0]->result =
            redeem_alone(*batch[0]->ticket, *batch[0]->purpose, deadline, std::move(conn));
        return;
    }
    release(std::move(conn));  // no batches with this database: each alone
    for (Waiter *w : batch) w->alone = true;
}

Redeemer::BatchEnd Redeemer::redeem_batch(PGconn *conn, const std::vector<Waiter *> &batch,
                                          bool &lost, std::size_t &refused, std::string &message) {
    SecureBytes tickets{'{'};
    std::string purposes = "{";
    for (const Waiter *w : batch) {
        append_array_element(tickets, as_view(*w->ticket));
        append_array_element(purposes, *w->purpose);
    }
    tickets.push_back('}');
    tickets.push_back(0);
    purposes.push_back('}');
    const char *params[2] = {reinterpret_cast<const char *>(tickets.data()), purposes.c_str()};
    Result res(PQexecPrepared(conn, kBatchStatement, 2, params, nullptr, nullptr, 1));
    lost = PQstatus(conn) != CONNECTION_OK;
    if (!res || PQresultStatus(res.get()) != PGRES_TUPLES_OK) {
        // A refusal names its ticket in DETAIL: "ticket <n> of <count>" (extension/redeem.cpp).
        const char *state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
        const char *primary =
            res ? PQresultErrorField(res.get(), PG_DIAG_MESSAGE_PRIMARY) : nullptr;
        const char *detail = res ? PQresultErrorField(res.get(), PG_DIAG_MESSAGE_DETAIL) : nullptr;
        const std::string sqlstate = state ? state : "";
        unsigned n = 0, count = 0;
        char tail = 0;
        if (!lost && primary && detail && refuses_ticket(sqlstate) &&
            std::sscanf(detail, "ticket %u of %u%c", &n, &count, &tail) == 2 && n >= 1 &&
            count == batch.size() && n <= count) {
            refused = n - 1;
            message = sqlstate + ": " + one_line(primary);
            return BatchEnd::Refused;
        }
        return BatchEnd::Failed;
    }
    std::vector<std::string_view> cols[4];
    bool readable = PQntuples(res.get()) == 1 && PQnfields(res.get()) == 4;
    for (int c = 0; readable && c < 4; ++c)
        readable = binary_array(PQgetvalue(res.get(), 0, c),
                                std::size_t(PQgetlength(res.get(), 0, c)), batch.size(), cols[c]);
    for (std::size_t i = 0; readable && i < batch.size(); ++i) readable = cols[0][i].size() == 16;
    if (!readable) {
        message = "alpaca.redeem_tickets returned a result of the wrong form";
        log_event(LogLevel::Error, "redeem", {{"message", message}});
        return BatchEnd::Unreadable;
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
        RedeemResult &r = batch[i]->result;
        r.status = RedeemStatus::Ok;
        Uuid id{};
        std::memcpy(id.data(), cols[0][i].data(), id.size());
        r.credential.credential_id = format_uuid(id);
        r.credential.environment = std::string(cols[1][i]);
        r.credential.api_key = secure_copy(cols[2][i]);
        r.credential.secret_key = secure_copy(cols[3][i]);
    }
    return BatchEnd::Redeemed;
}

RedeemResult Redeemer::redeem_alone(const SecureBytes &ticket, const std::string &purpose,
                                    Clock::time_point deadline, Conn first) {
    RedeemResult out;
    SecureBytes ticket_z(ticket);  // libpq wants a NUL-terminated parameter
    ticket_z.push_back(0);
    const char *params[2] = {reinterpret_cast<const char *>(ticket_z.data()), purpose.c_str()};

    // A pooled connection may have died with a PostgreSQL restart; the statement never reached
    // the server then, so one more try on a fresh connection is safe (a ticket that *was*
    // consumed would be refused as a replay, never used twice).
    for (int attempt = 0; attempt < 2; ++attempt) {
        std::string error;
        Conn conn = first ? std::move(first) : acquire(deadline, error);
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
        if (refuses_ticket(sqlstate)) {
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
