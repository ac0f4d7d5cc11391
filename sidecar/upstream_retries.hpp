// The upstream GET with retries: each attempt waits for a rate-limit token, gets the time
// left before the request's deadline, and is retried with backoff and jitter (RetryPolicy:
// 429 and 5xx, transport errors that another attempt can fix) while the deadline allows.
#pragma once
#include "common/cpp_only.hpp"
#include "sidecar/client_wait.hpp"
#include "sidecar/config.hpp"
#include "sidecar/http_client.hpp"
#include "sidecar/rate_limiter.hpp"

#include <chrono>
#include <functional>
#include <string>

namespace pga::sidecar {

struct UpstreamResult {
    enum class End {
        Answered,        // last holds the final attempt's answer (or transport error)
        RateLimited,     // no local rate-limit token before the deadline (next_slot)
        DeadlinePassed,  // the deadline passed before another attempt could start
        ClientGone,      // the backend hung up
    };
    End end = End::Answered;
    int attempts = 0;  // attempts made
    HttpResponse last;
    std::chrono::milliseconds next_slot{0};
};

// http_req is complete but for timeout_ms, which each attempt sets from the time left.
UpstreamResult get_with_retries(HttpClient &http, HttpRequest &http_req, RateLimiter &limiter,
                                const std::string &credential_id, const Config &cfg,
                                Clock::time_point deadline, const std::string &request_id,
                                const std::function<bool()> &client_gone);

}  // namespace pga::sidecar
