// libFuzzer: JWT verification (common/jwt.*) and key-set parsing (common/jwks.*), the code
// alpaca_set_user_jwt runs on tokens any application role may send. The first byte picks a
// mode:
//   0: the rest is token text, verified as it comes against a one-key HS256 set (a forger's
//      view): refused with a JwtError, or accepted only if it verifies under the real key;
//   1: the rest is "header JSON \n payload", signed here with the real key, so the header
//      and claims checks that run only after the signature see arbitrary text: refused with a
//      JwtError, or accepted with a user of 1-256 bytes without control characters;
//   2: the rest is JWKS text: parsed or refused with pga::Error(ConfigFile).
// Every refusal's message is printable ASCII, bounded, and one of a fixed set of texts, so it
// never repeats any part of a token.
#include "common/crypto.hpp"
#include "common/encoding.hpp"
#include "common/error.hpp"
#include "common/jwks.hpp"
#include "common/jwt.hpp"
#include "fuzz/fuzz_invariants.hpp"

#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

namespace {

void check(bool cond) {
    if (!cond) std::abort();
}

constexpr std::uint8_t kSecret[32] = {
    0x5a, 0x11, 0x42, 0x9c, 0x07, 0xe3, 0x28, 0x61, 0xb4, 0x3d, 0x90, 0x0f, 0x7a, 0xc5, 0x16, 0x88,
    0xd2, 0x4b, 0x39, 0xa0, 0x6e, 0xf1, 0x25, 0x8d, 0x13, 0x77, 0xca, 0x04, 0xbe, 0x59, 0xe6, 0x30};

const pga::jwt::Jwks &keys() {
    static const pga::jwt::Jwks set = pga::jwt::Jwks::parse(
        "{\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS256\",\"kid\":\"fuzz\",\"k\":\"" +
            pga::base64url_encode(kSecret, sizeof kSecret) + "\"}]}",
        "fuzz.jwks");
    return set;
}

pga::jwt::Policy policy() {
    pga::jwt::Policy p;
    p.now = 1'790'000'000;
    p.issuer = "https://issuer.example";
    p.audience = "pg_alpaca";
    return p;
}

// A refusal's text: printable, bounded, starting with its reason's fixed words, and drawn
// from a small fixed set (every message is composed of fixed text only; one that echoed any
// part of a token would make the set grow without bound).
void check_refusal(const pga::jwt::JwtError &e) {
    static std::set<std::string> seen;
    const std::string message = e.what();
    pga_fuzz::check_error_text(message, 200);
    check(message.rfind(pga::jwt::reason_text(e.reason()), 0) == 0);
    seen.insert(message);
    check(seen.size() <= 80);
}

void check_user(const std::string &user) {
    check(!user.empty() && user.size() <= 256);
    for (const char c : user) check(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
}

std::string sign(std::string_view header, std::string_view payload) {
    std::string input = pga::base64url_encode(reinterpret_cast<const std::uint8_t *>(header.data()),
                                              header.size()) +
                        "." +
                        pga::base64url_encode(
                            reinterpret_cast<const std::uint8_t *>(payload.data()), payload.size());
    const pga::Sha256 mac =
        pga::hmac_sha256(kSecret, sizeof kSecret,
                         reinterpret_cast<const std::uint8_t *>(input.data()), input.size());
    return input + "." + pga::base64url_encode(mac.data(), mac.size());
}

void verify(std::string_view token, bool signed_here) {
    try {
        check_user(pga::jwt::verify_token(token, keys(), policy()));
    } catch (const pga::jwt::JwtError &e) {
        check_refusal(e);
        // A token signed with the key itself never fails on its signature.
        if (signed_here && token.size() <= pga::jwt::kMaxTokenBytes)
            check(e.reason() != pga::jwt::Reason::BadSignature);
    }
}

void fuzz_jwks(std::string_view text) {
    try {
        (void)pga::jwt::Jwks::parse(text, "fuzz.jwks");
    } catch (const pga::Error &e) {
        check(e.code() == pga::ErrorCode::ConfigFile);
        pga_fuzz::check_error(e, 300);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    if (size < 1) return 0;
    const std::string_view in(reinterpret_cast<const char *>(data + 1), size - 1);
    switch (data[0] % 3) {
        case 0:
            verify(in, false);
            break;
        case 1: {
            const std::size_t nl = in.find('\n');
            const std::string_view header = nl == std::string_view::npos ? in : in.substr(0, nl);
            const std::string_view payload =
                nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
            verify(sign(header, payload), true);
            break;
        }
        default:
            fuzz_jwks(in);
            break;
    }
    return 0;
}
