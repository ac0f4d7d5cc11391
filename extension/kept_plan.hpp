// Statements prepared once per backend: SPI_prepare + SPI_keepplan into a static SPIPlanPtr
// on first use (the plan cache re-plans it when what it uses changes). A kept plan is re-parsed
// under the search_path of the moment when that changes, so its text must resolve nothing
// through search_path: schema-qualified names, operators written OPERATOR(pg_catalog.…),
// parameters typed by OID (test/security/test_shadowing.py plants operators to try).
#pragma once

#include "extension/pg_values.hpp"

extern "C" {
#include "executor/spi.h"
}

namespace pga::ext {

// *plan if set, else query prepared and kept into *plan. Inside an open SPI connection.
inline SPIPlanPtr kept_plan(SPIPlanPtr *plan, const char *query, int nargs, Oid *types) {
    if (*plan != nullptr) return *plan;
    pga::pg::call([&] {
        SPIPlanPtr p = SPI_prepare(query, nargs, types);
        if (p == nullptr)
            elog(ERROR, "pg_alpaca: could not prepare a statement: %s",
                 SPI_result_code_string(SPI_result));
        if (SPI_keepplan(p) != 0) elog(ERROR, "pg_alpaca: could not keep a prepared statement");
        *plan = p;
    });
    return *plan;
}

}  // namespace pga::ext
