// The gateway's checks before SQL and Alpaca: path and query shapes, Host and Origin, where the
// token is read from, and the client_order_id added to orders (the body otherwise unchanged).
#include "sidecar/gateway_paths.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using namespace pga::sidecar::gateway;

TEST(GatewayPaths, PathShapes) {
    for (const char *ok : {"/v2/account", "/v2/orders/7d4a0e36-6c2c-4e9b-9f3a-2f5f0c9f1a11",
                           "/v2/orders:by_client_order_id", "/v2/positions/BRK.B",
                           "/v2/stocks/AAPL/quotes/latest", "/v2/account/portfolio/history"}) {
        EXPECT_TRUE(path_shape_ok(ok)) << ok;
    }
    for (const char *bad : {"",
                            "/",
                            "/v2",
                            "/v2/",
                            "/v1/account",
                            "v2/account",
                            "//v2/account",
                            "/v2//account",
                            "/v2/../account",
                            "/v2/orders/..",
                            "/v2/positions/AAPL%2fX",
                            "/v2/%2e%2e/account",
                            "/v2/account/",
                            "/v2/account?x=1",
                            "/v2/acc ount",
                            "/v2/account\r\nX: 1",
                            "/v2/account#frag",
                            "/v2/\xc3\xa9",
                            "/v2/account;x",
                            "/V2/account"}) {
        EXPECT_FALSE(path_shape_ok(bad)) << bad;
    }
    EXPECT_FALSE(path_shape_ok("/v2/" + std::string(253, 'a')));
    EXPECT_TRUE(path_shape_ok("/v2/" + std::string(252, 'a')));
}

TEST(GatewayPaths, QueryShapes) {
    EXPECT_TRUE(query_shape_ok(""));
    EXPECT_TRUE(query_shape_ok("status=all&limit=500&nested=true"));
    EXPECT_TRUE(query_shape_ok("symbols=AAPL%2CMSFT&after=2024-01-01T00%3A00%3A00Z&x=a+b"));
    for (const char *bad : {"a=<script>", "a='1'", "a=\"", "a=1;b", "a=\r\n", "a= b", "a=#",
                            "a=/etc/passwd", "a=\x01"}) {
        EXPECT_FALSE(query_shape_ok(bad)) << bad;
    }
    EXPECT_FALSE(query_shape_ok(std::string(2049, 'a')));
    const auto q = split_query("a=1&b=&c&&d=x=y");
    ASSERT_EQ(q.size(), 4u);
    EXPECT_EQ(q[0], std::make_pair(std::string("a"), std::string("1")));
    EXPECT_EQ(q[1], std::make_pair(std::string("b"), std::string()));
    EXPECT_EQ(q[2], std::make_pair(std::string("c"), std::string()));
    EXPECT_EQ(q[3], std::make_pair(std::string("d"), std::string("x=y")));
}

TEST(GatewayPaths, HostAndOrigin) {
    const std::vector<std::string> none;
    for (const char *ok : {"localhost", "localhost:8443", "LocalHost:1", "127.0.0.1", "127.0.0.1:9",
                           "[::1]", "[::1]:8443"}) {
        EXPECT_TRUE(host_allowed(ok, none)) << ok;
    }
    for (const char *bad :
         {"", ":80", "evil.example", "evil.example:8443", "localhost.evil.example", "127.0.0.2",
          "127.0.0.1.evil.example", "[::2]", "[::1", "0.0.0.0"}) {
        EXPECT_FALSE(host_allowed(bad, none)) << bad;
    }
    const std::vector<std::string> extra = {"gw.internal", "gw.example:443"};
    EXPECT_TRUE(host_allowed("GW.internal:8443", extra));
    EXPECT_TRUE(host_allowed("gw.example", extra));
    EXPECT_FALSE(host_allowed("gw.internal.evil", extra));

    const std::vector<std::string> origins = {"http://localhost:3000"};
    EXPECT_TRUE(origin_allowed(nullptr, origins));
    const std::string same = "http://localhost:3000", upper = "HTTP://LOCALHOST:3000";
    const std::string other = "http://localhost:3001", null_origin = "null", empty;
    EXPECT_TRUE(origin_allowed(&same, origins));
    EXPECT_TRUE(origin_allowed(&upper, origins));
    EXPECT_FALSE(origin_allowed(&other, origins));
    EXPECT_FALSE(origin_allowed(&null_origin, origins));
    EXPECT_FALSE(origin_allowed(&empty, origins));
    EXPECT_FALSE(origin_allowed(&same, none));
}

TEST(GatewayPaths, PresentedToken) {
    const std::string key = "pgas_k", bearer = "Bearer pgas_b", lower = "bearer  pgas_c";
    const std::string basic = "Basic dXNlcjpwYXNz", bare = "Bearer", empty;
    EXPECT_EQ(presented_token(&key, &bearer), "pgas_k");
    EXPECT_EQ(presented_token(nullptr, &bearer), "pgas_b");
    EXPECT_EQ(presented_token(&empty, &lower), "pgas_c");
    EXPECT_EQ(presented_token(nullptr, &basic), "");
    EXPECT_EQ(presented_token(nullptr, &bare), "");
    EXPECT_EQ(presented_token(nullptr, nullptr), "");
}

TEST(GatewayPaths, ClientOrderIdAdded) {
    EXPECT_EQ(with_client_order_id(R"({"symbol":"AAPL","qty":1})", "pga-1"),
              R"({"client_order_id":"pga-1","symbol":"AAPL","qty":1})");
    EXPECT_EQ(with_client_order_id("  { }", "pga-1"), R"(  {"client_order_id":"pga-1" })");
    const std::string given = R"({"qty": 1.50, "client_order_id": "mine"})";
    EXPECT_EQ(with_client_order_id(given, "pga-1"), given);
    for (const char *bad : {"", "[]", "null", "\"x\"", "{", R"({"client_order_id":5})",
                            R"({"client_order_id":""})", R"({"client_order_id":null})",
                            R"({"a":1,"a":2})", R"({"client_order_id":"a","client_order_id":"b"})",
                            "{\"s\":\"\x01\"}", "{\"s\":\"\xff\"}", R"({"a":1} x)"}) {
        EXPECT_EQ(with_client_order_id(bad, "pga-1"), "") << bad;
    }
}

}  // namespace
