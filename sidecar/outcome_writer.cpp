#include "sidecar/outcome_writer.hpp"

#include "sidecar/log.hpp"

#include <cstdio>
#include <ctime>
#include <utility>

namespace pga::sidecar {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char *kStatement = "pga_record_outcomes";
constexpr const char *kRecordCall =
    "SELECT alpaca._record_outcomes($1::pg_catalog.text[], $2::pg_catalog.text[], "
    "$3::pg_catalog.text[], $4::pg_catalog.int4[], $5::pg_catalog.timestamptz[])";
// Outcomes are not worth a WAL flush each: a crash of PostgreSQL may lose the last moments'
// batches (README, "The audit trail"). The decrypt row was flushed before the keys left.
constexpr const char *kAsyncCommit =
    "SELECT pg_catalog.set_config('synchronous_commit', 'off', false)";
// How long the destructor keeps trying to write what is queued.
constexpr auto kStopGrace = std::chrono::seconds(5);
constexpr auto kRetryPause = std::chrono::milliseconds(500);
// How long the writer waits after the first queued outcome for more to join its batch. A
// transaction costs the database about as much as 10 outcomes in it, so one per call would
// make a quiet sidecar's outcomes cost more CPU than its calls (and compete with them for the
// cores); 20 ms makes a batch of every call in that window and delays no caller.
constexpr auto kLinger = std::chrono::milliseconds(20);

struct ResultDeleter {
    void operator()(PGresult *r) const noexcept { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

enum class Write { Done, ConnectionLost, Refused };

}  // namespace

std::string utc_text(std::chrono::system_clock::time_point t) {
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(us / 1000000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[48];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(us % 1000000));
    return buf;
}

OutcomeBatchParams batch_params(const std::vector<CallOutcome> &batch) {
    OutcomeBatchParams p;
    p.tickets.push_back('{');
    p.operations = p.outcomes = p.http_statuses = p.finished_at = "{";
    for (const CallOutcome &o : batch) {
        append_array_element(p.tickets, as_view(o.ticket));
        append_array_element(p.operations, o.operation);
        append_array_element(p.outcomes, o.outcome);
        if (p.http_statuses.size() > 1) p.http_statuses.push_back(',');
        p.http_statuses += o.http_status > 0 ? std::to_string(o.http_status) : "NULL";
        append_array_element(p.finished_at, utc_text(o.finished));
    }
    p.tickets.push_back('}');
    p.tickets.push_back('\0');  // libpq wants a NUL-terminated parameter
    for (std::string *s : {&p.operations, &p.outcomes, &p.http_statuses, &p.finished_at})
        s->push_back('}');
    return p;
}

OutcomeWriter::OutcomeWriter(std::string conninfo, std::size_t max_queue)
    : conninfo_(std::move(conninfo)), max_queue_(max_queue) {
    thread_ = std::thread([this] { run(); });
}

OutcomeWriter::~OutcomeWriter() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void OutcomeWriter::record(CallOutcome o) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (queue_.size() < max_queue_) {
            queue_.push_back(std::move(o));
            // The writer needs waking for the first outcome of a batch (it then lingers) and
            // for a full one; a notify per outcome would be a futex call per call.
            if (queue_.size() == 1 || queue_.size() == kMaxBatch) cv_.notify_one();
            return;
        }
    }
    drop(1, "the outcome queue is full (PostgreSQL unreachable or too slow)");
}

std::size_t OutcomeWriter::queued() {
    std::lock_guard<std::mutex> lock(mu_);
    return queue_.size();
}

std::uint64_t OutcomeWriter::written() {
    std::lock_guard<std::mutex> lock(mu_);
    return written_;
}

std::uint64_t OutcomeWriter::dropped() {
    std::lock_guard<std::mutex> lock(mu_);
    return dropped_;
}

void OutcomeWriter::drop(std::size_t n, const std::string &why) {
    std::uint64_t count = 0;
    {
        std::lock_guard<std::mutex> lock(mu_);
        dropped_ += n;
        unlogged_drops_ += n;
        const auto now = Clock::now();
        if (now - last_drop_log_ < std::chrono::seconds(1)) return;
        last_drop_log_ = now;
        count = unlogged_drops_;
        unlogged_drops_ = 0;
    }
    log_event(LogLevel::Warn, "outcome",
              {{"dropped", std::to_string(count)},
               {"message", "call outcomes not recorded (their decrypt rows remain): " + why}});
}

bool OutcomeWriter::ensure_connection() {
    if (conn_ && PQstatus(conn_.get()) == CONNECTION_OK) return true;
    conn_.reset();
    std::string error;
    PgConn conn = open_session(conninfo_, error);
    if (conn) {
        Result async(PQexec(conn.get(), kAsyncCommit));
        Result prep(PQprepare(conn.get(), kStatement, kRecordCall, 5, nullptr));
        if (!async || PQresultStatus(async.get()) != PGRES_TUPLES_OK || !prep ||
            PQresultStatus(prep.get()) != PGRES_COMMAND_OK) {
            error = "cannot prepare the outcome statement: " + one_line(PQerrorMessage(conn.get()));
            conn.reset();
        }
    }
    if (!conn) {
        // Once per failure streak: the writer retries every kRetryPause.
        if (!connect_failing_)
            log_event(LogLevel::Warn, "outcome",
                      {{"message", "outcome writer: " + error + " (retrying)"}});
        connect_failing_ = true;
        return false;
    }
    if (connect_failing_)
        log_event(LogLevel::Info, "outcome", {{"message", "outcome writer: reconnected"}});
    connect_failing_ = false;
    conn_ = std::move(conn);
    return true;
}

bool OutcomeWriter::write(const std::vector<CallOutcome> &batch) {
    // One statement for the batch; when PostgreSQL refuses it (one outcome it cannot prove,
    // e.g. a ticket whose key left the ring), each outcome alone, so one does not sink the rest.
    auto once = [&](const std::vector<CallOutcome> &b, std::string &why) {
        if (!ensure_connection()) return Write::ConnectionLost;
        OutcomeBatchParams p = batch_params(b);
        const char *params[5] = {reinterpret_cast<const char *>(p.tickets.data()),
                                 p.operations.c_str(), p.outcomes.c_str(), p.http_statuses.c_str(),
                                 p.finished_at.c_str()};
        Result res(PQexecPrepared(conn_.get(), kStatement, 5, params, nullptr, nullptr, 0));
        if (res && PQresultStatus(res.get()) == PGRES_TUPLES_OK) return Write::Done;
        if (PQstatus(conn_.get()) != CONNECTION_OK) {
            conn_.reset();
            return Write::ConnectionLost;
        }
        const char *state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
        const char *primary =
            res ? PQresultErrorField(res.get(), PG_DIAG_MESSAGE_PRIMARY) : nullptr;
        why = std::string(state ? state : "") + ": " +
              one_line(primary ? primary : PQerrorMessage(conn_.get()));
        return Write::Refused;
    };
    std::string why;
    const Write all = once(batch, why);
    if (all == Write::ConnectionLost) return false;
    std::size_t done = all == Write::Done ? batch.size() : 0;
    if (all == Write::Refused) {
        for (const CallOutcome &o : batch) {
            std::vector<CallOutcome> one;
            one.push_back(CallOutcome{secure_copy(as_view(o.ticket)), o.operation, o.outcome,
                                      o.http_status, o.finished});
            const Write w = once(one, why);
            if (w == Write::Done)
                ++done;
            else
                drop(1, w == Write::Refused ? why : "lost the database connection");
        }
    }
    std::lock_guard<std::mutex> lock(mu_);
    written_ += done;
    return true;
}

void OutcomeWriter::run() {
    std::unique_lock<std::mutex> lock(mu_);
    Clock::time_point give_up = Clock::time_point::max();
    for (;;) {
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) break;  // stopping, and nothing left
        cv_.wait_for(lock, kLinger, [&] { return stopping_ || queue_.size() >= kMaxBatch; });
        if (stopping_ && give_up == Clock::time_point::max()) give_up = Clock::now() + kStopGrace;
        if (Clock::now() >= give_up) {
            const std::size_t n = queue_.size();
            queue_.clear();
            lock.unlock();
            drop(n, "the sidecar stopped while PostgreSQL was unreachable");
            lock.lock();
            break;
        }
        std::vector<CallOutcome> batch;
        while (!queue_.empty() && batch.size() < kMaxBatch) {
            batch.push_back(std::move(queue_.front()));
            queue_.pop_front();
        }
        lock.unlock();
        const bool ok = write(batch);
        lock.lock();
        if (!ok) {
            // PostgreSQL is away: keep the batch (in order) and try again shortly.
            for (auto it = batch.rbegin(); it != batch.rend(); ++it)
                queue_.push_front(std::move(*it));
            cv_.wait_for(lock, kRetryPause, [&] { return stopping_; });
        }
    }
}

}  // namespace pga::sidecar
