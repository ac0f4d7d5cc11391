// Short-lived capability that lets the sidecar redeem one credential once.
// Text form:  pgat1.<base64url(payload)>.<base64url(HMAC-SHA256(ticket key, "pgat1." payload_b64))>
// payload: key id u32 BE | credential uuid 16 | expires_at unix ms i64 BE | nonce 16 |
//          purpose length u8 | purpose | app user length u16 BE | app user
//          [ | database role length u8 (1..63) | database role ]
// The database role (the caller's session user, for the audit rows the sidecar writes after
// the call) is optional: a ticket without it (minted before 0.2.0's one-write calls) still
// verifies, with an empty db_role.
#pragma once
#include "cpp_only.hpp"
#include "encoding.hpp"
#include "keyring.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace pga {

constexpr std::size_t kMaxTicketTextLen = 2048;
constexpr std::size_t kMaxPurposeLen = 32;
constexpr std::size_t kMaxAppUserLen = 256;
constexpr std::size_t kMaxDbRoleLen = 63;  // NAMEDATALEN - 1

struct TicketClaims {
    std::uint32_t key_id = 0;  // set by mint_ticket (primary key)
    Uuid credential_id{};
    std::int64_t expires_at_ms = 0;        // Unix milliseconds
    std::array<std::uint8_t, 16> nonce{};  // set by mint_ticket (random)
    std::string purpose;
    std::string app_user;
    std::string db_role;  // optional (empty: not carried)
};

// Mints under the primary key, filling claims.key_id and claims.nonce. Throws
// InvalidParameter for an empty/too long purpose or app user, or a too long db_role.
std::string mint_ticket(const KeyRing &ring, TicketClaims &claims);

// Verifies format, key, MAC (constant time) and expiry. Throws Error(TicketInvalid) with a
// reason ("malformed ticket", "ticket signature does not verify", "ticket expired") or
// KeyMissing. Never echoes the ticket. now_ms = kAnyTime skips the expiry check (for the
// outcome of a call that was redeemed in time but ended after the ticket's expiry).
constexpr std::int64_t kAnyTime = INT64_MIN;
TicketClaims verify_ticket(const KeyRing &ring, std::string_view ticket, std::int64_t now_ms);

}  // namespace pga
