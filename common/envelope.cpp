#include "envelope.hpp"

#include "error.hpp"

#include <array>
#include <cstring>

namespace pga {
namespace {

constexpr std::string_view kPrefix = "pgak1:";
constexpr std::string_view kAadLabel = "pg_alpaca/v1";  // followed by one 0x00 byte
constexpr std::size_t kMinPayload = kGcmNonceLen + kGcmTagLen + 1;
constexpr std::size_t kMaxPayload = kGcmNonceLen + kGcmTagLen + kMaxSecretLen;
constexpr std::size_t kMaxColumnLen = 128;
constexpr std::size_t kMaxAadLen = kAadLabel.size() + 1 + 4 + 16 + kMaxColumnLen;
constexpr const char *kHint =
    "store plaintext with alpaca_store_credential(); alpaca_secret accepts only pgak1 envelopes";

[[noreturn]] void invalid(const std::string &what) {
    throw Error(ErrorCode::InvalidText, "invalid alpaca_secret: " + what, kHint);
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// Checks everything up to the base64 text; returns the key id and the base64 part.
// Never echoes the input except a version tag made only of "pgak" and digits.
std::string_view parse_header(std::string_view text, std::uint32_t &key_id) {
    if (text.empty()) invalid("empty value");
    if (text.substr(0, kPrefix.size()) != kPrefix) {
        // "pgak<digits>" followed by ':' or the end is another version of our format.
        if (text.size() > 4 && text.substr(0, 4) == "pgak" && is_digit(text[4])) {
            std::size_t i = 4;
            while (i < text.size() && i < 14 && is_digit(text[i])) ++i;
            if (i == text.size() || text[i] == ':') {
                if (text.substr(0, i) == kEnvelopeVersion)
                    invalid("malformed envelope: expected pgak1:<key id>:<base64>");
                invalid("unsupported envelope version \"" + std::string(text.substr(0, i)) +
                        "\" (this version reads pgak1)");
            }
        }
        invalid("not an envelope");
    }
    if (text.size() > kMaxEnvelopeTextLen)
        invalid("envelope too long (" + std::to_string(text.size()) + " characters; at most " +
                std::to_string(kMaxEnvelopeTextLen) + ")");
    std::size_t colon = text.find(':', kPrefix.size());
    if (colon == std::string_view::npos)
        invalid("malformed envelope: expected pgak1:<key id>:<base64>");
    std::string_view id = text.substr(kPrefix.size(), colon - kPrefix.size());
    if (id.empty()) invalid("missing key id: expected pgak1:<key id>:<base64>");
    bool ok = id.size() <= 10 && id[0] != '0';
    std::uint64_t v = 0;
    for (char c : id) {
        if (!is_digit(c)) {
            ok = false;
            break;
        }
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (!ok || v == 0 || v > 0xffffffffull)
        invalid("key id must be a decimal number from 1 to 4294967295 without leading zeros");
    key_id = static_cast<std::uint32_t>(v);
    return text.substr(colon + 1);
}

template <typename Bytes>
void decode_payload(std::string_view b64, Bytes &out) {
    if (b64.empty()) invalid("missing payload: expected pgak1:<key id>:<base64>");
    if (!base64_decode(b64, out)) invalid("payload is not valid canonical base64");
    if (out.size() < kMinPayload)
        invalid("payload too short (" + std::to_string(out.size()) + " bytes; at least " +
                std::to_string(kMinPayload) + ")");
    if (out.size() > kMaxPayload)
        invalid("payload too long (" + std::to_string(out.size()) + " bytes; at most " +
                std::to_string(kMaxPayload) + ")");
}

// AAD = "pg_alpaca/v1" 0x00 | key id u32 BE | credential uuid | column.
std::size_t build_aad(std::uint8_t *aad, std::uint32_t key_id, const Uuid &credential_id,
                      std::string_view column) {
    if (column.empty() || column.size() > kMaxColumnLen)
        throw Error(ErrorCode::InvalidParameter, "column name must be 1 to 128 bytes");
    std::uint8_t *p = aad;
    std::memcpy(p, kAadLabel.data(), kAadLabel.size());
    p += kAadLabel.size();
    *p++ = 0;
    *p++ = static_cast<std::uint8_t>(key_id >> 24);
    *p++ = static_cast<std::uint8_t>(key_id >> 16);
    *p++ = static_cast<std::uint8_t>(key_id >> 8);
    *p++ = static_cast<std::uint8_t>(key_id);
    std::memcpy(p, credential_id.data(), credential_id.size());
    p += credential_id.size();
    std::memcpy(p, column.data(), column.size());
    p += column.size();
    return static_cast<std::size_t>(p - aad);
}

}  // namespace

Envelope parse_envelope(std::string_view text) {
    Envelope env;
    std::string_view b64 = parse_header(text, env.key_id);
    decode_payload(b64, env.payload);
    return env;
}

std::string seal_secret(const KeyRing &ring, std::string_view plaintext, const Uuid &credential_id,
                        std::string_view column) {
    if (plaintext.empty()) throw Error(ErrorCode::InvalidParameter, "secret must not be empty");
    if (plaintext.size() > kMaxSecretLen)
        throw Error(ErrorCode::InvalidParameter,
                    "secret is longer than " + std::to_string(kMaxSecretLen) + " bytes");
    const KeyEntry &key = ring.primary();
    std::array<std::uint8_t, kMaxAadLen> aad;
    std::size_t aad_len = build_aad(aad.data(), key.id, credential_id, column);

    std::array<std::uint8_t, kMaxPayload> payload;
    random_bytes(payload.data(), kGcmNonceLen);
    key.data_cipher->seal(payload.data(), aad.data(), aad_len,
                          reinterpret_cast<const std::uint8_t *>(plaintext.data()),
                          plaintext.size(), payload.data() + kGcmNonceLen);
    std::size_t payload_len = kGcmNonceLen + plaintext.size() + kGcmTagLen;

    std::string out;
    std::string b64 = base64_encode(payload.data(), payload_len);
    std::string id = std::to_string(key.id);
    out.reserve(kPrefix.size() + id.size() + 1 + b64.size());
    out.append(kPrefix).append(id).append(1, ':').append(b64);
    return out;
}

SecureBytes open_secret(const KeyRing &ring, std::string_view envelope_text,
                        const Uuid &credential_id, std::string_view column) {
    std::uint32_t key_id = 0;
    std::string_view b64 = parse_header(envelope_text, key_id);
    // Ciphertext is not secret; a per-thread scratch buffer keeps this path allocation-free.
    static thread_local std::vector<std::uint8_t> payload;
    decode_payload(b64, payload);
    const KeyEntry &key = ring.require(key_id);
    std::array<std::uint8_t, kMaxAadLen> aad;
    std::size_t aad_len = build_aad(aad.data(), key_id, credential_id, column);
    SecureBytes plain(payload.size() - kGcmNonceLen - kGcmTagLen);
    if (!key.data_cipher->open(payload.data(), aad.data(), aad_len, payload.data() + kGcmNonceLen,
                               payload.size() - kGcmNonceLen, plain.data()))
        throw Error(ErrorCode::DecryptFailed,
                    "alpaca_secret does not decrypt: it belongs to another credential or column, "
                    "or it was altered",
                    "an envelope cannot be copied between rows or columns; store the credential "
                    "again with alpaca_store_credential()");
    return plain;
}

std::string fingerprint(const KeyEntry &key, std::string_view api_key) {
    Sha256 mac =
        hmac_sha256(key.fingerprint_key.data(), key.fingerprint_key.size(),
                    reinterpret_cast<const std::uint8_t *>(api_key.data()), api_key.size());
    return std::to_string(key.id) + ":" + base64url_encode(mac.data(), mac.size());
}

}  // namespace pga
