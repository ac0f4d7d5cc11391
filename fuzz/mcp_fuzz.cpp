// libFuzzer: the MCP server (sidecar/mcp_server, mcp_tools, mcp_json) on hostile input from both
// sides: the JSON-RPC body an agent POSTs, and the answer Alpaca (through the gateway's
// Upstream) gives a tool call. Whatever comes in: no exception escapes, no internal error
// (500), the status is one the transport defines, and every body is valid JSON (UTF-8, no raw
// control characters) that this server's own parser reads back.
//
// Input byte 0: bit 0 = trade scope, bit 1 = fuzz Alpaca's answer instead of the request;
// then (answer mode) byte 1 picks the tool, byte 2 the HTTP status, the rest is the body.
#include "sidecar/mcp_json.hpp"
#include "sidecar/mcp_server.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

using pga::sidecar::gateway::Request;
using pga::sidecar::gateway::Response;

struct FuzzUpstream : pga::sidecar::gateway::Upstream {
    bool fuzzed = false;
    int status = 200;
    std::string body;
    Response call(const std::string &, const std::string &path, const std::string &) override {
        Response r;
        if (fuzzed) {
            r.status = status;
            r.body = body;
        } else if (path.rfind("/v2/positions", 0) == 0 && path.size() == 13) {
            r.body = R"([{"symbol":"AAPL240119C00190000","qty":"1","market_value":"2"}])";
        } else if (path.rfind("/v2/orders?", 0) == 0) {
            r.body = "[]";
        } else {
            r.body = R"({"id":"a","status":"new","symbol":"A","currency":"USD","is_open":true,)"
                     R"("next_open":"x","next_close":"y","quote":{}})";
        }
        return r;
    }
};

const char *const kCalls[] = {
    R"({"name":"get_account"})",
    R"({"name":"get_positions"})",
    R"({"name":"get_orders","arguments":{"status":"all"}})",
    R"({"name":"get_order","arguments":{"order_id":"61e69015-8549-4bfd-b9c3-01e75843f47d"}})",
    R"({"name":"get_clock"})",
    R"({"name":"get_latest_quote","arguments":{"symbol":"AAPL"}})",
    R"({"name":"place_order","arguments":{"symbol":"AAPL","side":"buy","qty":"1"}})",
    (R"({"name":"replace_order","arguments":{"order_id":"61e69015-8549-4bfd-b9c3-01e75843f47d",)"
     R"("qty":"2"}})"),
    R"({"name":"cancel_order","arguments":{"order_id":"61e69015-8549-4bfd-b9c3-01e75843f47d"}})",
    R"({"name":"close_position","arguments":{"symbol":"AAPL"}})",
};
const int kStatuses[] = {200, 201, 204, 400, 401, 403, 404, 422, 429, 500, 502, 504};

void check(bool cond) {
    if (!cond) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    if (size < 1) return 0;
    const pga::sidecar::gateway::Session session{"s", "c", (data[0] & 1) ? "trade" : "read",
                                                 "paper"};
    FuzzUpstream up;
    Request req;
    req.method = "POST";
    req.path = "/mcp";
    req.headers = {{"content-type", "application/json"},
                   {"accept", "application/json, text/event-stream"},
                   {"mcp-protocol-version", "2025-11-25"}};
    const char *rest = reinterpret_cast<const char *>(data) + 1;
    if (data[0] & 2) {
        if (size < 3) return 0;
        up.fuzzed = true;
        up.status = kStatuses[data[2] % (sizeof kStatuses / sizeof *kStatuses)];
        up.body.assign(rest + 2, size - 3);
        req.body = std::string(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":)") +
                   kCalls[data[1] % (sizeof kCalls / sizeof *kCalls)] + "}";
    } else {
        req.body.assign(rest, size - 1);
    }
    Response r;
    try {
        r = pga::sidecar::mcp::handle(req, session, up);
    } catch (...) {
        std::abort();
    }
    check(r.status == 200 || r.status == 202 || r.status == 400 || r.status == 406 ||
          r.status == 413 || r.status == 415);
    check((r.status == 202) == r.body.empty());
    if (!r.body.empty()) {
        try {
            const auto doc = pga::sidecar::mcp::parse_json(r.body);
            check(doc.is_object() || doc.type == pga::sidecar::mcp::Json::Type::Array);
        } catch (const pga::sidecar::mcp::ParseError &) {
            std::abort();
        }
    }
    return 0;
}
