// Tickets inside the server (extension/tickets.cpp): minting with the caller's session user as
// the ticket's database role, and verifying under the cluster's key ring. alpaca._mint_ticket,
// alpaca._verify_ticket, the calls (extension/alpaca_calls.cpp) and the redeem
// (extension/redeem.cpp) all go through these two.
#pragma once

#include <string>
#include <string_view>

#include "common/ticket.hpp"

namespace pga::ext {

// Mints a ticket for claims, its db_role set here to the session user (not the current one:
// inside a SECURITY DEFINER caller that is alpaca_owner), so no caller can name another role.
std::string mint_session_ticket(pga::TicketClaims claims);

// The claims of a valid ticket, its expiry checked against now unless any_time. A ticket under
// a key not (or no longer) in the ring is simply not valid (TicketInvalid, "ticket refused").
pga::TicketClaims verified_ticket(std::string_view ticket, bool any_time);

}  // namespace pga::ext
