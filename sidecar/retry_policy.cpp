// Exponential backoff with jitter, honouring Alpaca's 429 hints (capped).
#include "sidecar/retry_policy.hpp"

#include <algorithm>
#include <limits>

namespace pga::sidecar {

std::uint64_t jitter_seed() {
    thread_local std::mt19937_64 seeds{std::random_device{}()};
    return seeds();
}

bool is_retryable_status(int http_status) noexcept {
    return http_status == 0 || http_status == 429 || http_status == 502 || http_status == 503 ||
           http_status == 504;
}

RetryPolicy::RetryPolicy(RetryConfig cfg, std::uint64_t seed) : cfg_(cfg), rng_(seed) {
    if (cfg_.max_attempts < 1) cfg_.max_attempts = 1;
    if (cfg_.base_delay.count() < 0) cfg_.base_delay = std::chrono::milliseconds(0);
    if (cfg_.max_delay < cfg_.base_delay) cfg_.max_delay = cfg_.base_delay;
}

std::optional<std::chrono::milliseconds> RetryPolicy::next_delay(
    int attempt, int http_status, std::optional<std::int64_t> x_ratelimit_reset,
    std::optional<std::int64_t> retry_after, std::int64_t now_unix_ms) {
    if (attempt < 1) attempt = 1;
    if (attempt >= cfg_.max_attempts) return std::nullopt;
    if (!is_retryable_status(http_status)) return std::nullopt;

    const std::int64_t max_ms = cfg_.max_delay.count();

    if (http_status == 429) {
        // Server hints, in milliseconds from now; the larger valid hint wins, capped.
        std::optional<std::int64_t> hint;
        // Seconds beyond this are "far future" anyway; clamping first avoids overflow.
        constexpr std::int64_t kMaxHintSeconds = std::int64_t{1} << 40;
        if (x_ratelimit_reset) {
            const std::int64_t reset_ms =
                std::clamp<std::int64_t>(*x_ratelimit_reset, 0, kMaxHintSeconds) * 1000;
            if (reset_ms > now_unix_ms) hint = reset_ms - now_unix_ms;
        }
        if (retry_after && *retry_after >= 0) {
            const std::int64_t ra_ms = std::min<std::int64_t>(*retry_after, kMaxHintSeconds) * 1000;
            hint = hint ? std::max(*hint, ra_ms) : ra_ms;
        }
        if (hint) return std::chrono::milliseconds(std::min(*hint, max_ms));
        // A reset already in the past: the window has rolled over; fall through to backoff.
    }

    // base * 2^(attempt-1), capped; the shift is bounded so it cannot overflow.
    std::int64_t d = cfg_.base_delay.count();
    for (int i = 1; i < attempt && d < max_ms; ++i) d *= 2;
    d = std::min(d, max_ms);
    std::uniform_int_distribution<std::int64_t> jitter(d / 2, d);
    return std::chrono::milliseconds(jitter(rng_));
}

}  // namespace pga::sidecar
