#include "sidecar/request_handler.hpp"

#include "common/retry_policy.hpp"
#include "sidecar/log.hpp"

#include <chrono>
#include <thread>

namespace pga::sidecar {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

long ms_until(Clock::time_point deadline) {
    return long(std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count());
}

std::int64_t unix_now_ms() {
    return std::chrono::duration_cast<milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Sleeps up to `d`, in slices, leaving early when the client hangs up. False if it did.
bool sleep_unless_gone(milliseconds d, const std::function<bool()> &client_gone) {
    const auto until = Clock::now() + d;
    while (Clock::now() < until) {
        if (client_gone()) return false;
        std::this_thread::sleep_for(
            std::min<Clock::duration>(milliseconds(50), until - Clock::now()));
    }
    return true;
}

Outcome transport_outcome(const HttpResponse &r) {
    if (r.too_large) return Outcome::TooLarge;
    if (r.curl_code == CURLE_OPERATION_TIMEDOUT) return Outcome::Timeout;
    return Outcome::Unreachable;
}

}  // namespace

std::string alpaca_path(const std::string &op) {
    if (op == "validate" || op == "account") return "/v2/account";
    if (op == "positions") return "/v2/positions";
    if (op == "orders") return "/v2/orders";
    if (op == "clock") return "/v2/clock";
    return {};
}

std::string alpaca_url(const std::string &base, const std::string &op,
                       const std::vector<std::pair<std::string, std::string>> &query) {
    std::string url = base + alpaca_path(op);
    char sep = '?';
    for (const auto &[k, v] : query) {
        url += sep;
        url += k;
        url += '=';
        url += v;
        sep = '&';
    }
    return url;
}

SidecarResponse RequestHandler::handle(const SidecarRequest &req, const Config &cfg,
                                       HttpClient &http, const std::function<bool()> &client_gone) {
    const auto started = Clock::now();
    const auto deadline = started + milliseconds(cfg.request_deadline_ms);
    SidecarResponse resp;
    resp.request_id = req.request_id;
    std::string credential_id = "-", environment = "-";

    auto finish = [&]() -> SidecarResponse & {
        const double latency =
            std::chrono::duration<double, std::milli>(Clock::now() - started).count();
        char latency_text[32];
        std::snprintf(latency_text, sizeof latency_text, "%.2f", latency);
        const bool ok = resp.outcome == Outcome::Ok;
        log_event(ok ? LogLevel::Info : LogLevel::Warn, "request",
                  {{"id", req.request_id},
                   {"cred", credential_id},
                   {"op", req.operation},
                   {"env", environment},
                   {"outcome", outcome_name(resp.outcome)},
                   {"status", std::to_string(resp.http_status)},
                   {"attempts", std::to_string(resp.attempts)},
                   {"latency_ms", latency_text},
                   {"bytes", std::to_string(resp.body.size())},
                   {"message", resp.message}});
        return resp;
    };

    // The backend closed its socket (cancel, timeout): nobody waits for the answer.
    auto abandoned = [&]() -> SidecarResponse & {
        resp.outcome = Outcome::Internal;
        resp.message = "the client hung up";
        return finish();
    };

    RedeemResult redeemed = redeemer_.redeem(req.ticket, req.operation, deadline);
    switch (redeemed.status) {
        case RedeemStatus::Ok:
            break;
        case RedeemStatus::Rejected:
            resp.outcome = Outcome::TicketRejected;
            resp.message = redeemed.message;
            return finish();
        case RedeemStatus::DatabaseError:
            resp.outcome = Outcome::DatabaseError;
            resp.message = redeemed.message;
            return finish();
        case RedeemStatus::Failed:
            resp.outcome = Outcome::Internal;
            resp.message = "redeeming the ticket failed: " + redeemed.message;
            return finish();
    }
    const RedeemedCredential &cred = redeemed.credential;
    credential_id = cred.credential_id;
    environment = cred.environment;
    const std::string &base = environment == "live" ? cfg.live_base_url : cfg.paper_base_url;

    HttpRequest http_req;
    http_req.url = alpaca_url(base, req.operation, req.query);
    http_req.key_id = as_view(cred.api_key);
    http_req.secret_key = as_view(cred.secret_key);
    http_req.ca_file = cfg.ca_file;
    http_req.connect_timeout_ms = cfg.connect_timeout_ms;
    http_req.max_body_bytes = cfg.max_response_bytes;
    http_req.should_abort = client_gone;

    RetryPolicy retry(RetryConfig{cfg.max_attempts, milliseconds(cfg.retry_base_delay_ms),
                                  milliseconds(cfg.retry_max_delay_ms)});
    HttpResponse last;
    for (int attempt = 1;; ++attempt) {
        // The local bucket keeps us under Alpaca's per-account limit before Alpaca has to say so.
        milliseconds wait{0};
        while (!limiter_.try_acquire(credential_id, Clock::now(), wait)) {
            if (wait.count() >= ms_until(deadline)) {
                resp.outcome = Outcome::RateLimited;
                resp.attempts = attempt - 1;
                resp.message = "local limit of " + std::to_string(cfg.rate_limit_per_minute) +
                               " requests a minute for this credential; next slot in " +
                               std::to_string(wait.count()) + " ms";
                return finish();
            }
            if (!sleep_unless_gone(wait, client_gone)) {
                return abandoned();
            }
        }
        const long remaining = ms_until(deadline);
        if (remaining <= 0) {
            resp.outcome = Outcome::Timeout;
            resp.attempts = attempt - 1;
            resp.message =
                "request deadline of " + std::to_string(cfg.request_deadline_ms) + " ms passed";
            return finish();
        }
        http_req.timeout_ms = std::min(cfg.request_timeout_ms, remaining);
        last = http.get(http_req);
        resp.attempts = attempt;
        log_event(LogLevel::Debug, "attempt",
                  {{"id", req.request_id},
                   {"attempt", std::to_string(attempt)},
                   {"status", std::to_string(last.status)},
                   {"transport", last.curl_code == CURLE_OK ? "ok" : last.error}});
        if (last.aborted) {
            return abandoned();
        }
        const bool transport_error = last.curl_code != CURLE_OK;
        const int status = transport_error ? 0 : int(last.status);
        if (transport_error && is_permanent_transport_error(last)) break;
        if (!is_retryable_status(status)) break;
        auto delay = retry.next_delay(attempt, status, last.ratelimit_reset, last.retry_after,
                                      unix_now_ms());
        if (!delay || delay->count() >= ms_until(deadline)) break;
        if (!sleep_unless_gone(*delay, client_gone)) {
            return abandoned();
        }
    }

    if (last.curl_code != CURLE_OK) {
        resp.outcome = transport_outcome(last);
        resp.message = last.too_large ? "answer exceeds max_response_bytes (" +
                                            std::to_string(cfg.max_response_bytes) + " bytes)"
                                      : last.error;
    } else if (last.status == 429) {
        resp.outcome = Outcome::RateLimited;
        resp.http_status = 429;
        resp.message = "Alpaca answered 429 " + std::to_string(resp.attempts) + " time(s)";
    } else {
        resp.outcome = Outcome::Ok;
        resp.http_status = int(last.status);
        resp.body = std::move(last.body);
    }
    return finish();
}

}  // namespace pga::sidecar
