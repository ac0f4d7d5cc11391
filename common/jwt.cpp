#include "jwt.hpp"

#include <cmath>

namespace pga::jwt {
namespace {

[[noreturn]] void fail(Reason r, const char *detail) {
    throw JwtError(r, detail);
}

std::string_view view(const rapidjson::Value &v) {
    return std::string_view(v.GetString(), v.GetStringLength());
}

bool valid_user(std::string_view s) {
    if (s.empty() || s.size() > 256) return false;
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f) return false;
    return true;
}

std::optional<double> number_claim(const rapidjson::Value &claims, const char *name) {
    auto it = claims.FindMember(name);
    if (it == claims.MemberEnd()) return std::nullopt;
    if (!it->value.IsNumber())
        throw JwtError(Reason::Malformed, std::string("the ") + name + " claim is not a number");
    double v = it->value.GetDouble();
    if (!std::isfinite(v))
        throw JwtError(Reason::Malformed, std::string("the ") + name + " claim is not a number");
    return v;
}

}  // namespace

Parts split(std::string_view token) {
    if (token.size() > kMaxTokenBytes) fail(Reason::TooLarge, "over 16 KiB");
    const std::size_t d1 = token.find('.');
    if (d1 == std::string_view::npos) fail(Reason::Malformed, "not three dot-separated parts");
    const std::size_t d2 = token.find('.', d1 + 1);
    if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos)
        fail(Reason::Malformed, "not three dot-separated parts");
    Parts p;
    p.signing_input = token.substr(0, d2);
    std::vector<std::uint8_t> bytes;
    if (d1 == 0 || !base64url_strict_decode(token.substr(0, d1), bytes))
        fail(Reason::Malformed, "header is not strict base64url");
    p.header_json.assign(bytes.begin(), bytes.end());
    if (!base64url_strict_decode(token.substr(d1 + 1, d2 - d1 - 1), bytes))
        fail(Reason::Malformed, "payload is not strict base64url");
    p.payload.assign(bytes.begin(), bytes.end());
    if (!base64url_strict_decode(token.substr(d2 + 1), p.signature) || p.signature.empty())
        fail(Reason::Malformed, "signature is missing or not strict base64url");
    return p;
}

Header parse_header(std::string_view header_json) {
    rapidjson::Document doc;
    if (!parse_strict_json(header_json, doc) || !doc.IsObject())
        fail(Reason::Malformed, "header is not a JSON object without duplicate members");
    auto alg = doc.FindMember("alg");
    if (alg == doc.MemberEnd() || !alg->value.IsString())
        fail(Reason::Malformed, "header has no alg");
    if (doc.HasMember("crit")) fail(Reason::Malformed, "header has crit");
    for (const char *m : {"jwk", "jku", "x5u", "x5c", "zip", "enc"})
        if (doc.HasMember(m))
            fail(Reason::Malformed, "header carries key or encryption parameters");
    auto typ = doc.FindMember("typ");
    if (typ != doc.MemberEnd()) {
        if (!typ->value.IsString()) fail(Reason::Malformed, "typ is not JWT");
        std::string_view t = view(typ->value);
        auto eq_ci = [](std::string_view a, std::string_view b) {
            if (a.size() != b.size()) return false;
            for (std::size_t i = 0; i < a.size(); ++i) {
                char c = a[i];
                if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
                if (c != b[i]) return false;
            }
            return true;
        };
        if (!eq_ci(t, "JWT") && !eq_ci(t, "APPLICATION/JWT"))
            fail(Reason::Malformed, "typ is not JWT");
    }
    Header h;
    auto kid = doc.FindMember("kid");
    if (kid != doc.MemberEnd()) {
        if (!kid->value.IsString()) fail(Reason::Malformed, "kid is not a string");
        h.kid = std::string(view(kid->value));
    }
    auto a = alg_from_name(view(alg->value));
    if (!a)
        fail(Reason::AlgorithmNotAllowed, "only RS256, PS256, ES256, EdDSA and HS256 are known");
    h.alg = *a;
    return h;
}

std::string verify_jws(std::string_view token, const Jwks &keys) {
    Parts p = split(token);
    Header h = parse_header(p.header_json);
    const Jwk &key = keys.select(h.kid);
    if (key.alg != h.alg)
        fail(Reason::AlgorithmNotAllowed, "the selected key is for another algorithm");
    if (!verify_signature(key, h.alg, p.signing_input, p.signature))
        fail(Reason::BadSignature, "signature does not verify with the selected key");
    return std::move(p.payload);
}

std::string check_claims(std::string_view payload, const Policy &policy) {
    rapidjson::Document doc;
    if (!parse_strict_json(payload, doc) || !doc.IsObject())
        fail(Reason::Malformed, "claims are not a JSON object without duplicate members");
    auto exp = number_claim(doc, "exp");
    if (!exp) fail(Reason::Malformed, "exp is required");
    auto nbf = number_claim(doc, "nbf");
    auto iat = number_claim(doc, "iat");
    if (policy.now >= *exp + policy.leeway) fail(Reason::Expired, "exp is in the past");
    if (nbf && policy.now < *nbf - policy.leeway) fail(Reason::NotYetValid, "nbf is in the future");
    if (iat && *iat > policy.now + policy.leeway) fail(Reason::NotYetValid, "iat is in the future");
    if (!policy.issuer.empty()) {
        auto iss = doc.FindMember("iss");
        if (iss == doc.MemberEnd() || !iss->value.IsString() || view(iss->value) != policy.issuer)
            fail(Reason::WrongIssuer, "iss is not the configured issuer");
    }
    auto aud = doc.FindMember("aud");
    if (aud != doc.MemberEnd() && !aud->value.IsString() && !aud->value.IsArray())
        fail(Reason::Malformed, "aud is neither a string nor an array");
    if (aud != doc.MemberEnd() && aud->value.IsArray())
        for (const auto &a : aud->value.GetArray())
            if (!a.IsString()) fail(Reason::Malformed, "aud holds a value that is not a string");
    if (!policy.audience.empty()) {
        bool found = false;
        if (aud != doc.MemberEnd()) {
            if (aud->value.IsString()) {
                found = view(aud->value) == policy.audience;
            } else {
                for (const auto &a : aud->value.GetArray())
                    found = found || view(a) == policy.audience;
            }
        }
        if (!found) fail(Reason::WrongAudience, "aud does not name the configured audience");
    } else if (aud != doc.MemberEnd()) {
        fail(Reason::WrongAudience, "the token has aud and pg_alpaca.jwt_audience is not set");
    }
    auto user = doc.FindMember(policy.user_claim.c_str());
    if (user == doc.MemberEnd() || !user->value.IsString())
        fail(Reason::NoUserClaim, "the user claim is missing or not a string");
    if (!valid_user(view(user->value)))
        fail(Reason::NoUserClaim,
             "the user claim must be 1 to 256 bytes without control characters");
    return std::string(view(user->value));
}

std::string verify_token(std::string_view token, const Jwks &keys, const Policy &policy) {
    return check_claims(verify_jws(token, keys), policy);
}

}  // namespace pga::jwt
