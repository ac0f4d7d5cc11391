// The MCP tools (sidecar/mcp_tools, mcp_schema, mcp_positions) against a fake Upstream: what
// each tool asks Alpaca, its result, scope filtering, and that bad arguments send nothing.
#include "sidecar/mcp_positions.hpp"
#include "sidecar/mcp_tools.hpp"
#include "test/unit/mcp_test_util.hpp"

#include <gtest/gtest.h>

#include <set>

namespace {

using pga::sidecar::mcp::add_decimals;
using pga::sidecar::mcp::parse_json;
using namespace pga_test;

const char *kOrderId = "61e69015-8549-4bfd-b9c3-01e75843f47d";
const char *kOrder =
    R"({"id":"61e69015-8549-4bfd-b9c3-01e75843f47d","client_order_id":"c1","symbol":"AAPL",)"
    R"("side":"buy","type":"limit","qty":"2","limit_price":"150.50","status":"new"})";

std::set<std::string> tool_names(Mcp &m) {
    const Json j = m.rpc("tools/list");
    std::set<std::string> names;
    for (const Json &t : j.find("result")->find("tools")->items) names.insert(t.find("name")->text);
    return names;
}

const Json *tool_def(const Json &list, const std::string &name) {
    for (const Json &t : list.find("result")->find("tools")->items)
        if (t.string_of("name") == name) return &t;
    return nullptr;
}

TEST(McpTools, ListFollowsTheScope) {
    const std::set<std::string> reads{"get_account", "get_positions", "get_orders",
                                      "get_order",   "get_clock",     "get_latest_quote"};
    std::set<std::string> all = reads;
    all.insert({"place_order", "replace_order", "cancel_order", "close_position"});
    Mcp read;
    EXPECT_EQ(tool_names(read), reads);
    Mcp trade;
    trade.scope = "trade";
    EXPECT_EQ(tool_names(trade), all);
    Mcp other;
    other.scope = "admin";  // unknown scope: nothing (deny by default)
    EXPECT_TRUE(tool_names(other).empty());
}

TEST(McpTools, DefinitionsHaveSchemasAndAnnotations) {
    Mcp m;
    m.scope = "trade";
    const Json list = m.rpc("tools/list");
    for (const Json &t : list.find("result")->find("tools")->items) {
        const std::string name(t.string_of("name"));
        EXPECT_FALSE(t.string_of("description").empty()) << name;
        const Json *in = t.find("inputSchema");
        ASSERT_TRUE(in) << name;
        EXPECT_EQ(in->string_of("type"), "object");
        EXPECT_EQ(in->find("additionalProperties")->type, Json::Type::False) << name;
        const Json *out = t.find("outputSchema");
        ASSERT_TRUE(out) << name;
        EXPECT_EQ(out->string_of("type"), "object");
        const Json *ann = t.find("annotations");
        const bool trade = name == "place_order" || name == "replace_order" ||
                           name == "cancel_order" || name == "close_position";
        EXPECT_EQ(ann->find("readOnlyHint")->type, trade ? Json::Type::False : Json::Type::True)
            << name;
        if (trade) {
            EXPECT_EQ(ann->find("destructiveHint")->type, Json::Type::True) << name;
        }
    }
    const Json *place = tool_def(list, "place_order");
    const Json *qty = place->find("inputSchema")->find("properties")->find("qty");
    EXPECT_EQ(qty->find("pattern")->text, "^(0|[1-9][0-9]{0,14})(\\.[0-9]{1,9})?$");
    const Json *side = place->find("inputSchema")->find("properties")->find("side");
    EXPECT_EQ(side->find("enum")->items.size(), 2u);
    const Json *req = place->find("inputSchema")->find("required");
    EXPECT_EQ(to_json(*req), R"(["symbol","side"])");
}

TEST(McpTools, GetAccountPassesAlpacasObjectThrough) {
    Mcp m;
    const std::string account =
        R"({"id":"7a1b0e0c-0b0e-4c1e-9a9e-1f2d3c4b5a69","status":"ACTIVE","currency":"USD",)"
        R"("cash":"100000.12","daytrade_count":0,"multiplier":"4"})";
    m.upstream.answer("GET /v2/account", 200, account);
    const Json r = m.call("get_account");
    EXPECT_FALSE(is_error_result(r));
    ASSERT_EQ(m.upstream.calls.size(), 1u);
    EXPECT_EQ(m.upstream.calls[0].method, "GET");
    EXPECT_EQ(m.upstream.calls[0].path, "/v2/account");
    EXPECT_EQ(to_json(*r.find("structuredContent")), account);
    EXPECT_EQ(result_text(r), account);  // text mirrors the structured content
}

TEST(McpTools, GetPositionsParsesOptionsAndGroupsThem) {
    Mcp m;
    m.upstream.answer(
        "GET /v2/positions", 200,
        R"([{"symbol":"AAPL","asset_class":"us_equity","qty":"10","market_value":"1898.4"},)"
        R"({"symbol":"AAPL240119C00190000","asset_class":"us_option","qty":"2",)"
        R"("market_value":"640","cost_basis":"900","unrealized_pl":"-260"},)"
        R"({"symbol":"AAPL240119P00180000","asset_class":"us_option","qty":"1",)"
        R"("market_value":"185","cost_basis":"370","unrealized_pl":"-185"},)"
        R"({"symbol":"SPY250321P00452500","asset_class":"us_option","qty":"-1",)"
        R"("market_value":"-435","cost_basis":"-680","unrealized_pl":"245.00"}])");
    const Json r = m.call("get_positions");
    ASSERT_FALSE(is_error_result(r)) << result_text(r);
    const Json &s = *r.find("structuredContent");
    const auto &pos = s.find("positions")->items;
    ASSERT_EQ(pos.size(), 4u);
    EXPECT_EQ(pos[0].find("option")->type, Json::Type::Null);
    EXPECT_EQ(to_json(*pos[1].find("option")),
              R"({"underlying":"AAPL","expiration":"2024-01-19","type":"call","strike":"190"})");
    EXPECT_EQ(pos[3].find("option")->string_of("strike"), "452.5");
    const auto &groups = s.find("options_by_underlying")->items;
    ASSERT_EQ(groups.size(), 2u);
    EXPECT_EQ(to_json(groups[0]),
              R"({"underlying":"AAPL","positions":2,)"
              R"("symbols":["AAPL240119C00190000","AAPL240119P00180000"],)"
              R"("qty":"3","market_value":"825","cost_basis":"1270","unrealized_pl":"-445"})");
    EXPECT_EQ(groups[1].string_of("underlying"), "SPY");
    EXPECT_EQ(groups[1].string_of("unrealized_pl"), "245");
}

TEST(McpTools, DecimalSumsAreExact) {
    EXPECT_EQ(*add_decimals("0.1", "0.2"), "0.3");
    EXPECT_EQ(*add_decimals("-12.50", "3"), "-9.5");
    EXPECT_EQ(*add_decimals("5", "-5.000"), "0");
    EXPECT_EQ(*add_decimals("99999999999999999999.999999999", "0.000000001"),
              "100000000000000000000");
    EXPECT_EQ(*add_decimals("-0.0012345678", "-1"), "-1.0012345678");
    EXPECT_FALSE(add_decimals("1e3", "1"));
    EXPECT_FALSE(add_decimals("1.", "1"));
    EXPECT_FALSE(add_decimals("", "1"));
}

TEST(McpTools, GetOrdersBuildsTheQueryFromValidatedArguments) {
    Mcp m;
    m.upstream.answer("GET /v2/orders", 200, std::string("[") + kOrder + "]");
    Json r = m.call("get_orders");
    ASSERT_FALSE(is_error_result(r)) << result_text(r);
    EXPECT_EQ(m.upstream.calls.back().path, "/v2/orders?status=open&limit=50&direction=desc");
    EXPECT_EQ(r.find("structuredContent")->find("orders")->items.size(), 1u);
    r = m.call("get_orders", R"({"status":"all","limit":500,"direction":"asc"})");
    EXPECT_EQ(m.upstream.calls.back().path, "/v2/orders?status=all&limit=500&direction=asc");
    const std::size_t before = m.upstream.calls.size();
    for (const char *bad : {R"({"status":"open&x=1"})", R"({"limit":0})", R"({"limit":501})",
                            R"({"limit":"50"})", R"({"limit":5.5})", R"({"limit":1e2})",
                            R"({"direction":"up"})", R"({"symbols":"AAPL"})"}) {
        r = m.call("get_orders", bad);
        EXPECT_TRUE(is_error_result(r)) << bad;
        EXPECT_NE(result_text(r).find("nothing was sent"), std::string::npos) << bad;
    }
    EXPECT_EQ(m.upstream.calls.size(), before);
}

TEST(McpTools, GetOrderAndClockAndQuote) {
    Mcp m;
    m.upstream.answer(std::string("GET /v2/orders/") + kOrderId, 200, kOrder);
    Json r = m.call("get_order", std::string(R"({"order_id":")") + kOrderId + "\"}");
    ASSERT_FALSE(is_error_result(r)) << result_text(r);
    EXPECT_EQ(r.find("structuredContent")->string_of("status"), "new");
    for (const char *bad :
         {R"({})", R"({"order_id":"../account"})",
          R"({"order_id":"61e69015-8549-4bfd-b9c3-01e75843f47d/x"})", R"({"order_id":12})"}) {
        const std::size_t before = m.upstream.calls.size();
        EXPECT_TRUE(is_error_result(m.call("get_order", bad))) << bad;
        EXPECT_EQ(m.upstream.calls.size(), before) << bad;
    }
    m.upstream.answer(
        "GET /v2/clock", 200,
        R"({"timestamp":"2024-01-02T10:00:00-05:00","is_open":true,)"
        R"("next_open":"2024-01-03T09:30:00-05:00","next_close":"2024-01-02T16:00:00-05:00"})");
    r = m.call("get_clock");
    EXPECT_EQ(r.find("structuredContent")->find("is_open")->type, Json::Type::True);
    m.upstream.answer("GET /v2/stocks/BRK.B/quotes/latest", 200,
                      R"({"symbol":"BRK.B","quote":{"ap":412.10,"as":3,"bp":412.05,"bs":1,)"
                      R"("t":"2024-01-02T15:00:00Z"}})");
    r = m.call("get_latest_quote", R"({"symbol":"BRK.B"})");
    ASSERT_FALSE(is_error_result(r)) << result_text(r);
    // The price keeps its exact text (412.10, not 412.1).
    EXPECT_NE(result_text(r).find("\"ap\":412.10"), std::string::npos) << result_text(r);
    m.call("get_latest_quote", R"({"symbol":"AAPL","feed":"iex"})");
    EXPECT_EQ(m.upstream.calls.back().path, "/v2/stocks/AAPL/quotes/latest?feed=iex");
    const std::size_t before = m.upstream.calls.size();
    for (const char *bad :
         {R"({"symbol":"aapl"})", R"({"symbol":"AAPL/../x"})", R"({"symbol":"AAPL?feed=sip"})",
          R"({})", R"({"symbol":"A","x":1})", R"({"symbol":"AAPL","feed":"otc"})"})
        EXPECT_TRUE(is_error_result(m.call("get_latest_quote", bad))) << bad;
    EXPECT_EQ(m.upstream.calls.size(), before);
}

TEST(McpTools, AlpacaErrorsComeBackAsToolErrorsWithItsMessage) {
    Mcp m;
    m.upstream.answer("GET /v2/account", 403, R"({"code":40310000,"message":"forbidden."})");
    Json r = m.call("get_account");
    EXPECT_TRUE(is_error_result(r));
    EXPECT_EQ(result_text(r), "Alpaca refused the request (HTTP 403, code 40310000): forbidden.");
    EXPECT_FALSE(r.find("structuredContent"));  // clients would check it against outputSchema
    m.upstream.answer("GET /v2/positions", 502, "<html>bad gateway</html>");
    r = m.call("get_positions");
    EXPECT_TRUE(is_error_result(r));
    EXPECT_EQ(result_text(r), "Alpaca refused the request (HTTP 502): no message");
    // A 2xx that is not what the tool expects: a tool error, not a crash.
    m.upstream.answer("GET /v2/positions", 200, R"({"not":"an array"})");
    EXPECT_TRUE(is_error_result(m.call("get_positions")));
    m.upstream.answer("GET /v2/clock", 200, R"([1,2)");
    EXPECT_TRUE(is_error_result(m.call("get_clock")));
    m.upstream.answer("GET /v2/clock", 200, R"({"is_open":"yes"})");
    EXPECT_TRUE(is_error_result(m.call("get_clock")));
}

TEST(McpTools, ReadSessionCannotCallTradingTools) {
    Mcp m;  // read
    for (const char *t :
         {"place_order", "replace_order", "cancel_order", "close_position", "no_such_tool"}) {
        const Json j = m.rpc("tools/call", std::string(R"({"name":")") + t +
                                               R"(","arguments":{"symbol":"AAPL","side":"buy",)"
                                               R"("qty":"1"}})");
        EXPECT_EQ(error_code(j), -32602) << t;
    }
    EXPECT_EQ(m.upstream.calls.size(), 0u);
}

TEST(McpTools, PlaceOrderSendsDecimalStringsAndAClientOrderId) {
    Mcp m;
    m.scope = "trade";
    m.upstream.answer("POST /v2/orders", 200, kOrder);
    Json r = m.call("place_order", R"({"symbol":"AAPL","side":"buy","type":"limit","qty":2,)"
                                   R"("limit_price":"150.50","time_in_force":"gtc"})");
    ASSERT_FALSE(is_error_result(r)) << result_text(r);
    ASSERT_EQ(m.upstream.calls.size(), 1u);
    const Json sent = parse_json(m.upstream.calls[0].body);
    EXPECT_EQ(sent.string_of("qty"), "2");  // a number's exact text, sent as a string
    EXPECT_EQ(sent.string_of("limit_price"), "150.50");
    EXPECT_EQ(sent.string_of("time_in_force"), "gtc");
    const std::string coid(sent.string_of("client_order_id"));
    EXPECT_EQ(coid.size(), 36u);
    EXPECT_EQ(coid.rfind("mcp-", 0), 0u);
    // Two calls, two fresh ids; a given one is kept.
    m.call("place_order", R"({"symbol":"AAPL","side":"buy","qty":"1"})");
    EXPECT_NE(parse_json(m.upstream.calls[1].body).string_of("client_order_id"), coid);
    m.call("place_order",
           R"({"symbol":"BTC/USD","side":"sell","notional":"25.5","client_order_id":"mine-1",)"
           R"("extended_hours":false})");
    const Json third = parse_json(m.upstream.calls[2].body);
    EXPECT_EQ(third.string_of("client_order_id"), "mine-1");
    EXPECT_EQ(third.string_of("symbol"), "BTC/USD");
    EXPECT_EQ(third.find("extended_hours")->type, Json::Type::False);
    EXPECT_FALSE(third.find("qty"));
}

TEST(McpTools, PlaceOrderRejectsBadArgumentsBeforeAnyCall) {
    Mcp m;
    m.scope = "trade";
    for (const char *bad :
         {R"({"side":"buy","qty":"1"})",                                 // no symbol
          R"({"symbol":"AAPL","qty":"1"})",                              // no side
          R"({"symbol":"AAPL","side":"buy"})",                           // no qty/notional
          R"({"symbol":"AAPL","side":"buy","qty":"1","notional":"5"})",  // both
          R"({"symbol":"AAPL","side":"short","qty":"1"})",
          R"({"symbol":"AAPL","side":"buy","qty":0.1e1})",  // number, not plain text
          R"({"symbol":"AAPL","side":"buy","qty":1.5e-3})",
          R"({"symbol":"AAPL","side":"buy","qty":"1e3"})",
          R"({"symbol":"AAPL","side":"buy","qty":"-1"})",
          R"({"symbol":"AAPL","side":"buy","qty":"0"})",
          R"({"symbol":"AAPL","side":"buy","qty":"0.0000000001"})",  // 10 decimals
          R"({"symbol":"AAPL","side":"buy","qty":"1","limit_price":"NaN"})",
          R"({"symbol":"AAPL","side":"buy","qty":"1","limit_price":"１"})",  // fullwidth 1
          R"({"symbol":"AAPL","side":"buy","qty":true})",
          R"({"symbol":"AAPL","side":"buy","qty":"1","extended_hours":"yes"})",
          R"({"symbol":"AAPL","side":"buy","qty":"1","type":"moon"})",
          R"({"symbol":"AAPL","side":"buy","qty":"1","client_order_id":"a b"})",
          R"({"symbol":"AAPL","side":"buy","qty":"1","account":"other"})",  // unknown
          R"({"symbol":"AAPL","side":"buy","qty":"1","qty2":null})",
          R"({"symbol":"aapl","side":"buy","qty":"1"})",
          R"({"symbol":"AAPL//X","side":"buy","qty":"1"})",
          R"({"symbol":"","side":"buy","qty":"1"})",
          R"({"symbol":null,"side":"buy","qty":"1"})",
          R"("AAPL")",
          R"([1])"}) {
        const Json j =
            m.rpc("tools/call", std::string(R"({"name":"place_order","arguments":)") + bad + "}");
        const Json *res = j.find("result");
        if (res) {
            EXPECT_TRUE(is_error_result(*res)) << bad;
        } else {
            EXPECT_EQ(error_code(j), -32602) << bad;  // arguments not an object
        }
    }
    EXPECT_EQ(m.upstream.calls.size(), 0u);
}

TEST(McpTools, ReplaceCancelClose) {
    Mcp m;
    m.scope = "trade";
    const std::string id = kOrderId;
    m.upstream.answer("PATCH /v2/orders/" + id, 200, kOrder);
    Json r = m.call("replace_order", R"({"order_id":")" + id + R"(","limit_price":"151"})");
    ASSERT_FALSE(is_error_result(r)) << result_text(r);
    EXPECT_EQ(m.upstream.calls.back().body, R"({"limit_price":"151"})");
    EXPECT_TRUE(is_error_result(m.call("replace_order", R"({"order_id":")" + id + "\"}")));
    m.upstream.answer("DELETE /v2/orders/" + id, 204, "");
    r = m.call("cancel_order", R"({"order_id":")" + id + "\"}");
    ASSERT_FALSE(is_error_result(r)) << result_text(r);
    EXPECT_EQ(to_json(*r.find("structuredContent")),
              R"({"order_id":")" + id + R"(","cancel_requested":true})");
    m.upstream.answer("DELETE /v2/orders/" + id, 422,
                      R"({"code":42210000,"message":"order is already in \"filled\" state"})");
    r = m.call("cancel_order", R"({"order_id":")" + id + "\"}");
    EXPECT_TRUE(is_error_result(r));
    EXPECT_NE(result_text(r).find("already in \"filled\" state"), std::string::npos);
    m.upstream.answer("DELETE /v2/positions/BTCUSD", 200, kOrder);
    r = m.call("close_position", R"({"symbol":"BTC/USD","percentage":"50"})");
    ASSERT_FALSE(is_error_result(r)) << result_text(r);
    EXPECT_EQ(m.upstream.calls.back().path, "/v2/positions/BTCUSD?percentage=50");
    m.call("close_position", R"({"symbol":"AAPL","qty":"2.5"})");
    EXPECT_EQ(m.upstream.calls.back().path, "/v2/positions/AAPL?qty=2.5");
    const std::size_t before = m.upstream.calls.size();
    for (const char *bad :
         {R"({"symbol":"AAPL","percentage":"100.5"})", R"({"symbol":"AAPL","percentage":"101"})",
          R"({"symbol":"AAPL","qty":"1","percentage":"5"})", R"({"symbol":"../v2/account"})",
          R"({"symbol":"AAPL%2F"})"})
        EXPECT_TRUE(is_error_result(m.call("close_position", bad))) << bad;
    EXPECT_EQ(m.upstream.calls.size(), before);
    m.upstream.answer("DELETE /v2/positions/AAPL", 200, kOrder);
    EXPECT_FALSE(
        is_error_result(m.call("close_position", R"({"symbol":"AAPL","percentage":"100"})")));
}

}  // namespace
