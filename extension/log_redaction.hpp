// An emit_log_hook that keeps credentials out of the server log: when a log message or its
// detail mentions a function that takes plaintext keys (alpaca_store_credential, ...), every
// SQL string literal in it is masked, bind parameter values are dropped and the STATEMENT and
// CONTEXT lines are suppressed. Active in every backend when pg_alpaca is in
// shared_preload_libraries (recommended); otherwise from the first use in a session.
#pragma once

namespace pga::ext {
void install_log_redaction();
// Masks SQL string literals ('...', E'...', $tag$...$tag$) in text; exposed for tests.
// Returns a palloc'd string in the current memory context.
char *mask_sql_literals(const char *text);
}  // namespace pga::ext
