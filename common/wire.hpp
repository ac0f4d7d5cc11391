// Backend <-> sidecar protocol over a unix stream socket. One request, one response per
// connection turn; connections may be reused.
//
// Frame:   u32 BE payload length | payload
// Payload: u32 BE header length | header (JSON object) | body (raw bytes, may be empty)
//
// Request header:  {"v":1,"id":"<request id>","op":"<operation>","ticket":"<ticket>",
//                   "query":{"status":"open","limit":"50"},"target":"<order id or symbol>"}
//                   body = a JSON object (submit_order, replace_order), else empty
// Response header: {"v":1,"id":"<request id>","outcome":"ok",...,"http_status":200,
//                   "attempts":1,"message":"..."}   body = Alpaca's JSON answer, unchanged
#pragma once
#include "cpp_only.hpp"
#include "secure_memory.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pga {

constexpr std::uint32_t kWireVersion = 1;
constexpr std::size_t kFramePrefixLen = 4;
constexpr std::size_t kMaxRequestPayload = 64 * 1024;
constexpr std::size_t kDefaultMaxResponsePayload = 16 * 1024 * 1024;
// A response message, as encoded and as decoded: printable ASCII, at most this long (other
// bytes are escaped as \xNN, longer text cut with "...").
constexpr std::size_t kMaxResponseMessage = 1024;

// Operations the sidecar knows; each maps to one Alpaca GET and equals the ticket purpose.
//   "validate" GET /v2/account (401/403 -> outcome ok with http_status 401/403)
//   "account"  GET /v2/account
//   "positions" GET /v2/positions
//   "orders"   GET /v2/orders?status=..&limit=..&nested=true
//   "clock"    GET /v2/clock
//   "status"   no Alpaca call and no ticket (an empty one): the sidecar answers with its own
//              state as a JSON body (version, uptime, workers, queue, last error)
constexpr const char *kStatusOperation = "status";
// Orders (target = order id or symbol, [A-Za-z0-9.-], 1-64 characters):
//   "get_order"              GET /v2/orders/{target}
//   "get_order_by_client_id" GET /v2/orders:by_client_order_id?client_order_id=..
// Trading (ticket purpose "trade"; body = JSON object of at most kMaxRequestBody bytes):
//   "submit_order"      POST   /v2/orders               body
//   "replace_order"     PATCH  /v2/orders/{target}      body
//   "cancel_order"      DELETE /v2/orders/{target}
//   "cancel_all_orders" DELETE /v2/orders
//   "close_position"    DELETE /v2/positions/{target}?qty=..|percentage=..
bool is_known_operation(std::string_view op) noexcept;
// Operations that change the account (submit, replace, cancel, close).
bool is_trading_operation(std::string_view op) noexcept;
// The purpose a ticket for this operation must carry: "trade" for trading operations,
// "orders" for the order look-ups, else the operation itself. Empty for an unknown one.
std::string_view ticket_purpose(std::string_view op) noexcept;
// Whether the operation takes a target / a body (it then requires one).
bool operation_takes_target(std::string_view op) noexcept;
bool operation_takes_body(std::string_view op) noexcept;
constexpr std::size_t kMaxRequestBody = 16 * 1024;
constexpr std::size_t kMaxTargetLen = 64;

enum class Outcome {
    Ok,              // Alpaca answered (any HTTP status); http_status and body are Alpaca's
    TicketRejected,  // alpaca.redeem_ticket refused the ticket
    Unreachable,     // DNS/connect/TLS/transport failure after retries (message says which)
    Timeout,         // upstream total timeout
    RateLimited,     // 429 after retries, or the local per-credential bucket is empty
    TooLarge,        // upstream body over the size cap
    Overloaded,      // sidecar queue full
    BadRequest,      // the frame itself was invalid
    DatabaseError,   // the sidecar could not reach PostgreSQL to redeem
    Internal,
};
const char *outcome_name(Outcome o) noexcept;
bool parse_outcome(std::string_view s, Outcome &out) noexcept;

struct SidecarRequest {
    std::string request_id;  // printable, <= 64 chars
    std::string operation;
    SecureBytes ticket;
    std::vector<std::pair<std::string, std::string>> query;  // keys/values: [A-Za-z0-9_.,:-]
    std::string target;  // order id or symbol: [A-Za-z0-9.-], empty when the op takes none
    std::string body;    // a JSON object for submit_order/replace_order, else empty
};

struct SidecarResponse {
    std::string request_id;
    Outcome outcome = Outcome::Internal;
    int http_status = 0;
    int attempts = 0;
    std::string message;  // human readable, never contains a key, secret or ticket; decoded:
                          // printable ASCII, at most kMaxResponseMessage characters
    std::string body;
};

// Encoders return a whole frame (prefix included). The request frame holds the ticket and is
// therefore SecureBytes.
SecureBytes encode_request(const SidecarRequest &req);
std::string encode_response(const SidecarResponse &resp);
// The same frame without its body: prefix, header length and header, with the prefix counting
// resp.body. encode_response_head(r) + r.body == encode_response(r), byte for byte; a sender
// writes the two parts with one gathering write instead of copying the body into the frame.
std::string encode_response_head(const SidecarResponse &resp);

// Reads the 4-byte prefix; throws Error(Protocol) when the length is 0 or above max_payload.
std::uint32_t decode_frame_length(const std::uint8_t prefix[kFramePrefixLen],
                                  std::size_t max_payload);

// Decode a payload (the bytes after the prefix). Throw Error(Protocol) on any malformation:
// bad JSON, wrong version, missing/mistyped fields, unknown operation, bad query characters,
// a target or body the operation does not take (or lacks), a body that is not a JSON object.
SidecarRequest decode_request(const std::uint8_t *payload, std::size_t len);
SidecarResponse decode_response(const std::uint8_t *payload, std::size_t len);

}  // namespace pga
