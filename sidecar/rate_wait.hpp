// Waiting for the credential's rate-limit token before each upstream attempt: the local
// bucket keeps us under Alpaca's per-account limit before Alpaca has to say so.
#pragma once
#include "common/cpp_only.hpp"
#include "sidecar/client_wait.hpp"
#include "sidecar/rate_limiter.hpp"

#include <chrono>
#include <functional>
#include <string>

namespace pga::sidecar {

struct RateWait {
    enum class Status {
        Acquired,    // a token was taken
        Exhausted,   // the next token comes after the deadline (next_slot says when)
        ClientGone,  // the backend hung up while we waited
    };
    Status status = Status::Acquired;
    std::chrono::milliseconds next_slot{0};
};

RateWait wait_for_rate_slot(RateLimiter &limiter, const std::string &credential_id,
                            Clock::time_point deadline, const std::function<bool()> &client_gone);

}  // namespace pga::sidecar
