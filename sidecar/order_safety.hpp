// The pure decisions behind "an order is placed at most once" (no I/O; unit-tested):
//   * what one attempt of a trading request tells us (classify_trade_attempt): Alpaca's
//     final word, a 429 before acceptance (retry), "client_order_id must be unique" (look
//     the order up and match it), or nothing certain (transport error, timeout, 5xx: look the
//     order up by client_order_id before anything is sent again);
//   * whether an order Alpaca holds is the one a request asked for (order_matches_request):
//     symbol, side, qty or notional, type, limit and stop price (replace: the order it
//     replaces and the fields the replace changes).
#pragma once
#include "common/cpp_only.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace pga::sidecar {

enum class TradeVerdict {
    Final,      // Alpaca answered for good (2xx, or a 4xx other than 429 and the duplicate)
    Retry,      // 429: not accepted; retry after the delay Alpaca asks for
    Duplicate,  // 422 "client_order_id must be unique": look the order up and match it
    Unknown,    // transport error, timeout or 5xx: the request may or may not have been
                // carried out; look it up before sending it again
    Stop,       // a transport failure that happened before anything was sent (certificate,
                // malformed URL) or our own abort: nothing to look up
};

// transport_error: no HTTP answer (curl failed); permanent: that failure happened before the
// request could reach Alpaca (see is_permanent_transport_error); status and body: the answer.
TradeVerdict classify_trade_attempt(bool transport_error, bool permanent, int status,
                                    std::string_view body) noexcept;

// Whether a 422 body is Alpaca's "client_order_id must be unique".
bool is_duplicate_client_order_id(std::string_view body) noexcept;

// Decimal text in a canonical form ("010.50" -> "10.5", "-0" -> "0"); nullopt if not a decimal.
std::optional<std::string> canonical_decimal(std::string_view s);

struct OrderMatch {
    bool matches = false;
    std::string field;  // the first field that differs (empty when matches)
};

// request: the JSON body the sidecar was asked to send (POST /v2/orders); order: Alpaca's
// JSON of the order that holds the request's client_order_id. Fields the request leaves out
// are not compared, except that an order with a limit or stop price the request did not give
// does not match. Symbols compare without '/' ("BTC/USD" = "BTCUSD"), case-insensitively.
OrderMatch order_matches_submit(std::string_view request, std::string_view order);

// request: the PATCH body; order: the order holding its client_order_id; replaced_id: the id
// the PATCH went to. The order must replace replaced_id and carry the new qty/prices/tif.
OrderMatch order_matches_replace(std::string_view request, std::string_view order,
                                 std::string_view replaced_id);

// The "client_order_id" string of a JSON object, or empty.
std::string json_client_order_id(std::string_view json);
// The "status" string of a JSON object (an order), or empty.
std::string json_order_status(std::string_view json);

// Order statuses after which an order can no longer be cancelled or replaced.
bool is_closed_order_status(std::string_view status) noexcept;

}  // namespace pga::sidecar
