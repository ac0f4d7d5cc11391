// Gateway session tokens (alpaca_open_session). Text form:
//   pgas_<base64url(key id u32 BE | 24 random bytes)>      (38 characters after "pgas_")
// The token is shown once and never stored: the database keeps only its keyed hash,
// HMAC-SHA256(session key of that key id, token text), the session key being derived from the
// key ring's entry like the ticket key (common/keyring.hpp). A token whose key id has left the
// ring no longer hashes to anything, so it stops working.
#pragma once
#include "cpp_only.hpp"
#include "crypto.hpp"
#include "keyring.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace pga {

constexpr std::string_view kSessionTokenPrefix = "pgas_";
constexpr std::size_t kSessionTokenRandomLen = 24;  // 192 bits
constexpr std::size_t kSessionTokenLen = 5 + 38;

struct MintedSessionToken {
    SecureBytes token;  // the text form
    Sha256 hash;
};

// A fresh token under the ring's primary key, and its hash.
MintedSessionToken mint_session_token(const KeyRing &ring);

// The hash of a presented token, or nullopt when it is malformed or its key id is not in the
// ring. Constant work for well-formed input; never throws on any input.
std::optional<Sha256> session_token_hash(const KeyRing &ring, std::string_view token) noexcept;

// Whether text has the shape of a session token (prefix and length; for log redaction).
bool looks_like_session_token(std::string_view text) noexcept;

}  // namespace pga
