// The argument patterns of the MCP tools (sidecar/mcp_schema): each hand-written check accepts
// exactly what the regular expression it publishes in the inputSchema accepts (std::regex, here
// only, as the reference), on fixed cases and on random strings of the relevant characters.
#include "sidecar/mcp_schema.hpp"

#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <string>
#include <vector>

namespace {

using pga::sidecar::mcp::Pattern;

void agrees(const Pattern &p, const std::vector<std::string> &yes,
            const std::vector<std::string> &no) {
    const std::regex re(p.regex, std::regex::ECMAScript);
    for (const auto &s : yes) {
        EXPECT_TRUE(p.matches(s)) << p.regex << " " << s;
        EXPECT_TRUE(std::regex_match(s, re)) << p.regex << " " << s;
    }
    for (const auto &s : no) {
        EXPECT_FALSE(p.matches(s)) << p.regex << " " << s;
        EXPECT_FALSE(std::regex_match(s, re)) << p.regex << " " << s;
    }
    std::mt19937 rng(12345);
    const std::string alphabet = "AZaz09./-_:f?% \x01\xc3";
    for (int i = 0; i < 4000; ++i) {
        std::string s(rng() % 40, ' ');
        for (char &c : s) c = alphabet[rng() % alphabet.size()];
        if (i % 3 == 0 && s.size() >= 8) s[8] = '-';
        ASSERT_EQ(p.matches(s), std::regex_match(s, re)) << p.regex << " [" << s << "]";
    }
}

TEST(McpPatterns, ChecksAgreeWithThePublishedRegex) {
    using namespace pga::sidecar::mcp;
    agrees(kUuidPattern,
           {"61e69015-8549-4bfd-b9c3-01e75843f47d", "61E69015-8549-4BFD-B9C3-01E75843F47D"},
           {"", "61e69015-8549-4bfd-b9c3-01e75843f47", "61e69015x8549-4bfd-b9c3-01e75843f47d",
            "61e69015-8549-4bfd-b9c3-01e75843f47d/", "g1e69015-8549-4bfd-b9c3-01e75843f47d"});
    agrees(kSymbolPattern, {"AAPL", "BTC/USD", "BRK.B", "AAPL240119C00190000", "A"},
           {"", "aapl", "/AAPL", "AAPL/", "A//B", "A./B", "A..B", "../v2", "AAPL?x=1", "A B"});
    agrees(kStockPattern, {"AAPL", "BRK.B", "BF.B2"},
           {"", "aapl", "BRK.", ".B", "A.B.C", "A1", "BTC/USD"});
    agrees(kClientIdPattern, {"a", "mcp-0123", "x.y_z:w-1", std::string(128, 'a')},
           {"", "a b", "a/b", std::string(129, 'a'), "\xc3\xa9"});
    agrees(kDecimalPattern, {"0", "1", "10", "0.5", "123456789012345", "1.123456789"},
           {"", "01", "1.", ".5", "-1", "+1", "1e3", "1.1234567890", "1234567890123456", "NaN",
            "0x10", "1,5"});
}

}  // namespace
