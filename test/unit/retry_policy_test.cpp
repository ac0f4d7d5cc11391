#include "sidecar/retry_policy.hpp"

#include <gtest/gtest.h>

#include <set>
#include <thread>

namespace {

using namespace std::chrono_literals;
using pga::sidecar::RetryConfig;
using pga::sidecar::RetryPolicy;

constexpr std::int64_t kNowMs = 1'750'000'000'123;  // a fixed "now", Unix milliseconds

TEST(RetryPolicy, RetryableStatuses) {
    for (int s : {0, 429, 502, 503, 504}) EXPECT_TRUE(pga::sidecar::is_retryable_status(s)) << s;
    for (int s : {200, 201, 400, 401, 403, 404, 422, 500, 501, 505, 599, -1}) {
        EXPECT_FALSE(pga::sidecar::is_retryable_status(s)) << s;
    }
}

TEST(RetryPolicy, ScheduleStaysWithinJitterBounds) {
    RetryConfig cfg;
    cfg.max_attempts = 10;
    cfg.base_delay = 100ms;
    cfg.max_delay = 5000ms;
    RetryPolicy p(cfg, 42);
    const std::int64_t expected[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
    for (int attempt = 1; attempt < 10; ++attempt) {
        const std::int64_t d = expected[attempt - 1];
        for (int i = 0; i < 200; ++i) {
            auto delay = p.next_delay(attempt, 503, std::nullopt, std::nullopt, kNowMs);
            ASSERT_TRUE(delay.has_value());
            EXPECT_GE(delay->count(), d / 2) << "attempt " << attempt;
            EXPECT_LE(delay->count(), d) << "attempt " << attempt;
        }
    }
}

TEST(RetryPolicy, JitterActuallyVaries) {
    RetryConfig cfg;
    cfg.max_attempts = 5;
    cfg.base_delay = 1000ms;
    RetryPolicy p(cfg, 7);
    std::set<std::int64_t> seen;
    std::int64_t lo = 1'000'000, hi = 0;
    for (int i = 0; i < 500; ++i) {
        const auto d = p.next_delay(1, 0, std::nullopt, std::nullopt, kNowMs)->count();
        seen.insert(d);
        lo = std::min(lo, d);
        hi = std::max(hi, d);
    }
    EXPECT_GT(seen.size(), 50u);
    EXPECT_GE(lo, 500);
    EXPECT_LE(hi, 1000);
    EXPECT_LT(lo, 600);  // covers the range, not just one end (500 draws over 501 values)
    EXPECT_GT(hi, 900);
}

TEST(RetryPolicy, SameSeedSameSchedule) {
    RetryPolicy a(RetryConfig{}, 99), b(RetryConfig{}, 99);
    for (int i = 1; i < 4; ++i) {
        EXPECT_EQ(a.next_delay(i, 502, std::nullopt, std::nullopt, kNowMs),
                  b.next_delay(i, 502, std::nullopt, std::nullopt, kNowMs));
    }
}

TEST(RetryPolicy, GivesUpAtMaxAttempts) {
    RetryPolicy p(RetryConfig{}, 1);  // max_attempts 4 including the first
    EXPECT_TRUE(p.next_delay(1, 503, std::nullopt, std::nullopt, kNowMs));
    EXPECT_TRUE(p.next_delay(3, 503, std::nullopt, std::nullopt, kNowMs));
    EXPECT_FALSE(p.next_delay(4, 503, std::nullopt, std::nullopt, kNowMs));
    EXPECT_FALSE(p.next_delay(100, 503, std::nullopt, std::nullopt, kNowMs));
    RetryConfig once;
    once.max_attempts = 1;
    RetryPolicy q(once, 1);
    EXPECT_FALSE(q.next_delay(1, 503, std::nullopt, std::nullopt, kNowMs));
}

TEST(RetryPolicy, NonRetryableStatusGivesUp) {
    RetryPolicy p(RetryConfig{}, 1);
    EXPECT_FALSE(p.next_delay(1, 400, std::nullopt, std::nullopt, kNowMs));
    EXPECT_FALSE(p.next_delay(1, 500, std::nullopt, std::nullopt, kNowMs));
    EXPECT_FALSE(p.next_delay(1, 200, std::nullopt, std::nullopt, kNowMs));
}

TEST(RetryPolicy, RateLimitResetInTheFutureIsHonoured) {
    RetryPolicy p(RetryConfig{}, 1);
    // now = ...000.123 s; reset at the next whole second + 2 -> 2877 ms.
    const std::int64_t reset = kNowMs / 1000 + 3;
    auto d = p.next_delay(1, 429, reset, std::nullopt, kNowMs);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->count(), reset * 1000 - kNowMs);
    EXPECT_EQ(d->count(), 2877);
}

TEST(RetryPolicy, RateLimitResetInThePastFallsBackToBackoff) {
    RetryPolicy p(RetryConfig{}, 1);
    const std::int64_t reset = kNowMs / 1000 - 10;
    auto d = p.next_delay(2, 429, reset, std::nullopt, kNowMs);
    ASSERT_TRUE(d);
    EXPECT_GE(d->count(), 100);  // attempt 2: base*2 = 200, jitter [100, 200]
    EXPECT_LE(d->count(), 200);
    // Exactly now counts as past too.
    auto e = p.next_delay(1, 429, kNowMs / 1000, std::nullopt, (kNowMs / 1000) * 1000);
    ASSERT_TRUE(e);
    EXPECT_LE(e->count(), 100);
}

TEST(RetryPolicy, RateLimitResetFarInTheFutureIsCapped) {
    RetryPolicy p(RetryConfig{}, 1);
    auto d = p.next_delay(1, 429, kNowMs / 1000 + 3600, std::nullopt, kNowMs);
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, 5000ms);
    // Absurd values neither overflow nor escape the cap.
    auto e = p.next_delay(1, 429, INT64_MAX, std::nullopt, kNowMs);
    ASSERT_TRUE(e);
    EXPECT_EQ(*e, 5000ms);
    auto f = p.next_delay(1, 429, INT64_MIN, std::nullopt, kNowMs);
    ASSERT_TRUE(f);
    EXPECT_LE(f->count(), 100);
}

TEST(RetryPolicy, RetryAfterSeconds) {
    RetryPolicy p(RetryConfig{}, 1);
    auto d = p.next_delay(1, 429, std::nullopt, 2, kNowMs);
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, 2000ms);
    EXPECT_EQ(*p.next_delay(1, 429, std::nullopt, 0, kNowMs), 0ms);
    EXPECT_EQ(*p.next_delay(1, 429, std::nullopt, 86400, kNowMs), 5000ms);
    EXPECT_EQ(*p.next_delay(1, 429, std::nullopt, INT64_MAX, kNowMs), 5000ms);
    auto neg = p.next_delay(1, 429, std::nullopt, -5, kNowMs);  // ignored, backoff instead
    ASSERT_TRUE(neg);
    EXPECT_GE(neg->count(), 50);
    EXPECT_LE(neg->count(), 100);
}

TEST(RetryPolicy, LargerHintWinsWhenBothPresent) {
    RetryPolicy p(RetryConfig{}, 1);
    const std::int64_t now = 1'000'000'000'000;
    EXPECT_EQ(*p.next_delay(1, 429, now / 1000 + 3, 1, now), 3000ms);
    EXPECT_EQ(*p.next_delay(1, 429, now / 1000 + 1, 4, now), 4000ms);
}

TEST(RetryPolicy, HintsIgnoredForOtherStatuses) {
    RetryPolicy p(RetryConfig{}, 1);
    auto d = p.next_delay(1, 503, kNowMs / 1000 + 4, 4, kNowMs);
    ASSERT_TRUE(d);
    EXPECT_LE(d->count(), 100);
}

TEST(RetryPolicy, HintsStillGiveUpAtMaxAttempts) {
    RetryPolicy p(RetryConfig{}, 1);
    EXPECT_FALSE(p.next_delay(4, 429, kNowMs / 1000 + 1, 1, kNowMs));
}

TEST(RetryPolicy, HugeAttemptNumbersDoNotOverflow) {
    RetryConfig cfg;
    cfg.max_attempts = 1000000;
    cfg.base_delay = 100ms;
    cfg.max_delay = 30000ms;
    RetryPolicy p(cfg, 3);
    auto d = p.next_delay(999999, 503, std::nullopt, std::nullopt, kNowMs);
    ASSERT_TRUE(d);
    EXPECT_GE(d->count(), 15000);
    EXPECT_LE(d->count(), 30000);
}

TEST(RetryPolicy, DefaultSeedsDifferBetweenPoliciesAndThreads) {
    // Policies made one after another (one per request) must not retry in lockstep.
    std::set<std::uint64_t> seeds;
    for (int i = 0; i < 100; ++i) seeds.insert(pga::sidecar::jitter_seed());
    EXPECT_EQ(seeds.size(), 100u);
    // Each thread's generator is seeded on its own.
    std::uint64_t other[2] = {};
    std::thread a([&] { other[0] = pga::sidecar::jitter_seed(); });
    std::thread b([&] { other[1] = pga::sidecar::jitter_seed(); });
    a.join();
    b.join();
    EXPECT_NE(other[0], other[1]);
    EXPECT_EQ(seeds.count(other[0]) + seeds.count(other[1]), 0u);
}

}  // namespace
