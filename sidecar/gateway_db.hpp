// The gateway's SQL, as alpaca_sidecar on the redeem pool: the check of a token (Session
// fields, no keys), the redeem of a token for one request (CALL alpaca.redeem_session: scope,
// live rule, audit row committed before the keys come back), the HTTP status of an audited
// request, the sessions' last use and the refusal of a valid session's request. The token is a
// bind parameter, never part of a statement's text.
#pragma once
#include "common/cpp_only.hpp"
#include "common/secure_memory.hpp"
#include "sidecar/gateway_types.hpp"
#include "sidecar/redeemer.hpp"

#include <string>

namespace pga::sidecar::gateway {

enum class DbStatus {
    Ok,
    BadToken,       // 28000: not a valid, live session token -> 401
    Forbidden,      // 42xxx: scope, live rule, path not allowed -> 403
    DatabaseError,  // no connection, pool busy until the deadline -> 503
    Failed,         // anything else -> 500
};

struct SessionKeys {
    DbStatus status = DbStatus::Failed;
    std::string message;  // PostgreSQL's primary message (never holds the token)
    Session session;
    std::string route;     // "read", "trade" or "data" (alpaca._gateway_route)
    std::string audit_id;  // the gateway audit row, for record_status
    SecureBytes api_key, secret_key;
};

struct SessionCheck {
    DbStatus status = DbStatus::Failed;
    std::string message;
    Session session;
};

SessionKeys redeem_session(Redeemer &db, const SecureBytes &token, const std::string &method,
                           const std::string &path, Redeemer::Clock::time_point deadline);

SessionCheck check_session(Redeemer &db, const SecureBytes &token,
                           Redeemer::Clock::time_point deadline);

// False (error set) when the row could not be updated.
bool record_status(Redeemer &db, const std::string &audit_id, int http_status,
                   Redeemer::Clock::time_point deadline, std::string &error);

// When sessions were last used (alpaca._gateway_used; the session's and its credential's
// last_used_at): array literals of session ids and their times ({"id",...}, {"time",...}).
// False (error set) when nothing could be recorded.
bool record_used(Redeemer &db, const std::string &session_ids, const std::string &used_at,
                 Redeemer::Clock::time_point deadline, std::string &error);

// A request of a valid session that redeem_session refused (Forbidden) leaves its 'gateway'
// audit row, outcome 'refused 403' (alpaca._gateway_refused, which checks the token and the
// refusal again). False (error set) when nothing could be recorded.
bool record_refusal(Redeemer &db, const SecureBytes &token, const std::string &method,
                    const std::string &path, Redeemer::Clock::time_point deadline,
                    std::string &error);

}  // namespace pga::sidecar::gateway
