#include "sidecar/gateway_upstream.hpp"

#include "common/crypto.hpp"
#include "common/encoding.hpp"
#include "sidecar/client_wait.hpp"
#include "sidecar/gateway_db.hpp"
#include "sidecar/gateway_paths.hpp"
#include "sidecar/log.hpp"
#include "sidecar/metrics.hpp"
#include "sidecar/order_safety.hpp"
#include "sidecar/trade_flow.hpp"
#include "sidecar/upstream_retries.hpp"

#include <atomic>
#include <chrono>

namespace pga::sidecar::gateway {
namespace {

using metrics::GatewayOutcome;

std::string json_string(const std::string &s) {
    std::string out = "\"";
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20 || u >= 0x7f) {
            out += ' ';  // our messages are ASCII; anything else is dropped
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string next_request_id() {
    static std::atomic<unsigned long long> n{0};
    return "gw-" + std::to_string(++n);
}

std::string new_client_order_id() {
    std::uint8_t raw[16];
    random_bytes(raw, sizeof raw);
    return "pga-" + hex_encode(raw, sizeof raw);
}

// Which trading operation (sidecar/trade_flow) a method + path is, with its target.
std::string trade_operation(const std::string &method, const std::string &path,
                            std::string &target) {
    if (method == "POST") return "submit_order";
    if (path == "/v2/orders") return "cancel_all_orders";
    if (path.rfind("/v2/orders/", 0) == 0) {
        target = path.substr(11);
        return method == "PATCH" ? "replace_order" : "cancel_order";
    }
    target = path.substr(14);  // DELETE /v2/positions/{symbol}
    return "close_position";
}

GatewayOutcome outcome_of(int status) {
    if (status == 401) return GatewayOutcome::Unauthorized;
    if (status == 403) return GatewayOutcome::Forbidden;
    if (status == 502 || status == 504) return GatewayOutcome::Upstream;
    if (status == 503) return GatewayOutcome::Unavailable;
    if (status == 400 || status == 413 || status == 422) return GatewayOutcome::BadRequest;
    return GatewayOutcome::Ok;
}

Response from_upstream(UpstreamResult &up, const Config &cfg) {
    using End = UpstreamResult::End;
    switch (up.end) {
        case End::RateLimited:
            return error_response(429, 42910000,
                                  "rate limit exceeded (the gateway's limit of " +
                                      std::to_string(cfg.rate_limit_per_minute) +
                                      " requests a minute for this credential)");
        case End::DeadlinePassed:
        case End::ClientGone:
            return error_response(504, 50410000, "Alpaca did not answer in time");
        case End::Answered:
            break;
    }
    if (!up.unknown_outcome.empty()) return error_response(502, 50210000, up.unknown_outcome);
    HttpResponse &last = up.last;
    if (last.curl_code != CURLE_OK) {
        if (last.too_large) return error_response(502, 50210000, "Alpaca's answer is too large");
        if (last.curl_code == CURLE_OPERATION_TIMEDOUT)
            return error_response(504, 50410000, "Alpaca did not answer in time");
        return error_response(502, 50210000, "Alpaca could not be reached: " + last.error);
    }
    Response r;
    r.status = int(last.status);
    r.body = std::move(last.body);
    if (r.status != 204) r.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
    if (!last.ratelimit_limit.empty())
        r.headers.emplace_back("X-RateLimit-Limit", last.ratelimit_limit);
    if (!last.ratelimit_remaining.empty())
        r.headers.emplace_back("X-RateLimit-Remaining", last.ratelimit_remaining);
    if (!last.ratelimit_reset_text.empty())
        r.headers.emplace_back("X-RateLimit-Reset", last.ratelimit_reset_text);
    return r;
}

}  // namespace

std::unique_ptr<HttpClient> ClientPool::take() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (!idle_.empty()) {
            auto c = std::move(idle_.back());
            idle_.pop_back();
            return c;
        }
    }
    return std::make_unique<HttpClient>(share_);
}

void ClientPool::give(std::unique_ptr<HttpClient> c) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < 256) idle_.push_back(std::move(c));
}

Response error_response(int status, long code, const std::string &message) {
    Response r;
    r.status = status;
    r.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
    r.body = "{\"code\":" + std::to_string(code) + ",\"message\":" + json_string(message) + "}";
    return r;
}

Response unauthorized() {
    return error_response(401, 40110000, "request is not authorized");
}

Response TokenUpstream::call(const std::string &method, const std::string &path_and_query,
                             const std::string &body) {
    const auto started = Clock::now();
    const auto qmark = path_and_query.find('?');
    const std::string path = path_and_query.substr(0, qmark);
    const std::string query = qmark == std::string::npos ? "" : path_and_query.substr(qmark + 1);
    const std::shared_ptr<const Config> cfg = deps_.config();
    std::string credential = "-";

    std::string session_id;  // once redeemed: its use is recorded after the answer
    auto finish = [&](Response r, const std::string &audit_id) {
        if (!audit_id.empty() || !session_id.empty())
            deps_.audit.push({audit_id, r.status, session_id, std::chrono::system_clock::now()});
        metrics::gateway_request(scope_, outcome_of(r.status));
        const std::string status = std::to_string(r.status);
        const std::string ms = std::to_string(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count() /
            1000.0);
        log_event(LogLevel::Info, "gateway",
                  {{"method", method},
                   {"path", path_shape_ok(path) ? std::string_view(path) : "(refused)"},
                   {"scope", scope_},
                   {"credential", credential},
                   {"status", status},
                   {"ms", ms}});
        return r;
    };

    const bool known_method =
        method == "GET" || method == "POST" || method == "PATCH" || method == "DELETE";
    if (!known_method || !path_shape_ok(path) || !query_shape_ok(query))
        return finish(error_response(403, 40310000, "this path is not allowed by the gateway"), "");
    if ((method == "GET" || method == "DELETE") && !body.empty())
        return finish(error_response(400, 40010000, "request body format is invalid"), "");
    const auto deadline = started + std::chrono::milliseconds(cfg->request_deadline_ms);
    SessionKeys keys = redeem_session(deps_.db, token_, method, path, deadline);
    switch (keys.status) {
        case DbStatus::Ok:
            break;
        case DbStatus::BadToken:
            return finish(unauthorized(), "");
        case DbStatus::Forbidden: {
            // Its redeem rolled back; the refusal is audited on a statement of its own.
            std::string error;
            if (!record_refusal(deps_.db, token_, method, path, deadline, error))
                log_event(LogLevel::Warn, "gateway_audit",
                          {{"message", "refusal not recorded: " + error}});
            return finish(error_response(403, 40310000, keys.message), "");
        }
        case DbStatus::DatabaseError:
            log_event(LogLevel::Warn, "gateway_db", {{"message", keys.message}});
            return finish(error_response(503, 50310000, "the gateway cannot reach its database"),
                          "");
        case DbStatus::Failed:
            log_event(LogLevel::Error, "gateway_db", {{"message", keys.message}});
            return finish(error_response(500, 50010000, "internal gateway error"), "");
    }
    scope_ = keys.session.scope;
    session_id = keys.session.id;
    credential = keys.session.credential_id;
    // The body only now: a path the session may not use is refused as such, whatever it sends.
    std::string send_body;
    if (method == "POST" || method == "PATCH") {
        send_body = with_client_order_id(body, new_client_order_id());
        if (send_body.empty() || send_body.size() > kMaxRequestBody)
            return finish(error_response(400, 40010000, "request body format is invalid"),
                          keys.audit_id);
    }
    const std::string &base = keys.route == "data"                 ? cfg->data_base_url
                              : keys.session.environment == "live" ? cfg->live_base_url
                                                                   : cfg->paper_base_url;

    HttpRequest http_req;
    http_req.method = method;
    http_req.url = base + path_and_query;
    http_req.key_id = as_view(keys.api_key);
    http_req.secret_key = as_view(keys.secret_key);
    http_req.ca_file = cfg->ca_file;
    http_req.connect_timeout_ms = cfg->connect_timeout_ms;
    http_req.max_body_bytes = cfg->max_response_bytes;
    const std::function<bool()> never_gone = [] { return false; };
    const std::string request_id = next_request_id();

    std::unique_ptr<HttpClient> http = deps_.clients.take();
    UpstreamResult up;
    std::string operation;
    if (method == "GET") {
        up = get_with_retries(*http, http_req, deps_.limiter, keys.session.credential_id, *cfg,
                              deadline, request_id, never_gone);
    } else {
        SidecarRequest req;
        req.request_id = request_id;
        req.operation = trade_operation(method, path, req.target);
        req.query = split_query(query);
        req.body = send_body;
        operation = req.operation;
        TradeEnv env{*http,      deps_.limiter, keys.session.credential_id,
                     *cfg,       deadline,      request_id,
                     never_gone, http_req,      base};
        up = run_trade(req, env);
    }
    deps_.clients.give(std::move(http));
    Response r = from_upstream(up, *cfg);
    // A cancel that went through comes back from trade_flow as the order it then looked up;
    // Alpaca's own answer to the DELETE is 204 without a body.
    if (operation == "cancel_order" && r.status == 200) {
        const std::string st = json_order_status(r.body);
        if (st == "canceled" || st == "pending_cancel") {
            r.status = 204;
            r.body.clear();
            r.headers.clear();
        }
    }
    return finish(std::move(r), keys.audit_id);
}

}  // namespace pga::sidecar::gateway
