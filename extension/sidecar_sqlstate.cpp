// The SQLSTATE each alpaca-sidecar outcome and each Alpaca HTTP status maps to (README,
// "Errors"), with a message naming what to check. Alpaca's own error text is cut to 300 bytes
// at a character boundary and stripped of control characters before it is quoted.
#include "extension/sidecar_sqlstate.hpp"

#include "common/alpaca_models.hpp"
#include "common/wire.hpp"

#include <string>

#include "extension/pg_guard.hpp"

extern "C" {
#include "utils/errcodes.h"
}

namespace {

// Alpaca's error text, made safe for an error message: at most 300 bytes, no control chars.
std::string alpaca_message(const std::string &body) {
    pga::AlpacaError e = pga::parse_error_body(body);
    std::string msg = e.message;
    if (msg.size() > 300) {
        std::size_t cut = 300;
        // Do not cut a UTF-8 sequence in half.
        while (cut > 0 && (static_cast<unsigned char>(msg[cut]) & 0xC0) == 0x80) --cut;
        msg = msg.substr(0, cut) + "...";
    }
    for (char &c : msg) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    }
    if (e.code) {
        return msg.empty() ? "code " + std::to_string(*e.code)
                           : msg + " (code " + std::to_string(*e.code) + ")";
    }
    return msg;
}

std::string attempts_detail(const pga::SidecarResponse &r) {
    return r.attempts > 0 ? "The sidecar made " + std::to_string(r.attempts) + " attempt(s)."
                          : std::string();
}

}  // namespace

namespace pga::ext {

// Maps an answer that is not a 2xx (or an outcome other than ok) to the agreed SQLSTATE.
[[noreturn]] void throw_for_response(const pga::SidecarResponse &r, const std::string &cred) {
    using pga::Outcome;
    using pga::pg::PgError;
    const std::string &m = r.message;
    switch (r.outcome) {
        case Outcome::Ok:
            break;
        case Outcome::TicketRejected:
            throw PgError(ERRCODE_INSUFFICIENT_PRIVILEGE,
                          "alpaca-sidecar refused the ticket for credential " + cred, m,
                          "Tickets are short-lived and bound to one session user and operation.");
        case Outcome::Unreachable:
            throw PgError(ERRCODE_CONNECTION_FAILURE,
                          "Alpaca is unreachable" + (m.empty() ? std::string() : ": " + m),
                          attempts_detail(r),
                          "Check the sidecar's network access and its base URLs.");
        case Outcome::Timeout:
            throw PgError(ERRCODE_CONNECTION_FAILURE,
                          "Alpaca did not answer in time" + (m.empty() ? std::string() : ": " + m),
                          attempts_detail(r), "Check the sidecar's upstream timeouts.");
        case Outcome::RateLimited:
            throw PgError(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
                          "rate limit reached for credential " + cred +
                              (m.empty() ? std::string() : ": " + m),
                          attempts_detail(r),
                          "Alpaca allows about 200 requests a minute per account; retry later.");
        case Outcome::TooLarge:
            throw PgError(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                          "Alpaca's answer is larger than the sidecar accepts", m,
                          "Ask for fewer rows or raise the sidecar's response size cap.");
        case Outcome::Overloaded:
            throw PgError(ERRCODE_TOO_MANY_CONNECTIONS, "alpaca-sidecar is overloaded", m,
                          "Retry later or raise the sidecar's queue size.");
        case Outcome::DatabaseError:
            throw PgError(ERRCODE_CONNECTION_FAILURE, "alpaca-sidecar could not reach PostgreSQL",
                          m, "Check the sidecar's conninfo and the alpaca_sidecar role.");
        case Outcome::BadRequest:
            throw PgError(ERRCODE_INTERNAL_ERROR, "alpaca-sidecar rejected the request", m);
        case Outcome::Internal:
            throw PgError(ERRCODE_INTERNAL_ERROR, "alpaca-sidecar failed internally", m,
                          "Check the sidecar's log.");
    }
    // Outcome ok with a status that is not 2xx.
    const int s = r.http_status;
    const std::string am = alpaca_message(r.body);
    if (s == 401 || s == 403) {
        throw PgError(ERRCODE_INSUFFICIENT_PRIVILEGE, "Alpaca rejected credential " + cred,
                      am.empty() ? "Alpaca answered " + std::to_string(s) + "."
                                 : "Alpaca answered " + std::to_string(s) + ": " + am,
                      "Check that the key id and secret key are current and that the "
                      "credential's environment (paper or live) matches the keys.");
    }
    if (s == 429) {
        throw PgError(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
                      "rate limit: Alpaca answered 429 for credential " + cred +
                          (am.empty() ? std::string() : ": " + am),
                      attempts_detail(r), "Retry later.");
    }
    if (s >= 400 && s < 500) {
        throw PgError(
            ERRCODE_INVALID_PARAMETER_VALUE,
            "Alpaca answered " + std::to_string(s) + (am.empty() ? std::string() : ": " + am), "",
            "");
    }
    if (s >= 500 && s < 600) {
        throw PgError(
            ERRCODE_CONNECTION_FAILURE,
            "Alpaca answered " + std::to_string(s) + (am.empty() ? std::string() : ": " + am),
            attempts_detail(r), "Alpaca may be having an outage; retry later.");
    }
    throw PgError(ERRCODE_PROTOCOL_VIOLATION,
                  "alpaca-sidecar reported an unexpected HTTP status " + std::to_string(s));
}

}  // namespace pga::ext
