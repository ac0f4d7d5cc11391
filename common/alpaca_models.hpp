// Alpaca Trading API JSON -> plain structs (RapidJSON inside). Tolerant the way the live
// service needs: unknown fields ignored, absent or null optional fields -> nullopt, unknown
// enum values kept as text. Decimals stay decimal strings (validated: -?digits[.digits],
// optional exponent) so the extension converts them to numeric without any float.
// Timestamps stay RFC 3339 strings. Malformed JSON, a wrong type or a missing required field
// throws Error(Protocol) naming the field (never echoing the document).
#pragma once
#include "cpp_only.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pga {

using OptString = std::optional<std::string>;
using OptInt = std::optional<std::int64_t>;
using OptBool = std::optional<bool>;

struct AlpacaAccount {
    std::string id, account_number, status;  // required
    OptString crypto_status, currency;
    OptString cash, buying_power, regt_buying_power, daytrading_buying_power,
        non_marginable_buying_power, options_buying_power, equity, last_equity, portfolio_value,
        long_market_value, short_market_value, initial_margin, maintenance_margin,
        last_maintenance_margin, sma, multiplier, accrued_fees, pending_transfer_in,
        pending_transfer_out;  // decimals
    OptInt daytrade_count, options_approved_level, options_trading_level;
    OptBool pattern_day_trader, shorting_enabled, trading_blocked, transfers_blocked,
        account_blocked, trade_suspended_by_user;
    OptString created_at, balance_asof;  // timestamp / date text
};

struct AlpacaPosition {
    std::string symbol;  // required
    OptString asset_id, exchange, asset_class, side;
    OptString qty, qty_available, avg_entry_price, market_value, cost_basis, unrealized_pl,
        unrealized_plpc, unrealized_intraday_pl, unrealized_intraday_plpc, current_price,
        lastday_price, change_today;  // decimals
};

struct AlpacaOrder {
    std::string id;  // required
    OptString client_order_id, symbol, asset_id, asset_class, side, type, order_type, time_in_force,
        status, order_class, position_intent;
    OptString qty, notional, filled_qty, filled_avg_price, limit_price, stop_price, trail_price,
        trail_percent, hwm;  // decimals
    OptString created_at, updated_at, submitted_at, filled_at, expired_at, canceled_at, failed_at,
        replaced_at;  // timestamps
    OptBool extended_hours;
    OptString legs_json;  // the "legs" array re-serialised as compact JSON; nullopt if null/absent
};

// Alpaca's text goes into SQL error messages: printable ASCII of at most this many
// characters (other bytes escaped as \xNN, longer text cut with "...").
constexpr std::size_t kMaxAlpacaErrorMessage = 300;

struct AlpacaError {
    OptInt code;
    std::string message;  // may be empty when the body is not Alpaca's error shape
};

AlpacaAccount parse_account(std::string_view json);
std::vector<AlpacaPosition> parse_positions(std::string_view json);
std::vector<AlpacaOrder> parse_orders(std::string_view json);
// Never throws: a body that is not {"code":..,"message":..} gives an empty message.
AlpacaError parse_error_body(std::string_view json) noexcept;

bool is_decimal_text(std::string_view s) noexcept;

}  // namespace pga
