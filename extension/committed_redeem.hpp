// The part of a redeem that every procedure handing out plaintext keys shares
// (alpaca.redeem_ticket in extension/redeem.cpp, alpaca.redeem_session in
// extension/session_redeem.cpp): refuse an atomic context; run a prepare query as alpaca_owner
// (it checks, marks and audits); open the two envelopes; COMMIT and flush that commit to the
// WAL; only then build the result row with the keys, and wipe our copies.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/secure_memory.hpp"
#include "extension/pg_values.hpp"
#include "extension/kept_plan.hpp"

extern "C" {
#include "executor/spi.h"
}

namespace pga::ext {

// What the prepare query returned: columns 1..4 are credential id (uuid), environment, api_key
// and secret_key (alpaca_secret as text); the `extra` text columns follow.
struct CommittedKeys {
    pga::Uuid credential_id{};
    std::string environment;
    std::vector<std::string> extra;
    pga::SecureBytes api_key, secret_key;
};

// Raises 2D000 unless called by CALL outside a transaction block. marks: what the redeem
// commits ("single-use mark and the decrypt audit row"); call_form: how to call it.
void require_nonatomic_call(FunctionCallInfo fcinfo, const char *procedure, const char *marks,
                            const char *call_form);

// The checking, marking and auditing part of a redeem, run inside an open nonatomic SPI
// connection as alpaca_owner: fills out.credential_id, out.environment and out.extra, and the
// two envelopes (alpaca_secret text); a refusal throws (the transaction rolls back).
using SealedPrepare = std::function<void(CommittedKeys &out, std::string &api_envelope,
                                         std::string &secret_envelope)>;

// The redeem up to the commit: prepare as alpaca_owner, open the envelopes, COMMIT, flush.
CommittedKeys redeem_and_commit(const SealedPrepare &prepare);

// The same for `count` redeems in one transaction and one commit (alpaca.redeem_tickets):
// prepare(i, ...) for i = 0 .. count - 1, in that order; a refusal of any rolls back all, and
// its error says which ticket in DETAIL: "ticket <i + 1> of <count>".
using SealedPrepareEach = std::function<void(
    std::size_t i, CommittedKeys &out, std::string &api_envelope, std::string &secret_envelope)>;
std::vector<CommittedKeys> redeem_each_and_commit(std::size_t count,
                                                  const SealedPrepareEach &prepare);

// The redeem up to the commit over one prepare query (alpaca.redeem_session's). query is
// prepared once per backend into *plan (kept); it must return exactly one row (else `refusal`
// as 42501) of 4 + extra_cols columns.
CommittedKeys redeem_and_commit(SPIPlanPtr *plan, const char *query, int nargs, Oid *types,
                                Datum *args, int extra_cols, const char *refusal);

// Text copies of plaintext keys for a result row (`add`), wiped when this goes: keep it alive
// until the row that copies them is formed.
class SecretTexts {
  public:
    SecretTexts() = default;
    SecretTexts(const SecretTexts &) = delete;
    SecretTexts &operator=(const SecretTexts &) = delete;
    ~SecretTexts();
    Datum add(const pga::SecureBytes &key);

  private:
    std::vector<text *> owned_;
};

// The procedure's OUT row: credential_id, environment, api_key, secret_key, then `extra`
// (already Datums of the OUT parameters' types). The key texts are wiped once the row is
// formed.
Datum keys_row(FunctionCallInfo fcinfo, const CommittedKeys &keys,
               const std::vector<Datum> &extra = {});

}  // namespace pga::ext
