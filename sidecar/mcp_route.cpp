#include "sidecar/mcp_route.hpp"

#include "common/session_token.hpp"
#include "sidecar/gateway_db.hpp"
#include "sidecar/gateway_paths.hpp"
#include "sidecar/log.hpp"
#include "sidecar/mcp_server.hpp"
#include "sidecar/metrics.hpp"

#include <chrono>

namespace pga::sidecar::mcp {
namespace {

gateway::Response unauthorized(bool token_presented) {
    gateway::Response r = gateway::unauthorized();
    r.headers.emplace_back("WWW-Authenticate", www_authenticate(token_presented));
    return r;
}

}  // namespace

gateway::Response route(const gateway::Request &req, gateway::Deps &deps) {
    using metrics::GatewayOutcome;
    if (req.path != "/mcp") return gateway::error_response(404, 40410000, "endpoint not found");
    const auto it = req.headers.find("authorization");
    const std::string_view token =
        gateway::presented_token(nullptr, it == req.headers.end() ? nullptr : &it->second);
    if (token.empty()) {
        metrics::gateway_request("none", GatewayOutcome::Unauthorized);
        return unauthorized(false);
    }
    if (!looks_like_session_token(token)) {
        metrics::gateway_request("none", GatewayOutcome::Unauthorized);
        return unauthorized(true);
    }
    SecureBytes secret = secure_copy(token);
    const auto cfg = deps.config();
    const auto deadline =
        Redeemer::Clock::now() + std::chrono::milliseconds(cfg->request_deadline_ms);
    const gateway::SessionCheck check = gateway::check_session(deps.db, secret, deadline);
    switch (check.status) {
        case gateway::DbStatus::Ok:
            break;
        case gateway::DbStatus::BadToken:
        case gateway::DbStatus::Forbidden:
            metrics::gateway_request("none", GatewayOutcome::Unauthorized);
            return unauthorized(true);
        case gateway::DbStatus::DatabaseError:
            log_event(LogLevel::Warn, "gateway_db", {{"message", check.message}});
            return gateway::error_response(503, 50310000, "the gateway cannot reach its database");
        case gateway::DbStatus::Failed:
            log_event(LogLevel::Error, "gateway_db", {{"message", check.message}});
            return gateway::error_response(500, 50010000, "internal gateway error");
    }
    gateway::TokenUpstream upstream(deps, std::move(secret));
    return handle(req, check.session, upstream);
}

}  // namespace pga::sidecar::mcp
