// Per-backend vault state: the GUCs pg_alpaca.key_file, pg_alpaca.user_setting and
// pg_alpaca.user_source, the cached key ring (re-read whenever the path or the file changes),
// and the current application user.
//
// pg_alpaca.user_source = setting (the default): the user is the transaction-scoped setting
// (SET LOCAL app.current_user_id, alpaca_set_user). = jwt: the user is the one a verified token
// named in this transaction (alpaca_set_user_jwt). The verified user is kept in backend memory,
// tied to the transaction and its subtransactions (dropped at commit or abort, restored at
// ROLLBACK TO SAVEPOINT), and it also goes into the setting; current_app_user() answers only
// when the setting still equals it, so a SET LOCAL of another name makes nobody a user.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/keyring.hpp"

namespace pga::ext {

void define_vault_gucs();

// The key ring for this backend. Throws pga::Error(ConfigFile) when pg_alpaca.key_file is not
// set or the file is unusable (the message names the file and line, never a key).
const pga::KeyRing &keyring();

// Name of the transaction-scoped setting that holds the application user.
const char *user_setting_name();

enum class UserSource { Setting, Jwt };
UserSource user_source();

// The application user, or nullopt when unset or empty (fail closed). With user_source = jwt,
// nullopt also when no verified user is recorded for this transaction, when the setting names
// another, and in parallel workers (alpaca_current_user() is PARALLEL RESTRICTED).
std::optional<std::string> current_app_user();

// Records user as this transaction's verified user and sets the user setting (SET LOCAL).
// Callers decide who may: alpaca_set_user_jwt after verifying a token; alpaca_set_user when
// user_source = setting, or for a superuser or the extension's own code (alpaca_owner).
void set_verified_user(const std::string &user);

// alpaca_set_user's work (extension/app_user.cpp): checks user_id (1 to 256 bytes, no control
// character) and makes it the application user for the rest of the transaction. With
// user_source = jwt only a superuser or alpaca_owner (the extension's own code, e.g. the redeem
// running as alpaca_owner) may; anyone else gets 42501.
void set_app_user(std::string_view user_id);

// Leaves no application user for the rest of the transaction: the setting emptied and, with
// user_source = jwt, no verified user remembered (so a later SET LOCAL names nobody). The
// extension's own code calls it after acting for a user it named (batch import, redeem).
void end_user();

}  // namespace pga::ext
