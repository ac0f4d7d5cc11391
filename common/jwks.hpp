// The JSON Web Key Set that alpaca_set_user_jwt verifies tokens with (RFC 7517), and the
// signature algorithms (RFC 7518 §3, RFC 8037). No PostgreSQL.
//
// Each key decides its one algorithm; a token naming another is refused:
//   kty RSA (n, e; modulus of 2048 bits or more)  alg RS256 (the default) or PS256
//   kty EC  (crv P-256, x, y; point checked)      alg ES256
//   kty OKP (crv Ed25519, x)                      alg EdDSA
//   kty oct (k; 32 bytes or more)                 alg HS256: a shared secret, used only
//                                                 because the operator put it in the file
// A key's "alg", when present, must be that algorithm (or, for RSA, RS256/PS256); "use", when
// present, must be "sig" (a "use":"enc" key is skipped: it never verifies a signature);
// "key_ops", when present, must contain "verify". Private members (d, p, q, ...) are refused
// (the file holds verification keys; an oct key's k is the one secret allowed).
// "kid" is a string, unique in the set; in a set of more than one key every key must have one.
//
// Key selection: a token's kid must name a key of the set (unknown kid: refused, other keys
// are never tried). A token without kid is accepted only when the set holds exactly one key
// (with or without a kid).
//
// Errors name the file and the key's index in "keys" (keys[2]), never key material.
#pragma once
#include "cpp_only.hpp"
#include "secure_memory.hpp"

#include <rapidjson/document.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pga::jwt {

enum class Alg { RS256, PS256, ES256, EdDSA, HS256 };

// "RS256", ... ; from_name returns nullopt for any other name ("none" included).
const char *alg_name(Alg alg) noexcept;
std::optional<Alg> alg_from_name(std::string_view name) noexcept;

// Why a token was refused. Every reason is SQLSTATE 28000 in the extension.
enum class Reason {
    TooLarge,             // over kMaxTokenBytes, refused before parsing
    Malformed,            // not three strict base64url segments, bad JSON, bad header/claim type
    AlgorithmNotAllowed,  // alg none/unknown, or not the selected key's algorithm
    UnknownKeyId,         // kid not in the set, or no kid while the set has several keys
    BadSignature,
    Expired,
    NotYetValid,  // nbf or iat in the future
    WrongIssuer,
    WrongAudience,
    NoUserClaim,  // the user claim is missing or not a usable user id
};

const char *reason_text(Reason r) noexcept;

// A refused token. The message says why (reason_text plus a short fixed detail); it never
// contains the token or any part of it.
class JwtError : public std::runtime_error {
  public:
    JwtError(Reason reason, const std::string &detail);
    Reason reason() const noexcept { return reason_; }

  private:
    Reason reason_;
};

struct EvpPkeyFree {
    void operator()(void *p) const noexcept;
};

struct Jwk {
    std::optional<std::string> kid;
    Alg alg = Alg::RS256;
    std::unique_ptr<void, EvpPkeyFree> pkey;  // EVP_PKEY*, for every alg but HS256
    SecureBytes secret;                       // HS256 only
};

class Jwks {
  public:
    // Parses JWKS text ({"keys":[...]}). source is the file name, for messages only. Throws
    // pga::Error(ConfigFile) "<source>: keys[<i>]: <what>" on anything it does not accept.
    static Jwks parse(std::string_view text, const std::string &source);
    // Reads and parses a file: refused when it is not a regular file, is group- or
    // world-accessible (any of mode 077), or is larger than 1 MiB.
    static Jwks load_file(const std::string &path);

    // The key a token's kid selects (see the top of this file); throws JwtError(UnknownKeyId).
    const Jwk &select(const std::optional<std::string> &kid) const;
    std::size_t size() const noexcept { return keys_.size(); }

  private:
    std::vector<Jwk> keys_;
};

// Verifies sig over input with key, for algorithm alg (which must be key's: the caller checks
// first; this refuses a mismatch too). ES256 takes the JOSE form r||s (64 bytes).
bool verify_signature(const Jwk &key, Alg alg, std::string_view input,
                      const std::vector<std::uint8_t> &sig);

// Strict JSON: one value, UTF-8 validated, no comments or trailing commas, nesting at most
// max_depth, and no object anywhere with two members of the same name. False otherwise.
bool parse_strict_json(std::string_view text, rapidjson::Document &doc, unsigned max_depth = 16);

// Strict base64url (RFC 7515 §2): URL alphabet only, no padding, no whitespace, zero trailing
// bits. False otherwise.
bool base64url_strict_decode(std::string_view in, std::vector<std::uint8_t> &out);

}  // namespace pga::jwt
