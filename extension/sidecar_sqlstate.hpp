// The SQLSTATE mapping of alpaca-sidecar answers (see sidecar_sqlstate.cpp).
#pragma once

#include "common/wire.hpp"

#include <string>

namespace pga::ext {

// Throws the pga::pg::PgError for an answer that is not a success: an outcome other than ok,
// or outcome ok with an HTTP status that is not 2xx. cred names the credential in messages.
[[noreturn]] void throw_for_response(const pga::SidecarResponse &r, const std::string &cred);

}  // namespace pga::ext
