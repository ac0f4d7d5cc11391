// An emit_log_hook that keeps credentials out of the server log and out of error reports sent
// to clients.
//
// A log line is sensitive when any text it carries or belongs to names a function that takes
// plaintext keys, tickets or Fernet material (alpaca_store_credential, ..., or a function the
// operator lists in pg_alpaca.redact_functions): the running statement (for the extended
// protocol, the prepared statement's source), the message, detail, detail_log, CONTEXT or
// internal query, or an `EXECUTE name` whose prepared statement's source names one. Matching
// is case-insensitive on the bare name, so quoting, schema qualification and comments do not
// hide a call.
//
// In a sensitive line: the whole argument list of such a call and every SQL string literal
// are masked (in the CONTEXT also inside "SQL statement "..."" quotes), bind parameter values
// are masked, values PostgreSQL quotes in an error's message, detail and hint are masked, a
// pgaudit `AUDIT:` line keeps its class, command and object but loses its statement text and
// parameters, the error position is cleared (so clients print no "LINE 1:" excerpt), and the
// STATEMENT and CONTEXT lines are not logged. A deadlock report's process list (detail_log,
// which holds other backends' statements) always has its literals masked.
//
// Active in every backend when pg_alpaca is in shared_preload_libraries (recommended);
// otherwise from the first use in a session.
#pragma once

namespace pga::ext {
void install_log_redaction();
// Masks SQL string literals ('...', E'...', $tag$...$tag$) and the argument lists of calls of
// sensitive functions in text; exposed for tests. Returns a palloc'd string in the current
// memory context.
char *mask_sql_literals(const char *text);
}  // namespace pga::ext
