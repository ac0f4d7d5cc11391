// Compact JWS / JWT verification (RFC 7515, RFC 7519) for alpaca_set_user_jwt. No PostgreSQL.
//
// Order of checks: size (over 16 KiB: refused before anything is parsed), three segments of
// strict base64url (no padding, no whitespace, no standard alphabet), the header (strict JSON
// object, no duplicate members; "alg" a string; "crit" refused; "typ", when present, "JWT";
// "kid", when present, a string; "jwk", "jku", "x5u", "x5c", "zip" refused: keys come only
// from the key set), key selection by kid, the key's algorithm against "alg" ("none" and every
// name the key does not have: refused), the signature, and only then the claims.
//
// Claims (strict JSON object, no duplicate members): "exp" required, a number; "nbf" and
// "iat" numbers when present. With leeway L seconds and the time now: refused as expired when
// now >= exp + L, as not yet valid when now < nbf - L or iat > now + L. "iss" must equal the
// configured issuer when one is set. "aud" (a string or an array of strings) must contain the
// configured audience when one is set; a token that carries "aud" when no audience is
// configured is refused (RFC 7519 §4.1.3: a recipient not named in "aud" must reject). The
// user is the string claim named by user_claim: 1 to 256 bytes, no control characters.
#pragma once
#include "cpp_only.hpp"
#include "jwks.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pga::jwt {

constexpr std::size_t kMaxTokenBytes = 16 * 1024;

struct Header {
    Alg alg = Alg::RS256;
    std::optional<std::string> kid;
};

struct Policy {
    double now = 0;        // seconds since the epoch
    double leeway = 30;    // seconds
    std::string issuer;    // empty: not checked
    std::string audience;  // empty: a token with "aud" is refused
    std::string user_claim = "sub";
};

// The token split into its parts; header and payload decoded, nothing verified.
struct Parts {
    std::string_view signing_input;  // header.payload, as sent
    std::string header_json;
    std::string payload;
    std::vector<std::uint8_t> signature;
};

// Throws JwtError(TooLarge or Malformed).
Parts split(std::string_view token);
// Throws JwtError(Malformed or AlgorithmNotAllowed).
Header parse_header(std::string_view header_json);

// Checks the signature and returns the verified payload (which need not be JSON: the RFC 8037
// example signs plain text). Throws JwtError for every failure up to and including the
// signature.
std::string verify_jws(std::string_view token, const Jwks &keys);

// Checks the claims of a verified payload; returns the user. Throws JwtError.
std::string check_claims(std::string_view payload, const Policy &policy);

// verify_jws then check_claims.
std::string verify_token(std::string_view token, const Jwks &keys, const Policy &policy);

}  // namespace pga::jwt
