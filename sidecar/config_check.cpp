#include "sidecar/config_check.hpp"

#include "common/error.hpp"
#include "sidecar/pg_result.hpp"
#include "sidecar/pg_session.hpp"

#include <libpq-fe.h>

#include <memory>

namespace pga::sidecar {
namespace {

// A short message for a configuration error.
std::string short_line(const char *s) {
    return one_line(s).substr(0, 400);
}

[[noreturn]] void fail(const std::string &filename, const std::string &msg) {
    throw Error(ErrorCode::ConfigFile, filename + ": conninfo: " + msg);
}

constexpr const char *kQuery =
    "SELECT r.rolname, r.rolsuper,"
    " EXISTS (SELECT 1 FROM pg_catalog.pg_roles g WHERE g.rolname OPERATOR(pg_catalog.=) "
    "'alpaca_sidecar'),"
    " EXISTS (SELECT 1 FROM pg_catalog.pg_roles g WHERE g.rolname OPERATOR(pg_catalog.=) "
    "'alpaca_sidecar' AND pg_catalog.pg_has_role(r.oid, g.oid, 'MEMBER')),"
    " EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) "
    "'pg_alpaca'),"
    " pg_catalog.current_database()"
    " FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) "
    "pg_catalog.current_user()::pg_catalog.name";

}  // namespace

std::string check_database_login(const Config &cfg, const std::string &filename) {
    const char *keys[] = {"dbname", "application_name", "connect_timeout", nullptr};
    const char *values[] = {cfg.conninfo.c_str(), "alpaca-sidecar --check-config", "5", nullptr};
    PgConn conn(PQconnectdbParams(keys, values, 1));
    if (!conn || PQstatus(conn.get()) != CONNECTION_OK)
        fail(filename, "cannot log in to PostgreSQL: " +
                           short_line(conn ? PQerrorMessage(conn.get()) : "out of memory"));
    PgResult res(PQexec(conn.get(), kQuery));
    if (!res || PQresultStatus(res.get()) != PGRES_TUPLES_OK || PQntuples(res.get()) != 1)
        fail(filename,
             "cannot look up the login's roles: " + short_line(PQerrorMessage(conn.get())));
    const std::string role = PQgetvalue(res.get(), 0, 0);
    const std::string db = PQgetvalue(res.get(), 0, 5);
    const auto yes = [&](int col) { return PQgetvalue(res.get(), 0, col)[0] == 't'; };
    if (yes(1))
        fail(filename, "logs in as \"" + role +
                           "\", a superuser: the sidecar must log in as a plain member of "
                           "alpaca_sidecar (CREATE ROLE ... LOGIN IN ROLE alpaca_sidecar)");
    if (!yes(2))
        fail(filename, "database \"" + db +
                           "\" has no role alpaca_sidecar: CREATE EXTENSION pg_alpaca there, or "
                           "fix dbname in conninfo");
    if (!yes(3))
        fail(filename, "logs in as \"" + role +
                           "\", which is not a member of alpaca_sidecar: GRANT alpaca_sidecar TO " +
                           role);
    if (!yes(4))
        fail(filename,
             "database \"" + db + "\" has no pg_alpaca extension: check dbname in conninfo");
    return "PostgreSQL: logged in to database \"" + db + "\" as \"" + role +
           "\", a member of alpaca_sidecar and not a superuser";
}

}  // namespace pga::sidecar
