#include "jwks.hpp"

#include "encoding.hpp"
#include "error.hpp"
#include "unique_fd.hpp"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <rapidjson/error/en.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

namespace pga::jwt {
namespace {

constexpr std::size_t kMaxJwksFile = 1 << 20;
constexpr std::size_t kMaxKeys = 100;
constexpr std::size_t kMaxShownPath = 200;
constexpr int kMinRsaBits = 2048;
constexpr std::size_t kMinHmacKey = 32;

template <typename T, void (*F)(T *)>
struct Deleter {
    void operator()(T *p) const noexcept { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM, OSSL_PARAM_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG, ECDSA_SIG_free>>;

[[noreturn]] void file_error(const std::string &source, const std::string &what) {
    ERR_clear_error();  // what OpenSSL queued while refusing a key must not reach later callers
    throw Error(ErrorCode::ConfigFile, escape_for_error(source, kMaxShownPath) + ": " + what);
}

[[noreturn]] void key_error(const std::string &source, std::size_t index, const std::string &what) {
    ERR_clear_error();
    throw Error(ErrorCode::ConfigFile, escape_for_error(source, kMaxShownPath) + ": keys[" +
                                           std::to_string(index) + "]: " + what);
}

bool no_duplicate_members(const rapidjson::Value &v, unsigned depth, unsigned max_depth) {
    if (depth > max_depth) return false;
    if (v.IsObject()) {
        std::set<std::string_view> names;
        for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
            std::string_view name(it->name.GetString(), it->name.GetStringLength());
            if (!names.insert(name).second) return false;
            if (!no_duplicate_members(it->value, depth + 1, max_depth)) return false;
        }
    } else if (v.IsArray()) {
        for (const auto &e : v.GetArray())
            if (!no_duplicate_members(e, depth + 1, max_depth)) return false;
    }
    return true;
}

// A member that must be a string when present; nullopt when absent. Throws via key_error.
std::optional<std::string_view> opt_string(const rapidjson::Value &obj, const char *name,
                                           const std::string &source, std::size_t index) {
    auto it = obj.FindMember(name);
    if (it == obj.MemberEnd()) return std::nullopt;
    if (!it->value.IsString())
        key_error(source, index, std::string("\"") + name + "\" must be a string");
    return std::string_view(it->value.GetString(), it->value.GetStringLength());
}

std::string_view req_string(const rapidjson::Value &obj, const char *name,
                            const std::string &source, std::size_t index) {
    auto v = opt_string(obj, name, source, index);
    if (!v) key_error(source, index, std::string("\"") + name + "\" is missing");
    return *v;
}

template <typename Out>
void req_b64(const rapidjson::Value &obj, const char *name, const std::string &source,
             std::size_t index, Out &out) {
    std::string_view s = req_string(obj, name, source, index);
    std::vector<std::uint8_t> tmp;
    if (!base64url_strict_decode(s, tmp) || tmp.empty())
        key_error(source, index, std::string("\"") + name + "\" is not strict base64url");
    out.assign(tmp.begin(), tmp.end());
    secure_wipe(tmp.data(), tmp.size());
}

PkeyPtr from_params(const char *type, OSSL_PARAM_BLD *bld) {
    ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0) return nullptr;
    EVP_PKEY *raw = nullptr;
    if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) return nullptr;
    return PkeyPtr(raw);
}

bool public_check(EVP_PKEY *pkey) {
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
    return ctx && EVP_PKEY_public_check(ctx.get()) == 1;
}

PkeyPtr rsa_key(const rapidjson::Value &k, const std::string &source, std::size_t i) {
    std::vector<std::uint8_t> n, e;
    req_b64(k, "n", source, i, n);
    req_b64(k, "e", source, i, e);
    if (n[0] == 0 || e[0] == 0)
        key_error(source, i, "\"n\" and \"e\" must not have leading zero bytes");
    BnPtr bn_n(BN_bin2bn(n.data(), (int)n.size(), nullptr));
    BnPtr bn_e(BN_bin2bn(e.data(), (int)e.size(), nullptr));
    ParamBldPtr bld(OSSL_PARAM_BLD_new());
    if (!bn_n || !bn_e || !bld ||
        !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
        !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()))
        throw Error(ErrorCode::Internal, "OpenSSL could not build an RSA key");
    PkeyPtr pkey = from_params("RSA", bld.get());
    if (!pkey) key_error(source, i, "not a usable RSA public key");
    if (EVP_PKEY_get_bits(pkey.get()) < kMinRsaBits)
        key_error(source, i, "RSA modulus is shorter than 2048 bits");
    if (BN_is_odd(bn_e.get()) == 0 || BN_is_one(bn_e.get()))
        key_error(source, i, "RSA exponent must be odd and greater than 1");
    return pkey;
}

PkeyPtr ec_key(const rapidjson::Value &k, const std::string &source, std::size_t i) {
    if (req_string(k, "crv", source, i) != "P-256")
        key_error(source, i, "only the EC curve P-256 is supported");
    std::vector<std::uint8_t> x, y;
    req_b64(k, "x", source, i, x);
    req_b64(k, "y", source, i, y);
    if (x.size() != 32 || y.size() != 32)
        key_error(source, i, "P-256 \"x\" and \"y\" must be 32 bytes");
    std::vector<std::uint8_t> point{0x04};
    point.insert(point.end(), x.begin(), x.end());
    point.insert(point.end(), y.begin(), y.end());
    ParamBldPtr bld(OSSL_PARAM_BLD_new());
    if (!bld ||
        !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                          point.size()))
        throw Error(ErrorCode::Internal, "OpenSSL could not build an EC key");
    PkeyPtr pkey = from_params("EC", bld.get());
    if (!pkey || !public_check(pkey.get())) key_error(source, i, "not a point on P-256");
    return pkey;
}

PkeyPtr okp_key(const rapidjson::Value &k, const std::string &source, std::size_t i) {
    if (req_string(k, "crv", source, i) != "Ed25519")
        key_error(source, i, "only the OKP curve Ed25519 is supported");
    std::vector<std::uint8_t> x;
    req_b64(k, "x", source, i, x);
    if (x.size() != 32) key_error(source, i, "Ed25519 \"x\" must be 32 bytes");
    PkeyPtr pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, x.data(), x.size()));
    if (!pkey) key_error(source, i, "not a usable Ed25519 public key");
    return pkey;
}

// Members that only a private key has.
constexpr const char *kPrivateMembers[] = {"d", "p", "q", "dp", "dq", "qi", "oth"};

}  // namespace

void EvpPkeyFree::operator()(void *p) const noexcept {
    EVP_PKEY_free(static_cast<EVP_PKEY *>(p));
}

const char *alg_name(Alg alg) noexcept {
    switch (alg) {
        case Alg::RS256:
            return "RS256";
        case Alg::PS256:
            return "PS256";
        case Alg::ES256:
            return "ES256";
        case Alg::EdDSA:
            return "EdDSA";
        case Alg::HS256:
            return "HS256";
    }
    return "?";
}

std::optional<Alg> alg_from_name(std::string_view name) noexcept {
    for (Alg a : {Alg::RS256, Alg::PS256, Alg::ES256, Alg::EdDSA, Alg::HS256})
        if (name == alg_name(a)) return a;
    return std::nullopt;
}

const char *reason_text(Reason r) noexcept {
    switch (r) {
        case Reason::TooLarge:
            return "token is too large";
        case Reason::Malformed:
            return "token is malformed";
        case Reason::AlgorithmNotAllowed:
            return "token algorithm is not allowed";
        case Reason::UnknownKeyId:
            return "token names an unknown key id";
        case Reason::BadSignature:
            return "token has a bad signature";
        case Reason::Expired:
            return "token has expired";
        case Reason::NotYetValid:
            return "token is not yet valid";
        case Reason::WrongIssuer:
            return "token has the wrong issuer";
        case Reason::WrongAudience:
            return "token has the wrong audience";
        case Reason::NoUserClaim:
            return "token has no user claim";
    }
    return "token is invalid";
}

JwtError::JwtError(Reason reason, const std::string &detail)
    : std::runtime_error(std::string(reason_text(reason)) + (detail.empty() ? "" : ": " + detail)),
      reason_(reason) {}

bool base64url_strict_decode(std::string_view in, std::vector<std::uint8_t> &out) {
    for (char c : in) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok) return false;  // '=', '+', '/', whitespace, anything else
    }
    return base64url_decode(in, out);  // rejects a length of 4n+1 and non-zero trailing bits
}

bool parse_strict_json(std::string_view text, rapidjson::Document &doc, unsigned max_depth) {
    // Not kParseFullPrecisionFlag: RapidJSON 1.1.0's full-precision strtod overflows an int on a
    // number with a long mantissa and a far exponent (undefined behaviour, found by jwt_fuzz:
    // fuzz/regressions/jwt_fuzz/). The only numbers read are the time claims, whole seconds,
    // which the normal path parses exactly.
    constexpr unsigned kFlags =
        rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;
    doc.Parse<kFlags>(text.data(), text.size());
    if (doc.HasParseError()) return false;
    return no_duplicate_members(doc, 0, max_depth);
}

Jwks Jwks::parse(std::string_view text, const std::string &source) {
    rapidjson::Document doc;
    if (!parse_strict_json(text, doc))
        file_error(source,
                   "not a JSON Web Key Set (strict JSON, no duplicate members, nesting "
                   "of 16 levels at most)");
    if (!doc.IsObject()) file_error(source, "a JSON Web Key Set must be an object");
    auto keys = doc.FindMember("keys");
    if (keys == doc.MemberEnd() || !keys->value.IsArray())
        file_error(source, "a JSON Web Key Set needs a \"keys\" array");
    if (keys->value.Size() > kMaxKeys) file_error(source, "more than 100 keys");
    Jwks set;
    std::set<std::string> kids;
    std::size_t index = 0;
    for (const auto &k : keys->value.GetArray()) {
        const std::size_t i = index++;
        if (!k.IsObject()) key_error(source, i, "a key must be an object");
        if (auto use = opt_string(k, "use", source, i)) {
            if (*use == "enc") continue;  // never verifies a signature
            if (*use != "sig") key_error(source, i, "\"use\" must be \"sig\"");
        }
        auto ops = k.FindMember("key_ops");
        if (ops != k.MemberEnd()) {
            bool verify = false;
            if (!ops->value.IsArray()) key_error(source, i, "\"key_ops\" must be an array");
            for (const auto &op : ops->value.GetArray())
                if (op.IsString() &&
                    std::string_view(op.GetString(), op.GetStringLength()) == "verify")
                    verify = true;
            if (!verify) key_error(source, i, "\"key_ops\" does not allow \"verify\"");
        }
        std::string_view kty = req_string(k, "kty", source, i);
        auto alg_text = opt_string(k, "alg", source, i);
        std::optional<Alg> alg;
        if (alg_text) {
            alg = alg_from_name(*alg_text);
            if (!alg)
                key_error(source, i, "\"alg\" is not one of RS256, PS256, ES256, EdDSA, HS256");
        }
        Jwk jwk;
        if (kty != "oct")
            for (const char *m : kPrivateMembers)
                if (k.HasMember(m))
                    key_error(source, i,
                              std::string("holds private key member \"") + m +
                                  "\"; put only public keys in the file");
        if (kty == "RSA") {
            if (alg && *alg != Alg::RS256 && *alg != Alg::PS256)
                key_error(source, i, "the alg of an RSA key must be RS256 or PS256");
            jwk.alg = alg.value_or(Alg::RS256);
            jwk.pkey.reset(rsa_key(k, source, i).release());
        } else if (kty == "EC") {
            if (alg && *alg != Alg::ES256)
                key_error(source, i, "the alg of an EC key must be ES256");
            jwk.alg = Alg::ES256;
            jwk.pkey.reset(ec_key(k, source, i).release());
        } else if (kty == "OKP") {
            if (alg && *alg != Alg::EdDSA)
                key_error(source, i, "the alg of an OKP key must be EdDSA");
            jwk.alg = Alg::EdDSA;
            jwk.pkey.reset(okp_key(k, source, i).release());
        } else if (kty == "oct") {
            if (alg && *alg != Alg::HS256)
                key_error(source, i, "the alg of an oct key must be HS256");
            jwk.alg = Alg::HS256;
            req_b64(k, "k", source, i, jwk.secret);
            if (jwk.secret.size() < kMinHmacKey)
                key_error(source, i, "an HS256 secret must be at least 32 bytes");
        } else {
            key_error(source, i, "\"kty\" must be RSA, EC, OKP or oct");
        }
        if (auto kid = opt_string(k, "kid", source, i)) {
            if (kid->empty() || kid->size() > 256)
                key_error(source, i, "\"kid\" must be 1 to 256 bytes");
            if (!kids.insert(std::string(*kid)).second)
                key_error(source, i, "duplicate \"kid\" " + quote_for_error(*kid));
            jwk.kid = std::string(*kid);
        }
        set.keys_.push_back(std::move(jwk));
    }
    if (set.keys_.empty()) file_error(source, "the key set holds no signature key");
    if (set.keys_.size() > 1)
        for (std::size_t i = 0; i < set.keys_.size(); ++i)
            if (!set.keys_[i].kid)
                file_error(source,
                           "every key needs a \"kid\" when the set holds more than one "
                           "signature key (the key without one is signature key " +
                               std::to_string(i) + ")");
    return set;
}

Jwks Jwks::load_file(const std::string &path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (fd.get() < 0)
        file_error(path, std::string("cannot open key set file: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        file_error(path, std::string("cannot stat key set file: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) file_error(path, "key set file is not a regular file");
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        file_error(path, std::string("key set file is accessible by group or others (mode ") +
                             mode + "); it must be readable by its owner only (chmod 600)");
    }
    if (st.st_size < 0 || static_cast<std::uint64_t>(st.st_size) > kMaxJwksFile)
        file_error(path, "key set file is larger than 1 MiB");
    SecureBytes buf(kMaxJwksFile + 1);
    std::size_t have = 0;
    while (have < buf.size()) {
        ssize_t n = ::read(fd.get(), buf.data() + have, buf.size() - have);
        if (n < 0) {
            if (errno == EINTR) continue;
            file_error(path, std::string("cannot read key set file: ") + std::strerror(errno));
        }
        if (n == 0) break;
        have += static_cast<std::size_t>(n);
    }
    if (have > kMaxJwksFile) file_error(path, "key set file is larger than 1 MiB");
    return parse(std::string_view(reinterpret_cast<const char *>(buf.data()), have), path);
}

const Jwk &Jwks::select(const std::optional<std::string> &kid) const {
    if (!kid) {
        if (keys_.size() == 1) return keys_.front();
        throw JwtError(Reason::UnknownKeyId,
                       "the token has no kid and the key set holds several keys");
    }
    for (const auto &k : keys_)
        if (k.kid && *k.kid == *kid) return k;
    throw JwtError(Reason::UnknownKeyId, "no key in the key set has the kid of the token");
}

bool verify_signature(const Jwk &key, Alg alg, std::string_view input,
                      const std::vector<std::uint8_t> &sig) {
    if (alg != key.alg) return false;
    const auto *data = reinterpret_cast<const unsigned char *>(input.data());
    if (alg == Alg::HS256) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        if (HMAC(EVP_sha256(), key.secret.data(), (int)key.secret.size(), data, input.size(), mac,
                 &mac_len) == nullptr)
            throw Error(ErrorCode::Internal, "OpenSSL HMAC failed");
        bool ok = sig.size() == mac_len && CRYPTO_memcmp(mac, sig.data(), mac_len) == 0;
        OPENSSL_cleanse(mac, sizeof mac);
        return ok;
    }
    auto *pkey = static_cast<EVP_PKEY *>(key.pkey.get());
    if (pkey == nullptr) return false;
    std::vector<std::uint8_t> der;
    const std::vector<std::uint8_t> *to_verify = &sig;
    if (alg == Alg::ES256) {
        // JOSE sends r||s, 32 bytes each (RFC 7518 §3.4); OpenSSL wants DER.
        if (sig.size() != 64) return false;
        EcdsaSigPtr es(ECDSA_SIG_new());
        BnPtr r(BN_bin2bn(sig.data(), 32, nullptr)), s(BN_bin2bn(sig.data() + 32, 32, nullptr));
        if (!es || !r || !s) throw Error(ErrorCode::Internal, "OpenSSL out of memory");
        if (ECDSA_SIG_set0(es.get(), r.get(), s.get()) != 1)
            throw Error(ErrorCode::Internal, "OpenSSL ECDSA_SIG_set0 failed");
        r.release();
        s.release();
        int len = i2d_ECDSA_SIG(es.get(), nullptr);
        if (len <= 0) return false;
        der.resize(static_cast<std::size_t>(len));
        unsigned char *p = der.data();
        if (i2d_ECDSA_SIG(es.get(), &p) != len) return false;
        to_verify = &der;
    } else if (alg == Alg::EdDSA) {
        if (sig.size() != 64) return false;
    } else if (sig.size() != static_cast<std::size_t>(EVP_PKEY_get_size(pkey))) {
        return false;  // RSA: exactly the modulus length
    }
    MdCtxPtr md(EVP_MD_CTX_new());
    if (!md) throw Error(ErrorCode::Internal, "OpenSSL out of memory");
    EVP_PKEY_CTX *pctx = nullptr;  // owned by md
    const EVP_MD *digest = alg == Alg::EdDSA ? nullptr : EVP_sha256();
    if (EVP_DigestVerifyInit(md.get(), &pctx, digest, nullptr, pkey) != 1)
        throw Error(ErrorCode::Internal, "OpenSSL EVP_DigestVerifyInit failed");
    if (alg == Alg::PS256) {
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1)
            throw Error(ErrorCode::Internal, "OpenSSL could not set up RSASSA-PSS");
    } else if (alg == Alg::RS256) {
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
            throw Error(ErrorCode::Internal, "OpenSSL could not set up RSASSA-PKCS1-v1_5");
    }
    const bool ok =
        EVP_DigestVerify(md.get(), to_verify->data(), to_verify->size(), data, input.size()) == 1;
    ERR_clear_error();  // a refused signature leaves OpenSSL errors queued
    return ok;
}

}  // namespace pga::jwt
