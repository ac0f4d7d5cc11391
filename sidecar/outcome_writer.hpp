// Records what became of each call after it ended, off the critical path: the 'call' audit row
// (ok / rejected / error, with Alpaca's HTTP status) and the credential's last_used_at and
// last_validated_at. A call's one durable write before the keys leave is the redeem (nonce +
// decrypt row); these follow asynchronously.
//
// Workers hand outcomes over with record(), which never waits for the database. One thread
// writes them on its own connection: from the first queued outcome it waits 20 ms for more, then
// writes those queued (at most kMaxBatch) in one statement, `SELECT alpaca._record_outcomes(...)`:
// one transaction per batch, with synchronous_commit off, one UPDATE per application user. Lost
// in a crash (README, "The audit trail"): the outcomes still queued here, and those of the last
// moments' batches if PostgreSQL itself crashes (asynchronous commit); never a decrypt row.
#pragma once
#include "common/cpp_only.hpp"
#include "common/secure_memory.hpp"
#include "sidecar/pg_session.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pga::sidecar {

struct CallOutcome {
    SecureBytes ticket;  // proves the redeem; wiped when the outcome is written or dropped
    std::string operation;
    std::string outcome;  // "ok", "rejected", "error", or the sidecar's outcome name
    int http_status = 0;  // 0: no HTTP answer
    std::chrono::system_clock::time_point finished;
};

// The array literals of one batch, in PostgreSQL's text form (exposed for the unit tests).
struct OutcomeBatchParams {
    SecureBytes tickets;  // {"pgat1...","pgat1..."}
    std::string operations, outcomes, http_statuses, finished_at;
};
OutcomeBatchParams batch_params(const std::vector<CallOutcome> &batch);

// A time in timestamptz's text form, UTC with microseconds ("2026-12-01 12:00:00.000001+00").
std::string utc_text(std::chrono::system_clock::time_point t);

class OutcomeWriter {
  public:
    static constexpr std::size_t kMaxBatch = 256;
    static constexpr std::size_t kDefaultMaxQueue = 100000;

    explicit OutcomeWriter(std::string conninfo, std::size_t max_queue = kDefaultMaxQueue);
    // Writes what is still queued (for at most a few seconds), then stops.
    ~OutcomeWriter();
    OutcomeWriter(const OutcomeWriter &) = delete;
    OutcomeWriter &operator=(const OutcomeWriter &) = delete;

    // Queues one outcome; never blocks on the database. Beyond max_queue the outcome is
    // dropped, counted and logged (the call's decrypt row still records it).
    void record(CallOutcome o);

    std::size_t queued();
    std::uint64_t written();
    std::uint64_t dropped();

  private:
    void run();
    // Writes one batch. False when the connection failed (the batch is to be retried).
    bool write(const std::vector<CallOutcome> &batch);
    bool ensure_connection();
    // Counts dropped outcomes; logs at most one line a second (with the count since the last).
    void drop(std::size_t n, const std::string &why);

    const std::string conninfo_;
    const std::size_t max_queue_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<CallOutcome> queue_;
    bool stopping_ = false;
    std::uint64_t written_ = 0;
    std::uint64_t dropped_ = 0;
    std::uint64_t unlogged_drops_ = 0;
    std::chrono::steady_clock::time_point last_drop_log_{};
    bool connect_failing_ = false;  // the writer thread's: log a failure streak once
    PgConn conn_;                   // the writer thread's alone
    std::thread thread_;
};

}  // namespace pga::sidecar
