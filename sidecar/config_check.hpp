// alpaca-sidecar --check-config, the part that needs PostgreSQL: logs in with conninfo exactly as
// the redeem pool does, and checks that the login is a member of alpaca_sidecar, is not a
// superuser, and that the database has the pg_alpaca extension.
#pragma once
#include "common/cpp_only.hpp"
#include "sidecar/config.hpp"

#include <string>

namespace pga::sidecar {

// Returns a one-line summary ("PostgreSQL: logged in as X, member of alpaca_sidecar, ...") or
// throws Error(ConfigFile) saying what is wrong. Never repeats the conninfo.
std::string check_database_login(const Config &cfg, const std::string &filename);

}  // namespace pga::sidecar
