// The border between C++ and PostgreSQL (DESIGN.md "C++ inside PostgreSQL"). Two guards, one
// for each direction:
//
//  * PGA_FUNCTION(name) defines an SQL-callable extern "C" function whose body is C++. The
//    body runs inside pga::pg::invoke, which catches every exception, turns it into an
//    ErrorData allocated without any chance of a longjmp, LEAVES the catch block (so no C++
//    object is alive any more), puts PG_exception_stack, error_context_stack and the memory
//    context back as they were when the function was entered, and only then raises the error:
//    a PostgreSQL error that came through pga::pg::call is rethrown whole (ReThrowError: its
//    SQLSTATE, message, detail, hint, context and positions unchanged), an error of our own is
//    raised with ThrowErrorData (so PostgreSQL adds the caller's context to it).
//  * pga::pg::call(f) runs f, a PostgreSQL call that may ereport(ERROR), behind its own
//    sigsetjmp and turns the error into a pga::pg::PgError exception that carries the
//    CopyErrorData copy. Keep f tiny (one PostgreSQL call): a longjmp out of f skips every
//    destructor inside f, which is why f's result type must be trivially destructible (a
//    static_assert says so). If f throws a C++ exception instead, the guard still restores
//    PG_exception_stack and error_context_stack on the way out.
//
// A PgError carrying a PostgreSQL error must end the SQL call (let it reach PGA_FUNCTION, or
// rethrow another PgError): the transaction is not usable until PostgreSQL has aborted the
// (sub)transaction. Catching one and carrying on is safe only after calls that leave no state
// behind, such as a type's input function.
//
// Nothing here masks anything: CONTEXT, positions and quoted values travel unchanged. The one
// place that masks them on purpose is the emit_log_hook in extension/log_redaction.cpp, which
// runs when the error is finally reported and hides credentials for the functions it names.
//
// Include order in extension/*.cpp: every common/ header first, then PostgreSQL headers
// (this one, pg_values.hpp, extern "C" blocks). common/cpp_only.hpp fails the build otherwise.
#pragma once

#include <exception>
#include <memory>
#include <string>
#include <type_traits>

#include "common/error.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/elog.h"
}

namespace pga::pg {

// An error travelling through C++ toward PGA_FUNCTION: either a PostgreSQL error caught by
// call() (error_data() is its CopyErrorData copy) or one pg_alpaca raises with an explicit
// SQLSTATE (error_data() is null).
class PgError : public std::exception {
  public:
    PgError(int sqlstate, std::string message, std::string detail = {}, std::string hint = {});
    // Takes a copy made by CopyErrorData. It stays in the memory context that was current when
    // call() ran, which outlives the exception as long as nobody resets that context while
    // the exception unwinds.
    explicit PgError(ErrorData *edata);

    const char *what() const noexcept override { return message_.c_str(); }
    int sqlstate() const noexcept { return sqlstate_; }
    const std::string &detail() const noexcept { return detail_; }
    const std::string &hint() const noexcept { return hint_; }
    ErrorData *error_data() const noexcept { return edata_; }

  private:
    int sqlstate_;
    std::string message_, detail_, hint_;
    ErrorData *edata_ = nullptr;
};

// SQLSTATE for each pga::ErrorCode.
int sqlstate_for(pga::ErrorCode code) noexcept;

namespace detail {

// Runs fn(arg) behind a sigsetjmp. An ereport(ERROR) inside becomes PgError (memory context
// restored, ErrorData copied, error state flushed). PG_exception_stack and error_context_stack
// are restored on every way out, a C++ exception from fn included.
void run_guarded(void (*fn)(void *), void *arg);

// Where call() keeps f and its result (bool stands in for void).
template <typename R>
using Stored = std::conditional_t<std::is_void_v<R>, bool, R>;

template <typename F, typename R>
struct Slot {
    F *f;
    Stored<R> result;
};

template <typename F, typename R>
void run_slot(void *p) {
    auto *slot = static_cast<Slot<F, R> *>(p);
    if constexpr (std::is_void_v<R>)
        (*slot->f)();
    else
        slot->result = (*slot->f)();
}

}  // namespace detail

// Runs f() (a PostgreSQL call) and converts ereport(ERROR) into PgError.
template <typename F>
auto call(F &&f) -> decltype(f()) {
    using Fn = std::remove_reference_t<F>;
    using R = decltype(f());
    static_assert(!std::is_reference_v<R>, "pga::pg::call: return a value, not a reference");
    static_assert(std::is_void_v<R> || std::is_trivially_destructible_v<R>,
                  "pga::pg::call: an ereport longjmp would skip the destructor of this result; "
                  "return a Datum, pointer or scalar and build C++ objects outside the call");
    detail::Slot<Fn, R> slot{std::addressof(f), {}};
    detail::run_guarded(&detail::run_slot<Fn, R>, &slot);
    if constexpr (!std::is_void_v<R>) return slot.result;
}

// Runs body(fcinfo); every C++ exception becomes ereport(ERROR) after the C++ stack is
// unwound (see the top of this file). funcname, file and line name the SQL entry point in the
// error's LOCATION; they must be string literals.
Datum invoke(Datum (*body)(FunctionCallInfo), FunctionCallInfo fcinfo, const char *funcname,
             const char *file, int line);

}  // namespace pga::pg

// The entry point is declared PGDLLEXPORT itself: PostgreSQL 15's PG_FUNCTION_INFO_V1 marks
// only the pg_finfo_ record, and the extension is built with -fvisibility=hidden.
#define PGA_FUNCTION(name)                                                      \
    extern "C" {                                                                \
    PG_FUNCTION_INFO_V1(name);                                                  \
    PGDLLEXPORT Datum name(PG_FUNCTION_ARGS);                                   \
    }                                                                           \
    static Datum name##_body(FunctionCallInfo fcinfo);                          \
    extern "C" Datum name(PG_FUNCTION_ARGS) {                                   \
        return pga::pg::invoke(name##_body, fcinfo, #name, __FILE__, __LINE__); \
    }                                                                           \
    static Datum name##_body(FunctionCallInfo fcinfo)
