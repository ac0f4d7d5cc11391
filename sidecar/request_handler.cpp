#include "sidecar/request_handler.hpp"

#include "sidecar/client_wait.hpp"
#include "sidecar/redeem_step.hpp"
#include "sidecar/order_safety.hpp"
#include "sidecar/request_log.hpp"
#include "sidecar/trade_flow.hpp"
#include "sidecar/upstream_retries.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <utility>

namespace pga::sidecar {
namespace {

// The answer for how the upstream part ended.
void fill_answer(UpstreamResult &up, const Config &cfg, SidecarResponse &resp) {
    using End = UpstreamResult::End;
    resp.attempts = up.attempts;
    switch (up.end) {
        case End::ClientGone:
            // The backend closed its socket (cancel, timeout): nobody waits for the answer.
            resp.outcome = Outcome::Internal;
            resp.message = "the client hung up";
            return;
        case End::RateLimited:
            resp.outcome = Outcome::RateLimited;
            resp.message = "local limit of " + std::to_string(cfg.rate_limit_per_minute) +
                           " requests a minute for this credential; next slot in " +
                           std::to_string(up.next_slot.count()) + " ms";
            return;
        case End::DeadlinePassed:
            resp.outcome = Outcome::Timeout;
            resp.message =
                "request deadline of " + std::to_string(cfg.request_deadline_ms) + " ms passed";
            return;
        case End::Answered:
            break;
    }
    HttpResponse &last = up.last;
    if (!up.unknown_outcome.empty()) {
        resp.outcome = Outcome::Unreachable;
        resp.message = up.unknown_outcome;
        return;
    }
    if (last.curl_code != CURLE_OK) {
        if (last.too_large)
            resp.outcome = Outcome::TooLarge;
        else if (last.curl_code == CURLE_OPERATION_TIMEDOUT)
            resp.outcome = Outcome::Timeout;
        else
            resp.outcome = Outcome::Unreachable;
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
}

// What the call's audit row says: "ok" (2xx), "rejected" (Alpaca refused the keys), "error"
// (any other HTTP status), else how the sidecar ended it (timeout, unreachable, ...).
std::string outcome_text(const UpstreamResult &up, const SidecarResponse &resp) {
    if (up.end == UpstreamResult::End::ClientGone) return "client_gone";
    if (resp.outcome != Outcome::Ok) return outcome_name(resp.outcome);
    if (resp.http_status >= 200 && resp.http_status < 300) return "ok";
    if (resp.http_status == 401 || resp.http_status == 403) return "rejected";
    return "error";
}

}  // namespace

SidecarResponse RequestHandler::handle(const SidecarRequest &req, const Config &cfg,
                                       HttpClient &http, const std::function<bool()> &client_gone) {
    const auto started = Clock::now();
    const auto deadline = started + std::chrono::milliseconds(cfg.request_deadline_ms);
    SidecarResponse resp;
    resp.request_id = req.request_id;

    std::optional<RedeemedCredential> cred = redeem_for_request(redeemer_, req, deadline, resp);
    if (!cred) {
        log_request(req, "-", "-", resp, started);
        return resp;
    }
    const std::string &base = cred->environment == "live" ? cfg.live_base_url : cfg.paper_base_url;

    HttpRequest http_req;
    http_req.method = alpaca_method(req.operation);
    http_req.url = alpaca_url(base, req.operation, req.target, req.query);
    http_req.key_id = as_view(cred->api_key);
    http_req.secret_key = as_view(cred->secret_key);
    http_req.ca_file = cfg.ca_file;
    http_req.connect_timeout_ms = cfg.connect_timeout_ms;
    http_req.max_body_bytes = cfg.max_response_bytes;
    http_req.should_abort = client_gone;

    UpstreamResult up;
    if (is_trading_operation(req.operation)) {
        TradeEnv env{http,        limiter_, cred->credential_id,
                     cfg,         deadline, req.request_id,
                     client_gone, http_req, base};
        up = run_trade(req, env);
    } else {
        up = get_with_retries(http, http_req, limiter_, cred->credential_id, cfg, deadline,
                              req.request_id, client_gone);
    }
    fill_answer(up, cfg, resp);
    if (is_trading_operation(req.operation)) {
        // The trade's own audit row, committed on the sidecar's connection: it stays whatever
        // the application's transaction does.
        std::string coid = resp.outcome == Outcome::Ok ? json_client_order_id(resp.body) : "";
        if (coid.empty()) coid = json_client_order_id(req.body);
        const std::string outcome = resp.outcome == Outcome::Ok
                                        ? "http " + std::to_string(resp.http_status)
                                        : std::string(outcome_name(resp.outcome));
        redeemer_.audit_trade(req.ticket, req.operation, coid, outcome,
                              std::chrono::steady_clock::now() + std::chrono::seconds(5));
    }
    // The call's outcome row and last_used_at, written after the answer (outcome_writer).
    outcomes_.record(CallOutcome{req.ticket, req.operation, outcome_text(up, resp),
                                 resp.outcome == Outcome::Ok ? resp.http_status : 0,
                                 std::chrono::system_clock::now()});
    log_request(req, cred->credential_id, cred->environment, resp, started);
    return resp;
}

}  // namespace pga::sidecar
