// One request from a backend, start to finish: redeem the ticket, wait for the credential's
// rate-limit token, GET Alpaca with retries, wipe the keys, log one line, build the answer.
#pragma once
#include "common/cpp_only.hpp"
#include "common/rate_limiter.hpp"
#include "common/wire.hpp"
#include "sidecar/config.hpp"
#include "sidecar/http_client.hpp"
#include "sidecar/redeemer.hpp"

#include <functional>
#include <string>

namespace pga::sidecar {

// Alpaca path for an operation ("/v2/account", ...); empty for an unknown one.
std::string alpaca_path(const std::string &operation);

// base + path + "?k=v&..." (query keys and values are already restricted by the wire decoder).
std::string alpaca_url(const std::string &base, const std::string &operation,
                       const std::vector<std::pair<std::string, std::string>> &query);

class RequestHandler {
  public:
    RequestHandler(Redeemer &redeemer, RateLimiter &limiter)
        : redeemer_(redeemer), limiter_(limiter) {}

    // client_gone is polled while waiting; when it says true the work is abandoned.
    SidecarResponse handle(const SidecarRequest &req, const Config &cfg, HttpClient &http,
                           const std::function<bool()> &client_gone);

  private:
    Redeemer &redeemer_;
    RateLimiter &limiter_;
};

}  // namespace pga::sidecar
