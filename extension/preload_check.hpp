// Whether pg_alpaca was loaded through shared_preload_libraries. Without it the log redaction
// (log_redaction.cpp) starts only when a session first calls the extension, after that first
// statement has been logged with its literals: so the functions that take secrets refuse to
// run unless a superuser sets pg_alpaca.allow_without_preload.
#pragma once

namespace pga::ext {

// Called once from _PG_init: notes how the library was loaded and defines
// pg_alpaca.allow_without_preload (no C++ object is alive there, so a GUC error may longjmp).
void note_preload();

bool loaded_by_preload() noexcept;

// Throws pga::pg::PgError (55000, with a hint) when the library was not preloaded and
// pg_alpaca.allow_without_preload is off.
void require_preload_for_secrets();

}  // namespace pga::ext
