// Per-backend vault state: the GUCs pg_alpaca.key_file and pg_alpaca.user_setting, the cached
// key ring (re-read whenever the path or the file changes), and the current application user.
#pragma once

#include <optional>
#include <string>

#include "common/keyring.hpp"

namespace pga::ext {

void define_vault_gucs();

// The key ring for this backend. Throws pga::Error(ConfigFile) when pg_alpaca.key_file is not
// set or the file is unusable (the message names the file and line, never a key).
const pga::KeyRing &keyring();

// Name of the transaction-scoped setting that holds the application user.
const char *user_setting_name();

// The application user, or nullopt when unset or empty (fail closed).
std::optional<std::string> current_app_user();

}  // namespace pga::ext
