#include "ticket.hpp"

#include "crypto.hpp"
#include "error.hpp"

#include <cstring>
#include <vector>

namespace pga {
namespace {

constexpr std::string_view kPrefix = "pgat1.";
// key id | credential | expires | nonce | purpose length | app user length (without the texts)
constexpr std::size_t kFixedLen = 4 + 16 + 8 + 16 + 1 + 2;

[[noreturn]] void bad(const char *reason) {
    throw Error(ErrorCode::TicketInvalid, reason);
}

void put_be(std::vector<std::uint8_t> &out, std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::uint64_t get_be(const std::uint8_t *p, int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
    return v;
}

Sha256 ticket_mac(const KeyEntry &key, std::string_view signed_text) {
    return hmac_sha256(key.ticket_key.data(), key.ticket_key.size(),
                       reinterpret_cast<const std::uint8_t *>(signed_text.data()),
                       signed_text.size());
}

bool is_b64url_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

}  // namespace

std::string mint_ticket(const KeyRing &ring, TicketClaims &claims) {
    if (claims.purpose.empty() || claims.purpose.size() > kMaxPurposeLen)
        throw Error(ErrorCode::InvalidParameter,
                    "ticket purpose must be 1 to " + std::to_string(kMaxPurposeLen) + " bytes");
    if (claims.app_user.empty() || claims.app_user.size() > kMaxAppUserLen)
        throw Error(ErrorCode::InvalidParameter,
                    "ticket app user must be 1 to " + std::to_string(kMaxAppUserLen) + " bytes");
    if (claims.db_role.size() > kMaxDbRoleLen)
        throw Error(ErrorCode::InvalidParameter, "ticket database role must be at most " +
                                                     std::to_string(kMaxDbRoleLen) + " bytes");
    const KeyEntry &key = ring.primary();
    claims.key_id = key.id;
    random_bytes(claims.nonce.data(), claims.nonce.size());

    std::vector<std::uint8_t> payload;
    payload.reserve(kFixedLen + claims.purpose.size() + claims.app_user.size() + 1 +
                    claims.db_role.size());
    put_be(payload, claims.key_id, 4);
    payload.insert(payload.end(), claims.credential_id.begin(), claims.credential_id.end());
    put_be(payload, static_cast<std::uint64_t>(claims.expires_at_ms), 8);
    payload.insert(payload.end(), claims.nonce.begin(), claims.nonce.end());
    put_be(payload, claims.purpose.size(), 1);
    payload.insert(payload.end(), claims.purpose.begin(), claims.purpose.end());
    put_be(payload, claims.app_user.size(), 2);
    payload.insert(payload.end(), claims.app_user.begin(), claims.app_user.end());
    if (!claims.db_role.empty()) {
        put_be(payload, claims.db_role.size(), 1);
        payload.insert(payload.end(), claims.db_role.begin(), claims.db_role.end());
    }

    std::string out;
    out.reserve(kMaxTicketTextLen);
    out.append(kPrefix).append(base64url_encode(payload.data(), payload.size()));
    Sha256 mac = ticket_mac(key, out);
    out.append(1, '.').append(base64url_encode(mac.data(), mac.size()));
    secure_wipe(mac.data(), mac.size());
    return out;
}

TicketClaims verify_ticket(const KeyRing &ring, std::string_view ticket, std::int64_t now_ms) {
    if (ticket.size() > kMaxTicketTextLen || ticket.substr(0, kPrefix.size()) != kPrefix)
        bad("malformed ticket");
    std::size_t dot = ticket.find('.', kPrefix.size());
    if (dot == std::string_view::npos) bad("malformed ticket");
    std::string_view payload_b64 = ticket.substr(kPrefix.size(), dot - kPrefix.size());
    std::string_view mac_b64 = ticket.substr(dot + 1);
    // Only the unpadded base64url alphabet: one canonical spelling per ticket.
    for (char c : payload_b64)
        if (!is_b64url_char(c)) bad("malformed ticket");
    for (char c : mac_b64)
        if (!is_b64url_char(c)) bad("malformed ticket");
    std::vector<std::uint8_t> payload, mac;
    if (!base64url_decode(payload_b64, payload) || !base64url_decode(mac_b64, mac) ||
        mac.size() != kSha256Len || payload.size() < kFixedLen + 2)
        bad("malformed ticket");

    std::uint32_t key_id = static_cast<std::uint32_t>(get_be(payload.data(), 4));
    const KeyEntry *key = ring.find(key_id);
    if (key == nullptr)
        throw Error(ErrorCode::KeyMissing,
                    "ticket key id " + std::to_string(key_id) + " is not in the key ring");
    Sha256 expect = ticket_mac(*key, ticket.substr(0, dot));
    bool ok = constant_time_equal(expect.data(), mac.data(), kSha256Len);
    secure_wipe(expect.data(), expect.size());
    if (!ok) bad("ticket signature does not verify");

    // Authenticated from here on; still parse with full bounds checks.
    TicketClaims c;
    const std::uint8_t *p = payload.data();
    const std::uint8_t *end = p + payload.size();
    c.key_id = key_id;
    p += 4;
    std::memcpy(c.credential_id.data(), p, 16);
    p += 16;
    c.expires_at_ms = static_cast<std::int64_t>(get_be(p, 8));
    p += 8;
    std::memcpy(c.nonce.data(), p, 16);
    p += 16;
    std::size_t plen = *p++;
    if (plen == 0 || plen > kMaxPurposeLen || static_cast<std::size_t>(end - p) < plen + 2)
        bad("malformed ticket");
    c.purpose.assign(reinterpret_cast<const char *>(p), plen);
    p += plen;
    std::size_t ulen = static_cast<std::size_t>(get_be(p, 2));
    p += 2;
    if (ulen == 0 || ulen > kMaxAppUserLen || static_cast<std::size_t>(end - p) < ulen)
        bad("malformed ticket");
    c.app_user.assign(reinterpret_cast<const char *>(p), ulen);
    p += ulen;
    if (p != end) {  // the optional database role: exactly one length byte and its text
        std::size_t rlen = *p++;
        if (rlen == 0 || rlen > kMaxDbRoleLen || static_cast<std::size_t>(end - p) != rlen)
            bad("malformed ticket");
        c.db_role.assign(reinterpret_cast<const char *>(p), rlen);
    }
    if (now_ms != kAnyTime && now_ms >= c.expires_at_ms) bad("ticket expired");
    return c;
}

}  // namespace pga
