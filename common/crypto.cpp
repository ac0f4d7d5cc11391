#include "crypto.hpp"

#include "error.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <climits>

namespace pga {
namespace {

struct CipherCtxFree {
    void operator()(EVP_CIPHER_CTX *c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;
struct KdfFree {
    void operator()(EVP_KDF *k) const noexcept { EVP_KDF_free(k); }
};
struct KdfCtxFree {
    void operator()(EVP_KDF_CTX *k) const noexcept { EVP_KDF_CTX_free(k); }
};
struct MacFree {
    void operator()(EVP_MAC *m) const noexcept { EVP_MAC_free(m); }
};
struct MacCtxFree {
    void operator()(EVP_MAC_CTX *m) const noexcept { EVP_MAC_CTX_free(m); }
};

[[noreturn]] void openssl_fail(const char *what) {
    throw Error(ErrorCode::Internal, std::string("OpenSSL failure: ") + what);
}

bool fits_int(std::size_t n) {
    return n <= static_cast<std::size_t>(INT_MAX);
}

// Fetched once per process; OpenSSL method objects are thread-safe to share.
const EVP_CIPHER *aes_256_gcm() {
    static const EVP_CIPHER *c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    if (c == nullptr) openssl_fail("AES-256-GCM unavailable");
    return c;
}
EVP_MAC *hmac_method() {
    static EVP_MAC *m = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (m == nullptr) openssl_fail("HMAC unavailable");
    return m;
}
EVP_KDF *hkdf_method() {
    static EVP_KDF *k = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
    if (k == nullptr) openssl_fail("HKDF unavailable");
    return k;
}

}  // namespace

void random_bytes(std::uint8_t *buf, std::size_t len) {
    while (len > 0) {
        int chunk = len > (1u << 20) ? (1 << 20) : static_cast<int>(len);
        if (RAND_bytes(buf, chunk) != 1) openssl_fail("RAND_bytes");
        buf += chunk;
        len -= static_cast<std::size_t>(chunk);
    }
}

bool constant_time_equal(const std::uint8_t *a, const std::uint8_t *b, std::size_t len) noexcept {
    return CRYPTO_memcmp(a, b, len) == 0;
}

namespace {

// An HMAC context with its digest (SHA-256) set and no key, one per thread: each HMAC starts
// from a copy of it, because setting the digest by name fetches it from the provider again
// (about 20 000 instructions of OpenSSL 3's EVP_MAC set-up a ticket, bench/README.md), while a
// copy shares the fetched digest. It never holds a key.
const EVP_MAC_CTX *hmac_sha256_template() {
    thread_local std::unique_ptr<EVP_MAC_CTX, MacCtxFree> tmpl = [] {
        std::unique_ptr<EVP_MAC_CTX, MacCtxFree> ctx(EVP_MAC_CTX_new(hmac_method()));
        if (!ctx) openssl_fail("EVP_MAC_CTX_new");
        char digest[] = "SHA256";
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
            OSSL_PARAM_construct_end(),
        };
        if (EVP_MAC_CTX_set_params(ctx.get(), params) != 1) openssl_fail("EVP_MAC_CTX_set_params");
        return ctx;
    }();
    return tmpl.get();
}

}  // namespace

Sha256 hmac_sha256(const std::uint8_t *key, std::size_t key_len, const std::uint8_t *data,
                   std::size_t data_len) {
    std::unique_ptr<EVP_MAC_CTX, MacCtxFree> ctx(EVP_MAC_CTX_dup(hmac_sha256_template()));
    if (!ctx) openssl_fail("EVP_MAC_CTX_dup");
    // EVP_MAC_init refuses a NULL key; an empty HMAC key is legal (zero-padded block).
    static const std::uint8_t kEmpty[1] = {0};
    if (EVP_MAC_init(ctx.get(), key_len ? key : kEmpty, key_len, nullptr) != 1)
        openssl_fail("EVP_MAC_init");
    if (data_len && EVP_MAC_update(ctx.get(), data, data_len) != 1) openssl_fail("EVP_MAC_update");
    Sha256 out{};
    std::size_t out_len = 0;
    if (EVP_MAC_final(ctx.get(), out.data(), &out_len, out.size()) != 1 || out_len != out.size())
        openssl_fail("EVP_MAC_final");
    return out;
}

SecureBytes hkdf_sha256(const std::uint8_t *ikm, std::size_t ikm_len, const std::uint8_t *salt,
                        std::size_t salt_len, std::string_view info, std::size_t out_len) {
    if (out_len == 0 || out_len > 255 * kSha256Len)
        throw Error(ErrorCode::InvalidParameter, "HKDF output length must be 1..8160 bytes");
    std::unique_ptr<EVP_KDF_CTX, KdfCtxFree> ctx(EVP_KDF_CTX_new(hkdf_method()));
    if (!ctx) openssl_fail("EVP_KDF_CTX_new");
    char digest[] = "SHA256";
    static const std::uint8_t kEmpty[1] = {0};
    OSSL_PARAM params[5];
    std::size_t n = 0;
    params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
    params[n++] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t *>(ikm_len ? ikm : kEmpty), ikm_len);
    // An absent salt and an empty salt both mean HashLen zero bytes (RFC 5869 2.2).
    if (salt_len)
        params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                                        const_cast<std::uint8_t *>(salt), salt_len);
    if (!info.empty())
        params[n++] = OSSL_PARAM_construct_octet_string(
            OSSL_KDF_PARAM_INFO, const_cast<char *>(info.data()), info.size());
    params[n] = OSSL_PARAM_construct_end();
    SecureBytes out(out_len);
    if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) openssl_fail("HKDF");
    return out;
}

struct AesGcm::Impl {
    CipherCtx enc;
    CipherCtx dec;
};

AesGcm::AesGcm(const std::uint8_t key[kAesKeyLen]) : impl_(std::make_unique<Impl>()) {
    impl_->enc.reset(EVP_CIPHER_CTX_new());
    impl_->dec.reset(EVP_CIPHER_CTX_new());
    if (!impl_->enc || !impl_->dec) openssl_fail("EVP_CIPHER_CTX_new");
    // Key schedule once per direction; each call then only sets the nonce.
    if (EVP_EncryptInit_ex2(impl_->enc.get(), aes_256_gcm(), key, nullptr, nullptr) != 1 ||
        EVP_DecryptInit_ex2(impl_->dec.get(), aes_256_gcm(), key, nullptr, nullptr) != 1)
        openssl_fail("AES-256-GCM key setup");
}

AesGcm::~AesGcm() = default;
AesGcm::AesGcm(AesGcm &&) noexcept = default;
AesGcm &AesGcm::operator=(AesGcm &&) noexcept = default;

void AesGcm::seal(const std::uint8_t nonce[kGcmNonceLen], const std::uint8_t *aad,
                  std::size_t aad_len, const std::uint8_t *pt, std::size_t pt_len,
                  std::uint8_t *out) const {
    if (!impl_) openssl_fail("AesGcm used after move");
    if (!fits_int(aad_len) || !fits_int(pt_len))
        throw Error(ErrorCode::InvalidParameter, "AES-GCM input too large");
    EVP_CIPHER_CTX *c = impl_->enc.get();
    int len = 0;
    if (EVP_EncryptInit_ex2(c, nullptr, nullptr, nonce, nullptr) != 1)
        openssl_fail("GCM nonce setup");
    if (aad_len && EVP_EncryptUpdate(c, nullptr, &len, aad, static_cast<int>(aad_len)) != 1)
        openssl_fail("GCM AAD");
    int produced = 0;
    if (pt_len) {
        if (EVP_EncryptUpdate(c, out, &len, pt, static_cast<int>(pt_len)) != 1)
            openssl_fail("GCM encrypt");
        produced = len;
    }
    if (EVP_EncryptFinal_ex(c, out + produced, &len) != 1) openssl_fail("GCM final");
    produced += len;
    if (static_cast<std::size_t>(produced) != pt_len) openssl_fail("GCM length");
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kGcmTagLen), out + pt_len) !=
        1)
        openssl_fail("GCM tag");
}

bool AesGcm::open(const std::uint8_t nonce[kGcmNonceLen], const std::uint8_t *aad,
                  std::size_t aad_len, const std::uint8_t *in, std::size_t in_len,
                  std::uint8_t *out) const {
    if (!impl_) openssl_fail("AesGcm used after move");
    if (in_len < kGcmTagLen) return false;
    std::size_t ct_len = in_len - kGcmTagLen;
    if (!fits_int(aad_len) || !fits_int(ct_len))
        throw Error(ErrorCode::InvalidParameter, "AES-GCM input too large");
    EVP_CIPHER_CTX *c = impl_->dec.get();
    int len = 0;
    if (EVP_DecryptInit_ex2(c, nullptr, nullptr, nonce, nullptr) != 1)
        openssl_fail("GCM nonce setup");
    if (aad_len && EVP_DecryptUpdate(c, nullptr, &len, aad, static_cast<int>(aad_len)) != 1)
        openssl_fail("GCM AAD");
    int produced = 0;
    if (ct_len) {
        if (EVP_DecryptUpdate(c, out, &len, in, static_cast<int>(ct_len)) != 1)
            openssl_fail("GCM decrypt");
        produced = len;
    }
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kGcmTagLen),
                            const_cast<std::uint8_t *>(in + ct_len)) != 1)
        openssl_fail("GCM set tag");
    if (EVP_DecryptFinal_ex(c, out + produced, &len) != 1) {
        secure_wipe(out, ct_len);
        return false;
    }
    return true;
}

}  // namespace pga
