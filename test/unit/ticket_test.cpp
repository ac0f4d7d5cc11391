// Tickets: mint/verify round trip, expiry at an injected clock, and every way a hostile
// sidecar could bend one. Errors never repeat the ticket, its parts or a key.
#include "common/crypto.hpp"
#include "common/encoding.hpp"
#include "common/error.hpp"
#include "common/keyring.hpp"
#include "common/ticket.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace {

constexpr std::int64_t kNow = 1'790'000'000'000;  // ms
constexpr const char *kUser = "alice@example.com";

std::string key_b64(std::uint8_t seed) {
    std::uint8_t k[32];
    for (int i = 0; i < 32; ++i) k[i] = static_cast<std::uint8_t>(seed * 13 + i * 5 + 1);
    return pga::base64_encode(k, 32);
}

pga::KeyRing ring_of(const std::vector<std::pair<std::uint32_t, std::uint8_t>> &keys) {
    std::string text;
    for (const auto &[id, seed] : keys) text += std::to_string(id) + " " + key_b64(seed) + "\n";
    return pga::KeyRing::parse(text, "test.keys");
}

pga::TicketClaims claims(std::string purpose = "positions", std::string user = kUser,
                         std::int64_t expires = kNow + 30'000) {
    pga::TicketClaims c;
    c.credential_id = *pga::parse_uuid("0b6f2a1c-9d8e-4c7b-a6f5-e4d3c2b1a090");
    c.expires_at_ms = expires;
    c.purpose = std::move(purpose);
    c.app_user = std::move(user);
    return c;
}

struct Outcome {
    bool threw = false;
    pga::ErrorCode code = pga::ErrorCode::Internal;
    std::string message;
};

Outcome verify(const pga::KeyRing &ring, std::string_view ticket, std::int64_t now = kNow) {
    Outcome o;
    try {
        (void)pga::verify_ticket(ring, ticket, now);
    } catch (const pga::Error &e) {
        o.threw = true;
        o.code = e.code();
        o.message = e.what();
    }
    return o;
}

// The message names no part of the ticket, no app user and no key.
void expect_clean(const Outcome &o, const std::string &ticket) {
    const std::size_t dot = ticket.rfind('.');
    for (const std::string &f : {ticket.substr(6, 20), ticket.substr(dot + 1, 20),
                                 std::string(kUser), key_b64(1), key_b64(2), key_b64(3)}) {
        EXPECT_EQ(o.message.find(f), std::string::npos) << o.message;
    }
    EXPECT_LT(o.message.size(), 100u) << o.message;
}

// Splits a ticket into its decoded payload and MAC.
void split(const std::string &t, std::vector<std::uint8_t> &payload,
           std::vector<std::uint8_t> &mac) {
    const std::size_t dot = t.rfind('.');
    ASSERT_TRUE(pga::base64url_decode(t.substr(6, dot - 6), payload));
    ASSERT_TRUE(pga::base64url_decode(t.substr(dot + 1), mac));
}

std::string join(const std::vector<std::uint8_t> &payload, const std::vector<std::uint8_t> &mac) {
    return "pgat1." + pga::base64url_encode(payload.data(), payload.size()) + "." +
           pga::base64url_encode(mac.data(), mac.size());
}

// Signs an arbitrary payload with a ring's real ticket key: reaches the checks that run only
// after the MAC, which a forger without the key never could.
std::string sign(const pga::KeyEntry &key, const std::vector<std::uint8_t> &payload) {
    std::string head = "pgat1." + pga::base64url_encode(payload.data(), payload.size());
    pga::Sha256 mac =
        pga::hmac_sha256(key.ticket_key.data(), key.ticket_key.size(),
                         reinterpret_cast<const std::uint8_t *>(head.data()), head.size());
    return head + "." + pga::base64url_encode(mac.data(), mac.size());
}

TEST(Ticket, MintVerifyRoundTrip) {
    pga::KeyRing ring = ring_of({{1, 1}, {4, 2}});
    pga::TicketClaims c = claims();
    const std::string t = pga::mint_ticket(ring, c);
    EXPECT_EQ(c.key_id, 4u);
    EXPECT_NE(c.nonce, (std::array<std::uint8_t, 16>{}));
    EXPECT_EQ(t.rfind("pgat1.", 0), 0u);
    EXPECT_LE(t.size(), pga::kMaxTicketTextLen);
    EXPECT_EQ(t.find(kUser), std::string::npos);
    pga::TicketClaims v = pga::verify_ticket(ring, t, kNow);
    EXPECT_EQ(v.key_id, 4u);
    EXPECT_EQ(v.credential_id, c.credential_id);
    EXPECT_EQ(v.expires_at_ms, c.expires_at_ms);
    EXPECT_EQ(v.nonce, c.nonce);
    EXPECT_EQ(v.purpose, "positions");
    EXPECT_EQ(v.app_user, kUser);
    // Fresh nonce each time, so two tickets for the same request differ.
    pga::TicketClaims c2 = claims();
    const std::string t2 = pga::mint_ticket(ring, c2);
    EXPECT_NE(t, t2);
    EXPECT_NE(c.nonce, c2.nonce);
}

// Made by an independent Python implementation of the layout in ticket.hpp (HKDF-SHA256 from
// pyca/cryptography, HMAC-SHA256), master key bytes 32..63 under id 7, expiring at
// 2100000000000 ms. fuzz/corpus/ticket_fuzz uses the same key.
TEST(Ticket, VerifiesATicketMadeByAnotherImplementation) {
    const pga::KeyRing ring =
        pga::KeyRing::parse("7 ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n", "cross.keys");
    const std::string t =
        "pgat1.AAAABz8cK0pdbk9wgZKjtMXW5_gAAAHo8cEIAAABAgMEBQYHCAkKCwwNDg8JcG9zaXRpb25zABFhbGljZUBl"
        "eGFtcGxlLmNvbQ.f3AmtH6e-ZfnL6l1z3jkkal23Ob4f-Z1JXeveRJrDbA";
    const pga::TicketClaims c = pga::verify_ticket(ring, t, kNow);
    EXPECT_EQ(c.key_id, 7u);
    EXPECT_EQ(pga::format_uuid(c.credential_id), "3f1c2b4a-5d6e-4f70-8192-a3b4c5d6e7f8");
    EXPECT_EQ(c.expires_at_ms, 2'100'000'000'000);
    EXPECT_EQ(c.nonce,
              (std::array<std::uint8_t, 16>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}));
    EXPECT_EQ(c.purpose, "positions");
    EXPECT_EQ(c.app_user, kUser);
    EXPECT_EQ(verify(ring, t, 2'100'000'000'000).message, "ticket expired");
}

TEST(Ticket, LimitsOfPurposeAndAppUser) {
    pga::KeyRing ring = ring_of({{1, 1}});
    std::string user(pga::kMaxAppUserLen, 'u');
    user[0] = '\0';
    user[100] = '\xff';  // binary app users survive intact
    pga::TicketClaims c = claims(std::string(pga::kMaxPurposeLen, 'p'), user);
    const std::string t = pga::mint_ticket(ring, c);
    EXPECT_LE(t.size(), pga::kMaxTicketTextLen);
    pga::TicketClaims v = pga::verify_ticket(ring, t, kNow);
    EXPECT_EQ(v.purpose, std::string(pga::kMaxPurposeLen, 'p'));
    EXPECT_EQ(v.app_user, user);
    pga::TicketClaims one = claims("x", "y");
    EXPECT_EQ(pga::verify_ticket(ring, pga::mint_ticket(ring, one), kNow).app_user, "y");

    for (pga::TicketClaims bad :
         {claims(""), claims(std::string(pga::kMaxPurposeLen + 1, 'p')), claims("orders", ""),
          claims("orders", std::string(pga::kMaxAppUserLen + 1, 'u'))}) {
        try {
            pga::mint_ticket(ring, bad);
            ADD_FAILURE() << "minted a ticket with purpose " << bad.purpose.size()
                          << " bytes, user " << bad.app_user.size();
        } catch (const pga::Error &e) {
            EXPECT_EQ(e.code(), pga::ErrorCode::InvalidParameter);
        }
    }
}

TEST(Ticket, ExpiryFollowsTheInjectedClock) {
    pga::KeyRing ring = ring_of({{1, 1}});
    pga::TicketClaims c = claims("orders", kUser, kNow);
    const std::string t = pga::mint_ticket(ring, c);
    EXPECT_EQ(pga::verify_ticket(ring, t, kNow - 1).purpose, "orders");
    EXPECT_EQ(pga::verify_ticket(ring, t, std::numeric_limits<std::int64_t>::min()).purpose,
              "orders");
    for (std::int64_t now :
         {kNow, kNow + 1, kNow + 86'400'000, std::numeric_limits<std::int64_t>::max()}) {
        Outcome o = verify(ring, t, now);
        EXPECT_TRUE(o.threw) << now;
        EXPECT_EQ(o.code, pga::ErrorCode::TicketInvalid);
        EXPECT_EQ(o.message, "ticket expired");
    }
    // Extreme expiry values keep their sign through the u64 encoding.
    pga::TicketClaims past = claims("orders", kUser, std::numeric_limits<std::int64_t>::min());
    EXPECT_EQ(verify(ring, pga::mint_ticket(ring, past)).message, "ticket expired");
    pga::TicketClaims never = claims("orders", kUser, std::numeric_limits<std::int64_t>::max());
    const std::string nt = pga::mint_ticket(ring, never);
    EXPECT_EQ(pga::verify_ticket(ring, nt, kNow).expires_at_ms,
              std::numeric_limits<std::int64_t>::max());
}

TEST(Ticket, PurposeIsAuthenticated) {
    // The purpose is compared by the caller (extension/redeem.cpp); here it must come back
    // exactly as minted and must not be changeable without the key.
    pga::KeyRing ring = ring_of({{1, 1}});
    pga::TicketClaims c = claims("account");
    const std::string t = pga::mint_ticket(ring, c);
    EXPECT_EQ(pga::verify_ticket(ring, t, kNow).purpose, "account");
    std::vector<std::uint8_t> payload, mac;
    split(t, payload, mac);
    const std::size_t at = 4 + 16 + 8 + 16;
    ASSERT_EQ(payload[at], 7u);
    const char *swapped = "orders_";  // same length, so only the MAC can tell
    std::memcpy(payload.data() + at + 1, swapped, 7);
    Outcome o = verify(ring, join(payload, mac));
    EXPECT_EQ(o.code, pga::ErrorCode::TicketInvalid);
    EXPECT_EQ(o.message, "ticket signature does not verify");
}

TEST(Ticket, EveryBitFlipInPayloadOrMacIsRefused) {
    pga::KeyRing ring = ring_of({{1, 1}, {2, 2}});
    pga::TicketClaims c = claims();
    const std::string t = pga::mint_ticket(ring, c);
    std::vector<std::uint8_t> payload, mac;
    split(t, payload, mac);
    std::size_t checked = 0, key_missing = 0;
    for (int part = 0; part < 2; ++part) {
        std::vector<std::uint8_t> &bytes = part == 0 ? payload : mac;
        for (std::size_t i = 0; i < bytes.size(); ++i) {
            for (int bit = 0; bit < 8; ++bit) {
                bytes[i] ^= static_cast<std::uint8_t>(1u << bit);
                const std::string bad = join(payload, mac);
                bytes[i] ^= static_cast<std::uint8_t>(1u << bit);
                Outcome o = verify(ring, bad);
                ++checked;
                ASSERT_TRUE(o.threw) << part << ' ' << i << ' ' << bit;
                // The first four payload bytes are the key id (2): any flip there names an
                // id the ring does not hold (3, 0, 6, 10, ...), so the lookup fails first.
                if (part == 0 && i < 4) {
                    EXPECT_EQ(o.code, pga::ErrorCode::KeyMissing) << o.message;
                    ++key_missing;
                } else {
                    EXPECT_EQ(o.code, pga::ErrorCode::TicketInvalid) << o.message;
                    EXPECT_EQ(o.message, "ticket signature does not verify");
                }
                expect_clean(o, t);
            }
        }
    }
    EXPECT_EQ(checked, (payload.size() + 32) * 8);
    EXPECT_EQ(key_missing, 32u);
    EXPECT_EQ(pga::verify_ticket(ring, join(payload, mac), kNow).app_user, kUser);
}

TEST(Ticket, KeyIdFlipOntoAnotherRealKeyFailsTheMac) {
    pga::KeyRing ring = ring_of({{2, 1}, {3, 2}});
    pga::TicketClaims c = claims();
    const std::string t = pga::mint_ticket(ring, c);
    ASSERT_EQ(c.key_id, 3u);
    std::vector<std::uint8_t> payload, mac;
    split(t, payload, mac);
    payload[3] = 2;
    Outcome o = verify(ring, join(payload, mac));
    EXPECT_EQ(o.code, pga::ErrorCode::TicketInvalid);
    EXPECT_EQ(o.message, "ticket signature does not verify");
}

TEST(Ticket, EveryTruncationAndCharacterChangeIsRefused) {
    pga::KeyRing ring = ring_of({{1, 1}});
    pga::TicketClaims c = claims();
    const std::string t = pga::mint_ticket(ring, c);
    for (std::size_t len = 0; len < t.size(); ++len) {
        Outcome o = verify(ring, t.substr(0, len));
        ASSERT_TRUE(o.threw) << len;
        EXPECT_EQ(o.code, pga::ErrorCode::TicketInvalid) << len << ' ' << o.message;
        if (len >= 26) expect_clean(o, t);
    }
    const std::string alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+/= :";
    std::size_t tried = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
        for (char ch : alphabet + std::string(1, '\0')) {
            if (ch == t[i]) continue;
            std::string bad = t;
            bad[i] = ch;
            Outcome o = verify(ring, bad);
            ++tried;
            ASSERT_TRUE(o.threw) << i << ' ' << ch;
            // Characters 6..11 carry the key id (4 bytes = 5.33 characters of base64url).
            if (i >= 6 && i < 12 && o.code == pga::ErrorCode::KeyMissing) continue;
            EXPECT_EQ(o.code, pga::ErrorCode::TicketInvalid) << i << ' ' << o.message;
            expect_clean(o, t);
        }
    }
    EXPECT_GT(tried, 10000u);
}

TEST(Ticket, GarbageIsMalformed) {
    pga::KeyRing ring = ring_of({{1, 1}});
    pga::TicketClaims c = claims();
    const std::string t = pga::mint_ticket(ring, c);
    const std::size_t dot = t.rfind('.');
    const std::string payload_b64 = t.substr(6, dot - 6), mac_b64 = t.substr(dot + 1);
    const std::vector<std::string> garbage = {
        "",
        "pgat1",
        "pgat1.",
        "pgat1..",
        "pgat1.AAAA.",
        "pgat1..AAAA",
        "pgat2." + payload_b64 + "." + mac_b64,
        "PGAT1." + payload_b64 + "." + mac_b64,
        " " + t,
        t + " ",
        t + "\n",
        t + "=",
        "pgat1." + payload_b64 + "=." + mac_b64,
        t + ".AAAA",
        "pgat1." + payload_b64 + mac_b64,
        "pgat1." + payload_b64 + "." + mac_b64.substr(0, 42),  // MAC of 31 bytes
        "pgat1." + payload_b64 + "." + mac_b64 + "A",          // MAC of 33 bytes
        "pgat1." + payload_b64 + "." + mac_b64 + "AA",         // impossible length
        t.substr(0, 20) + std::string(1, '\0') + t.substr(21),
        t.substr(0, 20) + "+" + t.substr(21),
        t.substr(0, 20) + "/" + t.substr(21),
        "pgat1." + std::string(60, 'A') + "." + std::string(43, 'A'),  // key id 0, too short
        "pgat1." + std::string(2100, 'A') + "." + mac_b64,
        std::string(5u << 20, 'A'),
        "pgat1." + std::string(5u << 20, 'A') + "." + mac_b64,
        "alice positions",
    };
    for (const auto &g : garbage) {
        Outcome o = verify(ring, g);
        ASSERT_TRUE(o.threw) << g.substr(0, 80);
        EXPECT_EQ(o.code, pga::ErrorCode::TicketInvalid) << g.substr(0, 80) << ": " << o.message;
        EXPECT_EQ(o.message, "malformed ticket") << g.substr(0, 80);
    }
}

TEST(Ticket, AnotherKeyRingRefuses) {
    pga::KeyRing ring = ring_of({{1, 1}});
    pga::TicketClaims c = claims();
    const std::string t = pga::mint_ticket(ring, c);
    // Same id, other key: the MAC does not verify.
    Outcome same_id = verify(ring_of({{1, 2}}), t);
    EXPECT_EQ(same_id.code, pga::ErrorCode::TicketInvalid);
    EXPECT_EQ(same_id.message, "ticket signature does not verify");
    expect_clean(same_id, t);
    // No such id: KeyMissing naming the id (the extension turns it into a ticket refusal).
    Outcome other_id = verify(ring_of({{2, 1}, {3, 3}}), t);
    EXPECT_EQ(other_id.code, pga::ErrorCode::KeyMissing);
    EXPECT_EQ(other_id.message, "ticket key id 1 is not in the key ring");
    expect_clean(other_id, t);
    // Same master key under the same id in another file: the same key, so it verifies.
    EXPECT_EQ(pga::verify_ticket(ring_of({{1, 1}, {9, 3}}), t, kNow).purpose, "positions");
}

// Payload builder for authenticated-but-malformed tickets.
std::vector<std::uint8_t> payload_of(std::uint32_t key_id, std::size_t purpose_len_field,
                                     const std::string &purpose, std::size_t user_len_field,
                                     const std::string &user) {
    std::vector<std::uint8_t> p;
    for (int i = 3; i >= 0; --i) p.push_back(static_cast<std::uint8_t>(key_id >> (8 * i)));
    for (int i = 0; i < 16; ++i) p.push_back(static_cast<std::uint8_t>(i));
    const std::uint64_t exp = static_cast<std::uint64_t>(kNow + 1000);
    for (int i = 7; i >= 0; --i) p.push_back(static_cast<std::uint8_t>(exp >> (8 * i)));
    for (int i = 0; i < 16; ++i) p.push_back(0xAA);
    p.push_back(static_cast<std::uint8_t>(purpose_len_field));
    p.insert(p.end(), purpose.begin(), purpose.end());
    p.push_back(static_cast<std::uint8_t>(user_len_field >> 8));
    p.push_back(static_cast<std::uint8_t>(user_len_field));
    p.insert(p.end(), user.begin(), user.end());
    return p;
}

std::vector<std::uint8_t> with_role(std::vector<std::uint8_t> p, std::size_t role_len_field,
                                    const std::string &role) {
    p.push_back(static_cast<std::uint8_t>(role_len_field));
    p.insert(p.end(), role.begin(), role.end());
    return p;
}

TEST(Ticket, DatabaseRoleIsOptionalAndBounded) {
    pga::KeyRing ring = ring_of({{1, 1}});
    const pga::KeyEntry &key = ring.require(1);
    // Minted with a role: it comes back; without one (the format before 0.2.0's one-write
    // calls, which the same layout without the trailing field is): empty.
    pga::TicketClaims c = claims();
    c.db_role = "app_login";
    const std::string t = pga::mint_ticket(ring, c);
    EXPECT_EQ(pga::verify_ticket(ring, t, kNow).db_role, "app_login");
    pga::TicketClaims none = claims();
    EXPECT_EQ(pga::verify_ticket(ring, pga::mint_ticket(ring, none), kNow).db_role, "");
    const std::vector<std::uint8_t> old = payload_of(1, 3, "abc", 2, "me");
    const pga::TicketClaims v = pga::verify_ticket(ring, sign(key, old), kNow);
    EXPECT_EQ(v.app_user, "me");
    EXPECT_EQ(v.db_role, "");
    EXPECT_EQ(
        pga::verify_ticket(ring, sign(key, with_role(old, 63, std::string(63, 'r'))), kNow).db_role,
        std::string(63, 'r'));
    // The role is under the MAC: changing it breaks the ticket.
    std::vector<std::uint8_t> payload, mac;
    split(t, payload, mac);
    payload.back() ^= 1;
    EXPECT_EQ(verify(ring, join(payload, mac)).message, "ticket signature does not verify");
    // Too long to mint.
    pga::TicketClaims long_role = claims();
    long_role.db_role = std::string(64, 'r');
    EXPECT_THROW(pga::mint_ticket(ring, long_role), pga::Error);
}

TEST(Ticket, AnyTimeSkipsOnlyTheExpiry) {
    pga::KeyRing ring = ring_of({{1, 1}});
    pga::TicketClaims c = claims("orders", kUser, kNow - 1);
    const std::string t = pga::mint_ticket(ring, c);
    EXPECT_EQ(verify(ring, t).message, "ticket expired");
    EXPECT_EQ(pga::verify_ticket(ring, t, pga::kAnyTime).purpose, "orders");
    std::string bad = t;
    bad[bad.size() - 2] = bad[bad.size() - 2] == 'A' ? 'B' : 'A';
    EXPECT_TRUE(verify(ring, bad, pga::kAnyTime).threw);
}

TEST(Ticket, SignedButMalformedPayloadsAreRefusedWithinBounds) {
    pga::KeyRing ring = ring_of({{1, 1}});
    const pga::KeyEntry &key = ring.require(1);
    // Control: the builder makes a ticket that verifies.
    pga::TicketClaims ok =
        pga::verify_ticket(ring, sign(key, payload_of(1, 3, "abc", 2, "me")), kNow);
    EXPECT_EQ(ok.purpose, "abc");
    EXPECT_EQ(ok.app_user, "me");
    EXPECT_EQ(ok.expires_at_ms, kNow + 1000);

    const std::vector<std::uint8_t> good = payload_of(1, 3, "abc", 2, "me");
    std::vector<std::uint8_t> trailing = good;
    trailing.push_back(0);
    const std::vector<std::vector<std::uint8_t>> bad = {
        payload_of(1, 0, "", 2, "me"),                               // empty purpose
        payload_of(1, 33, std::string(33, 'p'), 2, "me"),            // purpose too long
        payload_of(1, 200, "abc", 2, "me"),                          // purpose runs off the end
        payload_of(1, 4, "abc", 2, "me"),                            // purpose eats the length
        payload_of(1, 3, "abc", 0, ""),                              // empty user
        payload_of(1, 3, "abc", 3, "me"),                            // user shorter than said
        payload_of(1, 3, "abc", 1, "me"),                            // user longer than said
        payload_of(1, 3, "abc", 257, std::string(257, 'u')),         // user too long
        payload_of(1, 3, "abc", 0xffff, "me"),                       // user length huge
        trailing,                                                    // role length 0
        with_role(good, 1, ""),                                      // role missing
        with_role(good, 3, "ab"),                                    // role shorter than said
        with_role(good, 1, "ab"),                                    // bytes after the role
        with_role(good, 64, std::string(64, 'r')),                   // role too long
        std::vector<std::uint8_t>(good.begin(), good.begin() + 49),  // no user length
    };
    for (std::size_t i = 0; i < bad.size(); ++i) {
        Outcome o = verify(ring, sign(key, bad[i]));
        ASSERT_TRUE(o.threw) << i;
        EXPECT_EQ(o.code, pga::ErrorCode::TicketInvalid) << i;
        EXPECT_EQ(o.message, "malformed ticket") << i;
    }
    // Every signed truncation of a good payload is refused without reading past its end.
    for (std::size_t n = 0; n < good.size(); ++n) {
        std::vector<std::uint8_t> cut(good.begin(), good.begin() + static_cast<long>(n));
        Outcome o = verify(ring, sign(key, cut));
        ASSERT_TRUE(o.threw) << n;
        EXPECT_EQ(o.code, pga::ErrorCode::TicketInvalid) << n;
    }
}

}  // namespace
