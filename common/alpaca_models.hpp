// Alpaca Trading API JSON -> plain values (RapidJSON's SAX reader inside, no DOM). Tolerant the
// way the live service needs: unknown fields ignored, absent or null optional fields -> absent,
// unknown enum values kept as text. Decimals stay decimal strings (validated: -?digits[.digits],
// optional exponent) so the extension converts them to numeric without any float. Timestamps
// stay RFC 3339 strings. Malformed JSON, a wrong type or a missing required field throws
// Error(Protocol) naming the field (never echoing the document).
//
// Two ways in:
//  * AlpacaReader streams a document element by element into a sink, handing over views into
//    its own (reused) copy of the document: no allocation per element or per field. The
//    extension builds its rows this way.
//  * parse_account / parse_positions / parse_orders return owning structs (built on the
//    reader), for tests, fuzzing and code that wants a value to keep.
#pragma once
#include "cpp_only.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace pga {

// ---------------------------------------------------------------- streaming
// Field ids of each element shape, in the order they are validated (the first failing one is
// the one reported). The names are Alpaca's JSON keys.
namespace account_field {
enum : int {
    id,
    account_number,
    status,
    crypto_status,
    currency,  // text (the first three required)
    cash,
    buying_power,
    regt_buying_power,
    daytrading_buying_power,
    non_marginable_buying_power,
    options_buying_power,
    equity,
    last_equity,
    portfolio_value,
    long_market_value,
    short_market_value,
    initial_margin,
    maintenance_margin,
    last_maintenance_margin,
    sma,
    multiplier,
    accrued_fees,
    pending_transfer_in,
    pending_transfer_out,  // decimals
    daytrade_count,
    options_approved_level,
    options_trading_level,  // integers
    pattern_day_trader,
    shorting_enabled,
    trading_blocked,
    transfers_blocked,
    account_blocked,
    trade_suspended_by_user,  // booleans
    created_at,
    balance_asof,  // timestamp / date text
    count
};
}
namespace position_field {
enum : int {
    symbol,  // required
    asset_id,
    exchange,
    asset_class,
    side,
    qty,
    qty_available,
    avg_entry_price,
    market_value,
    cost_basis,
    unrealized_pl,
    unrealized_plpc,
    unrealized_intraday_pl,
    unrealized_intraday_plpc,
    current_price,
    lastday_price,
    change_today,  // decimals
    count
};
}
namespace order_field {
enum : int {
    id,  // required
    client_order_id,
    symbol,
    asset_id,
    asset_class,
    side,
    type,
    order_type,
    time_in_force,
    status,
    order_class,
    position_intent,
    qty,
    notional,
    filled_qty,
    filled_avg_price,
    limit_price,
    stop_price,
    trail_price,
    trail_percent,
    hwm,  // decimals
    created_at,
    updated_at,
    submitted_at,
    filled_at,
    expired_at,
    canceled_at,
    failed_at,
    replaced_at,     // timestamps
    extended_hours,  // boolean
    legs,            // the "legs" array re-serialised as compact JSON (numbers by their text)
    count
};
}

// One field of one element, validated for its kind. Absent, null, and "" for a decimal are
// all !present. text: the string's decoded text, a decimal's text (a JSON number's exact
// source text), or the compact JSON of legs; valid until the sink returns.
struct FieldValue {
    bool present = false;
    bool boolean = false;
    // A present decimal's shape, found while it was validated: whether it has an exponent, and
    // the offset of its '.' (text.size() when it has none; the exponent's 'e' when it has one
    // and no '.').
    bool exponent = false;
    std::uint32_t point = 0;
    std::int64_t integer = 0;
    std::string_view text;
};

// One element (an account, a position, an order) as the sink sees it.
class Record {
  public:
    Record(const FieldValue *values, const char *what, bool in_array, std::size_t index)
        : values_(values), what_(what), in_array_(in_array), index_(index) {}
    const FieldValue &operator[](int field) const { return values_[field]; }
    std::size_t index() const { return index_; }
    // "positions[3]" / "account": how error messages name the element.
    std::string where() const;

  private:
    const FieldValue *values_;
    const char *what_;
    bool in_array_;
    std::size_t index_;
};

// A callable reference (no allocation, no ownership): the sink of a streaming read.
class RecordSink {
  public:
    // f must outlive the read call it is passed to (a lambda written in the call does).
    template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, RecordSink>>>
    RecordSink(F &&f)  // NOLINT(bugprone-forwarding-reference-overload)
        : obj_(const_cast<void *>(static_cast<const void *>(&f))),
          call_([](void *o, const Record &r) {
              (*static_cast<std::remove_reference_t<F> *>(o))(r);
          }) {}
    void operator()(const Record &r) const { call_(obj_, r); }

  private:
    void *obj_;
    void (*call_)(void *, const Record &);
};

// Streams Alpaca documents. Keeps its buffers between documents (up to a few MB), so reading
// the same size of document again allocates nothing. Not thread-safe; one per thread.
//
// Errors: a document that is not JSON (syntax, encoding, NUL, nesting deeper than 64) throws
// Error(Protocol) even when an element before the fault was already handed to the sink; a
// wrong shape or field throws Error(Protocol) for the first faulty element in document order,
// after the elements before it were handed over. An exception thrown by the sink stops further
// elements and is rethrown once the rest of the document was checked for syntax (a malformed
// document is reported as malformed in preference).
class AlpacaReader {
  public:
    AlpacaReader();
    ~AlpacaReader();
    AlpacaReader(const AlpacaReader &) = delete;
    AlpacaReader &operator=(const AlpacaReader &) = delete;

    void read_account(std::string_view json, RecordSink sink);    // one record
    void read_positions(std::string_view json, RecordSink sink);  // one record per element
    void read_orders(std::string_view json, RecordSink sink);

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------- owning structs
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
