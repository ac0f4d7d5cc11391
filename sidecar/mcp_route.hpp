// /mcp on the gateway's listener: the bearer token (Authorization: Bearer only, as MCP says;
// APCA-API-KEY-ID is the REST front's), its session checked by SQL (401 with WWW-Authenticate
// when absent, malformed, expired or revoked), then the MCP server (sidecar/mcp_server) with an
// Upstream bound to that token, which re-checks it on every tool call. The listener has
// checked Host and Origin before this runs.
#pragma once
#include "common/cpp_only.hpp"
#include "sidecar/gateway_types.hpp"
#include "sidecar/gateway_upstream.hpp"

namespace pga::sidecar::mcp {

gateway::Response route(const gateway::Request &req, gateway::Deps &deps);

}  // namespace pga::sidecar::mcp
