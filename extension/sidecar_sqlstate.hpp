// The SQLSTATE mapping of alpaca-sidecar answers (see sidecar_sqlstate.cpp).
#pragma once

#include "common/wire.hpp"

#include <string>

namespace pga::ext {

// Throws the pga::pg::PgError for an answer that is not a success: an outcome other than ok,
// or outcome ok with an HTTP status that is not 2xx. cred names the credential in messages.
[[noreturn]] void throw_for_response(const pga::SidecarResponse &r, const std::string &cred);

// The same for a trading operation or an order look-up (README, "Trading"): Alpaca's 403 is
// PA001 (insufficient buying power or quantity), 422 PA002 (order rejected), 404 PA003
// (unknown order or position), 422 on cancel or replace PA004 (not cancelable / replaceable),
// an uncertain outcome PA005; everything else as throw_for_response.
[[noreturn]] void throw_for_trade_response(const pga::SidecarResponse &r, const std::string &cred,
                                           const std::string &operation);

}  // namespace pga::ext
