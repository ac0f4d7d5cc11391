#include "encoding.hpp"

#include <cstring>

namespace pga {
namespace {

constexpr char kStd[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// 0..63 for alphabet characters, -1 otherwise.
struct DecodeTable {
    signed char v[256];
    constexpr explicit DecodeTable(const char *alphabet) : v() {
        for (int i = 0; i < 256; ++i) v[i] = -1;
        for (int i = 0; i < 64; ++i)
            v[static_cast<unsigned char>(alphabet[i])] = static_cast<signed char>(i);
    }
};
constexpr DecodeTable kStdDec(kStd);
constexpr DecodeTable kUrlDec(kUrl);

std::size_t encoded_len(std::size_t len, bool pad) {
    return pad ? (len + 2) / 3 * 4 : (len * 4 + 2) / 3;
}

// Writes encoded_len(len, pad) characters to out.
void encode_into(const std::uint8_t *data, std::size_t len, const char *alphabet, bool pad,
                 char *out) {
    std::size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        std::uint32_t v =
            (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) | data[i + 2];
        *out++ = alphabet[(v >> 18) & 63];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = alphabet[v & 63];
    }
    std::size_t rest = len - i;
    if (rest == 1) {
        std::uint32_t v = std::uint32_t{data[i]} << 16;
        *out++ = alphabet[(v >> 18) & 63];
        *out++ = alphabet[(v >> 12) & 63];
        if (pad) {
            *out++ = '=';
            *out++ = '=';
        }
    } else if (rest == 2) {
        std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8);
        *out++ = alphabet[(v >> 18) & 63];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        if (pad) *out++ = '=';
    }
}

// Strict decode. require_pad: input length must be a multiple of 4 with '=' padding;
// otherwise padding is optional but, when present, must be complete and correct.
template <typename Out>
bool decode_into(std::string_view in, const DecodeTable &tab, bool require_pad, Out &out) {
    std::size_t n = in.size();
    std::size_t pad = 0;
    if (n >= 1 && in[n - 1] == '=') {
        pad = (n >= 2 && in[n - 2] == '=') ? 2 : 1;
        if (n % 4 != 0) return false;
    } else if (require_pad && n % 4 != 0) {
        return false;
    }
    std::size_t data_chars = n - pad;
    std::size_t tail = data_chars % 4;
    if (tail == 1) return false;
    if (pad != 0 && pad != (4 - tail) % 4) return false;  // padding must complete the quad
    std::size_t out_len = data_chars / 4 * 3 + (tail == 0 ? 0 : tail - 1);
    out.clear();
    out.resize(out_len);
    std::uint8_t *o = out.data();
    std::size_t i = 0;
    for (; i + 4 <= data_chars; i += 4) {
        int a = tab.v[static_cast<unsigned char>(in[i])];
        int b = tab.v[static_cast<unsigned char>(in[i + 1])];
        int c = tab.v[static_cast<unsigned char>(in[i + 2])];
        int d = tab.v[static_cast<unsigned char>(in[i + 3])];
        if ((a | b | c | d) < 0) goto fail;
        std::uint32_t v = (std::uint32_t(a) << 18) | (std::uint32_t(b) << 12) |
                          (std::uint32_t(c) << 6) | std::uint32_t(d);
        *o++ = static_cast<std::uint8_t>(v >> 16);
        *o++ = static_cast<std::uint8_t>(v >> 8);
        *o++ = static_cast<std::uint8_t>(v);
    }
    if (tail == 2) {
        int a = tab.v[static_cast<unsigned char>(in[i])];
        int b = tab.v[static_cast<unsigned char>(in[i + 1])];
        if ((a | b) < 0 || (b & 0x0f) != 0) goto fail;  // non-zero trailing bits
        *o++ = static_cast<std::uint8_t>((a << 2) | (b >> 4));
    } else if (tail == 3) {
        int a = tab.v[static_cast<unsigned char>(in[i])];
        int b = tab.v[static_cast<unsigned char>(in[i + 1])];
        int c = tab.v[static_cast<unsigned char>(in[i + 2])];
        if ((a | b | c) < 0 || (c & 0x03) != 0) goto fail;
        *o++ = static_cast<std::uint8_t>((a << 2) | (b >> 4));
        *o++ = static_cast<std::uint8_t>(((b & 0x0f) << 4) | (c >> 2));
    }
    return true;
fail:
    out.clear();  // SecureBytes wipes on release; keep capacity, contents irrelevant
    return false;
}

int hex_nibble(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string base64_encode(const std::uint8_t *data, std::size_t len) {
    std::string out(encoded_len(len, true), '\0');
    encode_into(data, len, kStd, true, out.data());
    return out;
}

std::string base64url_encode(const std::uint8_t *data, std::size_t len) {
    std::string out(encoded_len(len, false), '\0');
    encode_into(data, len, kUrl, false, out.data());
    return out;
}

bool base64_decode(std::string_view in, std::vector<std::uint8_t> &out) {
    return decode_into(in, kStdDec, true, out);
}

bool base64_decode(std::string_view in, SecureBytes &out) {
    return decode_into(in, kStdDec, true, out);
}

bool base64url_decode(std::string_view in, std::vector<std::uint8_t> &out) {
    return decode_into(in, kUrlDec, false, out);
}

std::string hex_encode(const std::uint8_t *data, std::size_t len) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out(len * 2, '\0');
    for (std::size_t i = 0; i < len; ++i) {
        out[2 * i] = kHex[data[i] >> 4];
        out[2 * i + 1] = kHex[data[i] & 15];
    }
    return out;
}

std::optional<Uuid> parse_uuid(std::string_view text) {
    if (text.size() != 36) return std::nullopt;
    Uuid u{};
    std::size_t j = 0;
    for (std::size_t i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-') return std::nullopt;
            ++i;
            continue;
        }
        int hi = hex_nibble(text[i]);
        int lo = hex_nibble(text[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        u[j++] = static_cast<std::uint8_t>((hi << 4) | lo);
        i += 2;
    }
    return u;
}

std::string format_uuid(const Uuid &u) {
    std::string hex = hex_encode(u.data(), u.size());
    std::string out;
    out.reserve(36);
    out.append(hex, 0, 8).append(1, '-').append(hex, 8, 4).append(1, '-');
    out.append(hex, 12, 4).append(1, '-').append(hex, 16, 4).append(1, '-').append(hex, 20, 12);
    return out;
}

}  // namespace pga
