// Rendering of untrusted input inside error messages (see error.hpp).
#include "common/error.hpp"

#include <algorithm>

namespace pga {
namespace {

bool printable(unsigned char c) noexcept {
    return c >= 0x20 && c <= 0x7e;
}

}  // namespace

std::string escape_for_error(std::string_view in, std::size_t max) {
    static const char kHex[] = "0123456789ABCDEF";
    constexpr std::string_view kEllipsis = "...";
    max = std::max(max, kEllipsis.size());
    // Rendered length of all of `in`: when it fits, nothing is cut.
    std::size_t full = 0;
    for (char c : in) {
        full += printable(static_cast<unsigned char>(c)) ? 1 : 4;
        if (full > max) break;
    }
    const bool cut = full > max;
    const std::size_t room = cut ? max - kEllipsis.size() : max;
    std::string out;
    out.reserve(std::min(max, full));
    for (char c : in) {
        const auto u = static_cast<unsigned char>(c);
        const std::size_t n = printable(u) ? 1 : 4;
        if (out.size() + n > room) break;
        if (n == 1) {
            out += c;
        } else {
            out += "\\x";
            out += kHex[u >> 4];
            out += kHex[u & 0x0f];
        }
    }
    if (cut) out += kEllipsis;
    return out;
}

std::string quote_for_error(std::string_view in, std::size_t max, char quote) {
    max = std::max<std::size_t>(max, 5);
    std::string out(1, quote);
    out += escape_for_error(in, max - 2);
    out += quote;
    return out;
}

bool is_printable_ascii(std::string_view s) noexcept {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return printable(static_cast<unsigned char>(c)); });
}

}  // namespace pga
