// libFuzzer: Fernet decoding (the import path of credentials from the earlier system). The
// first byte picks a mode:
//   0: the rest is a token, decrypted with the spec vectors' key, with or without an age
//      check: refused with DecryptFailed, or accepted, and then re-encrypting the plaintext
//      with the token's own timestamp and IV gives back the token;
//   1: the rest is a token body (version | timestamp | IV | ciphertext) signed here with the
//      real signing key, so AES-CBC padding and block checks see arbitrary bytes;
//   2: the rest is a Fernet key: InvalidParameter, or two 16-byte halves;
//   3: the rest is plaintext: encrypt then decrypt round-trips.
#include "common/crypto.hpp"
#include "common/encoding.hpp"
#include "common/error.hpp"
#include "common/fernet.hpp"
#include "fuzz/fuzz_invariants.hpp"

#include <array>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

void check(bool cond) {
    if (!cond) std::abort();
}

const pga::FernetKey &key() {
    static const pga::FernetKey k =
        pga::FernetKey::parse("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=");
    return k;
}

constexpr std::int64_t kNow = 499162801;  // the spec vectors' clock

bool allowed_refusal(const pga::Error &e) {
    pga_fuzz::check_error(e, 80);
    const std::string m = e.what();
    return e.code() == pga::ErrorCode::DecryptFailed && m.rfind("invalid token: ", 0) == 0 &&
           m.size() < 80;
}

std::string strip_padding(std::string s) {
    while (!s.empty() && s.back() == '=') s.pop_back();
    return s;
}

void fuzz_token(std::string_view token, std::optional<std::int64_t> ttl) {
    try {
        const pga::SecureBytes plain = pga::fernet_decrypt(key(), token, ttl, kNow);
        std::vector<std::uint8_t> raw;
        check(pga::base64url_decode(token, raw));
        std::uint64_t ts = 0;
        for (int i = 1; i <= 8; ++i) ts = (ts << 8) | raw[static_cast<std::size_t>(i)];
        std::array<std::uint8_t, 16> iv{};
        std::copy(raw.begin() + 9, raw.begin() + 25, iv.begin());
        const std::string again =
            pga::fernet_encrypt(key(), pga::as_view(plain), static_cast<std::int64_t>(ts), iv);
        check(strip_padding(again) == strip_padding(std::string(token)));
    } catch (const pga::Error &e) {
        check(allowed_refusal(e));
    }
}

void fuzz_signed_body(std::string_view body) {
    std::vector<std::uint8_t> raw(body.begin(), body.end());
    const pga::Sha256 mac =
        pga::hmac_sha256(key().signing.data(), key().signing.size(), raw.data(), raw.size());
    raw.insert(raw.end(), mac.begin(), mac.end());
    const std::string token = pga::base64url_encode(raw.data(), raw.size());
    try {
        const pga::SecureBytes plain = pga::fernet_decrypt(key(), token, std::nullopt, 0);
        // Valid padding: the plaintext is shorter than the ciphertext by 1..16 bytes.
        const std::size_t ct = raw.size() - 25 - 32;
        check(plain.size() < ct && plain.size() + 16 >= ct);
        check(raw[0] == 0x80);
    } catch (const pga::Error &e) {
        check(allowed_refusal(e));
        check(std::string(e.what()) != "invalid token: signature does not verify");
    }
}

void fuzz_key(std::string_view text) {
    try {
        const pga::FernetKey k = pga::FernetKey::parse(text);
        check(k.signing.size() == 16 && k.encryption.size() == 16);
        std::vector<std::uint8_t> raw;
        check(pga::base64url_decode(text, raw) && raw.size() == 32);
    } catch (const pga::Error &e) {
        check(e.code() == pga::ErrorCode::InvalidParameter);
        pga_fuzz::check_error(e, 80);
        check(std::string(e.what()) == "invalid Fernet key: must be base64url of exactly 32 bytes");
    }
}

void fuzz_round_trip(std::string_view in) {
    if (in.size() < 24) return;
    std::int64_t ts = 0;
    for (int i = 0; i < 8; ++i)
        ts = (ts << 8) | static_cast<std::uint8_t>(in[static_cast<std::size_t>(i)]);
    std::array<std::uint8_t, 16> iv{};
    for (std::size_t i = 0; i < 16; ++i) iv[i] = static_cast<std::uint8_t>(in[8 + i]);
    const std::string_view plain = in.substr(24);
    const std::string token = pga::fernet_encrypt(key(), plain, ts, iv);
    check(token.size() % 4 == 0);
    check(pga::as_view(pga::fernet_decrypt(key(), token, std::nullopt, 0)) == plain);
    // With an age check at the token's own time it is fresh. (A negative time is written as
    // an unsigned timestamp in the far future, so only times from 1970 on.)
    if (ts >= 0) check(pga::as_view(pga::fernet_decrypt(key(), token, 0, ts)) == plain);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    if (size < 1) return 0;
    const std::string_view in(reinterpret_cast<const char *>(data + 1), size - 1);
    switch (data[0] & 3) {
        case 0:
            fuzz_token(in, (data[0] & 4) ? std::optional<std::int64_t>(60) : std::nullopt);
            break;
        case 1:
            fuzz_signed_body(in);
            break;
        case 2:
            fuzz_key(in);
            break;
        default:
            fuzz_round_trip(in);
            break;
    }
    return 0;
}
