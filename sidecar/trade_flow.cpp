#include "sidecar/trade_flow.hpp"

#include "sidecar/alpaca_routes.hpp"
#include "sidecar/client_wait.hpp"
#include "sidecar/order_safety.hpp"
#include "sidecar/retry_policy.hpp"

#include <chrono>
#include <utility>

namespace pga::sidecar {
namespace {

using End = UpstreamResult::End;

struct Flow {
    TradeEnv &env;
    const SidecarRequest &req;
    int attempts = 0;

    UpstreamResult send(const std::string &method, const std::string &url, const std::string &body,
                        bool idempotent) {
        env.http_req.method = method;
        env.http_req.url = url;
        env.http_req.body = body;
        UpstreamResult up =
            get_with_retries(env.http, env.http_req, env.limiter, env.credential_id, env.cfg,
                             env.deadline, env.request_id, env.client_gone, idempotent);
        attempts += up.attempts;
        return up;
    }

    UpstreamResult lookup_by_client_id(const std::string &coid) {
        return send("GET",
                    alpaca_url(env.base_url, "get_order_by_client_id",
                               {{"client_order_id", coid}, {"nested", "true"}}),
                    {}, true);
    }

    UpstreamResult get_order(const std::string &id) {
        return send("GET", alpaca_url(env.base_url, "get_order", id, {{"nested", "true"}}), {},
                    true);
    }

    UpstreamResult done(UpstreamResult up) {
        up.attempts = attempts;
        return up;
    }

    UpstreamResult unknown(UpstreamResult up, const std::string &what) {
        std::string cause;
        if (up.end != End::Answered)
            cause = "the request deadline passed";
        else if (up.last.curl_code != CURLE_OK)
            cause = up.last.error;
        else
            cause = "Alpaca answered " + std::to_string(up.last.status);
        up.unknown_outcome = what + " (" + cause + ")";
        up.end = End::Answered;
        return done(std::move(up));
    }

    static UpstreamResult answer(long status, std::string body) {
        UpstreamResult up;
        up.end = End::Answered;
        up.last.status = status;
        up.last.body = std::move(body);
        return up;
    }

    static bool ok(const UpstreamResult &up, long status) {
        return up.end == End::Answered && up.last.curl_code == CURLE_OK && up.last.status == status;
    }

    bool pause(RetryPolicy &retry, int round) {
        auto delay = retry.next_delay(round, 503, std::nullopt, std::nullopt, 0);
        if (!delay || delay->count() >= ms_until(env.deadline)) return false;
        return sleep_unless_gone(*delay, env.client_gone);
    }

    RetryPolicy policy() const {
        using std::chrono::milliseconds;
        return RetryPolicy(RetryConfig{env.cfg.max_attempts,
                                       milliseconds(env.cfg.retry_base_delay_ms),
                                       milliseconds(env.cfg.retry_max_delay_ms)});
    }

    // Submit (POST /v2/orders) and replace (PATCH /v2/orders/{id}).
    UpstreamResult place(bool replace) {
        const std::string coid = json_client_order_id(req.body);
        if (coid.empty()) {
            return answer(422, R"({"code":40010001,"message":"client_order_id is required"})");
        }
        const std::string method = replace ? "PATCH" : "POST";
        const std::string url = alpaca_url(env.base_url, req.operation, req.target, {});
        RetryPolicy retry = policy();
        const int rounds = env.cfg.max_attempts < 1 ? 1 : env.cfg.max_attempts;
        bool uncertain = false;
        UpstreamResult up;
        for (int round = 1; round <= rounds; ++round) {
            up = send(method, url, req.body, false);
            if (up.end != End::Answered) {
                return uncertain ? unknown(std::move(up), "order state unknown") : done(up);
            }
            const TradeVerdict v = classify_trade_attempt(up.last.curl_code != CURLE_OK,
                                                          is_permanent_transport_error(up.last),
                                                          int(up.last.status), up.last.body);
            // After an uncertain round, a refusal may be the echo of our own earlier request
            // (e.g. "order is already in \"replaced\" state"): look the order up first.
            const bool echo = uncertain && v == TradeVerdict::Final && up.last.status >= 400;
            if ((v == TradeVerdict::Final && !echo) || v == TradeVerdict::Retry ||
                v == TradeVerdict::Stop) {
                return done(std::move(up));
            }
            if (v == TradeVerdict::Unknown) uncertain = true;
            // Unknown or Duplicate: does Alpaca hold an order with this client_order_id?
            UpstreamResult look = lookup_by_client_id(coid);
            if (ok(look, 200)) {
                const OrderMatch m =
                    replace ? order_matches_replace(req.body, look.last.body, req.target)
                            : order_matches_submit(req.body, look.last.body);
                if (m.matches) return done(std::move(look));
                return done(answer(422,
                                   "{\"code\":40010001,\"message\":\"client_order_id is already "
                                   "used by another order (its " +
                                       m.field + " differs)\"}"));
            }
            if (!ok(look, 404)) {
                return unknown(v == TradeVerdict::Unknown ? std::move(up) : std::move(look),
                               "order state unknown: Alpaca could not be asked whether it holds "
                               "the order");
            }
            if (v != TradeVerdict::Unknown) return done(std::move(up));
            // Alpaca has no such order: it was not placed, so sending it again is safe.
            if (round == rounds || !pause(retry, round)) break;
        }
        return done(std::move(up));  // the last failure; Alpaca said it holds no such order
    }

    UpstreamResult cancel() {
        const std::string url = alpaca_url(env.base_url, "cancel_order", req.target, {});
        RetryPolicy retry = policy();
        const int rounds = env.cfg.max_attempts < 1 ? 1 : env.cfg.max_attempts;
        bool uncertain = false;
        UpstreamResult up;
        for (int round = 1; round <= rounds; ++round) {
            up = send("DELETE", url, {}, false);
            if (up.end != End::Answered) {
                return uncertain ? unknown(std::move(up), "cancel state unknown") : done(up);
            }
            const TradeVerdict v = classify_trade_attempt(up.last.curl_code != CURLE_OK,
                                                          is_permanent_transport_error(up.last),
                                                          int(up.last.status), up.last.body);
            if (v == TradeVerdict::Final && up.last.status >= 200 && up.last.status < 300) {
                UpstreamResult g = get_order(req.target);
                return done(ok(g, 200) ? std::move(g) : std::move(up));
            }
            if (v == TradeVerdict::Final && up.last.status == 422 && uncertain) {
                // A lost answer to an earlier DELETE may have cancelled it already.
                UpstreamResult g = get_order(req.target);
                const std::string st = ok(g, 200) ? json_order_status(g.last.body) : "";
                if (st == "canceled" || st == "pending_cancel") return done(std::move(g));
                return done(std::move(up));
            }
            if (v != TradeVerdict::Unknown) return done(std::move(up));
            uncertain = true;
            UpstreamResult g = get_order(req.target);
            if (!ok(g, 200)) {
                return unknown(std::move(up),
                               "cancel state unknown: Alpaca could not be asked "
                               "for the order");
            }
            const std::string st = json_order_status(g.last.body);
            if (st == "canceled" || st == "pending_cancel") return done(std::move(g));
            if (is_closed_order_status(st)) {
                return done(answer(422,
                                   "{\"code\":42210000,\"message\":\"order is already in "
                                   "\\\"" +
                                       st + "\\\" state\"}"));
            }
            if (round == rounds || !pause(retry, round)) break;
        }
        return unknown(std::move(up), "cancel state unknown");
    }

    UpstreamResult close_position() {
        UpstreamResult up = send(
            "DELETE", alpaca_url(env.base_url, "close_position", req.target, req.query), {}, false);
        if (up.end == End::Answered) {
            const TradeVerdict v = classify_trade_attempt(up.last.curl_code != CURLE_OK,
                                                          is_permanent_transport_error(up.last),
                                                          int(up.last.status), up.last.body);
            if (v == TradeVerdict::Unknown) {
                return unknown(std::move(up),
                               "close state unknown: the position may have been closed; check "
                               "alpaca_positions and alpaca_orders before trying again");
            }
        }
        return done(std::move(up));
    }
};

}  // namespace

UpstreamResult run_trade(const SidecarRequest &req, TradeEnv &env) {
    Flow f{env, req};
    if (req.operation == "submit_order") return f.place(false);
    if (req.operation == "replace_order") return f.place(true);
    if (req.operation == "cancel_order") return f.cancel();
    if (req.operation == "close_position") return f.close_position();
    // cancel_all_orders: cancelling everything twice is the same as once.
    return f.done(f.send("DELETE", alpaca_url(env.base_url, req.operation, req.query), {}, true));
}

}  // namespace pga::sidecar
