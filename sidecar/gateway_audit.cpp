#include "sidecar/gateway_audit.hpp"

#include "sidecar/gateway_db.hpp"
#include "sidecar/log.hpp"

#include <chrono>

namespace pga::sidecar::gateway {

AuditQueue::AuditQueue(Redeemer &db, std::size_t capacity)
    : db_(db), capacity_(capacity), thread_([this] { loop(); }) {}

AuditQueue::~AuditQueue() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void AuditQueue::push(std::string audit_id, int http_status) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (queue_.size() >= capacity_) {
            ++dropped_;
            return;
        }
        queue_.emplace_back(std::move(audit_id), http_status);
    }
    cv_.notify_one();
}

void AuditQueue::loop() {
    const auto stop_by = [] { return std::chrono::steady_clock::now() + std::chrono::seconds(5); };
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || dropped_ > 0; });
        if (dropped_ > 0) {
            const std::string n = std::to_string(dropped_);
            dropped_ = 0;
            lock.unlock();
            log_event(LogLevel::Warn, "gateway_audit",
                      {{"message", "audit queue full: HTTP statuses not recorded"}, {"count", n}});
            lock.lock();
            continue;
        }
        if (queue_.empty()) return;  // stopping and nothing left
        auto [id, status] = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        std::string error;
        if (!record_status(db_, id, status, stop_by(), error)) {
            log_event(LogLevel::Warn, "gateway_audit",
                      {{"message", "HTTP status not recorded: " + error}, {"audit_id", id}});
        }
        lock.lock();
    }
}

}  // namespace pga::sidecar::gateway
