// What each gateway request leaves after its answer, written off the request's path: a bounded
// queue and one thread that records, on the redeem pool, each audited request's HTTP status
// (alpaca._gateway_status) and then, for everything it took from the queue at once, the
// sessions' and credentials' last_used_at in one statement (alpaca._gateway_used, coalesced:
// the redeem itself updates no row). When the queue is full the entry is dropped (the audit
// row keeps outcome 'pending', last_used_at waits for the next request) and a throttled warning
// says how many.
#pragma once
#include "common/cpp_only.hpp"
#include "sidecar/redeemer.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace pga::sidecar::gateway {

struct AuditEntry {
    std::string audit_id;  // empty: no audit row (only the session's use)
    int http_status = 0;
    std::string session_id;  // empty: no session (nothing used)
    std::chrono::system_clock::time_point used_at;
};

// The array literals of alpaca._gateway_used for a batch, one element per distinct session
// with its latest time (exposed for the unit tests). False when no entry names a session.
bool used_params(const std::vector<AuditEntry> &batch, std::string &session_ids,
                 std::string &used_at);

class AuditQueue {
  public:
    explicit AuditQueue(Redeemer &db, std::size_t capacity = 4096);
    ~AuditQueue();  // records what is queued (5 s at most), then stops
    AuditQueue(const AuditQueue &) = delete;
    AuditQueue &operator=(const AuditQueue &) = delete;

    void push(AuditEntry entry);

  private:
    void loop();
    Redeemer &db_;
    const std::size_t capacity_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<AuditEntry> queue_;
    std::size_t dropped_ = 0;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace pga::sidecar::gateway
