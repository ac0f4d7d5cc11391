#include "sidecar/upstream_retries.hpp"

#include "sidecar/rate_wait.hpp"
#include "sidecar/request_log.hpp"
#include "sidecar/retry_policy.hpp"

#include <algorithm>
#include <chrono>

namespace pga::sidecar {
namespace {

std::int64_t unix_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

UpstreamResult get_with_retries(HttpClient &http, HttpRequest &http_req, RateLimiter &limiter,
                                const std::string &credential_id, const Config &cfg,
                                Clock::time_point deadline, const std::string &request_id,
                                const std::function<bool()> &client_gone) {
    using End = UpstreamResult::End;
    using std::chrono::milliseconds;
    RetryPolicy retry(RetryConfig{cfg.max_attempts, milliseconds(cfg.retry_base_delay_ms),
                                  milliseconds(cfg.retry_max_delay_ms)});
    UpstreamResult out;
    for (int attempt = 1;; ++attempt) {
        const RateWait slot = wait_for_rate_slot(limiter, credential_id, deadline, client_gone);
        if (slot.status == RateWait::Status::Exhausted) {
            out.end = End::RateLimited;
            out.next_slot = slot.next_slot;
            return out;
        }
        if (slot.status == RateWait::Status::ClientGone) {
            out.end = End::ClientGone;
            return out;
        }
        const long remaining = ms_until(deadline);
        if (remaining <= 0) {
            out.end = End::DeadlinePassed;
            return out;
        }
        http_req.timeout_ms = std::min(cfg.request_timeout_ms, remaining);
        out.last = http.get(http_req);
        out.attempts = attempt;
        log_attempt(request_id, attempt, out.last);
        if (out.last.aborted) {
            out.end = End::ClientGone;
            return out;
        }
        const bool transport_error = out.last.curl_code != CURLE_OK;
        const int status = transport_error ? 0 : int(out.last.status);
        if (transport_error && is_permanent_transport_error(out.last)) break;
        if (!is_retryable_status(status)) break;
        auto delay = retry.next_delay(attempt, status, out.last.ratelimit_reset,
                                      out.last.retry_after, unix_now_ms());
        if (!delay || delay->count() >= ms_until(deadline)) break;
        if (!sleep_unless_gone(*delay, client_gone)) {
            out.end = End::ClientGone;
            return out;
        }
    }
    out.end = End::Answered;
    return out;
}

}  // namespace pga::sidecar
