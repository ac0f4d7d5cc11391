#include "fernet.hpp"

#include "crypto.hpp"
#include "encoding.hpp"
#include "error.hpp"

#include <openssl/evp.h>

#include <memory>
#include <vector>

namespace pga {
namespace {

constexpr std::uint8_t kVersion = 0x80;
constexpr std::size_t kHeaderLen = 1 + 8 + 16;  // version | timestamp | iv
constexpr std::size_t kBlock = 16;

struct CipherCtxFree {
    void operator()(EVP_CIPHER_CTX *c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

[[noreturn]] void invalid_token(const std::string &why) {
    throw Error(ErrorCode::DecryptFailed, "invalid token: " + why);
}

[[noreturn]] void openssl_fail(const char *what) {
    throw Error(ErrorCode::Internal, std::string("OpenSSL failure: ") + what);
}

}  // namespace

FernetKey FernetKey::parse(std::string_view key_b64url) {
    std::vector<std::uint8_t> raw;
    bool ok = base64url_decode(key_b64url, raw) && raw.size() == 32;
    FernetKey k;
    if (ok) {
        k.signing.assign(raw.begin(), raw.begin() + 16);
        k.encryption.assign(raw.begin() + 16, raw.end());
    }
    secure_wipe(raw.data(), raw.size());
    if (!ok)
        throw Error(ErrorCode::InvalidParameter,
                    "invalid Fernet key: must be base64url of exactly 32 bytes");
    return k;
}

SecureBytes fernet_decrypt(const FernetKey &key, std::string_view token,
                           std::optional<std::int64_t> ttl_seconds, std::int64_t now_unix) {
    std::vector<std::uint8_t> raw;
    if (!base64url_decode(token, raw)) invalid_token("not base64url");
    if (raw.size() < kHeaderLen + kBlock + kSha256Len) invalid_token("too short");
    if (raw[0] != kVersion) invalid_token("unknown version");
    std::size_t ct_len = raw.size() - kHeaderLen - kSha256Len;
    if (ct_len % kBlock != 0) invalid_token("ciphertext is not a whole number of blocks");

    std::uint64_t ts = 0;
    for (int i = 1; i <= 8; ++i) ts = (ts << 8) | raw[i];
    if (ttl_seconds) {
        // __int128 avoids overflow for any timestamp, ttl or clock value.
        __int128 t = ts, now = now_unix;
        if (t + *ttl_seconds < now) invalid_token("expired");
        if (now + kFernetMaxClockSkew < t) invalid_token("timestamp too far in the future");
    }

    std::size_t signed_len = raw.size() - kSha256Len;
    Sha256 mac = hmac_sha256(key.signing.data(), key.signing.size(), raw.data(), signed_len);
    bool mac_ok = constant_time_equal(mac.data(), raw.data() + signed_len, kSha256Len);
    if (!mac_ok) invalid_token("signature does not verify");

    CipherCtx ctx(EVP_CIPHER_CTX_new());
    if (!ctx) openssl_fail("EVP_CIPHER_CTX_new");
    if (EVP_DecryptInit_ex2(ctx.get(), EVP_aes_128_cbc(), key.encryption.data(), raw.data() + 9,
                            nullptr) != 1)
        openssl_fail("AES-128-CBC setup");
    SecureBytes out(ct_len + kBlock);
    int len1 = 0, len2 = 0;
    if (EVP_DecryptUpdate(ctx.get(), out.data(), &len1, raw.data() + kHeaderLen,
                          static_cast<int>(ct_len)) != 1)
        openssl_fail("AES-128-CBC decrypt");
    if (EVP_DecryptFinal_ex(ctx.get(), out.data() + len1, &len2) != 1) invalid_token("bad padding");
    out.resize(static_cast<std::size_t>(len1 + len2));
    return out;
}

std::string fernet_encrypt(const FernetKey &key, std::string_view plaintext, std::int64_t now_unix,
                           const std::array<std::uint8_t, 16> &iv) {
    if (key.signing.size() != 16 || key.encryption.size() != 16)
        throw Error(ErrorCode::InvalidParameter, "invalid Fernet key");
    std::size_t ct_cap = (plaintext.size() / kBlock + 1) * kBlock;
    std::vector<std::uint8_t> raw(kHeaderLen + ct_cap + kSha256Len);
    raw[0] = kVersion;
    auto ts = static_cast<std::uint64_t>(now_unix);
    for (int i = 0; i < 8; ++i) raw[1 + i] = static_cast<std::uint8_t>(ts >> (8 * (7 - i)));
    std::copy(iv.begin(), iv.end(), raw.begin() + 9);

    CipherCtx ctx(EVP_CIPHER_CTX_new());
    if (!ctx) openssl_fail("EVP_CIPHER_CTX_new");
    if (EVP_EncryptInit_ex2(ctx.get(), EVP_aes_128_cbc(), key.encryption.data(), iv.data(),
                            nullptr) != 1)
        openssl_fail("AES-128-CBC setup");
    int len1 = 0, len2 = 0;
    if (EVP_EncryptUpdate(ctx.get(), raw.data() + kHeaderLen, &len1,
                          reinterpret_cast<const std::uint8_t *>(plaintext.data()),
                          static_cast<int>(plaintext.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), raw.data() + kHeaderLen + len1, &len2) != 1)
        openssl_fail("AES-128-CBC encrypt");
    if (static_cast<std::size_t>(len1 + len2) != ct_cap) openssl_fail("AES-128-CBC length");
    std::size_t signed_len = kHeaderLen + ct_cap;
    Sha256 mac = hmac_sha256(key.signing.data(), key.signing.size(), raw.data(), signed_len);
    std::copy(mac.begin(), mac.end(), raw.begin() + static_cast<std::ptrdiff_t>(signed_len));

    // Fernet tokens are padded base64url.
    std::string out = base64url_encode(raw.data(), raw.size());
    while (out.size() % 4 != 0) out.push_back('=');
    return out;
}

}  // namespace pga
