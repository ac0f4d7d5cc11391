// The HTTP status of each audited gateway request, written off the request's path: a bounded
// queue and one thread that records each (alpaca._gateway_status) on the redeem pool. When the
// queue is full the status is dropped (the audit row keeps outcome 'pending') and a throttled
// warning says how many.
#pragma once
#include "common/cpp_only.hpp"
#include "sidecar/redeemer.hpp"

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

namespace pga::sidecar::gateway {

class AuditQueue {
  public:
    explicit AuditQueue(Redeemer &db, std::size_t capacity = 4096);
    ~AuditQueue();  // records what is queued (up to a few seconds), then stops
    AuditQueue(const AuditQueue &) = delete;
    AuditQueue &operator=(const AuditQueue &) = delete;

    void push(std::string audit_id, int http_status);

  private:
    void loop();
    Redeemer &db_;
    const std::size_t capacity_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::pair<std::string, int>> queue_;
    std::size_t dropped_ = 0;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace pga::sidecar::gateway
