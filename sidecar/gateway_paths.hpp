// The shape checks the gateway makes before anything reaches SQL or Alpaca (the per-scope
// allowlist itself is alpaca._gateway_route in SQL). No I/O; unit-tested.
#pragma once
#include "common/cpp_only.hpp"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pga::sidecar::gateway {

// A path as sent (not decoded): "/v2/..." of [A-Za-z0-9/._:-], at most 256 bytes, no "..",
// no "//", no '%' (so no encoded slash or dot), no trailing '/'.
bool path_shape_ok(std::string_view path) noexcept;

// A query as sent: at most 2048 bytes of [A-Za-z0-9_.,:%+=&-].
bool query_shape_ok(std::string_view query) noexcept;

// "a=1&b=2" -> {{"a","1"},{"b","2"}} (as sent, not decoded).
std::vector<std::pair<std::string, std::string>> split_query(std::string_view query);

// The Host header's name part is a loopback name (localhost, 127.0.0.1, [::1]) or one of
// `allowed` (case-insensitive; a port, if any, is not compared).
bool host_allowed(std::string_view host, const std::vector<std::string> &allowed);

// No Origin header, or one equal (case-insensitive) to an allowed origin.
bool origin_allowed(const std::string *origin, const std::vector<std::string> &allowed);

// The session token of a request: APCA-API-KEY-ID, else "Authorization: Bearer <token>".
// Empty when neither is there.
std::string_view presented_token(const std::string *key_id, const std::string *authorization);

// A JSON object body with "client_order_id" added right after its opening brace when it has
// none (the rest of the body unchanged, byte for byte). Empty when body is not a JSON object
// without repeated names, or its client_order_id is not a non-empty string.
std::string with_client_order_id(std::string_view body, const std::string &new_id);

}  // namespace pga::sidecar::gateway
