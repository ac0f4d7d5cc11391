// What the SQL functions that call Alpaca share (extension/sidecar_functions.cpp, which
// defines these, and extension/alpaca_calls.cpp): a request id, and one exchange whose 2xx
// body becomes a text value in the database encoding.
#pragma once

#include "common/wire.hpp"

#include <string>

#include "extension/pg_guard.hpp"

namespace pga::ext {

// 16 hex digits from pg_strong_random.
std::string random_request_id();

// One exchange (exchange_with_sidecar_into_text): Alpaca's 2xx body as text in the database
// encoding in `ok_body` (true; Alpaca sends UTF-8, converted and so verified, NUL bytes
// rejected), or the answer for the error paths, its (small) error body read as a string,
// in `failed` (false). The ticket is wiped from req.
bool exchange_for_body(pga::SidecarRequest &req, Datum &ok_body, pga::SidecarResponse &failed);

// Alpaca answered and refused the keys (401, 403): what alpaca_validate_credential reports as
// false and _alpaca_get(..., accept_unauthorized) as NULL instead of an error.
inline bool keys_refused(const pga::SidecarResponse &r) {
    return r.outcome == pga::Outcome::Ok && (r.http_status == 401 || r.http_status == 403);
}

}  // namespace pga::ext
