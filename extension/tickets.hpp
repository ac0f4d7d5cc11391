// Tickets inside the server (extension/tickets.cpp): issuing one for the application user's
// credential, minting with the caller's session user as the ticket's database role, and
// verifying under the cluster's key ring. alpaca._issue_ticket, alpaca._mint_ticket,
// alpaca._verify_ticket, the calls (extension/alpaca_calls.cpp) and the redeem
// (extension/redeem.cpp) all go through these.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/secure_memory.hpp"
#include "common/ticket.hpp"
#include "common/encoding.hpp"

namespace pga::ext {

// A ticket for purpose on the application user's credential cred (null: none), good until
// expires_at_ms (Unix ms): raises 42501 without an application user or when the credential does not
// exist for that user (row-level security decides; another user's is not found), 55000 when it is
// deactivated. Writes nothing.
pga::SecureBytes issue_ticket(const pga::Uuid *cred, const char *purpose,
                              std::int64_t expires_at_ms);

// Mints a ticket for claims, its db_role set here to the session user (not the current one:
// inside a SECURITY DEFINER caller that is alpaca_owner), so no caller can name another role.
std::string mint_session_ticket(pga::TicketClaims claims);

// The claims of a valid ticket, its expiry checked against now unless any_time. A ticket under
// a key not (or no longer) in the ring is simply not valid (TicketInvalid, "ticket refused").
pga::TicketClaims verified_ticket(std::string_view ticket, bool any_time);

}  // namespace pga::ext
