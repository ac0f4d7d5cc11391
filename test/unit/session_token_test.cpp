// Gateway session tokens: shape, randomness, keyed hash under the key id the token names, and
// every malformed or foreign token hashing to nothing (never an exception).
#include "common/crypto.hpp"
#include "common/encoding.hpp"
#include "common/keyring.hpp"
#include "common/session_token.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace {

std::string key_b64(std::uint8_t seed) {
    std::uint8_t k[32];
    for (int i = 0; i < 32; ++i) k[i] = static_cast<std::uint8_t>(seed * 7 + i * 3 + 2);
    return pga::base64_encode(k, 32);
}

pga::KeyRing ring(const std::string &lines) {
    return pga::KeyRing::parse(lines, "t.keys");
}

std::string text(const pga::MintedSessionToken &t) {
    return std::string(pga::as_view(t.token));
}

TEST(SessionToken, ShapeAndUniqueness) {
    const pga::KeyRing r = ring("3 " + key_b64(1) + "\n");
    std::set<std::string> seen;
    for (int i = 0; i < 200; ++i) {
        const pga::MintedSessionToken t = pga::mint_session_token(r);
        const std::string s = text(t);
        ASSERT_EQ(s.size(), pga::kSessionTokenLen);
        ASSERT_EQ(s.rfind("pgas_", 0), 0u);
        ASSERT_TRUE(pga::looks_like_session_token(s));
        ASSERT_TRUE(seen.insert(s).second) << "a token repeated";
        const auto h = pga::session_token_hash(r, s);
        ASSERT_TRUE(h.has_value());
        EXPECT_EQ(*h, t.hash);
    }
}

TEST(SessionToken, HashIsKeyedByTheTokensKeyId) {
    const pga::KeyRing old_ring = ring("1 " + key_b64(1) + "\n");
    const pga::KeyRing both = ring("1 " + key_b64(1) + "\n2 " + key_b64(2) + "\n");
    const pga::KeyRing only2 = ring("2 " + key_b64(2) + "\n");
    const pga::KeyRing other1 = ring("1 " + key_b64(9) + "\n");
    const pga::MintedSessionToken t = pga::mint_session_token(old_ring);
    const std::string s = text(t);
    // After a new primary key is added, the token still hashes the same (its key id is 1).
    EXPECT_EQ(pga::session_token_hash(both, s), std::optional<pga::Sha256>(t.hash));
    // Its key left the ring: nothing.
    EXPECT_FALSE(pga::session_token_hash(only2, s).has_value());
    // Another key under the same id: another hash.
    EXPECT_NE(pga::session_token_hash(other1, s), std::optional<pga::Sha256>(t.hash));
    // Not the plain SHA-256 of the text, nor the ticket key's HMAC.
    const pga::KeyEntry &k = old_ring.primary();
    EXPECT_NE(t.hash, pga::hmac_sha256(k.ticket_key.data(), k.ticket_key.size(),
                                       reinterpret_cast<const std::uint8_t *>(s.data()), s.size()));
    // New tokens of a two-key ring carry the primary's id.
    EXPECT_TRUE(pga::session_token_hash(only2, text(pga::mint_session_token(both))).has_value());
}

TEST(SessionToken, MalformedTokensHashToNothing) {
    const pga::KeyRing r = ring("1 " + key_b64(1) + "\n");
    const std::string good = text(pga::mint_session_token(r));
    const std::string cases[] = {"",
                                 "pgas_",
                                 good.substr(0, good.size() - 1),
                                 good + "A",
                                 "pgat_" + good.substr(5),
                                 "PGAS_" + good.substr(5),
                                 good.substr(0, 10) + "*" + good.substr(11),
                                 good.substr(0, 10) + "=" + good.substr(11),
                                 std::string(good.size(), '\0'),
                                 "pgas_" + std::string(38, '/'),
                                 good.substr(0, 20) + "\n" + good.substr(21)};
    for (const std::string &c : cases) {
        EXPECT_FALSE(pga::session_token_hash(r, c).has_value()) << c;
    }
    // One character changed in the random part: a valid shape, another hash.
    std::string changed = good;
    changed[30] = changed[30] == 'A' ? 'B' : 'A';
    const auto h = pga::session_token_hash(r, changed);
    ASSERT_TRUE(h.has_value());
    EXPECT_NE(*h, *pga::session_token_hash(r, good));
}

}  // namespace
