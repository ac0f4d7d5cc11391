// Small conversions between PostgreSQL Datums and the C++ core's types. All of them are safe
// to call from C++: each PostgreSQL call in them goes through pga::pg::call, so an error
// arrives as a pga::pg::PgError, never as a longjmp. Include this before any other
// PostgreSQL header (it pulls in common/encoding.hpp first, then pg_guard.hpp).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "common/encoding.hpp"
#include "extension/pg_guard.hpp"

extern "C" {
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

namespace pga::pg {

// View of a text/varlena argument (detoasted in the current memory context).
inline std::string_view text_view(Datum d) {
    struct varlena *v =
        call([&] { return pg_detoast_datum_packed((struct varlena *)DatumGetPointer(d)); });
    return std::string_view(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
}

inline Datum text_datum(std::string_view s) {
    return call([&] { return PointerGetDatum(cstring_to_text_with_len(s.data(), (int)s.size())); });
}

inline pga::Uuid uuid_value(Datum d) {
    pga::Uuid out;
    const pg_uuid_t *u = DatumGetUUIDP(d);
    std::memcpy(out.data(), u->data, out.size());
    return out;
}

// Argument n as a uuid in storage, or null when the argument is SQL NULL.
inline const pga::Uuid *uuid_arg_or_null(FunctionCallInfo fcinfo, int n, pga::Uuid &storage) {
    if (PG_ARGISNULL(n)) return nullptr;
    storage = uuid_value(PG_GETARG_DATUM(n));
    return &storage;
}

inline Datum uuid_datum(const pga::Uuid &u) {
    pg_uuid_t *p = call([&] { return (pg_uuid_t *)palloc(sizeof(pg_uuid_t)); });
    std::memcpy(p->data, u.data(), u.size());
    return UUIDPGetDatum(p);
}

// PostgreSQL timestamps are microseconds since 2000-01-01; tickets use Unix milliseconds.
constexpr std::int64_t kPgEpochUnixMs = 946684800000LL;
inline std::int64_t timestamptz_to_unix_ms(TimestampTz t) {
    return t / 1000 + kPgEpochUnixMs;
}
inline TimestampTz unix_ms_to_timestamptz(std::int64_t ms) {
    return (TimestampTz)((ms - kPgEpochUnixMs) * 1000);
}
inline std::int64_t now_unix_ms() {
    return timestamptz_to_unix_ms(GetCurrentTimestamp());
}

}  // namespace pga::pg

extern "C" {
#include "funcapi.h"
#include "access/htup_details.h"
#include "utils/array.h"
#include "catalog/pg_type.h"
}

#include <vector>

namespace pga::pg {

// Builds the composite result of a function declared with OUT parameters.
// The function's result row from `count` values. A SQL definition with another number of
// columns (a library newer or older than the installed SQL script) is an error, never a tuple
// formed from the wrong values.
inline Datum composite_datum(FunctionCallInfo fcinfo, Datum *values, bool *nulls, int count) {
    return call([&] {
        TupleDesc desc;
        if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
            elog(ERROR, "pg_alpaca: function must return a composite type");
        if (desc->natts != count)
            ereport(ERROR,
                    (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                     errmsg("pg_alpaca: the installed SQL definition of this function does not "
                            "match the loaded library (%d result columns, the library makes %d)",
                            desc->natts, count),
                     errhint("Run ALTER EXTENSION pg_alpaca UPDATE, or install the library "
                             "that matches the extension's version.")));
        desc = BlessTupleDesc(desc);
        return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
    });
}

template <std::size_t N>
inline Datum composite_datum(FunctionCallInfo fcinfo, Datum (&values)[N], bool (&nulls)[N]) {
    return composite_datum(fcinfo, values, nulls, int(N));
}

// Starts a materialize-mode set-returning function; returns the rsinfo to put rows into.
inline ReturnSetInfo *begin_materialized_srf(FunctionCallInfo fcinfo) {
    call([&] { InitMaterializedSRF(fcinfo, 0); });
    return (ReturnSetInfo *)fcinfo->resultinfo;
}

inline void put_row(ReturnSetInfo *rsinfo, Datum *values, bool *nulls) {
    call([&] { tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls); });
}

inline Datum text_array_datum(const std::vector<std::string> &items) {
    std::vector<Datum> elems;
    elems.reserve(items.size());
    for (const auto &s : items) elems.push_back(text_datum(s));
    return call([&] {
        return PointerGetDatum(
            construct_array(elems.data(), (int)elems.size(), TEXTOID, -1, false, TYPALIGN_INT));
    });
}

}  // namespace pga::pg
