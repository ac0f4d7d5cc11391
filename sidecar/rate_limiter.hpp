// Per-key token bucket (sidecar: one bucket per credential id). Thread-safe.
#pragma once
#include "common/cpp_only.hpp"

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

namespace pga::sidecar {

class RateLimiter {
  public:
    using Clock = std::chrono::steady_clock;
    // capacity tokens, refilled continuously at capacity per `period` (Alpaca: 200 / minute).
    RateLimiter(double capacity, std::chrono::milliseconds period, std::size_t max_keys = 100000);
    // Takes one token for key if available. Otherwise returns false and sets wait to the time
    // until one is available.
    bool try_acquire(const std::string &key, Clock::time_point now,
                     std::chrono::milliseconds &wait);
    void reconfigure(double capacity, std::chrono::milliseconds period);
    std::size_t size() const;

  private:
    struct Bucket {
        double tokens;
        Clock::time_point last;
    };
    mutable std::mutex mu_;
    double capacity_;
    std::chrono::milliseconds period_;
    std::size_t max_keys_;  // idle full buckets are evicted beyond this
    std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace pga::sidecar
