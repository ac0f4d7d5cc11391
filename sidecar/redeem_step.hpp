// The first step of a request: trade its ticket for the credential's keys.
#pragma once
#include "common/cpp_only.hpp"
#include "common/wire.hpp"
#include "sidecar/client_wait.hpp"
#include "sidecar/redeemer.hpp"

#include <optional>

namespace pga::sidecar {

// The credential, or nullopt with resp's outcome and message saying why the ticket was not
// redeemed (ticket_rejected, database_error, internal).
std::optional<RedeemedCredential> redeem_for_request(Redeemer &redeemer, const SidecarRequest &req,
                                                     Clock::time_point deadline,
                                                     SidecarResponse &resp);

}  // namespace pga::sidecar
