// The pure decisions of "an order is placed at most once" (sidecar/order_safety).
#include "sidecar/order_safety.hpp"

#include <gtest/gtest.h>

namespace {

using pga::sidecar::canonical_decimal;
using pga::sidecar::classify_trade_attempt;
using pga::sidecar::order_matches_replace;
using pga::sidecar::order_matches_submit;
using pga::sidecar::TradeVerdict;

const char *kDup = R"({"code":40010001,"message":"client_order_id must be unique"})";

TEST(TradeVerdict, WhatEachAnswerMeans) {
    EXPECT_EQ(classify_trade_attempt(false, false, 200, "{}"), TradeVerdict::Final);
    EXPECT_EQ(classify_trade_attempt(false, false, 204, ""), TradeVerdict::Final);
    EXPECT_EQ(classify_trade_attempt(false, false, 403, R"({"code":40310000})"),
              TradeVerdict::Final);
    EXPECT_EQ(classify_trade_attempt(false, false, 404, "{}"), TradeVerdict::Final);
    EXPECT_EQ(classify_trade_attempt(false, false, 422,
                                     R"({"code":40010001,"message":"qty is required"})"),
              TradeVerdict::Final);
    EXPECT_EQ(classify_trade_attempt(false, false, 422, kDup), TradeVerdict::Duplicate);
    // 429 comes before acceptance: retried. 5xx and transport errors: unknown, look it up.
    EXPECT_EQ(classify_trade_attempt(false, false, 429, "{}"), TradeVerdict::Retry);
    for (int s : {500, 502, 503, 504, 599})
        EXPECT_EQ(classify_trade_attempt(false, false, s, "<html>"), TradeVerdict::Unknown) << s;
    EXPECT_EQ(classify_trade_attempt(true, false, 0, ""), TradeVerdict::Unknown);
    // A certificate failure never reached Alpaca: nothing to look up, nothing to resend.
    EXPECT_EQ(classify_trade_attempt(true, true, 0, ""), TradeVerdict::Stop);
}

TEST(TradeVerdict, DuplicateOnlyFromAlpacasMessage) {
    EXPECT_TRUE(pga::sidecar::is_duplicate_client_order_id(kDup));
    EXPECT_FALSE(pga::sidecar::is_duplicate_client_order_id("client_order_id must be unique"));
    EXPECT_FALSE(pga::sidecar::is_duplicate_client_order_id(
        R"({"code":40010001,"message":"client_order_id must be no more than 128 characters"})"));
    EXPECT_FALSE(pga::sidecar::is_duplicate_client_order_id(""));
}

TEST(CanonicalDecimal, SameNumberSameText) {
    EXPECT_EQ(*canonical_decimal("010.50"), "10.5");
    EXPECT_EQ(*canonical_decimal("10"), "10");
    EXPECT_EQ(*canonical_decimal("10.000"), "10");
    EXPECT_EQ(*canonical_decimal("0.0012345678"), "0.0012345678");
    EXPECT_EQ(*canonical_decimal(".5"), "0.5");
    EXPECT_EQ(*canonical_decimal("-0"), "0");
    EXPECT_EQ(*canonical_decimal("-1.20"), "-1.2");
    for (const char *bad : {"", ".", "1.2.3", "1e5", "abc", "1 ", "--1"})
        EXPECT_FALSE(canonical_decimal(bad)) << bad;
}

const char *kOrder =
    R"({"id":"61e69015-8549-4bfd-b9c3-01e75843f47d","client_order_id":"c1","symbol":"AAPL",)"
    R"("side":"buy","type":"limit","order_type":"limit","qty":"2","notional":null,)"
    R"("limit_price":"150.50","stop_price":null,"time_in_force":"gtc",)"
    R"("replaces":"904837e3-3b76-47ec-b432-046db621571b","status":"new"})";

TEST(OrderMatch, SubmitMatchesTheSameOrder) {
    auto m = order_matches_submit(
        R"({"symbol":"AAPL","side":"buy","qty":"2.0","type":"limit","limit_price":"150.5","client_order_id":"c1","time_in_force":"gtc"})",
        kOrder);
    EXPECT_TRUE(m.matches) << m.field;
}

TEST(OrderMatch, SubmitNamesTheFieldThatDiffers) {
    struct Case {
        const char *request, *field;
    } cases[] = {
        {R"({"symbol":"MSFT","side":"buy","qty":"2","type":"limit","limit_price":"150.5"})",
         "symbol"},
        {R"({"symbol":"AAPL","side":"sell","qty":"2","type":"limit","limit_price":"150.5"})",
         "side"},
        {R"({"symbol":"AAPL","side":"buy","qty":"3","type":"limit","limit_price":"150.5"})", "qty"},
        {R"({"symbol":"AAPL","side":"buy","notional":"300","type":"limit","limit_price":"150.5"})",
         "notional"},
        {R"({"symbol":"AAPL","side":"buy","qty":"2","type":"market"})", "type"},
        {R"({"symbol":"AAPL","side":"buy","qty":"2","type":"limit","limit_price":"150.51"})",
         "limit_price"},
        // a limit price the request did not give: not the same order
        {R"({"symbol":"AAPL","side":"buy","qty":"2"})", "limit_price"},
        {R"({"symbol":"AAPL","side":"buy","qty":"2","type":"limit","limit_price":"150.5","stop_price":"140"})",
         "stop_price"},
    };
    for (const auto &c : cases) {
        auto m = order_matches_submit(c.request, kOrder);
        EXPECT_FALSE(m.matches) << c.request;
        EXPECT_EQ(m.field, c.field) << c.request;
    }
}

TEST(OrderMatch, CryptoSymbolsWithOrWithoutSlash) {
    const char *order =
        R"({"symbol":"BTC/USD","side":"buy","type":"market","qty":"0.5","limit_price":null})";
    EXPECT_TRUE(order_matches_submit(
                    R"({"symbol":"BTCUSD","side":"buy","type":"market","qty":"0.50"})", order)
                    .matches);
    EXPECT_TRUE(order_matches_submit(
                    R"({"symbol":"btc/usd","side":"buy","type":"market","qty":"0.5"})", order)
                    .matches);
    // JSON numbers in the answer compare as decimals too
    EXPECT_TRUE(
        order_matches_submit(R"({"symbol":"BTC/USD","side":"buy","qty":"0.5"})",
                             R"({"symbol":"BTC/USD","side":"buy","type":"market","qty":0.5})")
            .matches);
}

TEST(OrderMatch, MlegParentHasNoSymbolOrSide) {
    const char *order =
        R"({"symbol":"","side":"","type":"limit","order_class":"mleg","qty":"1","limit_price":"1.28"})";
    EXPECT_TRUE(
        order_matches_submit(
            R"({"order_class":"mleg","qty":"1","type":"limit","limit_price":"1.28","legs":[]})",
            order)
            .matches);
}

TEST(OrderMatch, BadJsonNeverMatches) {
    EXPECT_FALSE(order_matches_submit("not json", kOrder).matches);
    EXPECT_FALSE(order_matches_submit(R"({"symbol":"AAPL"})", "[1]").matches);
    EXPECT_FALSE(order_matches_replace(R"({"qty":"2"})", "", "x").matches);
}

TEST(OrderMatch, ReplaceMustReplaceTheTarget) {
    const char *target = "904837e3-3b76-47ec-b432-046db621571b";
    EXPECT_TRUE(order_matches_replace(R"({"qty":"2","limit_price":"150.5","client_order_id":"c1"})",
                                      kOrder, target)
                    .matches);
    EXPECT_TRUE(order_matches_replace(R"({"time_in_force":"gtc"})", kOrder,
                                      "904837E3-3B76-47EC-B432-046DB621571B")
                    .matches);
    auto m =
        order_matches_replace(R"({"qty":"2"})", kOrder, "00000000-0000-0000-0000-000000000000");
    EXPECT_FALSE(m.matches);
    EXPECT_EQ(m.field, "replaces");
    m = order_matches_replace(R"({"limit_price":"151"})", kOrder, target);
    EXPECT_EQ(m.field, "limit_price");
    m = order_matches_replace(R"({"time_in_force":"day"})", kOrder, target);
    EXPECT_EQ(m.field, "time_in_force");
}

TEST(OrderJson, Fields) {
    EXPECT_EQ(pga::sidecar::json_client_order_id(kOrder), "c1");
    EXPECT_EQ(pga::sidecar::json_order_status(kOrder), "new");
    EXPECT_EQ(pga::sidecar::json_client_order_id("[]"), "");
    EXPECT_EQ(pga::sidecar::json_order_status("garbage"), "");
    EXPECT_TRUE(pga::sidecar::is_closed_order_status("filled"));
    EXPECT_TRUE(pga::sidecar::is_closed_order_status("canceled"));
    EXPECT_FALSE(pga::sidecar::is_closed_order_status("new"));
    EXPECT_FALSE(pga::sidecar::is_closed_order_status("pending_cancel"));
}

}  // namespace
