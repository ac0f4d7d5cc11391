// The MCP server's JSON tree (sidecar/mcp_json): exact numbers, hostile input refused cleanly.
#include "sidecar/mcp_json.hpp"

#include <gtest/gtest.h>

namespace {

using pga::sidecar::mcp::Json;
using pga::sidecar::mcp::Limits;
using pga::sidecar::mcp::parse_json;
using pga::sidecar::mcp::ParseError;
using pga::sidecar::mcp::to_json;

TEST(McpJson, NumbersKeepTheirExactText) {
    const Json j = parse_json(R"({"a":0.1,"b":123456789012345678901234567890,"c":1e300,"d":-0})");
    EXPECT_EQ(j.find("a")->text, "0.1");
    EXPECT_EQ(j.find("b")->text, "123456789012345678901234567890");
    EXPECT_EQ(to_json(j), R"({"a":0.1,"b":123456789012345678901234567890,"c":1e300,"d":-0})");
}

TEST(McpJson, StringsAreDecodedAndReEscaped) {
    const Json j = parse_json(R"(["\u00e9\n", "\u001c", "\ud83d\ude00"])");
    EXPECT_EQ(j.items[0].text, "\xc3\xa9\n");
    EXPECT_EQ(j.items[1].text, "\x1c");
    EXPECT_EQ(j.items[2].text, "\xf0\x9f\x98\x80");
    EXPECT_EQ(to_json(j), "[\"\xc3\xa9\\n\",\"\\u001C\",\"\xf0\x9f\x98\x80\"]");
}

void expect_refused(const std::string &text, const char *why, const Limits &l = {}) {
    try {
        parse_json(text, l);
        ADD_FAILURE() << "accepted: " << text.substr(0, 80);
    } catch (const ParseError &e) {
        EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
}

TEST(McpJson, HostileInputIsRefused) {
    expect_refused(std::string(100, '[') + std::string(100, ']'), "nested too deeply");
    expect_refused(std::string(1000000, '['), "nested too deeply");
    expect_refused("{\"a\":\"\x01\"}", "control character");
    expect_refused("{\"a\":\"\x1c\"}", "control character");
    expect_refused("\"\xff\"", "invalid UTF-8");
    expect_refused("\"\xc0\xaf\"", "invalid UTF-8");      // overlong '/'
    expect_refused("\"\xed\xa0\x80\"", "invalid UTF-8");  // a raw surrogate
    expect_refused(R"("\udc00")", "");                    // lone low surrogate (escaped)
    expect_refused(R"("\ud800")", "");                    // lone high surrogate
    expect_refused(R"("a\u0000b")", "U+0000");
    expect_refused(R"({"a":1,"a":2})", "duplicate object key");
    expect_refused("{} x", "");
    expect_refused("", "");
    expect_refused("[1,2,3]", "too many values", Limits{100, 10, 3});
    expect_refused(std::string(200, ' '), "too large", Limits{100, 10, 3});
    expect_refused("[01]", "");
    expect_refused("[NaN]", "");
    expect_refused("[1e400]", "Number too big");  // RapidJSON checks the range even as text
}

TEST(McpJson, ErrorsArePrintableAndShort) {
    try {
        parse_json("{\"k\":\"\xff\xfe secret-ish bytes\"}");
        FAIL();
    } catch (const ParseError &e) {
        const std::string m = e.what();
        EXPECT_LT(m.size(), 120u);
        EXPECT_EQ(m.find("secret-ish"), std::string::npos);
        for (char c : m) EXPECT_TRUE(c >= 0x20 && c < 0x7f);
    }
}

TEST(McpJson, Utf8Validator) {
    using pga::sidecar::mcp::is_valid_utf8;
    EXPECT_TRUE(is_valid_utf8("plain"));
    EXPECT_TRUE(is_valid_utf8("\xf4\x8f\xbf\xbf"));   // U+10FFFF
    EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above
    EXPECT_FALSE(is_valid_utf8("\xe0\x80\xaf"));      // overlong
    EXPECT_FALSE(is_valid_utf8("\xe2\x82"));          // truncated
}

}  // namespace
