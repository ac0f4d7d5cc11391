#include "extension/pg_guard.hpp"

extern "C" {
#include "utils/errcodes.h"
}

namespace pga::pg {

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
struct ErrorBuffers {
    int sqlstate = ERRCODE_INTERNAL_ERROR;
    char message[1024] = {0};
    char detail[1024] = {0};
    char hint[512] = {0};
};

void copy_text(char *dst, std::size_t cap, const char *src) noexcept {
    if (src == nullptr) return;
    std::size_t n = std::strlen(src);
    if (n >= cap) n = cap - 1;
    std::memcpy(dst, src, n);
    dst[n] = '\0';
}

// Returns true and fills buf when body threw. No C++ object survives this function.
bool run_catching(Datum (*body)(FunctionCallInfo), FunctionCallInfo fcinfo, Datum &result,
                  ErrorBuffers &buf) noexcept {
    try {
        result = body(fcinfo);
        return false;
    } catch (const PgError &e) {
        buf.sqlstate = e.sqlstate();
        copy_text(buf.message, sizeof buf.message, e.what());
        copy_text(buf.detail, sizeof buf.detail, e.detail().c_str());
        copy_text(buf.hint, sizeof buf.hint, e.hint().c_str());
    } catch (const pga::Error &e) {
        buf.sqlstate = sqlstate_for(e.code());
        copy_text(buf.message, sizeof buf.message, e.what());
        copy_text(buf.hint, sizeof buf.hint, e.hint().c_str());
    } catch (const std::bad_alloc &) {
        buf.sqlstate = ERRCODE_OUT_OF_MEMORY;
        copy_text(buf.message, sizeof buf.message, "out of memory in pg_alpaca");
    } catch (const std::exception &e) {
        buf.sqlstate = ERRCODE_INTERNAL_ERROR;
        copy_text(buf.message, sizeof buf.message, e.what());
    } catch (...) {
        buf.sqlstate = ERRCODE_INTERNAL_ERROR;
        copy_text(buf.message, sizeof buf.message, "unexpected exception in pg_alpaca");
    }
    return true;
}
}  // namespace

Datum invoke(Datum (*body)(FunctionCallInfo), FunctionCallInfo fcinfo) {
    ErrorBuffers buf;
    Datum result = (Datum)0;
    if (!run_catching(body, fcinfo, result, buf)) return result;
    ereport(ERROR, (errcode(buf.sqlstate), errmsg("%s", buf.message),
                    buf.detail[0] ? errdetail("%s", buf.detail) : 0,
                    buf.hint[0] ? errhint("%s", buf.hint) : 0));
    pg_unreachable();
}

}  // namespace pga::pg
