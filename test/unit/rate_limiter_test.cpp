#include "sidecar/rate_limiter.hpp"

#include "common/error.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using pga::sidecar::RateLimiter;
using TP = RateLimiter::Clock::time_point;

const TP t0 = TP{} + 1000h;  // an arbitrary injected clock origin

TEST(RateLimiter, CapacityThenRefuses) {
    RateLimiter rl(200, 60000ms);
    std::chrono::milliseconds wait{-1};
    for (int i = 0; i < 200; ++i) {
        ASSERT_TRUE(rl.try_acquire("cred", t0, wait)) << i;
        EXPECT_EQ(wait, 0ms);
    }
    EXPECT_FALSE(rl.try_acquire("cred", t0, wait));
    EXPECT_EQ(wait, 300ms);  // one token per 60000/200 ms
}

TEST(RateLimiter, RefillsContinuously) {
    RateLimiter rl(2, 1000ms);  // 1 token per 500 ms
    std::chrono::milliseconds wait{};
    ASSERT_TRUE(rl.try_acquire("k", t0, wait));
    ASSERT_TRUE(rl.try_acquire("k", t0, wait));
    ASSERT_FALSE(rl.try_acquire("k", t0, wait));
    EXPECT_EQ(wait, 500ms);
    ASSERT_FALSE(rl.try_acquire("k", t0 + 200ms, wait));
    EXPECT_EQ(wait, 300ms);  // wait shrinks as time passes
    ASSERT_TRUE(rl.try_acquire("k", t0 + 500ms, wait));
    ASSERT_FALSE(rl.try_acquire("k", t0 + 500ms, wait));
    // A long idle period refills to capacity, not beyond.
    ASSERT_TRUE(rl.try_acquire("k", t0 + 1h, wait));
    ASSERT_TRUE(rl.try_acquire("k", t0 + 1h, wait));
    EXPECT_FALSE(rl.try_acquire("k", t0 + 1h, wait));
}

TEST(RateLimiter, WaitIsRoundedUpAndAtLeastOneMs) {
    RateLimiter rl(3, 1000ms);  // 333.33 ms per token
    std::chrono::milliseconds wait{};
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(rl.try_acquire("k", t0, wait));
    ASSERT_FALSE(rl.try_acquire("k", t0, wait));
    EXPECT_EQ(wait, 334ms);
    ASSERT_FALSE(rl.try_acquire("k", t0 + 333ms, wait));
    EXPECT_EQ(wait, 1ms);
    EXPECT_TRUE(rl.try_acquire("k", t0 + 334ms, wait));
}

TEST(RateLimiter, KeysAreIsolated) {
    RateLimiter rl(1, 60000ms);
    std::chrono::milliseconds wait{};
    EXPECT_TRUE(rl.try_acquire("a", t0, wait));
    EXPECT_FALSE(rl.try_acquire("a", t0, wait));
    EXPECT_TRUE(rl.try_acquire("b", t0, wait));
    EXPECT_FALSE(rl.try_acquire("b", t0, wait));
    EXPECT_EQ(rl.size(), 2u);
}

TEST(RateLimiter, ClockGoingBackwardsDoesNotMintTokens) {
    RateLimiter rl(1, 1000ms);
    std::chrono::milliseconds wait{};
    ASSERT_TRUE(rl.try_acquire("k", t0, wait));
    EXPECT_FALSE(rl.try_acquire("k", t0 - 10s, wait));
    EXPECT_FALSE(rl.try_acquire("k", t0 + 500ms, wait));
    EXPECT_TRUE(rl.try_acquire("k", t0 + 1000ms, wait));
}

TEST(RateLimiter, EvictsIdleFullBucketsBeyondBound) {
    RateLimiter rl(2, 1000ms, 3);
    std::chrono::milliseconds wait{};
    ASSERT_TRUE(rl.try_acquire("a", t0, wait));
    ASSERT_TRUE(rl.try_acquire("b", t0, wait));
    ASSERT_TRUE(rl.try_acquire("c", t0, wait));
    EXPECT_EQ(rl.size(), 3u);
    // Two seconds later all three have refilled: they are evicted when "d" arrives.
    ASSERT_TRUE(rl.try_acquire("d", t0 + 2s, wait));
    EXPECT_EQ(rl.size(), 1u);
}

TEST(RateLimiter, EvictionBoundHoldsWhenNothingIsIdle) {
    RateLimiter rl(1, 60000ms, 4);
    std::chrono::milliseconds wait{};
    for (int i = 0; i < 100; ++i) {
        ASSERT_TRUE(
            rl.try_acquire("key" + std::to_string(i), t0 + std::chrono::milliseconds(i), wait));
        EXPECT_LE(rl.size(), 4u);
    }
    EXPECT_EQ(rl.size(), 4u);
    // The most recent keys survived (least recently used went first) and are still empty.
    EXPECT_FALSE(rl.try_acquire("key99", t0 + 100ms, wait));
    EXPECT_FALSE(rl.try_acquire("key97", t0 + 100ms, wait));
}

TEST(RateLimiter, PartiallyDrainedBucketsAreNotEvictedWhileFullOnesExist) {
    RateLimiter rl(2, 1000ms, 2);
    std::chrono::milliseconds wait{};
    ASSERT_TRUE(rl.try_acquire("busy", t0, wait));
    ASSERT_TRUE(rl.try_acquire("busy", t0, wait));
    ASSERT_TRUE(rl.try_acquire("idle", t0 - 10s, wait));  // refilled long before t0
    ASSERT_TRUE(rl.try_acquire("new", t0, wait));         // evicts "idle" only
    EXPECT_EQ(rl.size(), 2u);
    EXPECT_FALSE(rl.try_acquire("busy", t0, wait));  // still drained: it was kept
}

TEST(RateLimiter, ReconfigureAppliesNewRateAndClampsTokens) {
    RateLimiter rl(10, 1000ms);
    std::chrono::milliseconds wait{};
    ASSERT_TRUE(rl.try_acquire("k", t0, wait));  // 9 left
    rl.reconfigure(2, 1000ms);                   // clamp to 2
    EXPECT_TRUE(rl.try_acquire("k", t0, wait));
    EXPECT_TRUE(rl.try_acquire("k", t0, wait));
    EXPECT_FALSE(rl.try_acquire("k", t0, wait));
    EXPECT_EQ(wait, 500ms);
}

TEST(RateLimiter, RejectsNonsenseConfiguration) {
    EXPECT_THROW(RateLimiter(0, 1000ms), pga::Error);
    EXPECT_THROW(RateLimiter(0.5, 1000ms), pga::Error);
    EXPECT_THROW(RateLimiter(10, 0ms), pga::Error);
    EXPECT_THROW(RateLimiter(10, -5ms), pga::Error);
    RateLimiter rl(10, 1000ms);
    EXPECT_THROW(rl.reconfigure(-1, 1000ms), pga::Error);
    std::chrono::milliseconds wait{};
    EXPECT_TRUE(rl.try_acquire("k", t0, wait));  // still usable with the old config
}

TEST(RateLimiter, ThreadSafeTokenAccounting) {
    RateLimiter rl(1000, 3600000ms);  // effectively no refill within the test
    std::atomic<int> granted{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            std::chrono::milliseconds wait{};
            for (int i = 0; i < 500; ++i) {
                if (rl.try_acquire("shared", t0, wait)) ++granted;
            }
        });
    }
    for (auto &t : threads) t.join();
    EXPECT_EQ(granted.load(), 1000);
}

}  // namespace
