// pga::escape_for_error / quote_for_error: the one way input may appear in an error message.
#include "common/error.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using pga::escape_for_error;
using pga::is_printable_ascii;
using pga::quote_for_error;

TEST(ErrorText, PrintableAsciiIsKeptEverythingElseEscaped) {
    EXPECT_EQ(escape_for_error("plain text 'q' \"d\" \\ ~"), "plain text 'q' \"d\" \\ ~");
    EXPECT_EQ(escape_for_error(std::string("a\0b", 3)), "a\\x00b");
    EXPECT_EQ(escape_for_error("\t\r\n\x1b\x7f"), "\\x09\\x0D\\x0A\\x1B\\x7F");
    EXPECT_EQ(escape_for_error("\xc3\xa9\xff"), "\\xC3\\xA9\\xFF");
    EXPECT_EQ(escape_for_error(""), "");
}

TEST(ErrorText, BoundedWithEllipsisNeverSplittingAnEscape) {
    EXPECT_EQ(escape_for_error(std::string(10, 'a'), 10), std::string(10, 'a'));  // fits
    EXPECT_EQ(escape_for_error(std::string(11, 'a'), 10), "aaaaaaa...");
    // "ab" + \xFF would reach 6 > 10-3 only with the escape: it is left out whole.
    EXPECT_EQ(escape_for_error("abcd\xff\xff", 10), "abcd...");
    EXPECT_EQ(escape_for_error("abc\xff"
                               "defghijk",
                               10),
              "abc\\xFF...");
    // Every length of a hostile input stays within the bound, printable.
    for (std::size_t max = 0; max < 40; ++max) {
        for (std::size_t n = 0; n < 40; ++n) {
            std::string in;
            for (std::size_t i = 0; i < n; ++i) in += static_cast<char>(i * 37 + 1);
            const std::string out = escape_for_error(in, max);
            EXPECT_LE(out.size(), std::max<std::size_t>(max, 3)) << max << " " << n;
            EXPECT_TRUE(is_printable_ascii(out));
            // Idempotent: escaped text is shown as it is.
            EXPECT_EQ(escape_for_error(out, max), out);
        }
    }
}

TEST(ErrorText, DefaultBoundAndQuoting) {
    const std::string big(1000, '\'');
    EXPECT_EQ(escape_for_error(big).size(), pga::kMaxQuotedInput);
    EXPECT_EQ(quote_for_error("x"), "'x'");
    EXPECT_EQ(quote_for_error("x\n", 64, '"'), "\"x\\x0A\"");
    const std::string q = quote_for_error(big, 20);
    EXPECT_EQ(q, "'" + std::string(15, '\'') + "...'");
    EXPECT_EQ(q.size(), 20u);
}

TEST(ErrorText, IsPrintableAscii) {
    EXPECT_TRUE(is_printable_ascii(""));
    EXPECT_TRUE(is_printable_ascii(" ~azAZ09"));
    EXPECT_FALSE(is_printable_ascii("a\tb"));
    EXPECT_FALSE(is_printable_ascii("\x7f"));
    EXPECT_FALSE(is_printable_ascii("\xc3\xa9"));
}

}  // namespace
