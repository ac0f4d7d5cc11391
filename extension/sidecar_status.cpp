// alpaca._sidecar_status_json(): asks alpaca-sidecar for its own state (wire operation
// "status": no ticket, Alpaca untouched) and returns its JSON answer. alpaca_sidecar_status()
// (SQL) turns it into a row and reports a sidecar that does not answer.
#include "common/encoding.hpp"
#include "common/wire.hpp"

#include <string>

#include "extension/sidecar_sqlstate.hpp"
#include "extension/sidecar_transport.hpp"

#include "extension/pg_values.hpp"

extern "C" {
#include "utils/errcodes.h"
}

namespace {

std::string status_request_id() {
    std::uint8_t raw[8];
    if (!pg_strong_random(raw, sizeof raw))
        throw pga::pg::PgError(ERRCODE_INTERNAL_ERROR, "could not generate a random request id");
    return "status-" + pga::hex_encode(raw, sizeof raw);
}

}  // namespace

// alpaca._sidecar_status_json() RETURNS text
PGA_FUNCTION(pga_sidecar_status_json) {
    pga::SidecarRequest req;
    req.operation = "status";
    req.request_id = status_request_id();
    const pga::SidecarResponse resp = pga::ext::exchange_with_sidecar(req);
    if (resp.outcome != pga::Outcome::Ok || resp.http_status != 200)
        throw pga::pg::PgError(ERRCODE_CONNECTION_FAILURE,
                               std::string("alpaca-sidecar did not report its status: ") +
                                   pga::outcome_name(resp.outcome),
                               resp.message,
                               "An alpaca-sidecar older than this extension does not know the "
                               "operation \"status\".");
    return pga::pg::text_datum(resp.body);
}
