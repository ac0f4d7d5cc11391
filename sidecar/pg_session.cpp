#include "sidecar/pg_session.hpp"

namespace pga::sidecar {
namespace {

// Every name the sidecar sends is schema-qualified, in schema alpaca where nobody but the
// extension creates objects, and its connections run with an empty search_path: nothing
// created in a schema its role can see can receive a ticket or make the call ambiguous.
constexpr const char *kPinSearchPath = "SELECT pg_catalog.set_config('search_path', '', false)";
constexpr const char *kHasExtension =
    "SELECT 1 FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_alpaca'";

struct ResultDeleter {
    void operator()(PGresult *r) const noexcept { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

}  // namespace

std::string one_line(const char *s) {
    std::string out = s ? s : "";
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    for (char &c : out) {
        if (c == '\n' || c == '\t') c = ' ';
    }
    return out;
}

PgConn open_session(const std::string &conninfo, std::string &error) {
    // Later keywords override what the connection string says.
    const char *keys[] = {"dbname", "application_name", "connect_timeout", nullptr};
    const char *values[] = {conninfo.c_str(), "alpaca-sidecar", "5", nullptr};
    PgConn conn(PQconnectdbParams(keys, values, 1));
    if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
        error = "cannot connect to PostgreSQL: " +
                one_line(conn ? PQerrorMessage(conn.get()) : "out of memory");
        return nullptr;
    }
    Result pin(PQexec(conn.get(), kPinSearchPath));
    if (!pin || PQresultStatus(pin.get()) != PGRES_TUPLES_OK) {
        error = "cannot pin search_path: " + one_line(PQerrorMessage(conn.get()));
        return nullptr;
    }
    Result ext(PQexec(conn.get(), kHasExtension));
    if (!ext || PQresultStatus(ext.get()) != PGRES_TUPLES_OK || PQntuples(ext.get()) != 1) {
        error = ext && PQresultStatus(ext.get()) == PGRES_TUPLES_OK
                    ? std::string("database \"") + PQdb(conn.get()) +
                          "\" has no pg_alpaca extension: check dbname in conninfo"
                    : "cannot look up pg_alpaca: " + one_line(PQerrorMessage(conn.get()));
        return nullptr;
    }
    return conn;
}

}  // namespace pga::sidecar
