// The typed rows of Alpaca's answers (extension/alpaca_rows.cpp), for the SQL functions that
// fetch and parse in one call (extension/alpaca_calls.cpp) as well as the alpaca_parse_*
// parsers: start the set-returning function's materialized result, then parse a body straight
// into it.
#pragma once

#include <string_view>

struct FunctionCallInfoBaseData;
struct ReturnSetInfo;

namespace pga::ext {

enum class RowKind { Account, Positions, Orders };

// Starts fcinfo's materialized result (an error when the caller cannot take a set) and checks
// the declared row type against the C++ column list of kind. Throws pga::pg::PgError.
ReturnSetInfo *begin_rows(FunctionCallInfoBaseData *fcinfo, RowKind kind);

// Parses body (Alpaca's JSON, in the database encoding) into rsinfo's tuplestore, one row per
// element. XX000 "malformed Alpaca answer: ..." for a document that is not Alpaca's shape.
void put_rows(ReturnSetInfo *rsinfo, RowKind kind, std::string_view body);

}  // namespace pga::ext
