// alpaca_secret: AES-256-GCM envelope.  Text form:  pgak1:<key id>:<base64(nonce|ct|tag)>
// Associated data binds a ciphertext to its credential id and column:
//   "pg_alpaca/v1" 0x00 | key id (u32 BE) | credential uuid (16 bytes) | column name
// so an envelope copied to another row or column fails to open.
#pragma once
#include "cpp_only.hpp"
#include "encoding.hpp"
#include "keyring.hpp"
#include "secure_memory.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pga {

constexpr std::string_view kEnvelopeVersion = "pgak1";
constexpr std::size_t kMaxSecretLen = 512;  // bytes of plaintext
// Text form never exceeds this (prefix + id + base64 of the largest payload).
constexpr std::size_t kMaxEnvelopeTextLen = 1024;

struct Envelope {
    std::uint32_t key_id = 0;
    std::vector<std::uint8_t> payload;  // nonce(12) | ciphertext(1..kMaxSecretLen) | tag(16)
};

// Strict parse of the text form. Throws Error(InvalidText) with a message saying what is
// wrong (plaintext, wrong version, bad key id, bad base64, payload too short/long) and a hint.
Envelope parse_envelope(std::string_view text);

// Encrypts under the ring's primary key. Throws InvalidParameter for an empty plaintext or
// one longer than kMaxSecretLen.
std::string seal_secret(const KeyRing &ring, std::string_view plaintext, const Uuid &credential_id,
                        std::string_view column);

// Decrypts. Throws KeyMissing ("key id N is not in the key ring") or DecryptFailed
// (wrong credential/column, or tampered).
SecureBytes open_secret(const KeyRing &ring, std::string_view envelope_text,
                        const Uuid &credential_id, std::string_view column);

// Keyed duplicate-detection fingerprint of an API key id: "<key id>:<base64url(HMAC)>".
std::string fingerprint(const KeyEntry &key, std::string_view api_key);

}  // namespace pga
