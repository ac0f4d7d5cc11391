// The application user: alpaca_set_user, alpaca_current_user and alpaca._user_setting_name.
// The user is a transaction-scoped setting (pg_alpaca.user_setting names it, see
// vault_state.hpp); row-level security compares every row's owner with it.
#include <optional>
#include <string>

#include "common/error.hpp"
#include "extension/vault_state.hpp"

#include "extension/pg_values.hpp"

extern "C" {
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/errcodes.h"
#include "utils/guc.h"
}

using pga::pg::text_datum;
using pga::pg::text_view;

// alpaca_current_user() RETURNS text: NULL when no application user is set.
PGA_FUNCTION(pga_current_user) {
    std::optional<std::string> user = pga::ext::current_app_user();
    if (!user) PG_RETURN_NULL();
    return text_datum(*user);
}

// alpaca._user_setting_name() RETURNS text
PGA_FUNCTION(pga_user_setting_name) {
    return text_datum(pga::ext::user_setting_name());
}

// alpaca_set_user(user_id text) RETURNS void: transaction-scoped (like SET LOCAL), passed as a
// value and never spliced into SQL text, so it cannot inject. With pg_alpaca.user_source = jwt
// only a superuser and the extension's own code (running as alpaca_owner, a role without
// members: alpaca._set_user in the ticket redemption and the batch import) may name a user;
// everyone else proves one with alpaca_set_user_jwt.
PGA_FUNCTION(pga_set_user) {
    if (PG_ARGISNULL(0))
        throw pga::Error(pga::ErrorCode::InvalidParameter, "application user id must not be null");
    pga::ext::set_app_user(text_view(PG_GETARG_DATUM(0)));
    PG_RETURN_VOID();
}

namespace pga::ext {

void set_app_user(std::string_view user_id) {
    std::string user(user_id);
    if (user.empty() || user.size() > 256)
        throw pga::Error(pga::ErrorCode::InvalidParameter,
                         "application user id must be 1 to 256 bytes long");
    for (unsigned char ch : user)
        if (ch < 0x20 || ch == 0x7f)
            throw pga::Error(pga::ErrorCode::InvalidParameter,
                             "application user id must not contain control characters");
    if (user_source() == UserSource::Jwt) {
        const bool trusted = pga::pg::call([] {
            const Oid me = GetUserId();
            return superuser_arg(me) || me == get_role_oid("alpaca_owner", true);
        });
        if (!trusted)
            throw pga::pg::PgError(ERRCODE_INSUFFICIENT_PRIVILEGE,
                                   "alpaca_set_user is disabled: pg_alpaca.user_source is jwt", "",
                                   "Prove the user with alpaca_set_user_jwt(token) instead.");
        set_verified_user(user);
        return;
    }
    const char *name = user_setting_name();
    const char *value = user.c_str();
    pga::pg::call([&] {
        (void)set_config_option(name, value, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0,
                                false);
    });
}

}  // namespace pga::ext

// alpaca._end_user() RETURNS void: the extension's own code is done acting for a user.
PGA_FUNCTION(pga_end_user) {
    pga::ext::end_user();
    PG_RETURN_VOID();
}
