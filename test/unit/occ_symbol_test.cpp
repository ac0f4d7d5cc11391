#include "common/occ_symbol.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using pga::parse_occ_symbol;

TEST(OccSymbol, ParsesAaplCall) {
    auto s = parse_occ_symbol("AAPL240119C00190000");
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->underlying, "AAPL");
    EXPECT_EQ(s->year, 2024);
    EXPECT_EQ(s->month, 1);
    EXPECT_EQ(s->day, 19);
    EXPECT_EQ(s->type, 'C');
    EXPECT_STREQ(s->type_name(), "call");
    EXPECT_EQ(s->strike, "190");
}

TEST(OccSymbol, ParsesPutAndFractionalStrikes) {
    auto s = parse_occ_symbol("SPY251219P00152500");
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->underlying, "SPY");
    EXPECT_EQ(s->type, 'P');
    EXPECT_STREQ(s->type_name(), "put");
    EXPECT_EQ(s->strike, "152.5");
    EXPECT_EQ(parse_occ_symbol("F240119C00000500")->strike, "0.5");
    EXPECT_EQ(parse_occ_symbol("F240119C00000001")->strike, "0.001");
    EXPECT_EQ(parse_occ_symbol("F240119C00012340")->strike, "12.34");
    EXPECT_EQ(parse_occ_symbol("F240119C99999999")->strike, "99999.999");
    EXPECT_EQ(parse_occ_symbol("F240119C10000000")->strike, "10000");
}

TEST(OccSymbol, SpecExampleSymbols) {
    // Symbols from the legs of the MultilegOptionsOrderResponse example in the OpenAPI spec.
    auto a = parse_occ_symbol("AAPL241213C00250000");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->strike, "250");
    EXPECT_EQ(a->day, 13);
    auto b = parse_occ_symbol("AAPL250620C00100000");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->year, 2025);
    EXPECT_EQ(b->month, 6);
    EXPECT_EQ(b->strike, "100");
}

TEST(OccSymbol, RootLengthsAndCharacters) {
    EXPECT_EQ(parse_occ_symbol("F240119C00010000")->underlying, "F");
    EXPECT_EQ(parse_occ_symbol("GOOGL1240119C00010000")->underlying, "GOOGL1");
    EXPECT_EQ(parse_occ_symbol("BRK.B240119C00010000")->underlying, "BRK.B");
    EXPECT_FALSE(parse_occ_symbol("ABCDEFG240119C00010000"));  // root of 7
    EXPECT_FALSE(parse_occ_symbol("240119C00010000"));         // no root
    EXPECT_FALSE(parse_occ_symbol("aapl240119C00190000"));     // lower case
    EXPECT_FALSE(parse_occ_symbol("AA-L240119C00190000"));
    EXPECT_FALSE(parse_occ_symbol("AA L240119C00190000"));
}

TEST(OccSymbol, RealCalendarDatesOnly) {
    EXPECT_TRUE(parse_occ_symbol("X240229C00010000"));   // 2024 is a leap year
    EXPECT_FALSE(parse_occ_symbol("X230229C00010000"));  // 2023 is not
    EXPECT_TRUE(parse_occ_symbol("X000229C00010000"));   // 2000: divisible by 400
    EXPECT_FALSE(parse_occ_symbol("X240230C00010000"));
    EXPECT_FALSE(parse_occ_symbol("X240431C00010000"));  // April has 30 days
    EXPECT_TRUE(parse_occ_symbol("X240430C00010000"));
    EXPECT_TRUE(parse_occ_symbol("X241231C00010000"));
    EXPECT_FALSE(parse_occ_symbol("X241232C00010000"));
    EXPECT_FALSE(parse_occ_symbol("X241301C00010000"));
    EXPECT_FALSE(parse_occ_symbol("X240001C00010000"));
    EXPECT_FALSE(parse_occ_symbol("X240100C00010000"));
    auto y = parse_occ_symbol("X991231P00010000");
    ASSERT_TRUE(y);
    EXPECT_EQ(y->year, 2099);
}

TEST(OccSymbol, RejectsMalformed) {
    EXPECT_FALSE(parse_occ_symbol(""));
    EXPECT_FALSE(parse_occ_symbol("AAPL"));
    EXPECT_FALSE(parse_occ_symbol("BTCUSD"));
    EXPECT_FALSE(parse_occ_symbol("ETH/USD"));
    EXPECT_FALSE(parse_occ_symbol("AAPL240119X00190000"));   // neither C nor P
    EXPECT_FALSE(parse_occ_symbol("AAPL240119c00190000"));   // lower-case type
    EXPECT_FALSE(parse_occ_symbol("AAPL240119C0019000"));    // 7 strike digits -> root "AAPL2" ...
    EXPECT_FALSE(parse_occ_symbol("AAPL240119C001900000"));  // 9 strike digits
    EXPECT_FALSE(parse_occ_symbol("AAPL24011AC00190000"));
    EXPECT_FALSE(parse_occ_symbol("AAPL240119C0019000A"));
    EXPECT_FALSE(parse_occ_symbol("AAPL240119C00000000"));  // zero strike
    std::string with_nul = "AAPL240119C00190000";
    with_nul[15] = '\0';
    EXPECT_FALSE(parse_occ_symbol(with_nul));
    EXPECT_FALSE(parse_occ_symbol(" AAPL240119C00190000"));
    EXPECT_FALSE(parse_occ_symbol("AAPL240119C00190000 "));
}

}  // namespace
