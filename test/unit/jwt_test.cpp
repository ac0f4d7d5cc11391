// JWT / JWKS verification: the RFC examples (RFC 7515 A.1 HS256, A.2 RS256, A.3 ES256;
// RFC 8037 A.4 Ed25519) against the RFCs' keys, and every header, claim, base64 and key-set
// rule of common/jwt.hpp and common/jwks.hpp with tokens signed here by OpenSSL.
#include "common/encoding.hpp"
#include "common/error.hpp"
#include "common/jwks.hpp"
#include "common/jwt.hpp"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <memory>
#include <string>

using pga::jwt::Alg;
using pga::jwt::Jwks;
using pga::jwt::JwtError;
using pga::jwt::Policy;
using pga::jwt::Reason;

namespace {

// ---- RFC 7515 Appendix A and RFC 8037 Appendix A (typed in from the RFCs) ------------------
const char kRfcPayloadB64[] =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
    "cnVlfQ";
const double kRfcExp = 1300819380;

const std::string kA1Jwks =
    R"({"keys":[{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]})";
const std::string kA1Token = std::string("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.") +
                             kRfcPayloadB64 + ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

const std::string kA2N =
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm"
    "4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z"
    "5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7a"
    "GhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
const std::string kA2Jwks = R"({"keys":[{"kty":"RSA","n":")" + kA2N + R"(","e":"AQAB"}]})";
const std::string kA2Token =
    std::string("eyJhbGciOiJSUzI1NiJ9.") + kRfcPayloadB64 +
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2F"
    "p5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMH"
    "lb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9"
    "QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

const std::string kA3Jwks =
    R"({"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]})";
const std::string kA3Token = std::string("eyJhbGciOiJFUzI1NiJ9.") + kRfcPayloadB64 +
                             ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSAp"
                             "mWQxfKTUJqPP3-Kg6NU1Q";

const std::string kEdJwks =
    R"({"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]})";
const std::string kEdToken =
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

const char kRfcPayload[] =
    "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";

Jwks jwks(const std::string &text) {
    return Jwks::parse(text, "test.jwks");
}

Reason reason_of(const std::function<void()> &f) {
    try {
        f();
    } catch (const JwtError &e) {
        // Every refusal is printable and names its reason, never the token.
        EXPECT_NE(std::string(e.what()).find(pga::jwt::reason_text(e.reason())), std::string::npos);
        EXPECT_TRUE(pga::is_printable_ascii(e.what()));
        return e.reason();
    }
    ADD_FAILURE() << "no JwtError";
    return Reason::Malformed;
}

// Changes one signature character well inside the last segment (so the base64 stays valid).
std::string flip_last(std::string t) {
    char &c = t[t.size() - 5];
    c = (c == 'A') ? 'B' : 'A';
    return t;
}

TEST(JwtRfc, A1Hs256Verifies) {
    EXPECT_EQ(pga::jwt::verify_jws(kA1Token, jwks(kA1Jwks)), kRfcPayload);
}

TEST(JwtRfc, A2Rs256Verifies) {
    EXPECT_EQ(pga::jwt::verify_jws(kA2Token, jwks(kA2Jwks)), kRfcPayload);
    EXPECT_EQ(reason_of([&] { pga::jwt::verify_jws(flip_last(kA2Token), jwks(kA2Jwks)); }),
              Reason::BadSignature);
}

TEST(JwtRfc, A3Es256Verifies) {
    EXPECT_EQ(pga::jwt::verify_jws(kA3Token, jwks(kA3Jwks)), kRfcPayload);
    EXPECT_EQ(reason_of([&] { pga::jwt::verify_jws(flip_last(kA3Token), jwks(kA3Jwks)); }),
              Reason::BadSignature);
}

TEST(JwtRfc, Rfc8037Ed25519Verifies) {
    EXPECT_EQ(pga::jwt::verify_jws(kEdToken, jwks(kEdJwks)), "Example of Ed25519 signing");
    EXPECT_EQ(reason_of([&] { pga::jwt::verify_jws(flip_last(kEdToken), jwks(kEdJwks)); }),
              Reason::BadSignature);
}

TEST(JwtRfc, RfcTokensAgainstTheWrongKeyAreRefused) {
    EXPECT_EQ(reason_of([&] { pga::jwt::verify_jws(kA2Token, jwks(kA3Jwks)); }),
              Reason::AlgorithmNotAllowed);
    EXPECT_EQ(reason_of([&] { pga::jwt::verify_jws(kA3Token, jwks(kEdJwks)); }),
              Reason::AlgorithmNotAllowed);
    EXPECT_EQ(reason_of([&] { pga::jwt::verify_jws(kA1Token, jwks(kA2Jwks)); }),
              Reason::AlgorithmNotAllowed);
}

TEST(JwtRfc, RfcClaimsAtTheRfcsTime) {
    // The examples carry exp 1300819380 (2011), no sub: checked at a time before exp.
    Policy p;
    p.now = kRfcExp - 100;
    p.user_claim = "iss";
    EXPECT_EQ(pga::jwt::verify_token(kA2Token, jwks(kA2Jwks), p), "joe");
    p.user_claim = "sub";
    EXPECT_EQ(reason_of([&] { pga::jwt::verify_token(kA2Token, jwks(kA2Jwks), p); }),
              Reason::NoUserClaim);
    p.user_claim = "iss";
    p.now = kRfcExp + 31;
    EXPECT_EQ(reason_of([&] { pga::jwt::verify_token(kA3Token, jwks(kA3Jwks), p); }),
              Reason::Expired);
    p.now = kRfcExp + 29;  // within the default leeway of 30 s
    EXPECT_EQ(pga::jwt::verify_token(kA3Token, jwks(kA3Jwks), p), "joe");
    p.issuer = "joe";
    EXPECT_EQ(pga::jwt::verify_token(kA1Token, jwks(kA1Jwks), p), "joe");
    p.issuer = "jane";
    EXPECT_EQ(reason_of([&] { pga::jwt::verify_token(kA1Token, jwks(kA1Jwks), p); }),
              Reason::WrongIssuer);
}

// ---- keys and tokens made here ---------------------------------------------------------------
struct PkeyFree {
    void operator()(EVP_PKEY *p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string b64u(const std::string &s) {
    return pga::base64url_encode(reinterpret_cast<const std::uint8_t *>(s.data()), s.size());
}
std::string b64u(const std::vector<std::uint8_t> &v) {
    return pga::base64url_encode(v.data(), v.size());
}

std::vector<std::uint8_t> bn_param(EVP_PKEY *k, const char *name, std::size_t pad = 0) {
    BIGNUM *bn = nullptr;
    EXPECT_EQ(EVP_PKEY_get_bn_param(k, name, &bn), 1);
    std::size_t n = pad ? pad : static_cast<std::size_t>(BN_num_bytes(bn));
    std::vector<std::uint8_t> out(n);
    BN_bn2binpad(bn, out.data(), (int)n);
    BN_free(bn);
    return out;
}

struct TestKey {
    Alg alg;
    Pkey pkey;
    std::string secret;  // HS256
    std::string jwk(const std::string &kid) const {
        std::string k = kid.empty() ? "" : R"("kid":")" + kid + R"(",)";
        switch (alg) {
            case Alg::RS256:
            case Alg::PS256:
                return "{" + k + R"("kty":"RSA","alg":")" + pga::jwt::alg_name(alg) + R"(","n":")" +
                       b64u(bn_param(pkey.get(), OSSL_PKEY_PARAM_RSA_N)) + R"(","e":")" +
                       b64u(bn_param(pkey.get(), OSSL_PKEY_PARAM_RSA_E)) + R"("})";
            case Alg::ES256:
                return "{" + k + R"("kty":"EC","crv":"P-256","x":")" +
                       b64u(bn_param(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32)) + R"(","y":")" +
                       b64u(bn_param(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32)) + R"("})";
            case Alg::EdDSA: {
                std::vector<std::uint8_t> x(32);
                std::size_t len = 32;
                EVP_PKEY_get_raw_public_key(pkey.get(), x.data(), &len);
                return "{" + k + R"("kty":"OKP","crv":"Ed25519","x":")" + b64u(x) + R"("})";
            }
            case Alg::HS256:
                return "{" + k + R"("kty":"oct","k":")" + b64u(secret) + R"("})";
        }
        return "";
    }
    std::vector<std::uint8_t> sign(const std::string &input) const {
        if (alg == Alg::HS256) {
            unsigned char mac[32];
            unsigned len = 32;
            HMAC(EVP_sha256(), secret.data(), (int)secret.size(),
                 reinterpret_cast<const unsigned char *>(input.data()), input.size(), mac, &len);
            return std::vector<std::uint8_t>(mac, mac + len);
        }
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = nullptr;
        EVP_DigestSignInit(md, &pctx, alg == Alg::EdDSA ? nullptr : EVP_sha256(), nullptr,
                           pkey.get());
        if (alg == Alg::PS256) {
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32);
        }
        std::size_t len = 0;
        EVP_DigestSign(md, nullptr, &len, reinterpret_cast<const unsigned char *>(input.data()),
                       input.size());
        std::vector<std::uint8_t> sig(len);
        EVP_DigestSign(md, sig.data(), &len, reinterpret_cast<const unsigned char *>(input.data()),
                       input.size());
        sig.resize(len);
        EVP_MD_CTX_free(md);
        if (alg == Alg::ES256) {  // DER -> r||s
            const unsigned char *p = sig.data();
            ECDSA_SIG *es = d2i_ECDSA_SIG(nullptr, &p, (long)sig.size());
            std::vector<std::uint8_t> raw(64);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), raw.data(), 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), raw.data() + 32, 32);
            ECDSA_SIG_free(es);
            return raw;
        }
        return sig;
    }
};

TestKey make_key(Alg alg) {
    TestKey k{alg, nullptr, {}};
    switch (alg) {
        case Alg::RS256:
        case Alg::PS256:
            k.pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", (size_t)2048));
            break;
        case Alg::ES256:
            k.pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
            break;
        case Alg::EdDSA:
            k.pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
            break;
        case Alg::HS256:
            k.secret = std::string(32, 's') + "ecret";
            break;
    }
    return k;
}

const double kNow = 1900000000;

std::string claims(const std::string &extra = "") {
    return R"({"sub":"alice","exp":)" + std::to_string((long long)kNow + 600) + extra + "}";
}

std::string token(const TestKey &key, const std::string &header, const std::string &payload) {
    std::string input = b64u(header) + "." + b64u(payload);
    return input + "." + b64u(key.sign(input));
}

std::string hdr(const TestKey &key, const std::string &kid = "k1", const std::string &extra = "") {
    std::string h = std::string(R"({"alg":")") + pga::jwt::alg_name(key.alg) + "\"";
    if (!kid.empty()) h += R"(,"kid":")" + kid + "\"";
    return h + extra + "}";
}

Policy policy() {
    Policy p;
    p.now = kNow;
    return p;
}

class JwtKeys : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        for (Alg a : {Alg::RS256, Alg::PS256, Alg::ES256, Alg::EdDSA, Alg::HS256})
            keys_.push_back(std::make_unique<TestKey>(make_key(a)));
    }
    static void TearDownTestSuite() { keys_.clear(); }
    const TestKey &key(Alg a) const { return *keys_[static_cast<std::size_t>(a)]; }
    // The set: k1..k5 one key per algorithm, in enum order.
    Jwks all() const {
        std::string s = R"({"keys":[)";
        for (std::size_t i = 0; i < keys_.size(); ++i)
            s += (i ? "," : "") + keys_[i]->jwk("k" + std::to_string(i + 1));
        return jwks(s + "]}");
    }
    std::string kid(Alg a) const { return "k" + std::to_string(static_cast<int>(a) + 1); }
    std::string good(Alg a, const std::string &payload = claims()) const {
        return token(key(a), hdr(key(a), kid(a)), payload);
    }
    Reason refused(const std::string &tok, Policy p = policy()) const {
        Jwks set = all();
        return reason_of([&] { pga::jwt::verify_token(tok, set, p); });
    }
    static std::vector<std::unique_ptr<TestKey>> keys_;
};
std::vector<std::unique_ptr<TestKey>> JwtKeys::keys_;

TEST_F(JwtKeys, EveryAlgorithmVerifies) {
    Jwks set = all();
    for (Alg a : {Alg::RS256, Alg::PS256, Alg::ES256, Alg::EdDSA, Alg::HS256}) {
        SCOPED_TRACE(pga::jwt::alg_name(a));
        EXPECT_EQ(pga::jwt::verify_token(good(a), set, policy()), "alice");
        EXPECT_EQ(refused(flip_last(good(a))), Reason::BadSignature);
    }
}

TEST_F(JwtKeys, AlgNoneAndUnknownAreRefused) {
    std::string input = b64u(std::string(R"({"alg":"none","kid":"k1"})")) + "." + b64u(claims());
    EXPECT_EQ(refused(input + "."), Reason::Malformed);  // empty signature
    EXPECT_EQ(refused(input + ".AAAA"), Reason::AlgorithmNotAllowed);
    for (const char *alg : {"none", "None", "HS512", "RS384", "ES256K", "rs256", ""}) {
        SCOPED_TRACE(alg);
        EXPECT_EQ(refused(token(key(Alg::RS256),
                                std::string(R"({"alg":")") + alg + R"(","kid":"k1"})", claims())),
                  Reason::AlgorithmNotAllowed);
    }
}

TEST_F(JwtKeys, AlgMustBeTheKeys) {
    // RS256 key (k1) asked to verify PS256, ES256, HS256, EdDSA: refused before the signature.
    for (Alg a : {Alg::PS256, Alg::ES256, Alg::EdDSA, Alg::HS256}) {
        SCOPED_TRACE(pga::jwt::alg_name(a));
        EXPECT_EQ(refused(token(key(a), hdr(key(a), "k1"), claims())), Reason::AlgorithmNotAllowed);
    }
    EXPECT_EQ(refused(token(key(Alg::RS256), hdr(key(Alg::RS256), "k2"), claims())),
              Reason::AlgorithmNotAllowed);
}

TEST_F(JwtKeys, Hs256WithTheRsaPublicKeyAsSecretIsRefused) {
    // The classic confusion: HMAC keyed with the RSA key's public text, kid of the RSA key.
    TestKey fake{Alg::HS256, nullptr, key(Alg::RS256).jwk("k1")};
    EXPECT_EQ(refused(token(fake, hdr(fake, "k1"), claims())), Reason::AlgorithmNotAllowed);
}

TEST_F(JwtKeys, KidSelectsTheKeyAndUnknownIsRefused) {
    // Signed by the ES256 key but naming the EdDSA key: its alg does not match that key.
    EXPECT_EQ(refused(token(key(Alg::ES256), hdr(key(Alg::ES256), "k4"), claims())),
              Reason::AlgorithmNotAllowed);
    EXPECT_EQ(refused(token(key(Alg::ES256), hdr(key(Alg::ES256), "nope"), claims())),
              Reason::UnknownKeyId);
    EXPECT_EQ(refused(token(key(Alg::ES256), hdr(key(Alg::ES256), ""), claims())),
              Reason::UnknownKeyId);  // no kid, several keys
    EXPECT_EQ(refused(token(key(Alg::ES256), hdr(key(Alg::ES256), "", R"(,"kid":3)"), claims())),
              Reason::Malformed);
    // A second key of the same type under another kid: the signature decides.
    TestKey other = make_key(Alg::ES256);
    Jwks two = jwks(R"({"keys":[)" + key(Alg::ES256).jwk("a") + "," + other.jwk("b") + "]}");
    EXPECT_EQ(pga::jwt::verify_token(token(other, hdr(other, "b"), claims()), two, policy()),
              "alice");
    EXPECT_EQ(reason_of([&] {
                  pga::jwt::verify_token(token(other, hdr(other, "a"), claims()), two, policy());
              }),
              Reason::BadSignature);  // never "try all keys"
}

TEST_F(JwtKeys, SingleKeySetAcceptsATokenWithoutKid) {
    const TestKey &k = key(Alg::EdDSA);
    Jwks one = jwks(R"({"keys":[)" + k.jwk("") + "]}");
    EXPECT_EQ(pga::jwt::verify_token(token(k, hdr(k, ""), claims()), one, policy()), "alice");
    EXPECT_EQ(
        reason_of([&] { pga::jwt::verify_token(token(k, hdr(k, "x"), claims()), one, policy()); }),
        Reason::UnknownKeyId);
    Jwks one_kid = jwks(R"({"keys":[)" + k.jwk("only") + "]}");
    EXPECT_EQ(pga::jwt::verify_token(token(k, hdr(k, ""), claims()), one_kid, policy()), "alice");
}

TEST_F(JwtKeys, HeaderRules) {
    const TestKey &k = key(Alg::RS256);
    EXPECT_EQ(refused(token(k, R"({"alg":"RS256","alg":"RS256","kid":"k1"})", claims())),
              Reason::Malformed);
    EXPECT_EQ(refused(token(k, R"({"alg":"HS256","kid":"k1","alg":"RS256"})", claims())),
              Reason::Malformed);
    EXPECT_EQ(refused(token(k, hdr(k, "k1", R"(,"crit":["exp"])"), claims())), Reason::Malformed);
    EXPECT_EQ(refused(token(k, hdr(k, "k1", R"(,"typ":"JOSE"])"), claims())), Reason::Malformed);
    EXPECT_EQ(refused(token(k, hdr(k, "k1", R"(,"typ":"JOSE")"), claims())), Reason::Malformed);
    EXPECT_EQ(refused(token(k, hdr(k, "k1", R"(,"typ":7)"), claims())), Reason::Malformed);
    Jwks set = all();
    EXPECT_EQ(
        pga::jwt::verify_token(token(k, hdr(k, "k1", R"(,"typ":"JWT")"), claims()), set, policy()),
        "alice");
    EXPECT_EQ(pga::jwt::verify_token(
                  token(k, hdr(k, "k1", R"(,"typ":"application/jwt")"), claims()), set, policy()),
              "alice");
    EXPECT_EQ(refused(token(k, hdr(k, "k1", R"(,"zip":"DEF")"), claims())), Reason::Malformed);
    for (const char *m : {R"(,"jwk":{})", R"(,"jku":"https://x")", R"(,"x5c":[])", R"(,"x5u":"u")"})
        EXPECT_EQ(refused(token(k, hdr(k, "k1", m), claims())), Reason::Malformed) << m;
    EXPECT_EQ(refused(token(k, R"({"kid":"k1"})", claims())), Reason::Malformed);  // no alg
    EXPECT_EQ(refused(token(k, R"({"alg":1,"kid":"k1"})", claims())), Reason::Malformed);
    EXPECT_EQ(refused(token(k, R"(["RS256"])", claims())), Reason::Malformed);
    EXPECT_EQ(refused(token(k, R"({"alg":"RS256","kid":"k1",})", claims())), Reason::Malformed);
    EXPECT_EQ(refused(token(k, R"({"alg":"RS256","kid":"k1"} x)", claims())), Reason::Malformed);
    EXPECT_EQ(refused(token(k, "{\"alg\":\"RS256\",\"kid\":\"k1\",\"x\":\"\xff\"}", claims())),
              Reason::Malformed);  // not UTF-8
}

TEST_F(JwtKeys, Base64Rules) {
    std::string t = good(Alg::ES256);
    std::size_t d1 = t.find('.'), d2 = t.rfind('.');
    std::string h = t.substr(0, d1), p = t.substr(d1 + 1, d2 - d1 - 1), s = t.substr(d2 + 1);
    auto with = [](std::string h, std::string p, std::string s) { return h + "." + p + "." + s; };
    // Padding, whitespace, the standard alphabet, extra or missing parts, empty parts.
    std::string padded = h;
    while (padded.size() % 4) padded += '=';
    ASSERT_NE(padded, h);
    EXPECT_EQ(refused(with(padded, p, s)), Reason::Malformed);
    EXPECT_EQ(refused(with(h, p, s + "==")), Reason::Malformed);
    EXPECT_EQ(refused(with(h + " ", p, s)), Reason::Malformed);
    EXPECT_EQ(refused(with(h, p.substr(0, 4) + "\n" + p.substr(4), s)), Reason::Malformed);
    EXPECT_EQ(refused(" " + t), Reason::Malformed);
    std::string std_alpha = s;
    for (char &c : std_alpha) c = c == '-' ? '+' : c == '_' ? '/' : c;
    if (std_alpha == s) std_alpha[0] = '+';
    EXPECT_EQ(refused(with(h, p, std_alpha)), Reason::Malformed);
    EXPECT_EQ(refused(h + "." + p), Reason::Malformed);
    EXPECT_EQ(refused(t + ".x"), Reason::Malformed);
    EXPECT_EQ(refused(with("", p, s)), Reason::Malformed);
    EXPECT_EQ(refused(with(h, p, "")), Reason::Malformed);
    std::string p1 = p;
    while (p1.size() % 4 != 1) p1 += 'A';
    EXPECT_EQ(refused(with(h, p1, s)), Reason::Malformed);  // 4n+1 characters
    std::vector<std::uint8_t> out;
    EXPECT_FALSE(pga::jwt::base64url_strict_decode("QQ==", out));
    EXPECT_FALSE(pga::jwt::base64url_strict_decode("QR", out));  // non-zero trailing bits
    EXPECT_FALSE(pga::jwt::base64url_strict_decode("Q+", out));
    EXPECT_TRUE(pga::jwt::base64url_strict_decode("QQ", out));
    EXPECT_EQ(out, std::vector<std::uint8_t>{'A'});
}

TEST_F(JwtKeys, TooLargeIsRefusedBeforeParsing) {
    std::string big(pga::jwt::kMaxTokenBytes + 1, 'A');
    EXPECT_EQ(refused(big), Reason::TooLarge);
    std::string mib(1 << 20, '.');
    EXPECT_EQ(refused(mib), Reason::TooLarge);
    // Exactly at the limit: parsed (and refused for what it is).
    EXPECT_EQ(refused(std::string(pga::jwt::kMaxTokenBytes, 'A')), Reason::Malformed);
}

TEST_F(JwtKeys, TimeClaims) {
    const long long now = (long long)kNow;
    auto with = [&](const std::string &c) { return good(Alg::EdDSA, c); };
    Jwks set = all();
    auto ok = [&](const std::string &c) { return pga::jwt::verify_token(with(c), set, policy()); };
    EXPECT_EQ(refused(with(R"({"sub":"alice"})")), Reason::Malformed);  // exp required
    EXPECT_EQ(refused(with(R"({"sub":"alice","exp":"soon"})")), Reason::Malformed);
    EXPECT_EQ(refused(with(R"({"sub":"alice","exp":)" + std::to_string(now - 31) + "}")),
              Reason::Expired);
    EXPECT_EQ(ok(R"({"sub":"alice","exp":)" + std::to_string(now - 29) + "}"), "alice");
    EXPECT_EQ(refused(with(R"({"sub":"alice","exp":)" + std::to_string(now - 30) + "}")),
              Reason::Expired);
    EXPECT_EQ(refused(with(claims(R"(,"nbf":)" + std::to_string(now + 31)))), Reason::NotYetValid);
    EXPECT_EQ(ok(claims(R"(,"nbf":)" + std::to_string(now + 29))), "alice");
    EXPECT_EQ(refused(with(claims(R"(,"iat":)" + std::to_string(now + 31)))), Reason::NotYetValid);
    EXPECT_EQ(ok(claims(R"(,"iat":)" + std::to_string(now - 5000))), "alice");
    EXPECT_EQ(refused(with(claims(R"(,"nbf":"x")"))), Reason::Malformed);
    EXPECT_EQ(refused(with(claims(R"(,"iat":null)"))), Reason::Malformed);
    EXPECT_EQ(ok(R"({"sub":"alice","exp":)" + std::to_string(now + 1) + ".5}"), "alice");
    Policy p = policy();
    p.leeway = 0;
    EXPECT_EQ(refused(with(R"({"sub":"alice","exp":)" + std::to_string(now) + "}"), p),
              Reason::Expired);
    p.leeway = 120;
    EXPECT_EQ(pga::jwt::verify_token(
                  with(R"({"sub":"alice","exp":)" + std::to_string(now - 100) + "}"), set, p),
              "alice");
}

TEST_F(JwtKeys, IssuerAndAudience) {
    Jwks set = all();
    Policy p = policy();
    p.issuer = "https://idp.example/";
    std::string iss = R"(,"iss":"https://idp.example/")";
    EXPECT_EQ(pga::jwt::verify_token(good(Alg::ES256, claims(iss)), set, p), "alice");
    EXPECT_EQ(refused(good(Alg::ES256, claims()), p), Reason::WrongIssuer);
    EXPECT_EQ(refused(good(Alg::ES256, claims(R"(,"iss":"https://evil.example/")")), p),
              Reason::WrongIssuer);
    EXPECT_EQ(refused(good(Alg::ES256, claims(R"(,"iss":["https://idp.example/"])")), p),
              Reason::WrongIssuer);
    p.issuer.clear();
    p.audience = "pg_alpaca";
    EXPECT_EQ(pga::jwt::verify_token(good(Alg::ES256, claims(R"(,"aud":"pg_alpaca")")), set, p),
              "alice");
    EXPECT_EQ(
        pga::jwt::verify_token(good(Alg::ES256, claims(R"(,"aud":["x","pg_alpaca"])")), set, p),
        "alice");
    EXPECT_EQ(refused(good(Alg::ES256, claims(R"(,"aud":"other")")), p), Reason::WrongAudience);
    EXPECT_EQ(refused(good(Alg::ES256, claims(R"(,"aud":["other"])")), p), Reason::WrongAudience);
    EXPECT_EQ(refused(good(Alg::ES256, claims()), p), Reason::WrongAudience);
    EXPECT_EQ(refused(good(Alg::ES256, claims(R"(,"aud":["pg_alpaca",1])")), p), Reason::Malformed);
    EXPECT_EQ(refused(good(Alg::ES256, claims(R"(,"aud":{"pg_alpaca":1})")), p), Reason::Malformed);
    // No audience configured: a token meant for some audience is refused.
    EXPECT_EQ(refused(good(Alg::ES256, claims(R"(,"aud":"pg_alpaca")"))), Reason::WrongAudience);
}

TEST_F(JwtKeys, UserClaim) {
    Jwks set = all();
    Policy p = policy();
    std::string exp = std::to_string((long long)kNow + 60);
    EXPECT_EQ(refused(good(Alg::HS256, R"({"exp":)" + exp + "}")), Reason::NoUserClaim);
    EXPECT_EQ(refused(good(Alg::HS256, R"({"sub":7,"exp":)" + exp + "}")), Reason::NoUserClaim);
    EXPECT_EQ(refused(good(Alg::HS256, R"({"sub":"","exp":)" + exp + "}")), Reason::NoUserClaim);
    EXPECT_EQ(refused(good(Alg::HS256, R"({"sub":"a\u0000b","exp":)" + exp + "}")),
              Reason::NoUserClaim);
    EXPECT_EQ(refused(good(Alg::HS256, R"({"sub":"a\nb","exp":)" + exp + "}")),
              Reason::NoUserClaim);
    EXPECT_EQ(refused(good(Alg::HS256,
                           R"({"sub":")" + std::string(257, 'u') + R"(","exp":)" + exp + "}")),
              Reason::NoUserClaim);
    p.user_claim = "user_id";
    EXPECT_EQ(pga::jwt::verify_token(good(Alg::HS256, claims(R"(,"user_id":"u-42")")), set, p),
              "u-42");
    EXPECT_EQ(refused(good(Alg::HS256, claims()), p), Reason::NoUserClaim);
    // Duplicate claims are refused (which "sub" would count?).
    EXPECT_EQ(refused(good(Alg::HS256, R"({"sub":"alice","sub":"bob","exp":)" + exp + "}")),
              Reason::Malformed);
    EXPECT_EQ(refused(good(Alg::HS256, R"({"sub":"alice","x":{"a":1,"a":2},"exp":)" + exp + "}")),
              Reason::Malformed);
    EXPECT_EQ(refused(good(Alg::HS256, R"(["alice"])")), Reason::Malformed);
    EXPECT_EQ(refused(good(Alg::HS256, std::string(100, '[') + std::string(100, ']'))),
              Reason::Malformed);  // nesting
}

TEST_F(JwtKeys, ErrorsNeverEchoTheToken) {
    std::string t = good(Alg::RS256, claims(R"(,"aud":"zzzsecretaud")"));
    for (const std::string &bad : {flip_last(t), t, t + "=", t.substr(0, 40)}) {
        try {
            pga::jwt::verify_token(bad, all(), policy());
            ADD_FAILURE();
        } catch (const JwtError &e) {
            std::string m = e.what();
            EXPECT_EQ(m.find(t.substr(0, 10)), std::string::npos) << m;
            EXPECT_EQ(m.find("zzzsecretaud"), std::string::npos) << m;
            EXPECT_LT(m.size(), 200u);
        }
    }
}

// ---- the key set file --------------------------------------------------------------------
std::string config_error(const std::string &text) {
    try {
        Jwks::parse(text, "/etc/idp.jwks");
    } catch (const pga::Error &e) {
        EXPECT_EQ(e.code(), pga::ErrorCode::ConfigFile);
        return e.what();
    }
    return "";
}

TEST_F(JwtKeys, KeySetRules) {
    EXPECT_EQ(all().size(), 5u);
    const std::string ec = key(Alg::ES256).jwk("a");
    auto set_of = [](const std::string &keys) { return R"({"keys":[)" + keys + "]}"; };
    EXPECT_NE(config_error("").find("/etc/idp.jwks: "), std::string::npos);
    EXPECT_NE(config_error("{}").find("\"keys\""), std::string::npos);
    EXPECT_NE(config_error(set_of("")).find("no signature key"), std::string::npos);
    EXPECT_NE(config_error(R"({"keys":[],"keys":[]})").find("duplicate"), std::string::npos);
    EXPECT_NE(config_error(set_of(ec + "," + ec)).find("keys[1]: duplicate \"kid\""),
              std::string::npos);
    EXPECT_NE(config_error(set_of(ec + "," + key(Alg::EdDSA).jwk(""))).find("every key needs"),
              std::string::npos);
    EXPECT_NE(config_error(set_of(R"({"kty":"RSA","n":"AQAB","e":"AQAB"})")).find("keys[0]: "),
              std::string::npos);  // too short
    EXPECT_NE(config_error(set_of(R"({"kty":"oct","k":"c2hvcnQ"})")).find("32 bytes"),
              std::string::npos);
    EXPECT_NE(config_error(set_of(R"({"kty":"EC","crv":"P-384","x":"AA","y":"AA"})")).find("P-256"),
              std::string::npos);
    // A point that is not on the curve.
    std::string off = R"({"kty":"EC","crv":"P-256","x":")" + std::string(43, 'A') + R"(","y":")" +
                      std::string(42, 'A') + R"(E"})";
    EXPECT_NE(config_error(set_of(off)).find("keys[0]: "), std::string::npos);
    EXPECT_NE(
        config_error(set_of(R"({"kty":"oct","alg":"RS256","k":")" + std::string(43, 'A') + "\"}"))
            .find("HS256"),
        std::string::npos);
    EXPECT_NE(config_error(set_of(R"({"kty":"foo"})")).find("kty"), std::string::npos);
    // A private member is refused and never repeated.
    std::string priv = ec.substr(0, ec.size() - 1) + R"(,"d":"c2VjcmV0c2VjcmV0c2VjcmV0"})";
    std::string m = config_error(set_of(priv));
    EXPECT_NE(m.find("private"), std::string::npos);
    EXPECT_EQ(m.find("c2VjcmV0"), std::string::npos);
    // Key material never appears in any message.
    std::string x_val = ec.substr(ec.find("\"x\":\"") + 5, 20);
    EXPECT_EQ(config_error(set_of(ec + "," + ec)).find(x_val), std::string::npos);
    EXPECT_NE(config_error(set_of(ec.substr(0, ec.size() - 1) + R"(,"use":"sign"})")).find("use"),
              std::string::npos);
    EXPECT_NE(config_error(set_of(ec.substr(0, ec.size() - 1) + R"(,"key_ops":["sign"]})"))
                  .find("verify"),
              std::string::npos);
    // "use":"enc" keys are skipped, not used.
    Jwks with_enc = jwks(set_of(ec + R"(,{"kty":"RSA","use":"enc","kid":"e"})"));
    EXPECT_EQ(with_enc.size(), 1u);
}

TEST(JwtFile, ModeAndSize) {
    char dir[] = "/tmp/pga_jwt_test.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    std::string path = std::string(dir) + "/k.jwks";
    {
        std::ofstream f(path);
        f << kEdJwks;
    }
    chmod(path.c_str(), 0600);
    EXPECT_EQ(Jwks::load_file(path).size(), 1u);
    for (mode_t mode : {0640, 0604, 0660}) {
        chmod(path.c_str(), mode);
        try {
            Jwks::load_file(path);
            ADD_FAILURE() << "mode " << mode;
        } catch (const pga::Error &e) {
            EXPECT_NE(std::string(e.what()).find("group or others"), std::string::npos);
            EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
        }
    }
    chmod(path.c_str(), 0600);
    {
        std::ofstream f(path);
        f << std::string((1 << 20) + 1, ' ');
    }
    EXPECT_THROW(Jwks::load_file(path), pga::Error);
    unlink(path.c_str());
    EXPECT_THROW(Jwks::load_file(path), pga::Error);
    rmdir(dir);
}

}  // namespace
