#include "common/encoding.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using pga::base64_decode;
using pga::base64_encode;
using pga::base64url_decode;
using pga::base64url_encode;

std::vector<std::uint8_t> bytes_of(std::string_view s) {
    return std::vector<std::uint8_t>(s.begin(), s.end());
}
std::string b64(std::string_view s) {
    return base64_encode(reinterpret_cast<const std::uint8_t *>(s.data()), s.size());
}
std::string b64url(std::string_view s) {
    return base64url_encode(reinterpret_cast<const std::uint8_t *>(s.data()), s.size());
}

// RFC 4648 section 10 test vectors.
TEST(Base64, Rfc4648Vectors) {
    const std::pair<const char *, const char *> cases[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (const auto &[plain, enc] : cases) {
        EXPECT_EQ(b64(plain), enc);
        std::vector<std::uint8_t> out{1, 2, 3};
        ASSERT_TRUE(base64_decode(enc, out)) << enc;
        EXPECT_EQ(out, bytes_of(plain));
        pga::SecureBytes sout;
        ASSERT_TRUE(base64_decode(enc, sout)) << enc;
        EXPECT_EQ(pga::as_view(sout), plain);
    }
}

TEST(Base64, RejectsNonCanonical) {
    std::vector<std::uint8_t> out;
    for (const char *bad : {
             "Zg",        // missing padding
             "Zg=",       // short padding
             "Zg===",     // too much padding
             "Zh==",      // non-zero trailing bits
             "Zm9=",      // non-zero trailing bits (2 bytes)
             "Zm9vY",     // length 5
             "Z===",      // one data char in the last quad
             "=Zm9",      // padding first
             "Zm=v",      // padding in the middle
             "Zm9v\n",    // newline
             " Zm9v",     // space
             "Zm9v====",  // whole quad of padding
             "Zm-v",      // url alphabet
             "Zm_v",
         }) {
        EXPECT_FALSE(base64_decode(bad, out)) << bad;
    }
    std::string with_nul("Zm9v\0\0\0\0", 8);
    EXPECT_FALSE(base64_decode(with_nul, out));
    EXPECT_FALSE(base64_decode(std::string_view("Zm\0v", 4), out));
}

TEST(Base64, RoundTripsAllLengthsAndBytes) {
    std::vector<std::uint8_t> data;
    for (int len = 0; len < 70; ++len) {
        std::string enc = base64_encode(data.data(), data.size());
        EXPECT_EQ(enc.size() % 4, 0u);
        std::vector<std::uint8_t> back;
        ASSERT_TRUE(base64_decode(enc, back));
        EXPECT_EQ(back, data);
        std::string url = base64url_encode(data.data(), data.size());
        EXPECT_EQ(url.find('='), std::string::npos);
        ASSERT_TRUE(base64url_decode(url, back));
        EXPECT_EQ(back, data);
        data.push_back(static_cast<std::uint8_t>(len * 37 + 250));
    }
}

TEST(Base64Url, AlphabetAndOptionalPadding) {
    const std::uint8_t raw[] = {0xfb, 0xff, 0xbf};
    EXPECT_EQ(base64_encode(raw, 3), "+/+/");
    EXPECT_EQ(base64url_encode(raw, 3), "-_-_");
    EXPECT_EQ(b64url("f"), "Zg");
    EXPECT_EQ(b64url("fo"), "Zm8");
    std::vector<std::uint8_t> out;
    ASSERT_TRUE(base64url_decode("Zg", out));
    EXPECT_EQ(out, bytes_of("f"));
    ASSERT_TRUE(base64url_decode("Zg==", out));
    EXPECT_EQ(out, bytes_of("f"));
    ASSERT_TRUE(base64url_decode("-_-_", out));
    EXPECT_EQ(out, std::vector<std::uint8_t>(raw, raw + 3));
    EXPECT_FALSE(base64url_decode("Zg=", out));
    EXPECT_FALSE(base64url_decode("+/+/", out));
    EXPECT_FALSE(base64url_decode("Zh", out));
    EXPECT_FALSE(base64url_decode("Z", out));
    EXPECT_FALSE(base64url_decode("Zm9vY", out));
    EXPECT_FALSE(base64url_decode("%%%%", out));
}

TEST(Hex, Encodes) {
    const std::uint8_t raw[] = {0x00, 0x0f, 0xa5, 0xff};
    EXPECT_EQ(pga::hex_encode(raw, 4), "000fa5ff");
    EXPECT_EQ(pga::hex_encode(raw, 0), "");
}

TEST(Uuid, ParsesAndFormatsCanonical) {
    auto u = pga::parse_uuid("3F1C2A4B-0000-4abc-8DEF-0123456789ab");
    ASSERT_TRUE(u.has_value());
    EXPECT_EQ((*u)[0], 0x3f);
    EXPECT_EQ((*u)[15], 0xab);
    EXPECT_EQ(pga::format_uuid(*u), "3f1c2a4b-0000-4abc-8def-0123456789ab");
}

TEST(Uuid, RejectsOtherForms) {
    for (const char *bad :
         {"", "3f1c2a4b00004abc8def0123456789ab", "{3f1c2a4b-0000-4abc-8def-0123456789ab}",
          "3f1c2a4b-0000-4abc-8def-0123456789a", "3f1c2a4b-0000-4abc-8def-0123456789abc",
          "3f1c2a4b_0000-4abc-8def-0123456789ab", "3f1c2a4b-0000-4abc-8def-0123456789ag",
          "3f1c2a4b-00004-abc-8def-0123456789ab", " 3f1c2a4b-0000-4abc-8def-0123456789a"}) {
        EXPECT_FALSE(pga::parse_uuid(bad).has_value()) << bad;
    }
    EXPECT_FALSE(
        pga::parse_uuid(std::string_view("3f1c2a4b-0000-4abc-8def-0123456789\0b", 36)).has_value());
}

}  // namespace
