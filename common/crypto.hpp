// Thin RAII layer over OpenSSL 3: AES-256-GCM with a reusable context, HMAC-SHA256,
// HKDF-SHA256, a CSPRNG and constant-time comparison. No PostgreSQL.
#pragma once
#include "cpp_only.hpp"
#include "secure_memory.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>

namespace pga {

constexpr std::size_t kAesKeyLen = 32;
constexpr std::size_t kGcmNonceLen = 12;
constexpr std::size_t kGcmTagLen = 16;
constexpr std::size_t kSha256Len = 32;

using Sha256 = std::array<std::uint8_t, kSha256Len>;

// Fills buf with cryptographically secure random bytes; throws Error(Internal) on failure.
void random_bytes(std::uint8_t *buf, std::size_t len);

bool constant_time_equal(const std::uint8_t *a, const std::uint8_t *b, std::size_t len) noexcept;

Sha256 hmac_sha256(const std::uint8_t *key, std::size_t key_len, const std::uint8_t *data,
                   std::size_t data_len);

// RFC 5869 extract-and-expand.
SecureBytes hkdf_sha256(const std::uint8_t *ikm, std::size_t ikm_len, const std::uint8_t *salt,
                        std::size_t salt_len, std::string_view info, std::size_t out_len);

// AES-256-GCM with a 96-bit nonce and a 128-bit tag. One object holds one key and one
// EVP_CIPHER_CTX that is reused for every call (key schedule done once).
class AesGcm {
  public:
    explicit AesGcm(const std::uint8_t key[kAesKeyLen]);
    ~AesGcm();
    AesGcm(AesGcm &&) noexcept;
    AesGcm &operator=(AesGcm &&) noexcept;
    AesGcm(const AesGcm &) = delete;
    AesGcm &operator=(const AesGcm &) = delete;

    // out receives ciphertext (pt_len bytes) then the tag (16 bytes): pt_len + 16 bytes.
    void seal(const std::uint8_t nonce[kGcmNonceLen], const std::uint8_t *aad, std::size_t aad_len,
              const std::uint8_t *pt, std::size_t pt_len, std::uint8_t *out) const;
    // in is ciphertext followed by the tag; out receives in_len - 16 bytes.
    // Returns false when the tag does not verify (out is wiped then).
    bool open(const std::uint8_t nonce[kGcmNonceLen], const std::uint8_t *aad, std::size_t aad_len,
              const std::uint8_t *in, std::size_t in_len, std::uint8_t *out) const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace pga
