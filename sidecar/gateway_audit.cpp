#include "sidecar/gateway_audit.hpp"

#include "sidecar/gateway_db.hpp"
#include "sidecar/log.hpp"
#include "sidecar/outcome_writer.hpp"

#include <map>
#include <optional>

namespace pga::sidecar::gateway {
namespace {

// How many entries one pass takes from the queue (one alpaca._gateway_used statement).
constexpr std::size_t kMaxBatch = 1000;

}  // namespace

bool used_params(const std::vector<AuditEntry> &batch, std::string &session_ids,
                 std::string &used_at) {
    std::map<std::string, std::chrono::system_clock::time_point> latest;
    for (const AuditEntry &e : batch) {
        if (e.session_id.empty()) continue;
        auto [it, fresh] = latest.emplace(e.session_id, e.used_at);
        if (!fresh && it->second < e.used_at) it->second = e.used_at;
    }
    session_ids = used_at = "{";
    for (const auto &[id, at] : latest) {
        if (session_ids.size() > 1) {
            session_ids += ',';
            used_at += ',';
        }
        session_ids += id;  // a uuid from alpaca.redeem_session: no character to quote
        used_at += '"' + utc_text(at) + '"';
    }
    session_ids += '}';
    used_at += '}';
    return !latest.empty();
}

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

void AuditQueue::push(AuditEntry entry) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (queue_.size() >= capacity_) {
            ++dropped_;
            return;
        }
        queue_.push_back(std::move(entry));
    }
    cv_.notify_one();
}

void AuditQueue::loop() {
    using Clock = std::chrono::steady_clock;
    // Each statement gets up to 5 s; once stopping, what is left gets 5 s in all, then the rest
    // is dropped (its rows keep outcome 'pending') so that a database that is gone cannot hold
    // up the sidecar's exit.
    std::optional<Clock::time_point> give_up;
    const auto stop_by = [&] {
        const auto own = Clock::now() + std::chrono::seconds(5);
        return give_up && *give_up < own ? *give_up : own;
    };
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || dropped_ > 0; });
        if (stopping_ && !give_up) give_up = Clock::now() + std::chrono::seconds(5);
        if (give_up && Clock::now() >= *give_up && !queue_.empty()) {
            dropped_ += queue_.size();
            queue_.clear();
        }
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
        std::vector<AuditEntry> batch;
        while (!queue_.empty() && batch.size() < kMaxBatch) {
            batch.push_back(std::move(queue_.front()));
            queue_.pop_front();
        }
        lock.unlock();
        std::string error;
        for (const AuditEntry &e : batch) {
            if (e.audit_id.empty()) continue;
            if (!record_status(db_, e.audit_id, e.http_status, stop_by(), error))
                log_event(
                    LogLevel::Warn, "gateway_audit",
                    {{"message", "HTTP status not recorded: " + error}, {"audit_id", e.audit_id}});
        }
        std::string ids, times;
        if (used_params(batch, ids, times) && !record_used(db_, ids, times, stop_by(), error))
            log_event(LogLevel::Warn, "gateway_audit",
                      {{"message", "last_used_at not recorded: " + error}});
        lock.lock();
    }
}

}  // namespace pga::sidecar::gateway
