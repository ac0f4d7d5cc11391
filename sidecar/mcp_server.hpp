// The MCP server at /mcp: the Streamable HTTP transport of the MCP specification (2025-11-25,
// and 2025-06-18 / 2025-03-26 clients), JSON answers only (no SSE stream), stateless: no
// Mcp-Session-Id is issued, since the bearer token already names the gateway session and every
// tool call re-checks it. The listener has checked Host, Origin and the token before this runs.
//
//   POST   one JSON-RPC message (a batch only under 2025-03-26, which allowed them)
//          request -> 200 application/json; notification or response -> 202, no body;
//          parse error (-32700) or invalid request (-32600) -> 400; unknown method (-32601) and
//          invalid params (-32602) -> 200 with the error; unsupported MCP-Protocol-Version
//          -> 400; not application/json -> 415; Accept without JSON -> 406; body > 1 MiB -> 413
//   GET    405 (no server-initiated SSE stream), Allow: POST
//   DELETE 405 (no MCP session to end: revoke the gateway session in SQL), Allow: POST
//
// Methods: initialize, ping, tools/list, tools/call; notifications are accepted and ignored.
#pragma once
#include "common/cpp_only.hpp"
#include "sidecar/gateway_types.hpp"

#include <cstddef>
#include <string>

namespace pga::sidecar::mcp {

inline constexpr const char *kLatestProtocolVersion = "2025-11-25";
inline constexpr std::size_t kMaxBody = 1024 * 1024;
inline constexpr std::size_t kMaxBatch = 32;

bool is_supported_protocol_version(const std::string &v) noexcept;

// Never throws: every failure is an HTTP answer.
gateway::Response handle(const gateway::Request &req, const gateway::Session &session,
                         gateway::Upstream &upstream);

// The WWW-Authenticate value of a 401 at /mcp (RFC 6750): Bearer realm="pg_alpaca", plus
// error="invalid_token" when a token was presented but is not (or no longer) valid. No
// resource_metadata: tokens come from alpaca_open_session() in SQL, not from OAuth.
std::string www_authenticate(bool token_presented);

}  // namespace pga::sidecar::mcp
