#include "extension/preload_check.hpp"

#include "extension/pg_guard.hpp"

extern "C" {
#include "miscadmin.h"
#include "utils/errcodes.h"
#include "utils/guc.h"
}

namespace {

bool g_preloaded = false;
bool g_allow_without_preload = false;  // owned by the GUC machinery

}  // namespace

namespace pga::ext {

void note_preload() {
    g_preloaded = process_shared_preload_libraries_in_progress;
    DefineCustomBoolVariable(
        "pg_alpaca.allow_without_preload",
        "Lets the functions that take secrets run when pg_alpaca is not in "
        "shared_preload_libraries.",
        "Without preloading, the first statement of a session that calls pg_alpaca is logged "
        "before the log redaction starts.",
        &g_allow_without_preload, false, PGC_SUSET, 0, nullptr, nullptr, nullptr);
}

bool loaded_by_preload() noexcept {
    return g_preloaded;
}

void require_preload_for_secrets() {
    if (g_preloaded || g_allow_without_preload) return;
    throw pga::pg::PgError(
        ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "pg_alpaca takes no secrets: it is not in shared_preload_libraries",
        "Without preloading, the log redaction starts only after the server has logged a "
        "session's first statement that calls pg_alpaca, secrets included.",
        "Add pg_alpaca to shared_preload_libraries in postgresql.conf and restart PostgreSQL "
        "(a superuser may SET pg_alpaca.allow_without_preload = on to override).");
}

}  // namespace pga::ext

// alpaca._preloaded() RETURNS boolean
PGA_FUNCTION(pga_preloaded) {
    PG_RETURN_BOOL(pga::ext::loaded_by_preload());
}
