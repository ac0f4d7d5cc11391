// alpaca_set_user_jwt and its settings (pg_alpaca.jwt_*); see common/jwt.hpp for the rules.
#pragma once

namespace pga::ext {

// Defines pg_alpaca.jwt_keys_file, jwt_issuer, jwt_audience, jwt_user_claim, jwt_leeway: all
// PGC_SIGHUP (postgresql.conf or ALTER SYSTEM, then reload), so no session can change how
// tokens are verified.
void define_jwt_gucs();

}  // namespace pga::ext
