// Helpers of the MCP unit tests: POST a JSON-RPC body to mcp::handle, read the answer.
#pragma once
#include "sidecar/mcp_server.hpp"
#include "test/unit/mcp_fake_upstream.hpp"

#include <gtest/gtest.h>

#include <string>

namespace pga_test {

using pga::sidecar::gateway::Request;
using pga::sidecar::gateway::Response;
using pga::sidecar::mcp::Json;

inline Request mcp_request(const std::string &body, const std::string &version = "2025-11-25") {
    Request r;
    r.method = "POST";
    r.path = "/mcp";
    r.headers["content-type"] = "application/json";
    r.headers["accept"] = "application/json, text/event-stream";
    if (!version.empty()) r.headers["mcp-protocol-version"] = version;
    r.body = body;
    return r;
}

struct Mcp {
    FakeUpstream upstream;
    std::string scope = "read";
    Response last;

    Response send(const Request &r) {
        last = pga::sidecar::mcp::handle(r, session(scope), upstream);
        return last;
    }
    // POSTs one request and returns its parsed answer (expects HTTP 200 + JSON).
    Json rpc(const std::string &method, const std::string &params = "{}") {
        send(mcp_request(R"({"jsonrpc":"2.0","id":7,"method":")" + method + R"(","params":)" +
                         params + "}"));
        EXPECT_EQ(last.status, 200) << last.body;
        return pga::sidecar::mcp::parse_json(last.body);
    }
    // tools/call; returns the result object.
    Json call(const std::string &tool, const std::string &arguments = "{}") {
        const Json j =
            rpc("tools/call", R"({"name":")" + tool + R"(","arguments":)" + arguments + "}");
        const Json *res = j.find("result");
        EXPECT_TRUE(res) << last.body;
        return res ? *res : Json{};
    }
};

inline bool is_error_result(const Json &result) {
    const Json *e = result.find("isError");
    return e && e->type == Json::Type::True;
}

inline std::string result_text(const Json &result) {
    const Json *c = result.find("content");
    if (!c || c->items.empty()) return {};
    return std::string(c->items[0].string_of("text"));
}

inline int error_code(const Json &answer) {
    const Json *e = answer.find("error");
    const Json *c = e ? e->find("code") : nullptr;
    return c ? std::stoi(c->text) : 0;
}

}  // namespace pga_test
