#include "extension/pg_guard.hpp"

#include <csetjmp>
#include <cstring>
#include <new>
#include <string_view>
#include <utility>

extern "C" {
#include "mb/pg_wchar.h"
#include "utils/errcodes.h"
#include "utils/memutils.h"
}

namespace pga::pg {

PgError::PgError(int sqlstate, std::string message, std::string detail, std::string hint)
    : sqlstate_(sqlstate),
      message_(std::move(message)),
      detail_(std::move(detail)),
      hint_(std::move(hint)) {}

PgError::PgError(ErrorData *edata)
    : sqlstate_(edata->sqlerrcode),
      message_(edata->message ? edata->message : ""),
      detail_(edata->detail ? edata->detail : ""),
      hint_(edata->hint ? edata->hint : ""),
      edata_(edata) {}

int sqlstate_for(pga::ErrorCode code) noexcept {
    switch (code) {
        case ErrorCode::InvalidText:
            return ERRCODE_INVALID_TEXT_REPRESENTATION;
        case ErrorCode::InvalidParameter:
            return ERRCODE_INVALID_PARAMETER_VALUE;
        case ErrorCode::ConfigFile:
            return ERRCODE_CONFIG_FILE_ERROR;
        case ErrorCode::KeyMissing:
            return ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
        case ErrorCode::DecryptFailed:
            return ERRCODE_DATA_CORRUPTED;
        case ErrorCode::TicketInvalid:
            return ERRCODE_INSUFFICIENT_PRIVILEGE;
        case ErrorCode::Protocol:
            return ERRCODE_INTERNAL_ERROR;
        case ErrorCode::Io:
            return ERRCODE_CONNECTION_FAILURE;
        case ErrorCode::Internal:
            return ERRCODE_INTERNAL_ERROR;
    }
    return ERRCODE_INTERNAL_ERROR;
}

namespace {

// Saves PostgreSQL's two error-handling stacks and puts them back when it goes out of scope,
// also when a C++ exception unwinds the scope (PG_END_TRY would be skipped then, leaving
// PG_exception_stack pointing into a dead frame). Constructed before the sigsetjmp, so a
// longjmp back to it never skips it.
class ErrorStacks {
  public:
    ErrorStacks() noexcept
        : exception_stack_(PG_exception_stack), context_stack_(error_context_stack) {}
    ~ErrorStacks() {
        PG_exception_stack = exception_stack_;
        error_context_stack = context_stack_;
    }
    ErrorStacks(const ErrorStacks &) = delete;
    ErrorStacks &operator=(const ErrorStacks &) = delete;

  private:
    sigjmp_buf *const exception_stack_;
    ErrorContextCallback *const context_stack_;
};

// Runs fn(arg) behind a sigsetjmp; true when it returned, false when it raised an error.
bool try_pg(void (*fn)(void *), void *arg) {
    ErrorStacks stacks;
    sigjmp_buf jump;
    if (sigsetjmp(jump, 0) != 0) return false;
    PG_exception_stack = &jump;
    fn(arg);
    return true;
}

void copy_error_data(void *out) {
    *static_cast<ErrorData **>(out) = CopyErrorData();
}

}  // namespace

namespace detail {

void run_guarded(void (*fn)(void *), void *arg) {
    const MemoryContext caller = CurrentMemoryContext;
    if (try_pg(fn, arg)) return;
    // An ereport(ERROR) longjmp'd out of fn; the stacks are already restored. Copy the error
    // out of ErrorContext into the caller's context (CopyErrorData allocates in
    // CurrentMemoryContext), then flush the error state so PostgreSQL is ready for the next
    // one. Copying can itself fail (out of memory): that error is caught the same way.
    MemoryContextSwitchTo(caller);
    ErrorData *edata = nullptr;
    if (!try_pg(&copy_error_data, &edata)) {
        MemoryContextSwitchTo(caller);
        edata = nullptr;
    }
    FlushErrorState();
    if (edata == nullptr)
        throw PgError(ERRCODE_OUT_OF_MEMORY, "out of memory while copying a PostgreSQL error");
    throw PgError(edata);
}

}  // namespace detail

namespace {

// The longest message, detail or hint of pg_alpaca's own taken to the client. Our messages
// are short; this bounds one that would echo a long input.
constexpr std::size_t kMaxOwnText = 4096;

// Copies s into cxt, clipped at a character boundary to kMaxOwnText bytes. Null when s is
// empty or memory ran out. Never ereports (it runs inside a catch block).
char *copy_own_text(MemoryContext cxt, std::string_view s) noexcept {
    if (s.empty()) return nullptr;
    int len = (int)std::min(s.size(), kMaxOwnText + 1);
    if ((std::size_t)len > kMaxOwnText) len = pg_mbcliplen(s.data(), len, (int)kMaxOwnText);
    auto *p =
        static_cast<char *>(MemoryContextAllocExtended(cxt, (Size)len + 1, MCXT_ALLOC_NO_OOM));
    if (p == nullptr) return nullptr;
    std::memcpy(p, s.data(), (std::size_t)len);
    p[len] = '\0';
    return p;
}

// An ErrorData for an error of pg_alpaca's own, in cxt; null when memory ran out.
ErrorData *own_error(MemoryContext cxt, int sqlstate, std::string_view message,
                     std::string_view detail = {}, std::string_view hint = {}) noexcept {
    auto *e = static_cast<ErrorData *>(
        MemoryContextAllocExtended(cxt, sizeof(ErrorData), MCXT_ALLOC_NO_OOM | MCXT_ALLOC_ZERO));
    if (e == nullptr) return nullptr;
    e->elevel = ERROR;
    e->sqlerrcode = sqlstate;
    e->message = copy_own_text(cxt, message.empty() ? "pg_alpaca error" : message);
    if (e->message == nullptr) return nullptr;
    e->detail = copy_own_text(cxt, detail);
    e->hint = copy_own_text(cxt, hint);
    return e;
}

struct Failure {
    ErrorData *edata = nullptr;  // null: out of memory while describing the error
    bool from_postgres = false;  // edata is a PostgreSQL error to rethrow as it is
};

// Returns true and fills failure when body threw. No C++ object survives this function.
bool run_catching(Datum (*body)(FunctionCallInfo), FunctionCallInfo fcinfo, MemoryContext cxt,
                  Datum &result, Failure &failure) noexcept {
    try {
        result = body(fcinfo);
        return false;
    } catch (const PgError &e) {
        if (e.error_data() != nullptr) {
            failure.edata = e.error_data();
            failure.from_postgres = true;
        } else {
            failure.edata = own_error(cxt, e.sqlstate(), e.what(), e.detail(), e.hint());
        }
    } catch (const pga::Error &e) {
        failure.edata = own_error(cxt, sqlstate_for(e.code()), e.what(), {}, e.hint());
    } catch (const std::bad_alloc &) {
        failure.edata = own_error(cxt, ERRCODE_OUT_OF_MEMORY, "out of memory in pg_alpaca");
    } catch (const std::exception &e) {
        failure.edata = own_error(cxt, ERRCODE_INTERNAL_ERROR, e.what());
    } catch (...) {
        failure.edata = own_error(cxt, ERRCODE_INTERNAL_ERROR, "unexpected exception in pg_alpaca");
    }
    return true;
}

}  // namespace

Datum invoke(Datum (*body)(FunctionCallInfo), FunctionCallInfo fcinfo, const char *funcname,
             const char *file, int line) {
    // Only trivially destructible locals from here on: the error is raised in this frame.
    sigjmp_buf *const entry_exception_stack = PG_exception_stack;
    ErrorContextCallback *const entry_context_stack = error_context_stack;
    const MemoryContext entry_context = CurrentMemoryContext;
    Datum result = (Datum)0;
    Failure failure;
    const bool failed = run_catching(body, fcinfo, entry_context, result, failure);
    // A C++ exception that left a PG_TRY block (or a callback pushed and never popped) would
    // leave these pointing into dead frames: the next ereport would jump there.
    PG_exception_stack = entry_exception_stack;
    error_context_stack = entry_context_stack;
    if (!failed) return result;

    MemoryContextSwitchTo(entry_context);
    if (failure.edata == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    if (failure.from_postgres) ReThrowError(failure.edata);
    failure.edata->filename = file;
    failure.edata->lineno = line;
    failure.edata->funcname = funcname;
    ThrowErrorData(failure.edata);
    pg_unreachable();
}

}  // namespace pga::pg
