// Per-key token bucket with a bounded number of keys.
#include "sidecar/rate_limiter.hpp"

#include "common/error.hpp"

#include <algorithm>
#include <cmath>

namespace pga::sidecar {
namespace {

void check_config(double capacity, std::chrono::milliseconds period) {
    if (!(capacity >= 1.0) || !std::isfinite(capacity) || period.count() <= 0) {
        throw Error(ErrorCode::InvalidParameter,
                    "rate limiter: capacity must be >= 1 and period must be positive");
    }
}

}  // namespace

RateLimiter::RateLimiter(double capacity, std::chrono::milliseconds period, std::size_t max_keys)
    : capacity_(capacity), period_(period), max_keys_(max_keys == 0 ? 1 : max_keys) {
    check_config(capacity, period);
}

void RateLimiter::reconfigure(double capacity, std::chrono::milliseconds period) {
    check_config(capacity, period);
    std::lock_guard<std::mutex> lock(mu_);
    capacity_ = capacity;
    period_ = period;
    for (auto &kv : buckets_) {
        if (kv.second.tokens > capacity_) kv.second.tokens = capacity_;
    }
}

std::size_t RateLimiter::size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return buckets_.size();
}

bool RateLimiter::try_acquire(const std::string &key, Clock::time_point now,
                              std::chrono::milliseconds &wait) {
    using std::chrono::duration;
    std::lock_guard<std::mutex> lock(mu_);
    const double per_ms = capacity_ / static_cast<double>(period_.count());  // tokens per ms

    auto refilled = [&](const Bucket &b) {
        if (now <= b.last) return b.tokens;  // the clock never runs backwards for a bucket
        const double elapsed_ms = duration<double, std::milli>(now - b.last).count();
        return std::min(capacity_, b.tokens + elapsed_ms * per_ms);
    };

    auto it = buckets_.find(key);
    if (it == buckets_.end()) {
        if (buckets_.size() >= max_keys_) {
            // Evict every bucket that has refilled completely (forgetting it changes nothing);
            // if none has, evict the least recently used one so memory stays bounded.
            auto oldest = buckets_.end();
            for (auto b = buckets_.begin(); b != buckets_.end();) {
                if (refilled(b->second) >= capacity_) {
                    b = buckets_.erase(b);
                    continue;
                }
                if (oldest == buckets_.end() || b->second.last < oldest->second.last) oldest = b;
                ++b;
            }
            if (buckets_.size() >= max_keys_ && oldest != buckets_.end()) buckets_.erase(oldest);
        }
        it = buckets_.emplace(key, Bucket{capacity_, now}).first;
    } else {
        it->second.tokens = refilled(it->second);
        if (now > it->second.last) it->second.last = now;
    }

    Bucket &b = it->second;
    if (b.tokens >= 1.0) {
        b.tokens -= 1.0;
        wait = std::chrono::milliseconds(0);
        return true;
    }
    const double missing_ms = (1.0 - b.tokens) / per_ms;
    auto ms = static_cast<std::int64_t>(std::ceil(missing_ms));
    wait = std::chrono::milliseconds(ms < 1 ? 1 : ms);
    return false;
}

}  // namespace pga::sidecar
