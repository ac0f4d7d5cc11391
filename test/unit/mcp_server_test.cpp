// The MCP Streamable HTTP transport and JSON-RPC layer (sidecar/mcp_server) against a fake
// Upstream: statuses, headers, errors, batches, hostile bodies.
#include "common/version.hpp"
#include "sidecar/mcp_server.hpp"
#include "test/unit/mcp_test_util.hpp"

#include <gtest/gtest.h>

#include <tuple>
#include <vector>

namespace {

using pga::sidecar::mcp::parse_json;
using namespace pga_test;

std::string header_of(const Response &r, const std::string &name) {
    for (const auto &[k, v] : r.headers)
        if (k == name) return v;
    return {};
}

TEST(McpServer, InitializeNegotiatesTheVersionAndNamesTheServer) {
    Mcp m;
    Json j = m.rpc("initialize", R"({"protocolVersion":"2025-06-18","capabilities":{},)"
                                 R"("clientInfo":{"name":"t","version":"1"}})");
    EXPECT_EQ(header_of(m.last, "Content-Type"), "application/json");
    EXPECT_EQ(j.string_of("jsonrpc"), "2.0");
    EXPECT_EQ(j.find("id")->text, "7");
    const Json &res = *j.find("result");
    EXPECT_EQ(res.string_of("protocolVersion"), "2025-06-18");
    EXPECT_EQ(res.find("serverInfo")->string_of("name"), "pg_alpaca");
    EXPECT_EQ(res.find("serverInfo")->string_of("version"), pga::kVersion);
    EXPECT_TRUE(res.find("capabilities")->find("tools"));
    EXPECT_FALSE(res.find("capabilities")->find("resources"));
    // Stateless: no MCP session id is issued (the bearer token names the session).
    EXPECT_EQ(header_of(m.last, "Mcp-Session-Id"), "");
    // An unknown version: the server answers with its latest.
    j = m.rpc("initialize", R"({"protocolVersion":"1999-01-01"})");
    EXPECT_EQ(j.find("result")->string_of("protocolVersion"), "2025-11-25");
    EXPECT_EQ(m.upstream.calls.size(), 0u);
}

TEST(McpServer, InitializeWithoutAVersionIsInvalidParams) {
    Mcp m;
    EXPECT_EQ(error_code(m.rpc("initialize", "{}")), -32602);
}

TEST(McpServer, PingAnswersAnEmptyObject) {
    Mcp m;
    const Json j = m.rpc("ping");
    EXPECT_TRUE(j.find("result")->is_object());
    EXPECT_TRUE(j.find("result")->members.empty());
    // Without params at all, and with a string id (echoed exactly).
    m.send(mcp_request(R"({"jsonrpc":"2.0","id":"abc-1","method":"ping"})"));
    EXPECT_EQ(m.last.status, 200);
    EXPECT_EQ(m.last.body, R"({"jsonrpc":"2.0","id":"abc-1","result":{}})");
}

TEST(McpServer, NotificationsAndResponsesAre202WithoutBody) {
    Mcp m;
    for (const char *b : {R"({"jsonrpc":"2.0","method":"notifications/initialized"})",
                          R"({"jsonrpc":"2.0","method":"notifications/cancelled",)"
                          R"("params":{"requestId":3}})",
                          R"({"jsonrpc":"2.0","method":"no/such/notification"})",
                          R"({"jsonrpc":"2.0","id":5,"result":{}})"}) {
        m.send(mcp_request(b));
        EXPECT_EQ(m.last.status, 202) << b;
        EXPECT_EQ(m.last.body, "") << b;
    }
}

TEST(McpServer, UnknownMethodIs32601) {
    Mcp m;
    for (const char *method : {"resources/list", "prompts/list", "logging/setLevel", "x"})
        EXPECT_EQ(error_code(m.rpc(method)), -32601) << method;
}

TEST(McpServer, ParseErrorIs400With32700AndNullId) {
    Mcp m;
    for (const char *b : {"{", "not json", "", "{\"jsonrpc\":\"2.0\",}", "\xff"}) {
        m.send(mcp_request(b));
        EXPECT_EQ(m.last.status, 400) << b;
        const Json j = parse_json(m.last.body);
        EXPECT_EQ(error_code(j), -32700) << b;
        EXPECT_EQ(j.find("id")->type, Json::Type::Null);
    }
}

TEST(McpServer, InvalidRequestsAre400With32600) {
    Mcp m;
    for (const char *b :
         {R"("just a string")", R"(42)", R"({"id":1,"method":"ping"})",
          R"({"jsonrpc":"1.0","id":1,"method":"ping"})", R"({"jsonrpc":"2.0","id":1,"method":5})",
          R"({"jsonrpc":"2.0","id":null,"method":"ping"})",
          R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})",
          R"({"jsonrpc":"2.0","id":{},"method":"ping"})", R"({"jsonrpc":"2.0","id":1})",
          R"({"jsonrpc":"2.0","id":1,"method":"ping","params":"x"})"}) {
        m.send(mcp_request(b));
        EXPECT_EQ(m.last.status, 400) << b;
        EXPECT_EQ(error_code(parse_json(m.last.body)), -32600) << b << " " << m.last.body;
    }
}

TEST(McpServer, ParamsThatAreNotAnObjectAre32602) {
    Mcp m;
    m.send(mcp_request(R"({"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1]})"));
    EXPECT_EQ(m.last.status, 200);
    EXPECT_EQ(error_code(parse_json(m.last.body)), -32602);
}

TEST(McpServer, ProtocolVersionHeaderIsChecked) {
    Mcp m;
    for (const char *v : {"2025-11-25", "2025-06-18", "2025-03-26"}) {
        m.send(mcp_request(R"({"jsonrpc":"2.0","id":1,"method":"ping"})", v));
        EXPECT_EQ(m.last.status, 200) << v;
    }
    for (const char *v : {"1900-01-01", "not-a-version", "2024-11-05", ""}) {
        Request r = mcp_request(R"({"jsonrpc":"2.0","id":1,"method":"ping"})", v);
        r.headers["mcp-protocol-version"] = v;
        m.send(r);
        EXPECT_EQ(m.last.status, 400) << v;
        EXPECT_EQ(error_code(parse_json(m.last.body)), -32600);
    }
    // Absent: assumed 2025-03-26 (the transport's rule), accepted.
    m.send(mcp_request(R"({"jsonrpc":"2.0","id":1,"method":"ping"})", ""));
    EXPECT_EQ(m.last.status, 200);
}

TEST(McpServer, ContentTypeAcceptAndSize) {
    Mcp m;
    // header, value ("" = absent), expected status
    const std::vector<std::tuple<const char *, const char *, int>> cases{
        {"content-type", "application/json; charset=utf-8", 200},
        {"content-type", "text/plain", 415},
        {"content-type", "", 415},
        {"accept", "text/html", 406},
        {"accept", "text/html;q=0.9, */*;q=0.1", 200},
        {"accept", "", 200},
    };
    for (const auto &[name, value, status] : cases) {
        Request r = mcp_request(R"({"jsonrpc":"2.0","id":1,"method":"ping"})");
        if (*value)
            r.headers[name] = value;
        else
            r.headers.erase(name);
        EXPECT_EQ(m.send(r).status, status) << name << ": " << value;
    }
    Request r = mcp_request(std::string(pga::sidecar::mcp::kMaxBody + 1, ' '));
    EXPECT_EQ(m.send(r).status, 413);
    EXPECT_EQ(m.upstream.calls.size(), 0u);
}

TEST(McpServer, GetDeleteAndOthersAre405WithAllow) {
    Mcp m;
    for (const char *method : {"GET", "DELETE", "PUT", "PATCH", "OPTIONS"}) {
        Request r = mcp_request("");
        r.method = method;
        m.send(r);
        EXPECT_EQ(m.last.status, 405) << method;
        EXPECT_EQ(header_of(m.last, "Allow"), "POST") << method;
    }
}

TEST(McpServer, BatchesOnlyUnder20250326) {
    Mcp m;
    const std::string batch = R"([{"jsonrpc":"2.0","id":1,"method":"ping"},)"
                              R"({"jsonrpc":"2.0","method":"notifications/initialized"},)"
                              R"({"jsonrpc":"2.0","id":2,"method":"nope"}])";
    m.send(mcp_request(batch, "2025-03-26"));
    EXPECT_EQ(m.last.status, 200);
    const Json j = parse_json(m.last.body);
    ASSERT_EQ(j.items.size(), 2u);
    EXPECT_EQ(j.items[0].find("id")->text, "1");
    EXPECT_EQ(error_code(j.items[1]), -32601);
    m.send(mcp_request(batch, "2025-06-18"));
    EXPECT_EQ(m.last.status, 400);
    m.send(mcp_request("[]", "2025-03-26"));
    EXPECT_EQ(m.last.status, 400);
    m.send(
        mcp_request(R"([{"jsonrpc":"2.0","method":"notifications/initialized"}])", "2025-03-26"));
    EXPECT_EQ(m.last.status, 202);
    // initialize must not be batched.
    m.send(mcp_request(R"([{"jsonrpc":"2.0","id":1,"method":"initialize",)"
                       R"("params":{"protocolVersion":"2025-03-26"}}])",
                       "2025-03-26"));
    EXPECT_EQ(m.last.status, 400);
    std::string big = "[";
    for (int i = 0; i < 33; ++i)
        big += std::string(i ? "," : "") + R"({"jsonrpc":"2.0","id":1,"method":"ping"})";
    m.send(mcp_request(big + "]", "2025-03-26"));
    EXPECT_EQ(m.last.status, 400);
}

TEST(McpServer, HostileBodiesGetCleanErrors) {
    Mcp m;
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    const std::string deep_params = R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":)" +
                                    std::string(50, '{') + std::string(50, '}') + "}";
    const std::string huge_id =
        R"({"jsonrpc":"2.0","id":)" + std::string(5000, '9') + R"(,"method":"ping"})";
    const std::string long_id =
        R"({"jsonrpc":"2.0","id":")" + std::string(5000, 'a') + R"(","method":"ping"})";
    for (const std::string &b :
         {deep, deep_params, huge_id, long_id,
          std::string("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xc3\x28\"}"),
          std::string(
              "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"a\":\"\\ud800\"}}"),
          std::string(R"({"jsonrpc":"2.0","id":1,"id":2,"method":"ping"})")}) {
        m.send(mcp_request(b));
        EXPECT_EQ(m.last.status, 400) << b.substr(0, 60);
        const Json j = parse_json(m.last.body);
        EXPECT_TRUE(error_code(j) == -32700 || error_code(j) == -32600) << m.last.body;
        for (char c : m.last.body) EXPECT_TRUE(c >= 0x20 && c < 0x7f);
    }
    EXPECT_EQ(m.upstream.calls.size(), 0u);
}

TEST(McpServer, WwwAuthenticate) {
    using pga::sidecar::mcp::www_authenticate;
    EXPECT_EQ(www_authenticate(false), "Bearer realm=\"pg_alpaca\"");
    EXPECT_EQ(
        www_authenticate(true).rfind("Bearer realm=\"pg_alpaca\", error=\"invalid_token\"", 0), 0u);
}

}  // namespace

namespace {

struct ThrowingUpstream : pga::sidecar::gateway::Upstream {
    pga::sidecar::gateway::Response call(const std::string &, const std::string &,
                                         const std::string &) override {
        throw std::runtime_error("db connection string host=secret");
    }
};

TEST(McpServer, AnUpstreamThatThrowsIsAnInternalErrorWithoutItsText) {
    ThrowingUpstream up;
    const auto r = pga::sidecar::mcp::handle(
        pga_test::mcp_request(R"({"jsonrpc":"2.0","id":3,"method":"tools/call",)"
                              R"("params":{"name":"get_clock"}})"),
        pga_test::session("read"), up);
    EXPECT_EQ(r.status, 200);
    const auto j = pga::sidecar::mcp::parse_json(r.body);
    EXPECT_EQ(pga_test::error_code(j), -32603);
    EXPECT_EQ(j.find("id")->text, "3");
    EXPECT_EQ(r.body.find("secret"), std::string::npos);
}

}  // namespace
