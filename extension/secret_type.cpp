// The alpaca_secret type. Its only text form is the envelope (pgak1:<key id>:<base64>), so
// dump/restore and COPY round-trip, and plaintext typed into it is refused (22P02).
// Stored as a varlena holding the envelope text.
#include <string>

#include "common/envelope.hpp"

#include "extension/pg_values.hpp"

extern "C" {
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
}

namespace {
Datum envelope_datum(const char *text, std::size_t len) {
    pga::parse_envelope(std::string_view(text, len));  // throws InvalidText with a hint
    return pga::pg::text_datum(std::string_view(text, len));
}
}  // namespace

PGA_FUNCTION(pga_secret_in) {
    const char *input = PG_GETARG_CSTRING(0);
    return envelope_datum(input, std::strlen(input));
}

PGA_FUNCTION(pga_secret_out) {
    std::string_view v = pga::pg::text_view(PG_GETARG_DATUM(0));
    char *out = pga::pg::call([&] { return pnstrdup(v.data(), v.size()); });
    PG_RETURN_CSTRING(out);
}

PGA_FUNCTION(pga_secret_recv) {
    StringInfo buf = (StringInfo)PG_GETARG_POINTER(0);
    int len = buf->len - buf->cursor;
    const char *bytes = pga::pg::call([&] { return pq_getmsgbytes(buf, len); });
    return envelope_datum(bytes, (std::size_t)len);
}

PGA_FUNCTION(pga_secret_send) {
    std::string_view v = pga::pg::text_view(PG_GETARG_DATUM(0));
    bytea *out = pga::pg::call([&] {
        StringInfoData b;
        pq_begintypsend(&b);
        pq_sendbytes(&b, v.data(), (int)v.size());
        return pq_endtypsend(&b);
    });
    PG_RETURN_BYTEA_P(out);
}

// Key id of an envelope (used by key status, rotation and the generated key-id columns).
PGA_FUNCTION(pga_secret_key_id) {
    pga::Envelope env = pga::parse_envelope(pga::pg::text_view(PG_GETARG_DATUM(0)));
    PG_RETURN_INT64((int64)env.key_id);
}
