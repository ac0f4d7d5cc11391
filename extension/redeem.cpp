// CALL alpaca.redeem_ticket(ticket, purpose, NULL, NULL, NULL, NULL): the only way a plaintext
// key leaves the vault for a ticket. A C procedure (not SECURITY DEFINER, no SET clause,
// EXECUTE granted to alpaca_sidecar alone), because only a procedure called outside a
// transaction block can commit, and the promise is: plaintext never leaves PostgreSQL before
// the single-use mark and the `decrypt` audit row of this redeem are committed, whatever the
// caller does with its transaction afterwards. So, in this order (extension/committed_redeem):
//   1. refuse an atomic context (inside BEGIN, a function, a DO block with an exception
//      handler, a multi-statement implicit transaction, PREPARE TRANSACTION's block), and a
//      hot standby (25006: the sidecar must redeem on the primary);
//   2. run alpaca._redeem_prepare(ticket, purpose) as alpaca_owner: it verifies MAC, expiry,
//      purpose, single use (nonce row), owner and active flag under RLS as the ticket's user,
//      and writes the audit row;
//   3. decrypt the two envelopes (a failure here rolls everything back: nothing left);
//   4. COMMIT (SPI_commit) and flush that commit to the WAL: the nonce row and the audit row are
//      durable even with synchronous_commit off;
//   5. only then return the keys as the OUT parameters, and wipe our copies.
#include "extension/committed_redeem.hpp"

PGA_FUNCTION(pga_redeem_ticket) {
    pga::ext::require_nonatomic_call(
        fcinfo, "alpaca.redeem_ticket", "single-use mark and the decrypt audit row",
        "CALL alpaca.redeem_ticket(ticket, purpose, NULL, NULL, NULL, NULL)");
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
        throw pga::Error(pga::ErrorCode::InvalidParameter, "ticket and purpose must not be null");
    static SPIPlanPtr plan = nullptr;
    Oid types[2] = {TEXTOID, TEXTOID};
    Datum args[2] = {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)};
    pga::ext::CommittedKeys keys = pga::ext::redeem_and_commit(
        &plan,
        "SELECT r.credential_id, r.environment, r.api_key::pg_catalog.text, "
        "r.secret_key::pg_catalog.text FROM alpaca._redeem_prepare($1, $2) r",
        2, types, args, 0, "ticket refused");
    return pga::ext::keys_row(fcinfo, keys);
}
