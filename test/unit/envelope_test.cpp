// alpaca_secret envelopes: round trip, AAD binding, key ids, and hostile text. Every refusal
// must carry the right ErrorCode and must not repeat the plaintext, the key or the payload.
#include "common/encoding.hpp"
#include "common/envelope.hpp"
#include "common/error.hpp"
#include "common/keyring.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

constexpr const char *kSecret = "SKsecretPlaintext0123456789abcdefXYZ";  // 36 bytes
constexpr const char *kColumn = "secret_key";

std::string key_b64(std::uint8_t seed) {
    std::uint8_t k[32];
    for (int i = 0; i < 32; ++i) k[i] = static_cast<std::uint8_t>(seed * 29 + i * 11 + 3);
    return pga::base64_encode(k, 32);
}

pga::KeyRing ring_of(const std::vector<std::pair<std::uint32_t, std::uint8_t>> &keys) {
    std::string text;
    for (const auto &[id, seed] : keys) text += std::to_string(id) + " " + key_b64(seed) + "\n";
    return pga::KeyRing::parse(text, "test.keys");
}

pga::Uuid uuid_of(const char *text) {
    auto u = pga::parse_uuid(text);
    EXPECT_TRUE(u.has_value());
    return u.value_or(pga::Uuid{});
}

const pga::Uuid kCred = uuid_of("3f1c2b4a-5d6e-4f70-8192-a3b4c5d6e7f8");
const pga::Uuid kOtherCred = uuid_of("3f1c2b4a-5d6e-4f70-8192-a3b4c5d6e7f9");

struct Outcome {
    bool threw = false;
    pga::ErrorCode code = pga::ErrorCode::Internal;
    std::string message, hint;
};

template <typename F>
Outcome run(F f) {
    Outcome o;
    try {
        f();
    } catch (const pga::Error &e) {
        o.threw = true;
        o.code = e.code();
        o.message = e.what();
        o.hint = e.hint();
    }
    return o;
}

Outcome open(const pga::KeyRing &ring, std::string_view text, const pga::Uuid &cred = kCred,
             std::string_view column = kColumn) {
    return run([&] { (void)pga::open_secret(ring, text, cred, column); });
}

// The base64 payload part of an envelope.
std::string payload_part(const std::string &env) {
    return env.substr(env.rfind(':') + 1);
}

// Nothing secret or attacker-controlled (beyond a version tag) appears in a message.
void expect_clean(const Outcome &o, const std::vector<std::string> &forbidden) {
    for (const auto &f : forbidden) {
        if (f.size() < 8) continue;
        EXPECT_EQ(o.message.find(f), std::string::npos) << "message repeats input: " << o.message;
        EXPECT_EQ(o.hint.find(f), std::string::npos) << "hint repeats input: " << o.hint;
    }
}

TEST(Envelope, RoundTripAndTextForm) {
    pga::KeyRing ring = ring_of({{1, 1}, {7, 7}});
    std::string env = pga::seal_secret(ring, kSecret, kCred, kColumn);
    ASSERT_EQ(env.rfind("pgak1:7:", 0), 0u) << env;  // primary = highest id
    EXPECT_LE(env.size(), pga::kMaxEnvelopeTextLen);
    pga::Envelope parsed = pga::parse_envelope(env);
    EXPECT_EQ(parsed.key_id, 7u);
    EXPECT_EQ(parsed.payload.size(), 12 + std::string(kSecret).size() + 16);
    pga::SecureBytes plain = pga::open_secret(ring, env, kCred, kColumn);
    EXPECT_EQ(pga::as_view(plain), kSecret);
    // Never plaintext in the text form, and a fresh nonce every time.
    EXPECT_EQ(env.find(kSecret), std::string::npos);
    std::string again = pga::seal_secret(ring, kSecret, kCred, kColumn);
    EXPECT_NE(env, again);
    EXPECT_EQ(pga::as_view(pga::open_secret(ring, again, kCred, kColumn)), kSecret);
}

TEST(Envelope, SizesFromOneByteToMaxAndBinaryPlaintext) {
    pga::KeyRing ring = ring_of({{3, 3}});
    for (std::size_t n : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{16},
                          std::size_t{100}, pga::kMaxSecretLen}) {
        std::string pt(n, '\0');
        for (std::size_t i = 0; i < n; ++i) pt[i] = static_cast<char>(i * 37);  // includes NULs
        std::string env = pga::seal_secret(ring, pt, kCred, kColumn);
        EXPECT_LE(env.size(), pga::kMaxEnvelopeTextLen) << n;
        EXPECT_EQ(pga::parse_envelope(env).payload.size(), n + 28);
        EXPECT_EQ(pga::as_view(pga::open_secret(ring, env, kCred, kColumn)), pt) << n;
    }
    Outcome empty = run([&] { pga::seal_secret(ring, "", kCred, kColumn); });
    EXPECT_TRUE(empty.threw);
    EXPECT_EQ(empty.code, pga::ErrorCode::InvalidParameter);
    std::string too_long(pga::kMaxSecretLen + 1, 'S');
    Outcome big = run([&] { pga::seal_secret(ring, too_long, kCred, kColumn); });
    EXPECT_TRUE(big.threw);
    EXPECT_EQ(big.code, pga::ErrorCode::InvalidParameter);
    expect_clean(big, {too_long.substr(0, 16)});
    Outcome col = run([&] { pga::seal_secret(ring, kSecret, kCred, ""); });
    EXPECT_EQ(col.code, pga::ErrorCode::InvalidParameter);
    Outcome col2 = run([&] { pga::seal_secret(ring, kSecret, kCred, std::string(129, 'c')); });
    EXPECT_EQ(col2.code, pga::ErrorCode::InvalidParameter);
}

TEST(Envelope, OlderKeysStillOpenAfterANewPrimary) {
    pga::KeyRing old_ring = ring_of({{1, 1}});
    std::string env = pga::seal_secret(old_ring, kSecret, kCred, kColumn);
    pga::KeyRing rotated = ring_of({{1, 1}, {2, 2}});
    EXPECT_EQ(pga::as_view(pga::open_secret(rotated, env, kCred, kColumn)), kSecret);
    EXPECT_EQ(pga::seal_secret(rotated, kSecret, kCred, kColumn).rfind("pgak1:2:", 0), 0u);
}

TEST(Envelope, KeyIdInTextFormIsBoundIntoTheCiphertext) {
    // Same master key under two ids: relabelling an envelope's id must not open it.
    pga::KeyRing ring = ring_of({{5, 9}, {6, 9}});
    std::string env = pga::seal_secret(ring, kSecret, kCred, kColumn);
    ASSERT_EQ(env.rfind("pgak1:6:", 0), 0u);
    std::string relabelled = "pgak1:5:" + payload_part(env);
    Outcome o = open(ring, relabelled);
    EXPECT_TRUE(o.threw);
    EXPECT_EQ(o.code, pga::ErrorCode::DecryptFailed);
    expect_clean(o, {kSecret, key_b64(9), payload_part(env)});
    // Largest id is written and read back exactly.
    pga::KeyRing max_ring = ring_of({{4294967295u, 4}});
    std::string max_env = pga::seal_secret(max_ring, kSecret, kCred, kColumn);
    EXPECT_EQ(max_env.rfind("pgak1:4294967295:", 0), 0u);
    EXPECT_EQ(pga::parse_envelope(max_env).key_id, 4294967295u);
    EXPECT_EQ(pga::as_view(pga::open_secret(max_ring, max_env, kCred, kColumn)), kSecret);
}

TEST(Envelope, AadBindsCredentialAndColumn) {
    pga::KeyRing ring = ring_of({{1, 1}});
    std::string env = pga::seal_secret(ring, kSecret, kCred, kColumn);
    const std::vector<std::string> forbidden = {kSecret, key_b64(1), payload_part(env)};
    for (const Outcome &o :
         {open(ring, env, kOtherCred, kColumn), open(ring, env, kCred, "api_key"),
          open(ring, env, kCred, "secret_ke"), open(ring, env, kCred, "Secret_key"),
          open(ring, env, pga::Uuid{}, kColumn)}) {
        EXPECT_TRUE(o.threw);
        EXPECT_EQ(o.code, pga::ErrorCode::DecryptFailed) << o.message;
        EXPECT_NE(o.message.find("does not decrypt"), std::string::npos) << o.message;
        expect_clean(o, forbidden);
    }
    // The column name with an embedded NUL is a different column.
    Outcome nul = open(ring, env, kCred, std::string_view("secret_key\0", 11));
    EXPECT_EQ(nul.code, pga::ErrorCode::DecryptFailed);
    // Another key under the same id: tag mismatch, not garbage.
    pga::KeyRing impostor = ring_of({{1, 2}});
    Outcome o = open(impostor, env);
    EXPECT_EQ(o.code, pga::ErrorCode::DecryptFailed);
    expect_clean(o, {kSecret, key_b64(1), key_b64(2)});
}

TEST(Envelope, UnknownKeyIdIsKeyMissingNamingTheId) {
    pga::KeyRing writer = ring_of({{42, 1}});
    std::string env = pga::seal_secret(writer, kSecret, kCred, kColumn);
    pga::KeyRing reader = ring_of({{1, 1}, {43, 1}});
    Outcome o = open(reader, env);
    EXPECT_TRUE(o.threw);
    EXPECT_EQ(o.code, pga::ErrorCode::KeyMissing);
    EXPECT_NE(o.message.find("key id 42 is not in the key ring"), std::string::npos) << o.message;
    expect_clean(o, {kSecret, key_b64(1), payload_part(env)});
    // parse_envelope alone needs no key.
    EXPECT_EQ(pga::parse_envelope(env).key_id, 42u);
}

struct Hostile {
    const char *name;
    std::string text;
    const char *message_part;
};

TEST(Envelope, HostileTextIsInvalidTextWithAHint) {
    pga::KeyRing ring = ring_of({{1, 1}});
    std::string good = pga::seal_secret(ring, kSecret, kCred, kColumn);
    std::string b64 = payload_part(good);
    std::uint8_t bytes[600];
    for (int i = 0; i < 600; ++i) bytes[i] = static_cast<std::uint8_t>(i);
    const std::vector<Hostile> cases = {
        {"empty", "", "empty value"},
        {"plaintext", kSecret, "not an envelope"},
        {"plaintext key id", "PKTESTALICE000000001", "not an envelope"},
        {"upper-case prefix", "PGAK1:1:" + b64, "not an envelope"},
        {"leading space", " " + good, "not an envelope"},
        {"other version", "pgak2:1:" + b64, "unsupported envelope version \"pgak2\""},
        {"version zero", "pgak0:1:" + b64, "unsupported envelope version"},
        {"long version", "pgak12:1:" + b64, "unsupported envelope version \"pgak12\""},
        {"version only", "pgak1", "malformed envelope"},
        {"prefix only", "pgak1:", "malformed envelope"},
        {"no payload separator", "pgak1:1", "malformed envelope"},
        {"no key id", "pgak1::" + b64, "missing key id"},
        {"missing payload", "pgak1:1:", "missing payload"},
        {"key id zero", "pgak1:0:" + b64, "key id must be"},
        {"key id leading zero", "pgak1:01:" + b64, "key id must be"},
        {"key id too large", "pgak1:4294967296:" + b64, "key id must be"},
        {"key id 11 digits", "pgak1:10000000000:" + b64, "key id must be"},
        {"key id sign", "pgak1:+1:" + b64, "key id must be"},
        {"key id negative", "pgak1:-1:" + b64, "key id must be"},
        {"key id hex", "pgak1:0x1:" + b64, "key id must be"},
        {"key id space", "pgak1: 1:" + b64, "key id must be"},
        {"bad base64 char", "pgak1:1:" + b64.substr(0, 8) + "!" + b64.substr(9), "base64"},
        {"base64url alphabet", "pgak1:1:" + std::string(64, '_'), "base64"},
        {"missing padding", "pgak1:1:" + pga::base64_encode(bytes, 50).substr(0, 67), "base64"},
        {"extra padding", "pgak1:1:" + pga::base64_encode(bytes, 48) + "====", "base64"},
        {"trailing newline", good + "\n", "base64"},
        {"trailing space", good + " ", "base64"},
        {"embedded NUL", good.substr(0, 20) + std::string(1, '\0') + good.substr(21), "base64"},
        {"NUL after prefix", std::string("pgak1:1:\0", 9) + b64, "base64"},
        {"third colon", good + ":AAAA", "base64"},
        {"short payload 28", "pgak1:1:" + pga::base64_encode(bytes, 28), "payload too short (28"},
        {"short payload 1", "pgak1:1:" + pga::base64_encode(bytes, 1), "payload too short"},
        {"long payload 541", "pgak1:1:" + pga::base64_encode(bytes, 541), "payload too long (541"},
        {"long payload 600", "pgak1:1:" + pga::base64_encode(bytes, 600), "payload too long"},
        {"too long text", "pgak1:1:" + std::string(1100, 'A'), "envelope too long"},
        {"huge text", "pgak1:1:" + std::string(8u << 20, 'A'), "envelope too long"},
        {"huge plaintext", std::string(8u << 20, 'x'), "not an envelope"},
    };
    for (const auto &c : cases) {
        SCOPED_TRACE(c.name);
        Outcome parsed = run([&] { (void)pga::parse_envelope(c.text); });
        Outcome opened = open(ring, c.text);
        for (const Outcome *o : {&parsed, &opened}) {
            ASSERT_TRUE(o->threw);
            EXPECT_EQ(o->code, pga::ErrorCode::InvalidText) << o->message;
            EXPECT_EQ(o->message.rfind("invalid alpaca_secret: ", 0), 0u) << o->message;
            EXPECT_NE(o->message.find(c.message_part), std::string::npos) << o->message;
            EXPECT_NE(o->hint.find("alpaca_store_credential"), std::string::npos);
            EXPECT_LT(o->message.size(), 200u);
            expect_clean(*o, {kSecret, key_b64(1), b64, b64.substr(8, 16), "PKTESTALICE"});
        }
        EXPECT_EQ(parsed.message, opened.message);
    }
}

TEST(Envelope, BoundaryPayloadSizesParse) {
    std::uint8_t bytes[540] = {};
    EXPECT_EQ(pga::parse_envelope("pgak1:1:" + pga::base64_encode(bytes, 29)).payload.size(), 29u);
    EXPECT_EQ(pga::parse_envelope("pgak1:9:" + pga::base64_encode(bytes, 540)).payload.size(),
              540u);
    // Well-formed but never sealed: authentication, not parsing, refuses it.
    pga::KeyRing ring = ring_of({{1, 1}});
    Outcome o = open(ring, "pgak1:1:" + pga::base64_encode(bytes, 29));
    EXPECT_EQ(o.code, pga::ErrorCode::DecryptFailed);
}

// Expected refusal for the first len characters of a valid envelope, worked out from the
// format rather than from the parser: the header is InvalidText; after it, base64 that is
// empty or not a multiple of 4 is InvalidText, and so is a payload under 29 bytes; a
// well-formed shorter payload is a tag mismatch.
pga::ErrorCode expected_for_prefix(const std::string &env, std::size_t len) {
    const std::size_t header = env.rfind(':') + 1;
    if (len <= header) return pga::ErrorCode::InvalidText;
    const std::size_t k = len - header;
    if (k % 4 != 0) return pga::ErrorCode::InvalidText;
    const std::size_t padding = (env[len - 1] == '=') + (env[len - 2] == '=');
    const std::size_t bytes = k / 4 * 3 - padding;
    return bytes < 29 ? pga::ErrorCode::InvalidText : pga::ErrorCode::DecryptFailed;
}

TEST(Envelope, EveryTruncationIsRefused) {
    pga::KeyRing ring = ring_of({{12, 1}});
    // 36 bytes -> 64 payload bytes ("=="); 37 -> 65 ("="); 38 -> 66 (no padding).
    for (std::string pt :
         {std::string(kSecret), std::string(kSecret) + "a", std::string(kSecret) + "ab"}) {
        std::string env = pga::seal_secret(ring, pt, kCred, kColumn);
        int decrypt_failed = 0;
        for (std::size_t len = 0; len < env.size(); ++len) {
            SCOPED_TRACE(len);
            std::string cut = env.substr(0, len);
            Outcome o = open(ring, cut);
            ASSERT_TRUE(o.threw);
            EXPECT_EQ(o.code, expected_for_prefix(env, len)) << o.message;
            decrypt_failed += o.code == pga::ErrorCode::DecryptFailed;
            expect_clean(o, {pt, key_b64(1), payload_part(env)});
        }
        EXPECT_GT(decrypt_failed, 3);  // the well-formed prefixes were actually reached
        EXPECT_EQ(pga::as_view(pga::open_secret(ring, env, kCred, kColumn)), pt);
    }
}

bool is_b64_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

TEST(Envelope, EverySingleCharacterChangeIsRefused) {
    pga::KeyRing ring = ring_of({{3, 1}, {7, 2}});
    std::string env = pga::seal_secret(ring, std::string(kSecret) + "a", kCred, kColumn);
    ASSERT_EQ(env.rfind("pgak1:7:", 0), 0u);
    const std::size_t header = env.rfind(':') + 1;
    const std::string alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=:-_. \n";
    std::size_t tried = 0, decrypt_failed = 0, key_missing = 0;
    for (std::size_t i = 0; i < env.size(); ++i) {
        for (char c : alphabet + std::string(1, '\0') + std::string(1, '\xff')) {
            if (c == env[i]) continue;
            std::string bad = env;
            bad[i] = c;
            Outcome o = open(ring, bad);
            ++tried;
            ASSERT_TRUE(o.threw) << "accepted a change at " << i << " to " << int(c);
            if (i < header) {
                // The id digit '7' -> '3' names another real key: tag mismatch. Other digits
                // name keys that are absent; anything else breaks the header.
                if (i == 6 && c == '3') {
                    EXPECT_EQ(o.code, pga::ErrorCode::DecryptFailed) << o.message;
                } else if (i == 6 && c >= '1' && c <= '9') {
                    EXPECT_EQ(o.code, pga::ErrorCode::KeyMissing) << o.message;
                    EXPECT_NE(o.message.find(std::string("key id ") + c), std::string::npos);
                    ++key_missing;
                } else {
                    EXPECT_EQ(o.code, pga::ErrorCode::InvalidText) << i << ' ' << o.message;
                }
            } else if (env[i] == '=' || (i + 1 < env.size() && env[i + 1] == '=')) {
                // Padding, or the last data character before it: the change may leave
                // non-zero trailing bits or bad padding (malformed) or a well-formed payload
                // of another length or value (tag mismatch). Never anything else.
                EXPECT_TRUE(o.code == pga::ErrorCode::InvalidText ||
                            o.code == pga::ErrorCode::DecryptFailed)
                    << o.message;
                decrypt_failed += o.code == pga::ErrorCode::DecryptFailed;
            } else if (!is_b64_char(c)) {
                // '=' is legal only as trailing padding.
                EXPECT_EQ(o.code, pga::ErrorCode::InvalidText) << i << ' ' << o.message;
            } else {
                EXPECT_EQ(o.code, pga::ErrorCode::DecryptFailed) << i << ' ' << o.message;
                ++decrypt_failed;
            }
            expect_clean(o, {kSecret, key_b64(1), key_b64(2), payload_part(env)});
        }
    }
    EXPECT_GT(tried, 6000u);
    EXPECT_GT(decrypt_failed, 5000u);
    EXPECT_EQ(key_missing, 7u);  // 1,2,4,5,6,8,9
}

// Made by an independent Python implementation of the documented format (HKDF-SHA256 from
// pyca/cryptography, AES-GCM, the AAD layout of envelope.hpp), master keys bytes 0..31 (id 1)
// and 32..63 (id 7). The fuzz/corpus/envelope_fuzz seeds use the same keys.
constexpr const char *kCrossRing =
    "1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    "7 ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n";

TEST(Envelope, OpensAnEnvelopeMadeByAnotherImplementation) {
    const pga::KeyRing ring = pga::KeyRing::parse(kCrossRing, "cross.keys");
    EXPECT_EQ(pga::as_view(pga::open_secret(
                  ring,
                  "pgak1:7:ZGVmZ2hpamtsbW5voE7X4k6F8gbrkXEMjMNrTP28/pYe+F2oWIUJ+SRCKAa0LnOJdN/"
                  "7AjWcwyxuEqOTAMTxMQ==",
                  kCred, kColumn)),
              kSecret);
    const std::string api =
        "pgak1:1:AAAAAAAAAAAAAAAACZ2iFK133wWySkR/p2hJIQj96lIiplUV09xP5uAMlrDrAZ+e";
    EXPECT_EQ(pga::as_view(pga::open_secret(ring, api, kCred, "api_key")), "PKTESTALICE000000001");
    EXPECT_EQ(open(ring, api, kCred, kColumn).code, pga::ErrorCode::DecryptFailed);
    EXPECT_EQ(pga::fingerprint(ring.require(1), "PKTESTALICE000000001"),
              "1:8vkFNYsqOuOwbW-Fv_2_Pecf46XJsBId2agczpvq8ig");
}

TEST(Envelope, FingerprintIsKeyedAndStable) {
    pga::KeyRing ring = ring_of({{1, 1}, {2, 2}});
    const std::string a = pga::fingerprint(ring.require(1), "PKTESTALICE000000001");
    EXPECT_EQ(a, pga::fingerprint(ring.require(1), "PKTESTALICE000000001"));
    EXPECT_EQ(a.rfind("1:", 0), 0u);
    EXPECT_EQ(a.size(), 2u + 43u);  // base64url of 32 bytes, unpadded
    EXPECT_NE(a, pga::fingerprint(ring.require(1), "PKTESTALICE000000002"));
    const std::string b = pga::fingerprint(ring.require(2), "PKTESTALICE000000001");
    EXPECT_EQ(b.rfind("2:", 0), 0u);
    EXPECT_NE(a.substr(2), b.substr(2));
    EXPECT_EQ(a.find("PKTESTALICE"), std::string::npos);
}

}  // namespace
