// The SQL entry points that go through alpaca-sidecar: alpaca._alpaca_get sends one request
// (operation, ticket, query) and returns Alpaca's JSON answer as text in the database encoding;
// alpaca._alpaca_send does the same for the order operations (a target and a JSON body).
#include "common/encoding.hpp"
#include "common/secure_memory.hpp"
#include "common/wire.hpp"

#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "extension/sidecar_call.hpp"
#include "extension/sidecar_sqlstate.hpp"
#include "extension/sidecar_transport.hpp"

#include "extension/pg_values.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/errcodes.h"
}

namespace {

// ` "name"` for a short identifier-like name, empty otherwise: an unknown operation is
// arbitrary input and is echoed only when it is plainly harmless.
std::string quoted_if_plain(const std::string &name) {
    if (name.empty() || name.size() > 32) return {};
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || c == '_')) return {};
    return " \"" + name + "\"";
}

// Alpaca's answer as text: it sends UTF-8; converted to the database encoding (which verifies
// it and rejects NUL bytes). In a UTF-8 database the value received is returned as it is.
Datum body_datum(const pga::ext::SidecarAnswer &a) {
    const std::string_view b = a.body_view();
    char *conv = pga::pg::call([&] { return pg_any_to_server(b.data(), (int)b.size(), PG_UTF8); });
    if (conv == b.data()) return PointerGetDatum(a.body);
    return pga::pg::text_datum(std::string_view(conv, std::strlen(conv)));
}

}  // namespace

bool pga::ext::exchange_for_body(pga::SidecarRequest &req, Datum &ok_body,
                                 pga::SidecarResponse &failed) {
    pga::ext::SidecarAnswer a = pga::ext::exchange_with_sidecar_into_text(req);
    if (a.resp.outcome == pga::Outcome::Ok && a.resp.http_status >= 200 &&
        a.resp.http_status < 300) {
        ok_body = body_datum(a);
        return true;
    }
    a.resp.body = std::string(a.body_view());
    failed = std::move(a.resp);
    return false;
}

std::string pga::ext::random_request_id() {
    std::uint8_t raw[8];
    if (!pg_strong_random(raw, sizeof raw))
        throw pga::pg::PgError(ERRCODE_INTERNAL_ERROR, "could not generate a random request id");
    return pga::hex_encode(raw, sizeof raw);
}

namespace {

// Reads the text[] argument k1,v1,k2,v2 into pairs.
std::vector<std::pair<std::string, std::string>> query_pairs(Datum arr_datum) {
    ArrayType *arr = pga::pg::call([&] { return DatumGetArrayTypeP(arr_datum); });
    std::vector<std::pair<std::string, std::string>> out;
    if (ARR_NDIM(arr) == 0) return out;
    if (ARR_NDIM(arr) != 1)
        throw pga::pg::PgError(ERRCODE_INVALID_PARAMETER_VALUE,
                               "query must be a one-dimensional text array");
    Datum *elems = nullptr;
    bool *nulls = nullptr;
    int n = 0;
    pga::pg::call(
        [&] { deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n); });
    if (n % 2 != 0)
        throw pga::pg::PgError(ERRCODE_INVALID_PARAMETER_VALUE,
                               "query must hold key/value pairs (an even number of elements)");
    for (int i = 0; i < n; i += 2) {
        if (nulls[i] || nulls[i + 1])
            throw pga::pg::PgError(ERRCODE_NULL_VALUE_NOT_ALLOWED,
                                   "query keys and values must not be NULL");
        out.emplace_back(std::string(pga::pg::text_view(elems[i])),
                         std::string(pga::pg::text_view(elems[i + 1])));
    }
    return out;
}

}  // namespace

// alpaca._alpaca_get(cred uuid, op text, ticket text, query text[] DEFAULT '{}',
//                    accept_unauthorized boolean DEFAULT false) RETURNS text
PGA_FUNCTION(pga_alpaca_get) {
    for (int i = 0; i < 3; ++i) {
        if (PG_ARGISNULL(i))
            throw pga::pg::PgError(ERRCODE_NULL_VALUE_NOT_ALLOWED,
                                   "cred, op and ticket must not be NULL");
    }
    const std::string cred = pga::format_uuid(pga::pg::uuid_value(PG_GETARG_DATUM(0)));
    const bool accept_unauthorized = !PG_ARGISNULL(4) && PG_GETARG_BOOL(4);

    pga::SidecarRequest req;
    req.operation = std::string(pga::pg::text_view(PG_GETARG_DATUM(1)));
    if (!pga::is_known_operation(req.operation))
        throw pga::pg::PgError(ERRCODE_INVALID_PARAMETER_VALUE,
                               "unknown alpaca-sidecar operation" + quoted_if_plain(req.operation));
    req.ticket = pga::secure_copy(pga::pg::text_view(PG_GETARG_DATUM(2)));
    if (!PG_ARGISNULL(3)) req.query = query_pairs(PG_GETARG_DATUM(3));
    req.request_id = pga::ext::random_request_id();

    Datum body = 0;
    pga::SidecarResponse resp;
    if (pga::ext::exchange_for_body(req, body, resp)) return body;
    if (accept_unauthorized && pga::ext::keys_refused(resp)) PG_RETURN_NULL();
    pga::ext::throw_for_response(resp, cred);
}

// alpaca._live_trading_allowed() RETURNS boolean: pg_alpaca.allow_live_trading.
PGA_FUNCTION(pga_live_trading_allowed) {
    PG_RETURN_BOOL(pga::ext::live_trading_allowed());
}

// alpaca._alpaca_send(cred uuid, op text, ticket text, target text, query text[], body text)
// RETURNS text: an order operation (get_order, get_order_by_client_id, submit_order,
// replace_order, cancel_order, cancel_all_orders, close_position). The order is sent when the
// statement runs: nothing here can be rolled back.
PGA_FUNCTION(pga_alpaca_send) {
    for (int i = 0; i < 3; ++i) {
        if (PG_ARGISNULL(i))
            throw pga::pg::PgError(ERRCODE_NULL_VALUE_NOT_ALLOWED,
                                   "cred, op and ticket must not be NULL");
    }
    const std::string cred = pga::format_uuid(pga::pg::uuid_value(PG_GETARG_DATUM(0)));
    pga::SidecarRequest req;
    req.operation = std::string(pga::pg::text_view(PG_GETARG_DATUM(1)));
    if (!pga::is_known_operation(req.operation) ||
        (!pga::is_trading_operation(req.operation) && req.operation != "get_order" &&
         req.operation != "get_order_by_client_id"))
        throw pga::pg::PgError(ERRCODE_INVALID_PARAMETER_VALUE,
                               "unknown order operation" + quoted_if_plain(req.operation));
    req.ticket = pga::secure_copy(pga::pg::text_view(PG_GETARG_DATUM(2)));
    if (!PG_ARGISNULL(3)) req.target = std::string(pga::pg::text_view(PG_GETARG_DATUM(3)));
    if (!PG_ARGISNULL(4)) req.query = query_pairs(PG_GETARG_DATUM(4));
    if (!PG_ARGISNULL(5)) {
        // The body goes to Alpaca as UTF-8.
        std::string_view b = pga::pg::text_view(PG_GETARG_DATUM(5));
        char *conv =
            pga::pg::call([&] { return pg_server_to_any(b.data(), (int)b.size(), PG_UTF8); });
        std::size_t conv_len = conv == b.data() ? b.size() : std::strlen(conv);
        if (conv_len > pga::kMaxRequestBody)
            throw pga::pg::PgError(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                                   "the order is larger than 16384 bytes of JSON");
        req.body.assign(conv, conv_len);
    }
    req.request_id = pga::ext::random_request_id();

    Datum body = 0;
    pga::SidecarResponse resp;
    if (pga::ext::exchange_for_body(req, body, resp)) return body;
    pga::ext::throw_for_trade_response(resp, cred, req.operation);
}
