// libFuzzer: OCC symbol parser. Whatever parses is a real date, a valid type and a canonical
// strike; rebuilding the symbol from the parts gives back the input.
#include "common/alpaca_models.hpp"
#include "common/occ_symbol.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

void check(bool cond) {
    if (!cond) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char *>(data), size);
    const auto s = pga::parse_occ_symbol(in);
    if (!s) return 0;
    check(!s->underlying.empty() && s->underlying.size() <= 6);
    check(s->year >= 2000 && s->year <= 2099);
    check(s->month >= 1 && s->month <= 12);
    check(s->day >= 1 && s->day <= 31);
    check(s->type == 'C' || s->type == 'P');
    check(pga::is_decimal_text(s->strike));
    check(s->strike.back() != '.' &&
          (s->strike.find('.') == std::string::npos || s->strike.back() != '0'));
    check(s->strike.size() == 1 || s->strike[0] != '0' || s->strike[1] == '.');

    // Rebuild: strike text -> thousandths, 8 digits.
    const auto dot = s->strike.find('.');
    std::string whole = s->strike.substr(0, dot);
    std::string frac = dot == std::string::npos ? "" : s->strike.substr(dot + 1);
    check(frac.size() <= 3 && whole.size() <= 5);
    frac.resize(3, '0');
    char buf[32];
    std::snprintf(buf, sizeof buf, "%02d%02d%02d%c%05ld%s", s->year - 2000, s->month, s->day,
                  s->type, std::strtol(whole.c_str(), nullptr, 10), frac.c_str());
    check(s->underlying + buf == in);
    return 0;
}
