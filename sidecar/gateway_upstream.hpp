// The gateway's Upstream (sidecar/gateway_types.hpp) bound to one presented session token:
// checks the request's shape (gateway_paths), redeems the token for this method and path by
// SQL (sidecar/gateway_db: scope, live rule, audit), forwards with the real keys through the
// sidecar's HttpClient, rate limiter, timeouts and size caps (GETs retried like the SQL path;
// POST/PATCH/DELETE through sidecar/trade_flow's exactly-once rules, a client_order_id added
// to orders that lack one), queues the audit row's HTTP status, and wipes the keys.
#pragma once
#include "common/cpp_only.hpp"
#include "common/secure_memory.hpp"
#include "sidecar/config.hpp"
#include "sidecar/gateway_audit.hpp"
#include "sidecar/gateway_types.hpp"
#include "sidecar/http_client.hpp"
#include "sidecar/rate_limiter.hpp"
#include "sidecar/redeemer.hpp"

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace pga::sidecar::gateway {

// HttpClients kept warm across requests (each holds its keep-alive connections).
class ClientPool {
  public:
    explicit ClientPool(const CurlShare &share) : share_(share) {}
    std::unique_ptr<HttpClient> take();
    void give(std::unique_ptr<HttpClient> c);

  private:
    const CurlShare &share_;
    std::mutex mu_;
    std::vector<std::unique_ptr<HttpClient>> idle_;
};

// What every request of the gateway shares with the rest of the sidecar.
struct Deps {
    Redeemer &db;
    RateLimiter &limiter;
    ClientPool &clients;
    AuditQueue &audit;
    std::function<std::shared_ptr<const Config>()> config;
};

// Alpaca-style error bodies of the gateway itself.
Response error_response(int status, long code, const std::string &message);
Response unauthorized();  // 401, Alpaca's own body

class TokenUpstream : public Upstream {
  public:
    TokenUpstream(Deps &deps, SecureBytes token) : deps_(deps), token_(std::move(token)) {}
    Response call(const std::string &method, const std::string &path_and_query,
                  const std::string &body) override;
    // The scope of the session the last call ran under ("none" before one succeeded).
    const std::string &scope() const noexcept { return scope_; }

  private:
    Deps &deps_;
    SecureBytes token_;
    std::string scope_ = "none";
};

}  // namespace pga::sidecar::gateway
