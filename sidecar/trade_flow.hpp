// Trading requests, carried out at most once (README, "Trading"). Submit and replace: one
// attempt at a time (a 429 is retried: Alpaca has accepted nothing); after a transport error,
// a timeout or a 5xx the order is looked up by its client_order_id, returned if Alpaca has
// it and sent again only when Alpaca says 404; a 422 "client_order_id must be unique" resolves
// to the existing order when it matches the request, else to a 422 naming the field that
// differs. Cancel: DELETE, then GET the order (a DELETE whose answer was lost counts when the
// order is canceled). Cancel all is idempotent and retried as a read. Close position takes no
// client_order_id: it is never repeated after an uncertain attempt, which is reported as such.
#pragma once
#include "common/cpp_only.hpp"
#include "common/wire.hpp"
#include "sidecar/config.hpp"
#include "sidecar/http_client.hpp"
#include "sidecar/rate_limiter.hpp"
#include "sidecar/upstream_retries.hpp"

#include <functional>
#include <string>

namespace pga::sidecar {

struct TradeEnv {
    HttpClient &http;
    RateLimiter &limiter;
    const std::string &credential_id;
    const Config &cfg;
    Clock::time_point deadline;
    const std::string &request_id;
    const std::function<bool()> &client_gone;
    HttpRequest &http_req;  // keys, CA, timeouts set; method, url and body set per step
    const std::string &base_url;
};

// The final answer (or failure) of a trading operation. attempts counts every HTTP request
// made, look-ups included; unknown_outcome is set when the request may have been carried out
// and Alpaca could not tell.
UpstreamResult run_trade(const SidecarRequest &req, TradeEnv &env);

}  // namespace pga::sidecar
