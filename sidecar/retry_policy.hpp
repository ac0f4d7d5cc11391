// When and how long to wait before retrying an upstream call (sidecar).
#pragma once
#include "common/cpp_only.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string_view>

namespace pga::sidecar {

struct RetryConfig {
    int max_attempts = 4;  // including the first
    std::chrono::milliseconds base_delay{100};
    std::chrono::milliseconds max_delay{5000};
};

// 429, 502, 503, 504 are retryable; so is a transport error (http_status 0).
bool is_retryable_status(int http_status) noexcept;

// A seed for the jitter: drawn from a per-thread generator that std::random_device seeds once.
// (Constructing a std::random_device per request was ~5 % of the sidecar's CPU under load; the
// jitter only spreads retries in time and needs no cryptographic randomness.)
std::uint64_t jitter_seed();

class RetryPolicy {
  public:
    explicit RetryPolicy(RetryConfig cfg, std::uint64_t seed = jitter_seed());
    // Delay before attempt number `attempt` (1 = first retry): exponential backoff
    // base*2^(attempt-1) capped at max_delay, with full jitter in [d/2, d].
    // For 429, a server hint wins: x_ratelimit_reset (Unix seconds) or retry_after (seconds),
    // measured against now_unix; the hint is capped at max_delay.
    // Returns nullopt when attempt >= max_attempts (give up).
    std::optional<std::chrono::milliseconds> next_delay(
        int attempt, int http_status, std::optional<std::int64_t> x_ratelimit_reset,
        std::optional<std::int64_t> retry_after, std::int64_t now_unix_ms);
    const RetryConfig &config() const noexcept { return cfg_; }

  private:
    RetryConfig cfg_;
    std::mt19937_64 rng_;
};

}  // namespace pga::sidecar
