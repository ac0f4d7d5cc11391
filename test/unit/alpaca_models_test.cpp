#include "common/alpaca_models.hpp"

#include "common/error.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using pga::Error;
using pga::ErrorCode;

// Expect Error(Protocol) whose message contains `fragment` and never `secret_fragment`.
template <typename F>
void expect_protocol(F f, const std::string &fragment, const std::string &not_echoed = {}) {
    try {
        f();
        ADD_FAILURE() << "no error; wanted: " << fragment;
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::Protocol);
        EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
            << "message: " << e.what() << "\nwanted: " << fragment;
        if (!not_echoed.empty()) {
            EXPECT_EQ(std::string(e.what()).find(not_echoed), std::string::npos) << e.what();
        }
    }
}

// ---------------------------------------------------------------- OpenAPI spec examples
std::string read_spec() {
    std::ifstream in(std::string(PGA_VECTORS_DIR) + "/alpaca/trading-api.json");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string to_json(const rapidjson::Value &v) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    v.Accept(w);
    return sb.GetString();
}

class SpecExamples : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        spec_ = new rapidjson::Document();
        spec_->Parse<rapidjson::kParseFullPrecisionFlag>(read_spec().c_str());
    }
    static void TearDownTestSuite() {
        delete spec_;
        spec_ = nullptr;
    }
    static const rapidjson::Value &at(std::initializer_list<const char *> path) {
        const rapidjson::Value *v = spec_;
        for (const char *p : path) {
            EXPECT_TRUE(v->IsObject() && v->HasMember(p)) << p;
            v = &(*v)[p];
        }
        return *v;
    }
    static rapidjson::Document *spec_;
};
rapidjson::Document *SpecExamples::spec_ = nullptr;

TEST_F(SpecExamples, SpecLoads) {
    ASSERT_FALSE(spec_->HasParseError());
    ASSERT_TRUE(spec_->IsObject());
}

TEST_F(SpecExamples, AccountEndpointExample) {
    const auto &ex = at({"paths", "/v2/account", "get", "responses", "200", "content",
                         "application/json", "example"});
    const auto a = pga::parse_account(to_json(ex));
    EXPECT_EQ(a.id, "1d9eed04-be39-4e01-9b84-a48ac5bbafcf");
    EXPECT_EQ(a.account_number, "PALPACA_123");
    EXPECT_EQ(a.status, "ACTIVE");
    EXPECT_EQ(a.crypto_status, "ACTIVE");
    EXPECT_EQ(a.currency, "USD");
    EXPECT_EQ(a.last_equity, "122011.09751111286868");  // full precision kept
    EXPECT_EQ(a.options_buying_power, "122716.305");
    EXPECT_EQ(a.options_trading_level, 2);
    EXPECT_FALSE(a.options_approved_level);
    EXPECT_EQ(a.daytrade_count, 0);
    EXPECT_EQ(a.pattern_day_trader, true);
    EXPECT_EQ(a.pending_transfer_in, "0");
    EXPECT_FALSE(a.pending_transfer_out);
    EXPECT_EQ(a.balance_asof, "2023-09-27");
    EXPECT_EQ(a.created_at, "2023-01-01T18:20:20.272275Z");
}

TEST_F(SpecExamples, AccountSchemaExample) {
    const auto &ex = at({"components", "schemas", "Account", "x-examples", "example-1"});
    const auto a = pga::parse_account(to_json(ex));
    EXPECT_EQ(a.account_number, "010203ABCD");
    EXPECT_EQ(a.cash, "-23140.2");
    EXPECT_EQ(a.multiplier, "4");
    EXPECT_EQ(a.options_approved_level, 2);
    EXPECT_EQ(a.options_trading_level, 1);
    EXPECT_EQ(a.maintenance_margin, "38088.228");
}

TEST_F(SpecExamples, PositionSchemaExamples) {
    std::string arr =
        "[" + to_json(at({"components", "schemas", "Position", "x-examples", "example-1"})) + "," +
        to_json(at({"components", "schemas", "Position", "x-examples", "example-2"})) + "]";
    const auto ps = pga::parse_positions(arr);
    ASSERT_EQ(ps.size(), 2u);
    EXPECT_EQ(ps[0].symbol, "AAPL");
    EXPECT_EQ(ps[0].exchange, "NASDAQ");
    EXPECT_EQ(ps[0].qty_available, "4");
    EXPECT_EQ(ps[0].unrealized_plpc, "0.20");  // trailing zero kept: text is not re-formatted
    EXPECT_EQ(ps[1].change_today, "-0.0018326556325525");
    EXPECT_EQ(ps[1].unrealized_intraday_plpc, "-0.0028035244307129");
}

TEST_F(SpecExamples, OrderExamples) {
    const auto &exs = at({"components", "examples"});
    std::string arr = "[";
    const char *names[] = {"EquityOrderResponse", "CryptoOrderResponse", "IPOOrderResponse",
                           "OptionOrderResponse", "MultilegOptionsOrderResponse"};
    for (std::size_t i = 0; i < 5; ++i) {
        ASSERT_TRUE(exs.HasMember(names[i])) << names[i];
        arr += (i ? "," : "") + to_json(exs[names[i]]["value"]);
    }
    arr += "]";
    const auto os = pga::parse_orders(arr);
    ASSERT_EQ(os.size(), 5u);
    EXPECT_EQ(os[0].symbol, "AAPL");
    EXPECT_EQ(os[0].limit_price, "150");
    EXPECT_EQ(os[0].order_class, "");  // empty enum text is kept as text
    EXPECT_FALSE(os[0].legs_json);     // legs: null
    EXPECT_EQ(os[1].symbol, "ETH/USD");
    EXPECT_EQ(os[1].asset_class, "crypto");
    EXPECT_EQ(os[1].qty, "0.02");
    EXPECT_EQ(os[2].asset_class, "ipo");
    EXPECT_EQ(os[2].notional, "500");
    EXPECT_FALSE(os[2].qty);
    EXPECT_EQ(os[3].symbol, "AAPL250620C00100000");
    EXPECT_EQ(os[3].order_class, "simple");
    const auto &ml = os[4];
    EXPECT_EQ(ml.order_class, "mleg");
    EXPECT_EQ(ml.symbol, "");
    EXPECT_EQ(ml.filled_avg_price, "1.28");
    ASSERT_TRUE(ml.legs_json);
    // Compact re-serialisation, parseable, holding both legs.
    EXPECT_EQ(ml.legs_json->find(": "), std::string::npos);
    rapidjson::Document legs;
    legs.Parse(ml.legs_json->c_str());
    ASSERT_TRUE(legs.IsArray());
    ASSERT_EQ(legs.Size(), 2u);
    EXPECT_STREQ(legs[0]["symbol"].GetString(), "AAPL241213C00250000");
    EXPECT_STREQ(legs[1]["position_intent"].GetString(), "sell_to_open");
    EXPECT_STREQ(legs[0]["ratio_qty"].GetString(), "3");
    // And the legs themselves parse as orders.
    const auto leg_orders = pga::parse_orders(*ml.legs_json);
    ASSERT_EQ(leg_orders.size(), 2u);
    EXPECT_EQ(leg_orders[1].side, "sell");
    EXPECT_EQ(leg_orders[1].filled_avg_price, "0.01");
}

// ---------------------------------------------------------------- account
const char *kFullAccount = R"({
  "id": "e6fe16f3-64a4-4921-8928-cadf02f92f98", "account_number": "010203ABCD",
  "status": "ACTIVE", "crypto_status": "INACTIVE", "currency": "USD",
  "cash": "1.01", "buying_power": "2.02", "regt_buying_power": "3.03",
  "daytrading_buying_power": "4.04", "non_marginable_buying_power": "5.05",
  "options_buying_power": "6.06", "equity": "7.07", "last_equity": "8.08",
  "portfolio_value": "9.09", "long_market_value": "10.10", "short_market_value": "-11.11",
  "initial_margin": "12.12", "maintenance_margin": "13.13", "last_maintenance_margin": "14.14",
  "sma": "15.15", "multiplier": "2", "accrued_fees": "0.0001", "pending_transfer_in": "17",
  "pending_transfer_out": "18.5",
  "daytrade_count": 3, "options_approved_level": 3, "options_trading_level": "1",
  "pattern_day_trader": false, "shorting_enabled": true, "trading_blocked": false,
  "transfers_blocked": true, "account_blocked": false, "trade_suspended_by_user": true,
  "created_at": "2019-06-12T22:47:07.99658Z", "balance_asof": "2023-09-27"
})";

TEST(AlpacaAccount, EveryField) {
    const auto a = pga::parse_account(kFullAccount);
    EXPECT_EQ(a.id, "e6fe16f3-64a4-4921-8928-cadf02f92f98");
    EXPECT_EQ(a.account_number, "010203ABCD");
    EXPECT_EQ(a.status, "ACTIVE");
    EXPECT_EQ(a.crypto_status, "INACTIVE");
    EXPECT_EQ(a.currency, "USD");
    EXPECT_EQ(a.cash, "1.01");
    EXPECT_EQ(a.buying_power, "2.02");
    EXPECT_EQ(a.regt_buying_power, "3.03");
    EXPECT_EQ(a.daytrading_buying_power, "4.04");
    EXPECT_EQ(a.non_marginable_buying_power, "5.05");
    EXPECT_EQ(a.options_buying_power, "6.06");
    EXPECT_EQ(a.equity, "7.07");
    EXPECT_EQ(a.last_equity, "8.08");
    EXPECT_EQ(a.portfolio_value, "9.09");
    EXPECT_EQ(a.long_market_value, "10.10");
    EXPECT_EQ(a.short_market_value, "-11.11");
    EXPECT_EQ(a.initial_margin, "12.12");
    EXPECT_EQ(a.maintenance_margin, "13.13");
    EXPECT_EQ(a.last_maintenance_margin, "14.14");
    EXPECT_EQ(a.sma, "15.15");
    EXPECT_EQ(a.multiplier, "2");
    EXPECT_EQ(a.accrued_fees, "0.0001");
    EXPECT_EQ(a.pending_transfer_in, "17");
    EXPECT_EQ(a.pending_transfer_out, "18.5");
    EXPECT_EQ(a.daytrade_count, 3);
    EXPECT_EQ(a.options_approved_level, 3);
    EXPECT_EQ(a.options_trading_level, 1);  // numeric string accepted for an integer
    EXPECT_EQ(a.pattern_day_trader, false);
    EXPECT_EQ(a.shorting_enabled, true);
    EXPECT_EQ(a.trading_blocked, false);
    EXPECT_EQ(a.transfers_blocked, true);
    EXPECT_EQ(a.account_blocked, false);
    EXPECT_EQ(a.trade_suspended_by_user, true);
    EXPECT_EQ(a.created_at, "2019-06-12T22:47:07.99658Z");
    EXPECT_EQ(a.balance_asof, "2023-09-27");
}

TEST(AlpacaAccount, Account2026WithoutPatternDayTraderFields) {
    // GET /v2/account after 2026-07-06: the PDT fields are gone.
    const auto a = pga::parse_account(
        R"({"id":"a1","account_number":"PA1","status":"ACTIVE","cash":"100","equity":"100",
            "buying_power":"200","multiplier":"2","options_trading_level":2})");
    EXPECT_FALSE(a.pattern_day_trader);
    EXPECT_FALSE(a.daytrade_count);
    EXPECT_FALSE(a.daytrading_buying_power);
    EXPECT_EQ(a.buying_power, "200");
    EXPECT_EQ(a.options_trading_level, 2);
}

TEST(AlpacaAccount, MinimalAccountLeavesEverythingElseEmpty) {
    const auto a = pga::parse_account(R"({"id":"x","account_number":"y","status":"z"})");
    EXPECT_FALSE(a.cash);
    EXPECT_FALSE(a.currency);
    EXPECT_FALSE(a.crypto_status);
    EXPECT_FALSE(a.options_approved_level);
    EXPECT_FALSE(a.shorting_enabled);
    EXPECT_FALSE(a.created_at);
}

TEST(AlpacaAccount, NullsAreAbsent) {
    const auto a = pga::parse_account(
        R"({"id":"x","account_number":"y","status":"z","cash":null,"currency":null,
            "daytrade_count":null,"pattern_day_trader":null,"created_at":null})");
    EXPECT_FALSE(a.cash);
    EXPECT_FALSE(a.currency);
    EXPECT_FALSE(a.daytrade_count);
    EXPECT_FALSE(a.pattern_day_trader);
    EXPECT_FALSE(a.created_at);
}

TEST(AlpacaAccount, UnknownFieldsAndUnknownEnumValues) {
    const auto a = pga::parse_account(
        R"({"id":"x","account_number":"y","status":"SOMETHING_NEW_2027",
            "crypto_status":"WEIRD","admin_configurations":{"a":[1,2,{"b":null}]},
            "user_configurations":null,"bod_dtbp":0,"crypto_tier":1.5e3,
            "intraday_adjustments":"0","brand_new":true})");
    EXPECT_EQ(a.status, "SOMETHING_NEW_2027");
    EXPECT_EQ(a.crypto_status, "WEIRD");
}

TEST(AlpacaAccount, RequiredFields) {
    expect_protocol([] { pga::parse_account(R"({"account_number":"y","status":"z"})"); },
                    "alpaca account.id: missing required field");
    expect_protocol([] { pga::parse_account(R"({"id":"x","status":"z"})"); },
                    "alpaca account.account_number: missing required field");
    expect_protocol([] { pga::parse_account(R"({"id":"x","account_number":"y","status":null})"); },
                    "alpaca account.status: missing required field");
    expect_protocol([] { pga::parse_account(R"({"id":"","account_number":"y","status":"z"})"); },
                    "alpaca account.id: expected a non-empty string");
    expect_protocol([] { pga::parse_account(R"({"id":5,"account_number":"y","status":"z"})"); },
                    "alpaca account.id: expected a string");
}

TEST(AlpacaAccount, WrongTypes) {
    const std::string base = R"({"id":"x","account_number":"y","status":"z",)";
    expect_protocol([&] { pga::parse_account(base + R"("cash":true})"); },
                    "alpaca account.cash: expected a decimal string");
    expect_protocol([&] { pga::parse_account(base + R"("cash":"12,50"})"); },
                    "alpaca account.cash: expected a decimal string", "12,50");
    expect_protocol([&] { pga::parse_account(base + R"("equity":{"v":"1"}})"); },
                    "alpaca account.equity: expected a decimal string");
    expect_protocol([&] { pga::parse_account(base + R"("daytrade_count":"three"})"); },
                    "alpaca account.daytrade_count: expected an integer", "three");
    expect_protocol([&] { pga::parse_account(base + R"("daytrade_count":1.5})"); },
                    "alpaca account.daytrade_count: expected an integer");
    expect_protocol([&] { pga::parse_account(base + R"("options_trading_level":true})"); },
                    "alpaca account.options_trading_level: expected an integer");
    expect_protocol(
        [&] { pga::parse_account(base + R"("options_trading_level":99999999999999999999})"); },
        "alpaca account.options_trading_level: expected an integer");
    expect_protocol([&] { pga::parse_account(base + R"("shorting_enabled":"true"})"); },
                    "alpaca account.shorting_enabled: expected a boolean");
    expect_protocol([&] { pga::parse_account(base + R"("trading_blocked":0})"); },
                    "alpaca account.trading_blocked: expected a boolean");
    expect_protocol([&] { pga::parse_account(base + R"("currency":840})"); },
                    "alpaca account.currency: expected a string");
    expect_protocol([&] { pga::parse_account(base + R"("created_at":[]})"); },
                    "alpaca account.created_at: expected a string");
    expect_protocol([] { pga::parse_account("[]"); }, "alpaca account: expected a JSON object");
    expect_protocol([] { pga::parse_account("\"x\""); }, "alpaca account: expected a JSON object");
}

TEST(AlpacaAccount, IntegersAtTheInt64Limits) {
    const std::string base = R"({"id":"x","account_number":"y","status":"z",)";
    EXPECT_EQ(pga::parse_account(base + R"("daytrade_count":9223372036854775807})").daytrade_count,
              INT64_MAX);
    EXPECT_EQ(pga::parse_account(base + R"("daytrade_count":-9223372036854775808})").daytrade_count,
              INT64_MIN);
    EXPECT_THROW(pga::parse_account(base + R"("daytrade_count":9223372036854775808})"), Error);
    EXPECT_THROW(pga::parse_account(base + R"("daytrade_count":"-"})"), Error);
    EXPECT_THROW(pga::parse_account(base + R"("daytrade_count":""})"), Error);
    EXPECT_THROW(pga::parse_account(base + R"("daytrade_count":"+1"})"), Error);
    EXPECT_THROW(pga::parse_account(base + R"("daytrade_count":1e2})"), Error);
}

TEST(AlpacaAccount, DecimalsKeepFullPrecisionFromStringsAndNumbers) {
    const std::string base = R"({"id":"x","account_number":"y","status":"z",)";
    auto a =
        pga::parse_account(base + R"("cash":"0.000000001234","equity":"123456789012345678901234.5",
                  "sma":0.000000001234,"last_equity":123456789012345678901234.5,
                  "buying_power":1E-7,"multiplier":4,"accrued_fees":-0})");
    EXPECT_EQ(a.cash, "0.000000001234");
    EXPECT_EQ(a.equity, "123456789012345678901234.5");
    EXPECT_EQ(a.sma, "0.000000001234");                      // JSON number: its exact text
    EXPECT_EQ(a.last_equity, "123456789012345678901234.5");  // no double rounding
    EXPECT_EQ(a.buying_power, "1E-7");
    EXPECT_EQ(a.multiplier, "4");
    EXPECT_EQ(a.accrued_fees, "-0");
}

TEST(AlpacaAccount, EmptyDecimalStringIsAbsent) {
    const auto a = pga::parse_account(R"({"id":"x","account_number":"y","status":"z","cash":""})");
    EXPECT_FALSE(a.cash);
}

// ---------------------------------------------------------------- positions
const char *kFullPosition = R"({
  "asset_id": "904837e3-3b76-47ec-b432-046db621571b", "symbol": "AAPL", "exchange": "NASDAQ",
  "asset_class": "us_equity", "asset_marginable": true, "side": "long",
  "qty": "5", "qty_available": "4", "avg_entry_price": "100.0", "market_value": "600.0",
  "cost_basis": "500.0", "unrealized_pl": "100.0", "unrealized_plpc": "0.20",
  "unrealized_intraday_pl": "10.0", "unrealized_intraday_plpc": "0.0084",
  "current_price": "120.0", "lastday_price": "119.0", "change_today": "0.0084",
  "usd": {"avg_entry_price": "71.43", "cost_basis": "333.33"}, "swap_rate": "1.4"
})";

TEST(AlpacaPositions, EveryField) {
    const auto ps = pga::parse_positions(std::string("[") + kFullPosition + "]");
    ASSERT_EQ(ps.size(), 1u);
    const auto &p = ps[0];
    EXPECT_EQ(p.symbol, "AAPL");
    EXPECT_EQ(p.asset_id, "904837e3-3b76-47ec-b432-046db621571b");
    EXPECT_EQ(p.exchange, "NASDAQ");
    EXPECT_EQ(p.asset_class, "us_equity");
    EXPECT_EQ(p.side, "long");
    EXPECT_EQ(p.qty, "5");
    EXPECT_EQ(p.qty_available, "4");
    EXPECT_EQ(p.avg_entry_price, "100.0");
    EXPECT_EQ(p.market_value, "600.0");
    EXPECT_EQ(p.cost_basis, "500.0");
    EXPECT_EQ(p.unrealized_pl, "100.0");
    EXPECT_EQ(p.unrealized_plpc, "0.20");
    EXPECT_EQ(p.unrealized_intraday_pl, "10.0");
    EXPECT_EQ(p.unrealized_intraday_plpc, "0.0084");
    EXPECT_EQ(p.current_price, "120.0");
    EXPECT_EQ(p.lastday_price, "119.0");
    EXPECT_EQ(p.change_today, "0.0084");
}

// The string scanner reads 16 bytes at a time from a string's first byte and, after an escape,
// copies the rest down in place: every length and every escape position around the 16-byte
// steps must decode exactly as the JSON says, whatever the string's alignment in the buffer.
TEST(AlpacaPositions, StringsOfEveryLengthAndEscapePosition) {
    for (std::size_t pad = 0; pad < 16; ++pad) {  // shifts the strings' alignment
        for (std::size_t len = 0; len <= 40; ++len) {
            for (std::size_t esc = 0; esc <= len; esc += (len > 20 ? 3 : 1)) {
                std::string plain, json;
                for (std::size_t k = 0; k < len; ++k) {
                    const char c = char('a' + (k % 26));
                    if (k == esc) {
                        plain += '"';
                        json += "\\\"";
                    }
                    if (k == (esc + 17) % (len + 1)) {  // a second escape, later or earlier
                        plain += "\xc3\xa9";
                        json += "\\u00e9";
                    }
                    plain += c;
                    json += c;
                }
                const std::string doc = "[" + std::string(pad, ' ') +
                                        R"({"symbol":"S","exchange":")" + json +
                                        R"(","side":"long"}])";
                const auto ps = pga::parse_positions(doc);
                ASSERT_EQ(ps.size(), 1u);
                ASSERT_EQ(ps[0].exchange.value_or("<none>"), plain)
                    << "pad " << pad << " len " << len << " esc " << esc;
                ASSERT_EQ(ps[0].side, "long");  // the scan stopped at the right quote
            }
        }
    }
}

TEST(AlpacaPositions, RawControlCharactersInStringsAreRefusedEverywhere) {
    for (unsigned c = 1; c < 0x20; ++c) {
        for (std::size_t at = 0; at < 20; ++at) {
            std::string v(20, 'x');
            v[at] = char(c);
            const std::string doc = R"([{"symbol":"S","exchange":")" + v + R"("}])";
            EXPECT_THROW(pga::parse_positions(doc), pga::Error) << "byte " << c << " at " << at;
        }
    }
}

TEST(AlpacaPositions, EmptyArray) {
    EXPECT_TRUE(pga::parse_positions(" [ ] ").empty());
}

TEST(AlpacaPositions, ShortCryptoAndOptions) {
    const auto ps = pga::parse_positions(R"([
      {"symbol":"TSLA","side":"short","qty":"-10","market_value":"-2500.5","asset_class":"us_equity"},
      {"symbol":"BTCUSD","asset_class":"crypto","exchange":"","qty":"0.012345678",
       "avg_entry_price":"64123.456789","side":"long"},
      {"symbol":"AAPL240119C00190000","asset_class":"us_option","qty":"2","side":"long",
       "exchange":""}
    ])");
    ASSERT_EQ(ps.size(), 3u);
    EXPECT_EQ(ps[0].side, "short");
    EXPECT_EQ(ps[0].qty, "-10");
    EXPECT_EQ(ps[0].market_value, "-2500.5");
    EXPECT_EQ(ps[1].symbol, "BTCUSD");
    EXPECT_EQ(ps[1].asset_class, "crypto");
    EXPECT_EQ(ps[1].exchange, "");
    EXPECT_EQ(ps[1].qty, "0.012345678");
    EXPECT_EQ(ps[2].asset_class, "us_option");
    EXPECT_EQ(ps[2].symbol, "AAPL240119C00190000");
    EXPECT_FALSE(ps[2].current_price);
}

TEST(AlpacaPositions, UnknownEnumValuesPassThrough) {
    const auto ps = pga::parse_positions(
        R"([{"symbol":"X","side":"sideways","asset_class":"us_bond","exchange":"MOON"}])");
    EXPECT_EQ(ps[0].side, "sideways");
    EXPECT_EQ(ps[0].asset_class, "us_bond");
    EXPECT_EQ(ps[0].exchange, "MOON");
}

TEST(AlpacaPositions, ErrorsNameFieldAndIndex) {
    const std::string ok = R"({"symbol":"A","qty":"1"})";
    expect_protocol(
        [&] {
            pga::parse_positions("[" + ok + "," + ok + "," + ok + R"(,{"symbol":"B","qty":true}])");
        },
        "alpaca positions[3].qty: expected a decimal string");
    expect_protocol([&] { pga::parse_positions("[" + ok + R"(,{"symbol":5}])"); },
                    "alpaca positions[1].symbol: expected a string");
    expect_protocol([&] { pga::parse_positions(R"([{"qty":"1"}])"); },
                    "alpaca positions[0].symbol: missing required field");
    expect_protocol([&] { pga::parse_positions(R"([{"symbol":"SECRETSYM","qty":"1.2.3"}])"); },
                    "alpaca positions[0].qty: expected a decimal string", "1.2.3");
    expect_protocol([&] { pga::parse_positions(R"([{"symbol":"A","side":["long"]}])"); },
                    "alpaca positions[0].side: expected a string");
    expect_protocol([&] { pga::parse_positions("[" + ok + ",7]"); },
                    "alpaca positions[1]: expected a JSON object");
    expect_protocol([&] { pga::parse_positions(ok); }, "alpaca positions: expected an array");
    expect_protocol([&] { pga::parse_positions("null"); }, "alpaca positions: expected an array");
}

TEST(AlpacaPositions, MalformedAndTruncatedJson) {
    const std::string good = std::string("[") + kFullPosition + "]";
    ASSERT_NO_THROW(pga::parse_positions(good));
    for (std::size_t n = 0; n < good.size(); ++n) {
        try {
            pga::parse_positions(good.substr(0, n));
            ADD_FAILURE() << "accepted a truncation at " << n;
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::Protocol);
            EXPECT_EQ(std::string(e.what()).find("904837e3"), std::string::npos) << e.what();
        }
    }
    expect_protocol([] { pga::parse_positions(""); }, "alpaca positions: malformed JSON");
    expect_protocol([] { pga::parse_positions("[1,]"); }, "malformed JSON");
    expect_protocol([] { pga::parse_positions("[] []"); }, "malformed JSON");
    expect_protocol([] { pga::parse_positions("[NaN]"); }, "malformed JSON");
    expect_protocol([] { pga::parse_positions("[{'symbol':'A'}]"); }, "malformed JSON");
    expect_protocol([] { pga::parse_positions("[\"\xff\"]"); }, "malformed JSON");  // bad UTF-8
    expect_protocol([] { pga::parse_positions(std::string("[]\0[", 4)); }, "malformed JSON");
    expect_protocol([] { pga::parse_positions(R"([{"symbol":"A\u0000B"}])"); }, "NUL");
}

TEST(AlpacaPositions, DeeplyNestedJsonIsRefusedWithoutStackOverflow) {
    for (std::size_t depth : {65u, 1000u, 200000u}) {
        const std::string deep = std::string(depth, '[') + std::string(depth, ']');
        expect_protocol([&] { pga::parse_positions(deep); }, "nested deeper than 64");
    }
    const std::string deep_obj =
        R"([{"symbol":"A","x":)" + std::string(100000, '[') + std::string(100000, ']') + "}]";
    expect_protocol([&] { pga::parse_positions(deep_obj); }, "nested deeper");
    // Unterminated deep nesting is refused too.
    expect_protocol([] { pga::parse_positions(std::string(500000, '[')); }, "alpaca positions");
    // 64 levels are fine (an unknown field nested 62 deep inside a position).
    const std::string ok =
        R"([{"symbol":"A","x":)" + std::string(62, '[') + std::string(62, ']') + "}]";
    EXPECT_EQ(pga::parse_positions(ok).size(), 1u);
}

// ---------------------------------------------------------------- orders
const char *kFullOrder = R"({
  "id": "61e69015-8549-4bfd-b9c3-01e75843f47d", "client_order_id": "eb9e2aaa",
  "symbol": "AAPL", "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
  "asset_class": "us_equity", "side": "buy", "type": "trailing_stop", "order_type": "trailing_stop",
  "time_in_force": "day", "status": "partially_filled", "order_class": "bracket",
  "position_intent": "buy_to_open", "qty": "10.5", "notional": null, "filled_qty": "2",
  "filled_avg_price": "100.25", "limit_price": "101", "stop_price": "99", "trail_price": "1.5",
  "trail_percent": "0.25", "hwm": "102.75",
  "created_at": "2021-03-16T18:38:01.942282Z", "updated_at": "2021-03-16T18:38:02Z",
  "submitted_at": "2021-03-16T18:38:01.937734Z", "filled_at": "2021-03-16T18:38:03Z",
  "expired_at": "2021-03-17T18:38:01Z", "canceled_at": "2021-03-18T18:38:01Z",
  "failed_at": "2021-03-19T18:38:01Z", "replaced_at": "2021-03-20T18:38:01Z",
  "extended_hours": true, "replaced_by": null, "replaces": null, "subtag": null, "source": null,
  "legs": [ {"id": "leg-1", "symbol": "AAPL", "qty": 3, "ratio_qty": "1.50", "legs": null,
             "weird": [true, false, null, -1.25e-3, "x\"y"]} ]
})";

TEST(AlpacaOrders, EveryField) {
    const auto os = pga::parse_orders(std::string("[") + kFullOrder + "]");
    ASSERT_EQ(os.size(), 1u);
    const auto &o = os[0];
    EXPECT_EQ(o.id, "61e69015-8549-4bfd-b9c3-01e75843f47d");
    EXPECT_EQ(o.client_order_id, "eb9e2aaa");
    EXPECT_EQ(o.symbol, "AAPL");
    EXPECT_EQ(o.asset_id, "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415");
    EXPECT_EQ(o.asset_class, "us_equity");
    EXPECT_EQ(o.side, "buy");
    EXPECT_EQ(o.type, "trailing_stop");
    EXPECT_EQ(o.order_type, "trailing_stop");
    EXPECT_EQ(o.time_in_force, "day");
    EXPECT_EQ(o.status, "partially_filled");
    EXPECT_EQ(o.order_class, "bracket");
    EXPECT_EQ(o.position_intent, "buy_to_open");
    EXPECT_EQ(o.qty, "10.5");
    EXPECT_FALSE(o.notional);
    EXPECT_EQ(o.filled_qty, "2");
    EXPECT_EQ(o.filled_avg_price, "100.25");
    EXPECT_EQ(o.limit_price, "101");
    EXPECT_EQ(o.stop_price, "99");
    EXPECT_EQ(o.trail_price, "1.5");
    EXPECT_EQ(o.trail_percent, "0.25");
    EXPECT_EQ(o.hwm, "102.75");
    EXPECT_EQ(o.created_at, "2021-03-16T18:38:01.942282Z");
    EXPECT_EQ(o.updated_at, "2021-03-16T18:38:02Z");
    EXPECT_EQ(o.submitted_at, "2021-03-16T18:38:01.937734Z");
    EXPECT_EQ(o.filled_at, "2021-03-16T18:38:03Z");
    EXPECT_EQ(o.expired_at, "2021-03-17T18:38:01Z");
    EXPECT_EQ(o.canceled_at, "2021-03-18T18:38:01Z");
    EXPECT_EQ(o.failed_at, "2021-03-19T18:38:01Z");
    EXPECT_EQ(o.replaced_at, "2021-03-20T18:38:01Z");
    EXPECT_EQ(o.extended_hours, true);
    // Numbers keep their exact text; strings are re-escaped; compact.
    EXPECT_EQ(o.legs_json,
              R"([{"id":"leg-1","symbol":"AAPL","qty":3,"ratio_qty":"1.50","legs":null,)"
              R"("weird":[true,false,null,-1.25e-3,"x\"y"]}])");
}

TEST(AlpacaOrders, LegsNullAbsentEmpty) {
    const auto os =
        pga::parse_orders(R"([{"id":"a","legs":null},{"id":"b"},{"id":"c","legs":[]}])");
    ASSERT_EQ(os.size(), 3u);
    EXPECT_FALSE(os[0].legs_json);
    EXPECT_FALSE(os[1].legs_json);
    EXPECT_EQ(os[2].legs_json, "[]");
    expect_protocol([] { pga::parse_orders(R"([{"id":"a"},{"id":"b","legs":{}}])"); },
                    "alpaca orders[1].legs: expected an array or null");
    expect_protocol([] { pga::parse_orders(R"([{"id":"a","legs":"[]"}])"); },
                    "alpaca orders[0].legs: expected an array or null");
}

TEST(AlpacaOrders, NotionalOrderAndNullableFields) {
    const auto os = pga::parse_orders(
        R"([{"id":"n1","symbol":"BTC/USD","asset_class":"crypto","notional":"25.123456789",
             "qty":null,"filled_avg_price":null,"limit_price":null,"stop_price":null,
             "trail_price":null,"trail_percent":null,"hwm":null,"submitted_at":null,
             "filled_at":null,"canceled_at":null,"extended_hours":null,"status":"held"}])");
    const auto &o = os[0];
    EXPECT_EQ(o.notional, "25.123456789");
    EXPECT_FALSE(o.qty);
    EXPECT_FALSE(o.filled_avg_price);
    EXPECT_FALSE(o.hwm);
    EXPECT_FALSE(o.submitted_at);
    EXPECT_FALSE(o.extended_hours);
    EXPECT_EQ(o.status, "held");
    EXPECT_FALSE(o.client_order_id);
}

TEST(AlpacaOrders, WrongTypesAndRequiredId) {
    expect_protocol([] { pga::parse_orders(R"([{"symbol":"A"}])"); },
                    "alpaca orders[0].id: missing required field");
    expect_protocol([] { pga::parse_orders(R"([{"id":"a"},{"id":"b","qty":false}])"); },
                    "alpaca orders[1].qty: expected a decimal string");
    expect_protocol([] { pga::parse_orders(R"([{"id":"a","extended_hours":"yes"}])"); },
                    "alpaca orders[0].extended_hours: expected a boolean");
    expect_protocol([] { pga::parse_orders(R"([{"id":"a","status":1}])"); },
                    "alpaca orders[0].status: expected a string");
    expect_protocol([] { pga::parse_orders(R"([{"id":"a","submitted_at":{}}])"); },
                    "alpaca orders[0].submitted_at: expected a string");
    expect_protocol([] { pga::parse_orders(R"({"id":"a"})"); }, "alpaca orders: expected an array");
}

TEST(AlpacaOrders, OptionOrderWithUnknownType) {
    const auto os = pga::parse_orders(
        R"([{"id":"o","symbol":"SPY251219P00152500","asset_class":"us_option",
             "type":"pegged_midpoint","time_in_force":"day","qty":"1"}])");
    EXPECT_EQ(os[0].type, "pegged_midpoint");
    EXPECT_EQ(os[0].asset_class, "us_option");
}

// ---------------------------------------------------------------- streaming reader
TEST(AlpacaReader, StreamsElementsInOrderWithViews) {
    pga::AlpacaReader reader;
    std::vector<std::string> symbols, qty;
    std::vector<std::size_t> index;
    reader.read_positions(
        R"([{"symbol":"A","qty":"1.5"},{"qty":2,"symbol":"B\u00e9"},{"symbol":"C"}])",
        [&](const pga::Record &r) {
            symbols.emplace_back(r[pga::position_field::symbol].text);
            const auto &q = r[pga::position_field::qty];
            qty.emplace_back(q.present ? std::string(q.text) : "-");
            index.push_back(r.index());
        });
    EXPECT_EQ(symbols, (std::vector<std::string>{"A", "B\xc3\xa9", "C"}));
    EXPECT_EQ(qty, (std::vector<std::string>{"1.5", "2", "-"}));
    EXPECT_EQ(index, (std::vector<std::size_t>{0, 1, 2}));
}

TEST(AlpacaReader, ReusedAcrossDocumentsOfEverySize) {
    pga::AlpacaReader reader;
    for (std::size_t n : {1000u, 3u, 200u, 0u, 1u}) {
        std::string doc = "[";
        for (std::size_t i = 0; i < n; ++i)
            doc += (i ? "," : "") + std::string(R"({"symbol":"S)") + std::to_string(i) +
                   R"(","qty":")" + std::to_string(i) + R"("})";
        doc += "]";
        std::size_t seen = 0;
        reader.read_positions(doc, [&](const pga::Record &r) {
            EXPECT_EQ(r[pga::position_field::symbol].text, "S" + std::to_string(seen));
            EXPECT_EQ(r[pga::position_field::qty].text, std::to_string(seen));
            ++seen;
        });
        EXPECT_EQ(seen, n);
    }
}

TEST(AlpacaReader, FirstOccurrenceOfAKeyWins) {
    auto ps =
        pga::parse_positions(R"([{"symbol":"A","qty":"1","qty":"2","side":null,"side":"long"}])");
    EXPECT_EQ(ps[0].qty, "1");
    EXPECT_FALSE(ps[0].side);  // the first "side" was null
    auto os = pga::parse_orders(R"([{"id":"a","legs":[{"id":"l1"}],"legs":[{"id":"l2"}]}])");
    EXPECT_EQ(os[0].legs_json, R"([{"id":"l1"}])");
    // Keys of nested objects are not fields of the element.
    ps = pga::parse_positions(R"([{"x":{"symbol":"NO","qty":"9"},"symbol":"A"}])");
    EXPECT_EQ(ps[0].symbol, "A");
    EXPECT_FALSE(ps[0].qty);
}

TEST(AlpacaReader, FieldsAreCheckedInModelOrderNotDocumentOrder) {
    // Both are wrong; symbol comes first in the model, whatever the key order.
    expect_protocol([] { pga::parse_positions(R"([{"qty":true,"symbol":5}])"); },
                    "alpaca positions[0].symbol: expected a string");
    // Elements are checked in document order: the first faulty one is reported.
    expect_protocol([] { pga::parse_positions(R"([{"symbol":"A","qty":"x"},7,{"qty":"1"}])"); },
                    "alpaca positions[0].qty: expected a decimal string");
}

TEST(AlpacaReader, MalformedJsonWinsOverAnEarlierFaultyElement) {
    expect_protocol([] { pga::parse_positions(R"([{"qty":"1"}, {"symbol":)"); }, "malformed JSON");
    expect_protocol([] { pga::parse_positions(R"({"symbol":"A"} x)"); }, "malformed JSON");
}

TEST(AlpacaReader, SinkExceptionComesBackAfterTheDocumentWasChecked) {
    struct Stop {};
    pga::AlpacaReader reader;
    std::size_t calls = 0;
    EXPECT_THROW(reader.read_positions(R"([{"symbol":"A"},{"symbol":"B"},{"symbol":"C"}])",
                                       [&](const pga::Record &) {
                                           ++calls;
                                           throw Stop{};
                                       }),
                 Stop);
    EXPECT_EQ(calls, 1u);  // no element after the one that threw
    // A malformed document is reported as such even when the sink threw first.
    calls = 0;
    expect_protocol(
        [&] {
            reader.read_positions(R"([{"symbol":"A"},{"symbol":"B"},)", [&](const pga::Record &) {
                ++calls;
                throw Stop{};
            });
        },
        "malformed JSON");
    EXPECT_EQ(calls, 1u);
    // The reader is fine afterwards.
    calls = 0;
    reader.read_positions(R"([{"symbol":"A"}])", [&](const pga::Record &) { ++calls; });
    EXPECT_EQ(calls, 1u);
}

TEST(AlpacaReader, NulOnlyFromAnEscapeAndEscapedBackslashesAreNotNul) {
    expect_protocol([] { pga::parse_positions(R"([{"symbol":"A","x":"\u0000"}])"); }, "NUL");
    expect_protocol([] { pga::parse_positions(R"([{"symbol":"A","k\u0000":1}])"); }, "NUL");
    // A lone low surrogate decodes to bytes that are not UTF-8: refused like RapidJSON's own
    // refusal of a lone high one (a string would otherwise reach the database invalid).
    expect_protocol([] { pga::parse_positions(R"([{"symbol":"A\udc00"}])"); },
                    "malformed JSON (The surrogate pair in string is invalid.)");
    expect_protocol([] { pga::parse_orders(R"([{"id":"a","legs":[{"x":"\uDDDD"}]}])"); },
                    "surrogate pair");
    EXPECT_EQ(pga::parse_positions(R"([{"symbol":"\ud83d\ude00"}])")[0].symbol, "\xf0\x9f\x98\x80");
    const auto ps = pga::parse_positions(R"([{"symbol":"A\\u0000B"}])");
    EXPECT_EQ(ps[0].symbol, "A\\u0000B");
}

TEST(AlpacaReader, InvalidUtf8IsReportedWithItsOffset) {
    expect_protocol([] { pga::parse_positions("[{\"symbol\":\"A\xc0\x80\"}]"); },
                    "malformed JSON (Invalid encoding in string.) at offset 13");
    expect_protocol([] { pga::parse_positions("[{\"symbol\":\"\xed\xa0\x80\"}]"); },  // surrogate
                    "at offset 12");
    expect_protocol(
        [] { pga::parse_positions("[{\"symbol\":\"\xf4\x90\x80\x80\"}]"); },  // > U+10FFFF
        "at offset 12");
    expect_protocol([] { pga::parse_positions("[{\"symbol\":\"\xe2\x82\"}]"); }, "at offset 12");
    const auto ps = pga::parse_positions("[{\"symbol\":\"\xe2\x82\xac\xf0\x9f\x98\x80\xc3\xa9\"}]");
    EXPECT_EQ(ps[0].symbol, "\xe2\x82\xac\xf0\x9f\x98\x80\xc3\xa9");
}

TEST(AlpacaReader, RawControlCharactersAreRefusedWhereverTheyAre) {
    // 0x1A..0x1F slip through RapidJSON 1.1.0's SIMD scanner at some alignments: refused up
    // front, at every position of a string long enough for the SIMD path.
    for (std::size_t at = 0; at < 40; ++at) {
        for (char c : {'\x01', '\x1a', '\x1c', '\x1f'}) {
            std::string sym(48, 'A');
            sym[at] = c;
            expect_protocol([&] { pga::parse_positions(R"([{"symbol":")" + sym + R"("}])"); },
                            "A control character must be escaped");
        }
    }
    EXPECT_EQ(pga::parse_positions("[\n\t{\"symbol\":\"A\"}\r\n]").size(), 1u);
    // Escaped control characters are fine, and legs re-serialise them escaped.
    const auto os = pga::parse_orders(
        R"([{"id":"a","legs":[{"id":"l","s":"\u001cAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\u001f"}]}])");
    ASSERT_TRUE(os[0].legs_json);
    EXPECT_EQ(*os[0].legs_json,
              R"([{"id":"l","s":"\u001CAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\u001F"}])");
    EXPECT_EQ(pga::parse_orders(*os[0].legs_json).size(), 1u);
}

TEST(AlpacaReader, AccountIsOneRecordAndRootShapesAreChecked) {
    pga::AlpacaReader reader;
    std::size_t calls = 0;
    reader.read_account(R"({"id":"x","account_number":"y","status":"z","cash":"1"})",
                        [&](const pga::Record &r) {
                            ++calls;
                            EXPECT_EQ(r.where(), "account");
                            EXPECT_EQ(r[pga::account_field::cash].text, "1");
                        });
    EXPECT_EQ(calls, 1u);
    expect_protocol([&] { reader.read_account("[]", [](const pga::Record &) {}); },
                    "alpaca account: expected a JSON object");
    expect_protocol([&] { reader.read_orders("{}", [](const pga::Record &) {}); },
                    "alpaca orders: expected an array");
    expect_protocol([&] { reader.read_orders("[[]]", [](const pga::Record &) {}); },
                    "alpaca orders[0]: expected a JSON object");
}

// ---------------------------------------------------------------- error bodies
TEST(AlpacaError, ParsesAlpacaErrorShape) {
    auto e = pga::parse_error_body(R"({"code":40110000,"message":"request is not authorized"})");
    EXPECT_EQ(e.code, 40110000);
    EXPECT_EQ(e.message, "request is not authorized");
    e = pga::parse_error_body(R"({"code":"42910000","message":"rate limit exceeded"})");
    EXPECT_EQ(e.code, 42910000);
    e = pga::parse_error_body(R"({"message":"Internal Server Error"})");
    EXPECT_FALSE(e.code);
    EXPECT_EQ(e.message, "Internal Server Error");
}

TEST(AlpacaError, NeverThrows) {
    for (const char *body :
         {"", "not json", "<html>502 Bad Gateway</html>", "[]", "null", "{",
          R"({"code":1.5,"message":7})", R"({"code":true})",
          "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]"}) {
        const auto e = pga::parse_error_body(body);
        EXPECT_TRUE(e.message.empty()) << body;
        EXPECT_FALSE(e.code) << body;
    }
    const auto e = pga::parse_error_body(R"({"code":1.5,"message":"m"})");
    EXPECT_FALSE(e.code);
    EXPECT_EQ(e.message, "m");
}

TEST(AlpacaError, MessagesAreEscapedAndCutOnWholeEscapes) {
    std::string msg;
    for (int i = 0; i < 600; ++i) msg += "\xc3\xa9";  // 1200 bytes of 'é'
    const auto e = pga::parse_error_body(R"({"code":1,"message":")" + msg + "\"}");
    // 74 escapes of 4 characters (296) and "..." fit in 300; a 75th would not.
    std::string want;
    for (int i = 0; i < 37; ++i) want += "\\xC3\\xA9";
    EXPECT_EQ(e.message, want + "...");
    EXPECT_LE(e.message.size(), pga::kMaxAlpacaErrorMessage);
    // Control characters (JSON escapes) never reach an error message raw.
    const auto c = pga::parse_error_body(R"({"message":"bad\r\nX-Injected: 1\u001b[2J"})");
    EXPECT_EQ(c.message, "bad\\x0D\\x0AX-Injected: 1\\x1B[2J");
    // Plain ASCII text is shown as it is.
    EXPECT_EQ(pga::parse_error_body(R"j({"message":"qty must be > 0 (got '-1')"})j").message,
              "qty must be > 0 (got '-1')");
}

// ---------------------------------------------------------------- decimals
TEST(DecimalText, AcceptsAndRejects) {
    for (const char *ok :
         {"0", "-0", "1", "190", "152.5", "0.000000001234", "123456789012345678901234.5",
          "-23140.2", "1e5", "1E-7", "2.5e+10", "007", "1e1000", "1e-1000", "1e0001000"}) {
        EXPECT_TRUE(pga::is_decimal_text(ok)) << ok;
    }
    for (const char *bad : {"",   "-",      ".",       "1.",       ".5",   "+1",   "1.2.3", "1,5",
                            " 1", "1 ",     "NaN",     "Infinity", "-inf", "0x10", "1e",    "1e+",
                            "e5", "1e1001", "1e-1001", "1e99999",  "--1",  "1-",   "١"}) {
        EXPECT_FALSE(pga::is_decimal_text(bad)) << bad;
    }
}

}  // namespace
