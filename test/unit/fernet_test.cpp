// Fernet: every case of the spec's acceptance vectors (test/vectors/fernet), the TTL and
// clock-skew rules (60 s, as pyca/cryptography), the "ignore age" mode used by SQL import, and
// tampering. Errors never repeat the token, the key or the plaintext.
#include "common/encoding.hpp"
#include "common/error.hpp"
#include "common/fernet.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string read_vectors(const std::string &name) {
    std::ifstream in(std::string(PGA_VECTORS_DIR) + "/fernet/" + name, std::ios::binary);
    EXPECT_TRUE(in) << name;
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Number of times `needle` occurs in `hay`: an independent count of the cases in a file.
std::size_t occurrences(const std::string &hay, const std::string &needle) {
    std::size_t n = 0;
    for (std::size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
    return n;
}

// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// "1985-10-26T01:20:01-07:00" -> Unix seconds. Only the form the vectors use.
std::int64_t rfc3339(const std::string &s) {
    EXPECT_EQ(s.size(), 25u) << s;
    auto num = [&](std::size_t at, std::size_t len) { return std::stoll(s.substr(at, len)); };
    const std::int64_t days = days_from_civil(num(0, 4), static_cast<unsigned>(num(5, 2)),
                                              static_cast<unsigned>(num(8, 2)));
    std::int64_t t = days * 86400 + num(11, 2) * 3600 + num(14, 2) * 60 + num(17, 2);
    const std::int64_t offset = num(20, 2) * 3600 + num(23, 2) * 60;
    t += s[19] == '-' ? offset : -offset;
    return t;
}

TEST(Fernet, Rfc3339HelperIsRight) {
    EXPECT_EQ(rfc3339("1970-01-01T00:00:00+00:00"), 0);
    EXPECT_EQ(rfc3339("2000-03-01T00:00:00+00:00"), 951868800);
    EXPECT_EQ(rfc3339("1985-10-26T01:20:00-07:00"), 499162800);  // 08:20 UTC
}

struct Failure {
    bool threw = false;
    pga::ErrorCode code = pga::ErrorCode::Internal;
    std::string message;
};

template <typename F>
Failure failure_of(F f) {
    Failure out;
    try {
        f();
    } catch (const pga::Error &e) {
        out.threw = true;
        out.code = e.code();
        out.message = e.what();
    }
    return out;
}

void expect_clean(const Failure &f, const std::vector<std::string> &forbidden) {
    for (const auto &s : forbidden) {
        if (s.size() >= 6) {
            EXPECT_EQ(f.message.find(s), std::string::npos) << f.message;
        }
    }
}

// One parsed vector file, and an independent count of its cases from the raw text.
struct VectorFile {
    std::string text;
    rapidjson::Document doc;
    explicit VectorFile(const std::string &name) : text(read_vectors(name)) {
        doc.Parse(text.c_str(), text.size());
    }
    bool ok() const { return !doc.HasParseError() && doc.IsArray(); }
    std::size_t tokens_in_text() const { return occurrences(text, "\"token\""); }
};

TEST(FernetVectors, GenerateEveryCase) {
    const VectorFile v("generate.json");
    ASSERT_TRUE(v.ok());
    std::size_t ran = 0;
    for (const auto &c : v.doc.GetArray()) {
        std::array<std::uint8_t, 16> iv{};
        ASSERT_EQ(c["iv"].Size(), 16u);
        for (rapidjson::SizeType i = 0; i < 16; ++i)
            iv[i] = static_cast<std::uint8_t>(c["iv"][i].GetInt());
        const pga::FernetKey key = pga::FernetKey::parse(c["secret"].GetString());
        const std::string src = c["src"].GetString();
        const std::int64_t now = rfc3339(c["now"].GetString());
        const std::string token = pga::fernet_encrypt(key, src, now, iv);
        EXPECT_EQ(token, c["token"].GetString());
        // And it reads back, with and without the age check.
        EXPECT_EQ(pga::as_view(pga::fernet_decrypt(key, token, 60, now)), src);
        EXPECT_EQ(pga::as_view(pga::fernet_decrypt(key, token, std::nullopt, 0)), src);
        ++ran;
    }
    EXPECT_EQ(ran, v.tokens_in_text());
    EXPECT_EQ(ran, 1u);  // test/vectors/fernet/README.md
}

TEST(FernetVectors, VerifyEveryCase) {
    const VectorFile v("verify.json");
    ASSERT_TRUE(v.ok());
    std::size_t ran = 0;
    for (const auto &c : v.doc.GetArray()) {
        const pga::FernetKey key = pga::FernetKey::parse(c["secret"].GetString());
        const std::int64_t now = rfc3339(c["now"].GetString());
        const std::int64_t ttl = c["ttl_sec"].GetInt64();
        const std::string token = c["token"].GetString();
        EXPECT_EQ(pga::as_view(pga::fernet_decrypt(key, token, ttl, now)), c["src"].GetString());
        EXPECT_EQ(pga::as_view(pga::fernet_decrypt(key, token, std::nullopt, now)),
                  c["src"].GetString());
        ++ran;
    }
    EXPECT_EQ(ran, v.tokens_in_text());
    EXPECT_EQ(ran, 1u);
}

// What each invalid case must be refused for, and whether it is still refused when token age
// is ignored (stored tokens imported by alpaca_import_fernet_credential).
struct InvalidExpectation {
    const char *desc;
    const char *reason;
    bool refused_ignoring_age;
};
const InvalidExpectation kInvalid[] = {
    {"incorrect mac", "signature does not verify", true},
    {"too short", "too short", true},
    {"invalid base64", "not base64url", true},
    // 72 bytes: below the 73-byte minimum (one block of ciphertext), which is checked first.
    {"payload size not multiple of block size", "too short", true},
    {"payload padding error", "bad padding", true},
    {"far-future TS (unacceptable clock skew)", "timestamp too far in the future", false},
    {"expired TTL", "expired", false},
    {"incorrect IV (causes padding error)", "bad padding", true},
};

TEST(FernetVectors, InvalidEveryCaseForTheRightReason) {
    const VectorFile v("invalid.json");
    ASSERT_TRUE(v.ok());
    std::size_t ran = 0, decrypted_ignoring_age = 0;
    for (const auto &c : v.doc.GetArray()) {
        const std::string desc = c["desc"].GetString();
        SCOPED_TRACE(desc);
        const InvalidExpectation *want = nullptr;
        for (const auto &e : kInvalid) {
            if (desc == e.desc) want = &e;
        }
        ASSERT_NE(want, nullptr) << "a case this test does not know: " << desc;
        const std::string secret = c["secret"].GetString();
        const pga::FernetKey key = pga::FernetKey::parse(secret);
        const std::int64_t now = rfc3339(c["now"].GetString());
        const std::int64_t ttl = c["ttl_sec"].GetInt64();
        const std::string token = c["token"].GetString();

        Failure f = failure_of([&] { pga::fernet_decrypt(key, token, ttl, now); });
        ASSERT_TRUE(f.threw) << "accepted";
        EXPECT_EQ(f.code, pga::ErrorCode::DecryptFailed);
        EXPECT_EQ(f.message, std::string("invalid token: ") + want->reason);
        expect_clean(f, {token.substr(0, 12), token.substr(20, 12), secret.substr(0, 12)});

        Failure g = failure_of([&] { pga::fernet_decrypt(key, token, std::nullopt, now); });
        if (want->refused_ignoring_age) {
            EXPECT_TRUE(g.threw);
            EXPECT_EQ(g.message, f.message);
        } else {
            // Only the age was wrong: the import mode reads it. Both tokens hold an empty
            // plaintext (pyca/cryptography's Fernet.decrypt without ttl also returns b"").
            EXPECT_FALSE(g.threw) << g.message;
            EXPECT_EQ(pga::as_view(pga::fernet_decrypt(key, token, std::nullopt, 0)), "");
            ++decrypted_ignoring_age;
        }
        ++ran;
    }
    EXPECT_EQ(ran, v.tokens_in_text());
    EXPECT_EQ(ran, sizeof kInvalid / sizeof kInvalid[0]);
    EXPECT_EQ(ran, 8u);
    EXPECT_EQ(decrypted_ignoring_age, 2u);
}

// ---- Beyond the vectors -------------------------------------------------------------------

const char *kSecret = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
constexpr std::array<std::uint8_t, 16> kIv = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};

TEST(Fernet, TtlAndClockSkewBoundaries) {
    const pga::FernetKey key = pga::FernetKey::parse(kSecret);
    const std::int64_t t = 1'700'000'000;
    const std::string token = pga::fernet_encrypt(key, "PKSECRET", t, kIv);
    // Age: t + ttl == now is still fresh; one second more is expired.
    EXPECT_EQ(pga::as_view(pga::fernet_decrypt(key, token, 60, t + 60)), "PKSECRET");
    EXPECT_EQ(failure_of([&] { pga::fernet_decrypt(key, token, 60, t + 61); }).message,
              "invalid token: expired");
    EXPECT_EQ(failure_of([&] { pga::fernet_decrypt(key, token, 0, t + 1); }).message,
              "invalid token: expired");
    // Skew: up to kFernetMaxClockSkew in the future is accepted.
    EXPECT_EQ(pga::kFernetMaxClockSkew, 60);
    EXPECT_EQ(pga::as_view(pga::fernet_decrypt(key, token, 60, t - 60)), "PKSECRET");
    EXPECT_EQ(failure_of([&] { pga::fernet_decrypt(key, token, 60, t - 61); }).message,
              "invalid token: timestamp too far in the future");
    // Ignoring age: any clock.
    for (std::int64_t now :
         {std::int64_t{0}, t - 1'000'000, t + 1'000'000'000,
          std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()}) {
        EXPECT_EQ(pga::as_view(pga::fernet_decrypt(key, token, std::nullopt, now)), "PKSECRET");
    }
}

TEST(Fernet, ExtremeTimestampsDoNotOverflow) {
    const pga::FernetKey key = pga::FernetKey::parse(kSecret);
    // now_unix -1 is written as 0xffffffffffffffff: the far future, never "expired".
    const std::string far = pga::fernet_encrypt(key, "x", -1, kIv);
    EXPECT_EQ(failure_of([&] {
                  pga::fernet_decrypt(key, far, std::numeric_limits<std::int64_t>::max(),
                                      std::numeric_limits<std::int64_t>::max());
              }).message,
              "invalid token: timestamp too far in the future");
    const std::string zero = pga::fernet_encrypt(key, "x", 0, kIv);
    EXPECT_EQ(failure_of([&] {
                  pga::fernet_decrypt(key, zero, 60, std::numeric_limits<std::int64_t>::max());
              }).message,
              "invalid token: expired");
    EXPECT_EQ(pga::as_view(pga::fernet_decrypt(key, zero, std::numeric_limits<std::int64_t>::max(),
                                               std::numeric_limits<std::int64_t>::max())),
              "x");
    EXPECT_EQ(failure_of([&] {
                  pga::fernet_decrypt(key, zero, 60, std::numeric_limits<std::int64_t>::min());
              }).message,
              "invalid token: timestamp too far in the future");
    // A negative ttl makes every token expired rather than wrapping around.
    EXPECT_EQ(failure_of([&] {
                  pga::fernet_decrypt(key, zero, std::numeric_limits<std::int64_t>::min(), 0);
              }).message,
              "invalid token: expired");
}

TEST(Fernet, PlaintextSizesAcrossBlockBoundaries) {
    const pga::FernetKey key = pga::FernetKey::parse(kSecret);
    for (std::size_t n : {0, 1, 15, 16, 17, 31, 32, 33, 512}) {
        std::string pt(n, '\0');
        for (std::size_t i = 0; i < n; ++i) pt[i] = static_cast<char>(255 - i);
        const std::string token = pga::fernet_encrypt(key, pt, 1'000, kIv);
        EXPECT_EQ(token.size() % 4, 0u);
        EXPECT_EQ(pga::as_view(pga::fernet_decrypt(key, token, std::nullopt, 0)), pt) << n;
        // Unpadded base64url is accepted too (base64url_decode treats '=' as optional).
        std::string bare = token;
        while (!bare.empty() && bare.back() == '=') bare.pop_back();
        EXPECT_EQ(pga::as_view(pga::fernet_decrypt(key, bare, std::nullopt, 0)), pt) << n;
    }
}

TEST(Fernet, EveryByteChangeAndTruncationIsRefused) {
    const pga::FernetKey key = pga::FernetKey::parse(kSecret);
    const std::string plain = "SKsecret-plaintext-0123456789";
    const std::string token = pga::fernet_encrypt(key, plain, 1'000, kIv);
    std::vector<std::uint8_t> raw;
    ASSERT_TRUE(pga::base64url_decode(token, raw));
    std::size_t refused = 0;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        for (std::uint8_t x : {0x01, 0x80, 0xff}) {
            raw[i] ^= x;
            const std::string bad = pga::base64url_encode(raw.data(), raw.size());
            raw[i] ^= x;
            Failure f = failure_of([&] { pga::fernet_decrypt(key, bad, std::nullopt, 0); });
            ASSERT_TRUE(f.threw) << i;
            EXPECT_EQ(f.code, pga::ErrorCode::DecryptFailed);
            // Byte 0 is the version; everything else is covered by the MAC.
            EXPECT_EQ(f.message, i == 0 ? "invalid token: unknown version"
                                        : "invalid token: signature does not verify")
                << i;
            expect_clean(f, {plain, bad.substr(0, 12), kSecret});
            ++refused;
        }
    }
    EXPECT_EQ(refused, raw.size() * 3);
    for (std::size_t n = 0; n < raw.size(); ++n) {
        const std::string cut = pga::base64url_encode(raw.data(), n);
        Failure f = failure_of([&] { pga::fernet_decrypt(key, cut, std::nullopt, 0); });
        ASSERT_TRUE(f.threw) << n;
        EXPECT_EQ(f.code, pga::ErrorCode::DecryptFailed) << n;
    }
}

TEST(Fernet, WrongKeyAndGarbageAreRefused) {
    const pga::FernetKey key = pga::FernetKey::parse(kSecret);
    const std::string token = pga::fernet_encrypt(key, "hello", 1'000, kIv);
    std::uint8_t other[32] = {1};
    const pga::FernetKey wrong = pga::FernetKey::parse(pga::base64url_encode(other, sizeof other));
    EXPECT_EQ(failure_of([&] { pga::fernet_decrypt(wrong, token, std::nullopt, 0); }).message,
              "invalid token: signature does not verify");
    for (const std::string &g :
         {std::string(), std::string("hello"), std::string("gAAAAA"), token + "A",
          token.substr(0, 20) + "+" + token.substr(21),
          token.substr(0, 20) + "/" + token.substr(21), std::string(token).replace(10, 1, 1, '\0'),
          " " + token, token + "\n", std::string(4u << 20, 'A')}) {
        Failure f = failure_of([&] { pga::fernet_decrypt(key, g, 60, 1'000); });
        EXPECT_TRUE(f.threw) << g.substr(0, 40);
        EXPECT_EQ(f.code, pga::ErrorCode::DecryptFailed) << g.substr(0, 40);
        EXPECT_EQ(f.message.rfind("invalid token: ", 0), 0u);
    }
}

TEST(Fernet, KeyParsing) {
    const pga::FernetKey key = pga::FernetKey::parse(kSecret);
    ASSERT_EQ(key.signing.size(), 16u);
    ASSERT_EQ(key.encryption.size(), 16u);
    std::vector<std::uint8_t> raw;
    ASSERT_TRUE(pga::base64url_decode(kSecret, raw));
    EXPECT_TRUE(std::equal(key.signing.begin(), key.signing.end(), raw.begin()));
    EXPECT_TRUE(std::equal(key.encryption.begin(), key.encryption.end(), raw.begin() + 16));
    // Unpadded is the same key.
    EXPECT_EQ(pga::FernetKey::parse(std::string(kSecret).substr(0, 43)).signing, key.signing);
    std::uint8_t b[33] = {};
    const std::string standard_b64 = "cw/0x689RpI+jtRR7oE8h/eQsKImvJapLeSbXpwF4e4=";
    for (const std::string &bad :
         {std::string(), pga::base64url_encode(b, 31), pga::base64url_encode(b, 33),
          pga::base64url_encode(b, 16), standard_b64, std::string(kSecret) + "=",
          std::string(kSecret) + " ", std::string(kSecret).substr(1), std::string(100000, 'A')}) {
        Failure f = failure_of([&] { pga::FernetKey::parse(bad); });
        ASSERT_TRUE(f.threw) << bad.substr(0, 50);
        EXPECT_EQ(f.code, pga::ErrorCode::InvalidParameter);
        EXPECT_EQ(f.message, "invalid Fernet key: must be base64url of exactly 32 bytes");
    }
}

}  // namespace
