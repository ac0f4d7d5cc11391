// libpq results that may hold plaintext keys: every value is wiped before libpq frees the
// block. (one_line, for PostgreSQL messages in log lines: sidecar/pg_session.hpp.)
#pragma once
#include "common/cpp_only.hpp"
#include "common/secure_memory.hpp"

#include "sidecar/pg_session.hpp"

#include <libpq-fe.h>

#include <memory>

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

}  // namespace pga::sidecar
