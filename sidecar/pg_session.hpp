// The sidecar's PostgreSQL sessions (the redeem pool, the outcome writer): one way to open
// them, so every one runs with an empty search_path in a database that has pg_alpaca.
#pragma once
#include "common/cpp_only.hpp"

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <string_view>

namespace pga::sidecar {

struct PgConnDeleter {
    void operator()(PGconn *c) const noexcept { PQfinish(c); }
};
using PgConn = std::unique_ptr<PGconn, PgConnDeleter>;

// libpq's message on one line (no newlines or tabs, no trailing blanks): safe to log, since
// libpq and PostgreSQL never repeat a statement's parameters in it.
std::string one_line(const char *s);

// Appends v as one double-quoted element to the text form of an array ("{" already in out; the
// caller closes it with "}"), for array parameters sent as text.
template <typename Out>
void append_array_element(Out &out, std::string_view v) {
    if (out.size() > 1) out.push_back(',');
    out.push_back('"');
    for (char c : v) {
        if (c == '"' || c == '\\') out.push_back('\\');
        out.push_back(c);
    }
    out.push_back('"');
}

// Connects with conninfo (application_name alpaca-sidecar, 5 s connect timeout), pins an empty
// search_path and checks that the database has pg_alpaca. nullptr and `error` on failure.
PgConn open_session(const std::string &conninfo, std::string &error);

}  // namespace pga::sidecar
