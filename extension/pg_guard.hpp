// The border between C++ and PostgreSQL (DESIGN.md "C++ inside PostgreSQL").
//
//  * PGA_FUNCTION(name) defines an SQL-callable extern "C" function whose body is C++. The
//    body runs inside pga::pg::invoke, which catches every exception, copies message, detail,
//    hint and SQLSTATE into fixed buffers, LEAVES the catch block (so no C++ object is alive
//    any more) and only then calls ereport(ERROR).
//  * pga::pg::call(f) is the reverse guard: it runs a PostgreSQL call that may ereport(ERROR)
//    inside PG_TRY and turns the error into a pga::pg::PgError exception, restoring the memory
//    context. Keep f tiny (one PostgreSQL call): a longjmp skips destructors inside f.
//
// Include order in extension/*.cpp: common/ headers first, then this header.
#pragma once

#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

#include "common/error.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/elog.h"
#include "utils/memutils.h"
}

namespace pga::pg {

// A PostgreSQL error (or one we raise with an explicit SQLSTATE) travelling through C++.
class PgError : public std::exception {
  public:
    PgError(int sqlstate, std::string message, std::string detail = {}, std::string hint = {})
        : sqlstate_(sqlstate),
          message_(std::move(message)),
          detail_(std::move(detail)),
          hint_(std::move(hint)) {}
    const char *what() const noexcept override { return message_.c_str(); }
    int sqlstate() const noexcept { return sqlstate_; }
    const std::string &detail() const noexcept { return detail_; }
    const std::string &hint() const noexcept { return hint_; }

  private:
    int sqlstate_;
    std::string message_, detail_, hint_;
};

// SQLSTATE for each pga::ErrorCode.
int sqlstate_for(pga::ErrorCode code) noexcept;

// Runs f() (a PostgreSQL call) and converts ereport(ERROR) into PgError.
template <typename F>
auto call(F &&f) -> decltype(f()) {
    using R = decltype(f());
    MemoryContext saved = CurrentMemoryContext;
    ErrorData *volatile edata = nullptr;
    if constexpr (std::is_void_v<R>) {
        PG_TRY();
        { f(); }
        PG_CATCH();
        {
            MemoryContextSwitchTo(saved);
            edata = CopyErrorData();
            FlushErrorState();
        }
        PG_END_TRY();
        if (edata != nullptr) {
            PgError e(edata->sqlerrcode, edata->message ? edata->message : "",
                      edata->detail ? edata->detail : "", edata->hint ? edata->hint : "");
            FreeErrorData(edata);
            throw e;
        }
    } else {
        R result{};
        R *volatile out = &result;  // keeps result in memory across the setjmp
        PG_TRY();
        { *out = f(); }
        PG_CATCH();
        {
            MemoryContextSwitchTo(saved);
            edata = CopyErrorData();
            FlushErrorState();
        }
        PG_END_TRY();
        if (edata != nullptr) {
            PgError e(edata->sqlerrcode, edata->message ? edata->message : "",
                      edata->detail ? edata->detail : "", edata->hint ? edata->hint : "");
            FreeErrorData(edata);
            throw e;
        }
        return result;
    }
}

// Runs body(fcinfo) with every C++ exception turned into ereport(ERROR) after the C++ stack
// is unwound. Declared noinline so the error buffers live in a frame without C++ objects.
Datum invoke(Datum (*body)(FunctionCallInfo), FunctionCallInfo fcinfo);

}  // namespace pga::pg

#define PGA_FUNCTION(name)                             \
    extern "C" {                                       \
    PG_FUNCTION_INFO_V1(name);                         \
    }                                                  \
    static Datum name##_body(FunctionCallInfo fcinfo); \
    extern "C" Datum name(PG_FUNCTION_ARGS) {          \
        return pga::pg::invoke(name##_body, fcinfo);   \
    }                                                  \
    static Datum name##_body(FunctionCallInfo fcinfo)
