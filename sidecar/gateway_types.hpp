// The types the gateway's two front ends share: the Alpaca-compatible REST front
// (sidecar/gateway_*.cpp) and the MCP server at /mcp (sidecar/mcp_*.cpp).
//
// The HTTP listener (libmicrohttpd) turns each request into a gateway::Request, checks Host
// and Origin, finds the session token (APCA-API-KEY-ID or Authorization: Bearer) and has SQL
// check it. The REST front then forwards the request through an Upstream; the MCP front
// answers JSON-RPC and makes its tool calls through the same Upstream. Nothing here ever holds
// an API key; the token lives only in the listener and the Upstream bound to it.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace pga::sidecar::gateway {

// One HTTP request as the listener received it.
struct Request {
    std::string method;                          // upper case: GET, POST, PATCH, DELETE, ...
    std::string path;                            // as sent, without the query (not decoded)
    std::string query;                           // as sent, without the '?'; may be empty
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
};

// One HTTP answer. The listener adds nothing but Content-Length.
struct Response {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;  // e.g. Content-Type, X-RateLimit-*
    std::string body;
};

// What a valid session token stands for (from SQL). Never the token, never a key.
struct Session {
    std::string id;             // the session's uuid
    std::string credential_id;  // uuid of the one credential it may use
    std::string scope;          // "read" or "trade"
    std::string environment;    // "paper" or "live"
};

// Makes one Alpaca REST call for the session it is bound to: re-checks the token by SQL
// (valid, not revoked or expired, scope allows method + path, credential active), redeems the
// keys, applies the rate limiter, timeouts, size caps and the exactly-once rule for POSTs,
// calls the trading host (or the data host for market-data paths), audits the use (method,
// path, status; never the token) and wipes the keys. Returns Alpaca's status, body and
// rate-limit headers, or the gateway's own Alpaca-style error (401 bad token, 403 path not
// allowed for the scope, 429, 502/504 upstream trouble).
class Upstream {
  public:
    virtual ~Upstream() = default;
    // path_and_query: "/v2/positions", "/v2/orders?status=open&limit=50",
    // "/v2/stocks/AAPL/quotes/latest" (data host). body: JSON for POST/PATCH, else empty.
    virtual Response call(const std::string &method, const std::string &path_and_query,
                          const std::string &body) = 0;
};

}  // namespace pga::sidecar::gateway
