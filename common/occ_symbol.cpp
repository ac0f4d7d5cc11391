// OCC option symbol parser: ROOT(1-6 [A-Z0-9.]) YYMMDD C|P strike*1000 (8 digits).
#include "common/occ_symbol.hpp"

namespace pga {
namespace {

constexpr std::size_t kDateLen = 6, kTypeLen = 1, kStrikeLen = 8;
constexpr std::size_t kTailLen = kDateLen + kTypeLen + kStrikeLen;  // 15
constexpr std::size_t kMaxRootLen = 6;

bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

bool is_root_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.';
}

int two_digits(std::string_view s, std::size_t at) noexcept {
    return (s[at] - '0') * 10 + (s[at + 1] - '0');
}

bool is_leap(int y) noexcept {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int y, int m) noexcept {
    static const int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return (m == 2 && is_leap(y)) ? 29 : kDays[m - 1];
}

}  // namespace

std::optional<OccSymbol> parse_occ_symbol(std::string_view symbol) noexcept {
    try {
        if (symbol.size() <= kTailLen || symbol.size() > kTailLen + kMaxRootLen)
            return std::nullopt;
        const std::size_t root_len = symbol.size() - kTailLen;
        const std::string_view root = symbol.substr(0, root_len);
        for (char c : root) {
            if (!is_root_char(c)) return std::nullopt;
        }
        const std::string_view tail = symbol.substr(root_len);
        for (std::size_t i = 0; i < kDateLen; ++i) {
            if (!is_digit(tail[i])) return std::nullopt;
        }
        const char type = tail[kDateLen];
        if (type != 'C' && type != 'P') return std::nullopt;
        const std::string_view strike = tail.substr(kDateLen + kTypeLen);
        for (char c : strike) {
            if (!is_digit(c)) return std::nullopt;
        }

        OccSymbol out;
        out.year = 2000 + two_digits(tail, 0);
        out.month = two_digits(tail, 2);
        out.day = two_digits(tail, 4);
        if (out.month < 1 || out.month > 12) return std::nullopt;
        if (out.day < 1 || out.day > days_in_month(out.year, out.month)) return std::nullopt;
        out.type = type;
        out.underlying.assign(root.data(), root.size());

        // strike = 5 integer digits + 3 fraction digits; canonical decimal text.
        std::string_view whole = strike.substr(0, 5);
        std::string_view frac = strike.substr(5);
        while (whole.size() > 1 && whole.front() == '0') whole.remove_prefix(1);
        while (!frac.empty() && frac.back() == '0') frac.remove_suffix(1);
        if (whole == "0" && frac.empty()) return std::nullopt;  // no real contract strikes at 0
        out.strike.assign(whole.data(), whole.size());
        if (!frac.empty()) {
            out.strike.push_back('.');
            out.strike.append(frac.data(), frac.size());
        }
        return out;
    } catch (...) {  // std::bad_alloc from the string members
        return std::nullopt;
    }
}

}  // namespace pga
