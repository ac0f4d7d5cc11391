// libpq results that may hold plaintext keys: every value is wiped before libpq frees the
// block. And one_line, for PostgreSQL messages in our log lines.
#pragma once
#include "common/cpp_only.hpp"
#include "common/secure_memory.hpp"

#include <libpq-fe.h>

#include <memory>
#include <string>

namespace pga::sidecar {

struct WipingResultDeleter {
    void operator()(PGresult *r) const noexcept {
        for (int row = 0; row < PQntuples(r); ++row) {
            for (int col = 0; col < PQnfields(r); ++col) {
                secure_wipe(PQgetvalue(r, row, col), std::size_t(PQgetlength(r, row, col)));
            }
        }
        PQclear(r);
    }
};
using PgResult = std::unique_ptr<PGresult, WipingResultDeleter>;

// A PostgreSQL message on one line: trailing newlines and spaces gone, tabs and newlines
// turned into spaces.
inline std::string one_line(const char *s) {
    std::string out = s ? s : "";
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    for (char &c : out) {
        if (c == '\n' || c == '\t') c = ' ';
    }
    return out;
}

}  // namespace pga::sidecar
