// libFuzzer: alpaca_secret envelope text. Any input is refused with InvalidText (malformed),
// KeyMissing (unknown key id) or DecryptFailed (tag mismatch), or opens. Whatever parses is
// canonical: re-encoding the parsed envelope gives back the input byte for byte. Messages
// are short printable text. A first byte with the high bit set switches to a seal/open round
// trip of the rest as plaintext.
#include "common/encoding.hpp"
#include "common/envelope.hpp"
#include "common/error.hpp"
#include "common/keyring.hpp"
#include "fuzz/fuzz_invariants.hpp"
#include "fuzz/fuzz_keys.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

void check(bool cond) {
    if (!cond) std::abort();
}

using pga_fuzz::ring;

const pga::Uuid kCred = {0x3f, 0x1c, 0x2b, 0x4a, 0x5d, 0x6e, 0x4f, 0x70,
                         0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8};

// Messages are fixed text plus numbers and at most a "pgak<digits>" version tag: never raw
// input bytes, never long.
bool printable_and_short(const std::string &m) {
    if (m.size() >= 200) return false;
    for (char c : m)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f)
            return false;
    return true;
}

void fuzz_text(std::string_view text) {
    // 1. The parser alone.
    bool parsed = false;
    std::string parse_message;
    pga::Envelope env;
    try {
        env = pga::parse_envelope(text);
        parsed = true;
    } catch (const pga::Error &e) {
        check(e.code() == pga::ErrorCode::InvalidText);
        parse_message = e.what();
        check(parse_message.rfind("invalid alpaca_secret: ", 0) == 0);
        check(printable_and_short(parse_message));
        pga_fuzz::check_error(e, 200);
    }
    if (parsed) {
        check(env.key_id >= 1);
        check(env.payload.size() >= 12 + 16 + 1 && env.payload.size() <= 12 + 16 + 512);
        const std::string again = "pgak1:" + std::to_string(env.key_id) + ":" +
                                  pga::base64_encode(env.payload.data(), env.payload.size());
        check(again == text);
        check(text.size() <= pga::kMaxEnvelopeTextLen);
    }

    // 2. Opening: the same verdict on malformed text, a tag check on the rest.
    try {
        const pga::SecureBytes plain = pga::open_secret(ring(), text, kCred, "secret_key");
        check(parsed);
        check(plain.size() == env.payload.size() - 28);
    } catch (const pga::Error &e) {
        const std::string m = e.what();
        if (!parsed) {
            check(e.code() == pga::ErrorCode::InvalidText && m == parse_message);
        } else if (ring().find(env.key_id) == nullptr) {
            check(e.code() == pga::ErrorCode::KeyMissing);
            check(m == "key id " + std::to_string(env.key_id) + " is not in the key ring");
        } else {
            check(e.code() == pga::ErrorCode::DecryptFailed);
        }
        check(printable_and_short(m));
        pga_fuzz::check_error(e, 200);
    }
}

void fuzz_round_trip(std::string_view in) {
    // in: column length (1 byte) | column | plaintext
    if (in.empty()) return;
    const std::size_t clen = static_cast<std::uint8_t>(in[0]);
    in.remove_prefix(1);
    if (in.size() < clen) return;
    const std::string_view column = in.substr(0, clen);
    const std::string_view plaintext = in.substr(clen);
    std::string env;
    try {
        env = pga::seal_secret(ring(), plaintext, kCred, column);
    } catch (const pga::Error &e) {
        check(e.code() == pga::ErrorCode::InvalidParameter);
        check(plaintext.empty() || plaintext.size() > pga::kMaxSecretLen || column.empty() ||
              column.size() > 128);
        return;
    }
    check(env.size() <= pga::kMaxEnvelopeTextLen);
    check(env.rfind("pgak1:7:", 0) == 0);
    const pga::SecureBytes plain = pga::open_secret(ring(), env, kCred, column);
    check(pga::as_view(plain) == plaintext);
    pga::Uuid other = kCred;
    other[15] ^= 1;
    try {
        (void)pga::open_secret(ring(), env, other, column);
        check(false);
    } catch (const pga::Error &e) {
        check(e.code() == pga::ErrorCode::DecryptFailed);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char *>(data), size);
    if (!in.empty() && (static_cast<std::uint8_t>(in[0]) & 0x80)) {
        fuzz_round_trip(in.substr(1));
    } else {
        fuzz_text(in);
    }
    return 0;
}
