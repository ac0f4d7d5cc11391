// OCC option symbols as Alpaca sends them: ROOT (1-6 chars [A-Z0-9.]) YYMMDD C|P strike*1000
// as 8 digits, e.g. "AAPL240119C00190000" -> AAPL, 2024-01-19, call, 190.
#pragma once
#include "cpp_only.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace pga {

struct OccSymbol {
    std::string underlying;
    int year = 0, month = 0, day = 0;  // a real calendar date (2000..2099)
    char type = 0;                     // 'C' or 'P'
    std::string strike;                // canonical decimal, no trailing zeros: "190", "152.5"
    const char *type_name() const noexcept { return type == 'C' ? "call" : "put"; }
};

std::optional<OccSymbol> parse_occ_symbol(std::string_view symbol) noexcept;

}  // namespace pga
