#include "sidecar/work_queue.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

namespace {

using pga::sidecar::WorkQueue;

// Waits for a state another thread reaches (no timing: it only yields until then).
template <class F>
void wait_until(F done) {
    while (!done()) std::this_thread::yield();
}

std::unique_ptr<int> item(int v) {
    return std::make_unique<int>(v);
}

// Workers that record (worker, item) for every item they take.
struct Pool {
    WorkQueue<int> q;
    std::mutex mu;
    std::vector<std::pair<int, int>> got;
    std::vector<std::thread> threads;

    // Starts worker number w and waits until it sleeps in pop().
    void start(int w) {
        const std::size_t idle_before = q.idle();
        threads.emplace_back([this, w] {
            while (std::unique_ptr<int> it = q.pop()) {
                std::lock_guard<std::mutex> lock(mu);
                got.emplace_back(w, *it);
            }
        });
        wait_until([&] { return q.idle() == idle_before + 1; });
    }
    std::size_t taken() {
        std::lock_guard<std::mutex> lock(mu);
        return got.size();
    }
    void push(int v) {
        std::unique_ptr<int> it = item(v);
        ASSERT_TRUE(q.push(it, 100));
        EXPECT_EQ(it, nullptr);
    }
    void stop() {
        q.stop();
        for (auto &t : threads) t.join();
        threads.clear();
    }
};

TEST(WorkQueue, TheWorkerThatWentIdleLastServesTheNextItem) {
    Pool p;
    for (int w = 0; w < 3; ++w) p.start(w);
    p.push(1);
    wait_until([&] { return p.taken() == 1; });
    EXPECT_EQ(p.got[0], std::make_pair(2, 1));
    // Worker 2 is back on top of the idle stack: it takes the next one too.
    wait_until([&] { return p.q.idle() == 3; });
    p.push(2);
    wait_until([&] { return p.taken() == 2; });
    EXPECT_EQ(p.got[1], std::make_pair(2, 2));
    p.stop();
}

TEST(WorkQueue, TwoItemsNeverWakeTheWorkersIdleLongest) {
    Pool p;
    for (int w = 0; w < 4; ++w) p.start(w);
    p.push(10);
    p.push(11);
    wait_until([&] { return p.taken() == 2; });
    std::set<int> workers, items;
    for (const auto &g : p.got) {
        workers.insert(g.first);
        items.insert(g.second);
    }
    // Workers 3 and 2 were woken (whichever gets the lock first may take both items).
    EXPECT_EQ(workers.count(0) + workers.count(1), 0u);
    EXPECT_EQ(items, (std::set<int>{10, 11}));
    p.stop();
    EXPECT_EQ(p.got.size(), 2u);
}

TEST(WorkQueue, ItemsLeaveInArrivalOrder) {
    WorkQueue<int> q;
    for (int v = 1; v <= 5; ++v) {
        std::unique_ptr<int> it = item(v);
        ASSERT_TRUE(q.push(it, 10));
    }
    for (int v = 1; v <= 5; ++v) EXPECT_EQ(*q.pop(), v);
}

TEST(WorkQueue, AFullQueueRefusesAndLeavesTheItemToTheCaller) {
    WorkQueue<int> q;
    std::unique_ptr<int> a = item(1), b = item(2), c = item(3);
    EXPECT_TRUE(q.push(a, 2));
    EXPECT_TRUE(q.push(b, 2));
    EXPECT_FALSE(q.push(c, 2));
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(*c, 3);
}

TEST(WorkQueue, StopDrainsWhatIsQueuedThenEndsEveryWorker) {
    WorkQueue<int> q;
    for (int v = 1; v <= 3; ++v) {
        std::unique_ptr<int> it = item(v);
        ASSERT_TRUE(q.push(it, 10));
    }
    EXPECT_EQ(q.stop(), 3u);
    std::unique_ptr<int> late = item(4);
    EXPECT_FALSE(q.push(late, 10));
    for (int v = 1; v <= 3; ++v) EXPECT_EQ(*q.pop(), v);
    EXPECT_EQ(q.pop(), nullptr);
}

TEST(WorkQueue, StopWakesIdleWorkers) {
    Pool p;
    for (int w = 0; w < 3; ++w) p.start(w);
    p.stop();  // joins: every pop() returned nullptr
    EXPECT_EQ(p.q.idle(), 0u);
    EXPECT_TRUE(p.got.empty());
}

TEST(WorkQueue, SaysWhenAnItemWaitsOrItStopped) {
    WorkQueue<int> q;
    EXPECT_FALSE(q.has_waiting_or_stopped());
    std::unique_ptr<int> a = item(1);
    ASSERT_TRUE(q.push(a, 2));
    EXPECT_TRUE(q.has_waiting_or_stopped());  // a lingering worker should come back for it
    q.pop();
    EXPECT_FALSE(q.has_waiting_or_stopped());
    q.stop();
    EXPECT_TRUE(q.has_waiting_or_stopped());
}

TEST(WorkQueue, DepthIsReportedOnEveryChange) {
    std::vector<std::size_t> depths;
    WorkQueue<int> q([&](std::size_t n) { depths.push_back(n); });
    std::unique_ptr<int> a = item(1), b = item(2), c = item(3);
    q.push(a, 2);
    q.push(b, 2);
    q.push(c, 2);  // refused: no change
    q.pop();
    q.pop();
    EXPECT_EQ(depths, (std::vector<std::size_t>{1, 2, 1, 0}));
}

}  // namespace
