// One request from a backend, start to finish: redeem the ticket (redeem_step), GET Alpaca
// with rate-limit waits and retries (upstream_retries, rate_wait), wipe the keys, build the
// answer, hand the outcome to the outcome writer and log one line (request_log).
#pragma once
#include "common/cpp_only.hpp"
#include "common/wire.hpp"
#include "sidecar/alpaca_routes.hpp"
#include "sidecar/config.hpp"
#include "sidecar/http_client.hpp"
#include "sidecar/outcome_writer.hpp"
#include "sidecar/rate_limiter.hpp"
#include "sidecar/redeemer.hpp"

#include <functional>

namespace pga::sidecar {

class RequestHandler {
  public:
    RequestHandler(Redeemer &redeemer, RateLimiter &limiter, OutcomeWriter &outcomes)
        : redeemer_(redeemer), limiter_(limiter), outcomes_(outcomes) {}

    // client_gone is polled while waiting; when it says true the work is abandoned.
    SidecarResponse handle(const SidecarRequest &req, const Config &cfg, HttpClient &http,
                           const std::function<bool()> &client_gone);

  private:
    Redeemer &redeemer_;
    RateLimiter &limiter_;
    OutcomeWriter &outcomes_;
};

}  // namespace pga::sidecar
