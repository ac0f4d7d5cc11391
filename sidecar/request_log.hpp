// The sidecar's log lines about requests: one `request` line per request with its outcome,
// and a debug `attempt` line per upstream attempt. Never a key, a secret or a ticket.
#pragma once
#include "common/cpp_only.hpp"
#include "common/wire.hpp"
#include "sidecar/client_wait.hpp"
#include "sidecar/http_client.hpp"

#include <string>

namespace pga::sidecar {

// credential_id and environment are "-" when the ticket was never redeemed.
void log_request(const SidecarRequest &req, const std::string &credential_id,
                 const std::string &environment, const SidecarResponse &resp,
                 Clock::time_point started);

void log_attempt(const std::string &request_id, int attempt, const HttpResponse &r);

}  // namespace pga::sidecar
