// Fernet (https://github.com/fernet/spec Spec.md) for migrating credentials from the earlier
// Python system. Key: base64url of 32 bytes (signing key | encryption key).
#pragma once
#include "cpp_only.hpp"
#include "secure_memory.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pga {

constexpr std::int64_t kFernetMaxClockSkew = 60;  // seconds, as pyca/cryptography

// Throws Error(InvalidParameter) for a key that is not base64url of 32 bytes.
struct FernetKey {
    SecureBytes signing, encryption;  // 16 bytes each
    static FernetKey parse(std::string_view key_b64url);
};

// Verifies and decrypts. ttl_seconds == nullopt ignores token age and skew (stored tokens);
// otherwise a token older than ttl or more than kFernetMaxClockSkew in the future is refused.
// Throws Error(DecryptFailed) with a reason ("invalid token: ...") for every bad token.
SecureBytes fernet_decrypt(const FernetKey &key, std::string_view token,
                           std::optional<std::int64_t> ttl_seconds, std::int64_t now_unix);

// Deterministic generation for known-answer tests and for tooling.
std::string fernet_encrypt(const FernetKey &key, std::string_view plaintext, std::int64_t now_unix,
                           const std::array<std::uint8_t, 16> &iv);

}  // namespace pga
