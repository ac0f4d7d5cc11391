// get_positions' structured result: Alpaca's positions, each option position with the fields
// of its OCC symbol (underlying, expiration, type, strike), and the earlier system's options
// view: option positions grouped by underlying, with exact decimal totals.
#pragma once
#include "common/cpp_only.hpp"
#include "sidecar/mcp_json.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace pga::sidecar::mcp {

// {"positions":[...], "options_by_underlying":[{"underlying","positions","symbols",
//  "qty","market_value","cost_basis","unrealized_pl"}]}. positions: Alpaca's array (parsed).
// Throws ParseError when it is not an array of objects with a string "symbol".
Json positions_view(const Json &positions);

// Exact sum of two signed decimal texts ("-12.50" + "3" = "-9.5"); nullopt when either is not
// -?digits[.digits] (an exponent, say).
std::optional<std::string> add_decimals(std::string_view a, std::string_view b);

}  // namespace pga::sidecar::mcp
