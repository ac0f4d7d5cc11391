#include "session_token.hpp"

#include "encoding.hpp"

#include <array>
#include <vector>

namespace pga {
namespace {

constexpr std::size_t kPayloadLen = 4 + kSessionTokenRandomLen;

Sha256 mac(const KeyEntry &key, std::string_view token) {
    return hmac_sha256(key.session_key.data(), key.session_key.size(),
                       reinterpret_cast<const std::uint8_t *>(token.data()), token.size());
}

}  // namespace

MintedSessionToken mint_session_token(const KeyRing &ring) {
    const KeyEntry &key = ring.primary();
    std::array<std::uint8_t, kPayloadLen> payload{};
    payload[0] = static_cast<std::uint8_t>(key.id >> 24);
    payload[1] = static_cast<std::uint8_t>(key.id >> 16);
    payload[2] = static_cast<std::uint8_t>(key.id >> 8);
    payload[3] = static_cast<std::uint8_t>(key.id);
    random_bytes(payload.data() + 4, kSessionTokenRandomLen);
    std::string text(kSessionTokenPrefix);
    text += base64url_encode(payload.data(), payload.size());
    MintedSessionToken out;
    out.token = secure_copy(text);
    out.hash = mac(key, text);
    secure_wipe(text.data(), text.size());
    secure_wipe(payload.data(), payload.size());
    return out;
}

bool looks_like_session_token(std::string_view text) noexcept {
    return text.size() == kSessionTokenLen &&
           text.substr(0, kSessionTokenPrefix.size()) == kSessionTokenPrefix;
}

std::optional<Sha256> session_token_hash(const KeyRing &ring, std::string_view token) noexcept {
    try {
        if (!looks_like_session_token(token)) return std::nullopt;
        std::vector<std::uint8_t> payload;
        if (!base64url_decode(token.substr(kSessionTokenPrefix.size()), payload) ||
            payload.size() != kPayloadLen) {
            return std::nullopt;
        }
        const std::uint32_t id = (std::uint32_t(payload[0]) << 24) |
                                 (std::uint32_t(payload[1]) << 16) |
                                 (std::uint32_t(payload[2]) << 8) | std::uint32_t(payload[3]);
        secure_wipe(payload.data(), payload.size());
        const KeyEntry *key = ring.find(id);
        if (key == nullptr) return std::nullopt;
        return mac(*key, token);
    } catch (...) {
        return std::nullopt;
    }
}

}  // namespace pga
