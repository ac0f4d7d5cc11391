// The bounded queue between the poll thread and the workers: requests are served in the order
// they arrived (FIFO), each by the worker that went idle last (LIFO). Under a load lighter than
// the pool, the same few workers then serve every request: their stacks are warm in the cache
// and their keep-alive connections to Alpaca are open, while the other workers sleep. (With one
// condition variable for all of them, glibc woke the waiters in turn, so every worker's
// connection was used round-robin: 64 upstream TLS connections, each with its own thread in the
// server, for 32 concurrent calls.)
#pragma once
#include "common/cpp_only.hpp"

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace pga::sidecar {

template <class T>
class WorkQueue {
  public:
    // on_depth(n) is called, under the queue's lock, whenever the number of queued items
    // changes (so a gauge fed by it never shows a stale value).
    explicit WorkQueue(std::function<void(std::size_t)> on_depth = {})
        : on_depth_(std::move(on_depth)) {}
    WorkQueue(const WorkQueue &) = delete;
    WorkQueue &operator=(const WorkQueue &) = delete;

    // Queues item unless max_queue items are waiting already or the queue is stopped (then item
    // is left to the caller and the answer is false).
    bool push(std::unique_ptr<T> &item, std::size_t max_queue) {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_ || items_.size() >= max_queue) return false;
        items_.push_back(std::move(item));
        depth_changed();
        if (!idle_.empty()) {
            // The waiter's flag and condition variable live on its stack: notify while the lock
            // keeps it from returning.
            Waiter *w = idle_.back();
            idle_.pop_back();
            w->woken = true;
            w->cv.notify_one();
        }
        return true;
    }

    // The oldest item, waiting for one if need be; nullptr once stop() was called and every
    // queued item has been taken.
    std::unique_ptr<T> pop() {
        std::unique_lock<std::mutex> lock(mu_);
        Waiter me;
        while (items_.empty() && !stopping_) {
            me.woken = false;
            idle_.push_back(&me);
            me.cv.wait(lock, [&] { return me.woken; });  // whoever wakes us took us off idle_
        }
        if (items_.empty()) return nullptr;
        std::unique_ptr<T> item = std::move(items_.front());
        items_.pop_front();
        depth_changed();
        return item;
    }

    // No more pushes; every waiting pop() returns (nullptr once the queue is drained). Returns
    // how many items are still queued.
    std::size_t stop() {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
        for (Waiter *w : idle_) {
            w->woken = true;
            w->cv.notify_one();
        }
        idle_.clear();
        return items_.size();
    }

    // True when a pushed item waits for a worker, or the queue is stopped: a worker that could
    // linger on its own client should come back to the queue instead.
    bool has_waiting_or_stopped() const {
        std::lock_guard<std::mutex> lock(mu_);
        return stopping_ || !items_.empty();
    }

    // How many pop() calls are waiting (for tests and metrics).
    std::size_t idle() const {
        std::lock_guard<std::mutex> lock(mu_);
        return idle_.size();
    }

  private:
    void depth_changed() {
        if (on_depth_) on_depth_(items_.size());
    }
    struct Waiter {
        std::condition_variable cv;
        bool woken = false;
    };
    std::function<void(std::size_t)> on_depth_;
    mutable std::mutex mu_;
    std::deque<std::unique_ptr<T>> items_;
    std::vector<Waiter *> idle_;  // back = the last to go idle, the first to be woken
    bool stopping_ = false;
};

}  // namespace pga::sidecar
