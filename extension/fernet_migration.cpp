// Migration from the earlier Python system: alpaca._fernet_decrypt opens the Fernet tokens it
// stored, so alpaca_import_fernet_credential(s) (SQL) can re-seal the keys as envelopes.
#include <optional>
#include <string>

#include "common/error.hpp"
#include "common/fernet.hpp"

#include "extension/pg_values.hpp"

using pga::pg::text_datum;
using pga::pg::text_view;

// alpaca._fernet_decrypt(token text, fernet_key text, what text) RETURNS text
// Verifies and decrypts a Fernet token of the earlier Python system. Token age is ignored:
// stored tokens are old by nature. Every failure is 22023 naming `what`, never the token.
PGA_FUNCTION(pga_fernet_decrypt) {
    std::string what(text_view(PG_GETARG_DATUM(2)));
    pga::SecureBytes plain;
    try {
        pga::FernetKey key = pga::FernetKey::parse(text_view(PG_GETARG_DATUM(1)));
        plain = pga::fernet_decrypt(key, text_view(PG_GETARG_DATUM(0)), std::nullopt, 0);
    } catch (const pga::Error &e) {
        throw pga::Error(pga::ErrorCode::InvalidParameter,
                         pga::escape_for_error(what) + ": " + e.what(),
                         "Check that the Fernet key is the one the earlier system used.");
    }
    return text_datum(pga::as_view(plain));
}
