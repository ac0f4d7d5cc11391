// An emit_log_hook that keeps credentials out of the server log and out of error reports sent
// to clients. For any message whose statement (or message, detail, context) names a function
// that takes plaintext keys (alpaca_store_credential, ...): the whole argument list of such a
// call and every SQL string literal are masked, values PostgreSQL quotes in the message, detail
// and hint are masked, bind parameter values in CONTEXT are masked, the error position is
// cleared (so clients print no "LINE 1:" excerpt), and the STATEMENT line is suppressed.
// Active in every backend when pg_alpaca is in shared_preload_libraries (recommended);
// otherwise from the first use in a session.
#pragma once

namespace pga::ext {
void install_log_redaction();
// Masks SQL string literals ('...', E'...', $tag$...$tag$) in text; exposed for tests.
// Returns a palloc'd string in the current memory context.
char *mask_sql_literals(const char *text);
}  // namespace pga::ext
