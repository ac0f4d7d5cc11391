// Written in plain C style on purpose: a log hook runs inside error reporting, where no C++
// exception may be thrown and no allocation may fail loudly. It uses only palloc in the
// current (error) memory context, plain loops over NUL-terminated strings, fixed-size stack
// buffers, and one hash lookup in the backend's prepared-statement table. Every output is
// bounded by its input plus a fixed amount (at most kMaxMarks markers per field).
#include "extension/log_redaction.hpp"

#include <cctype>
#include <cstdlib>
#include <cstring>

extern "C" {
#include "postgres.h"
#include "commands/prepare.h"
#include "lib/stringinfo.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/plancache.h"
#include "tcop/tcopprot.h"
}

namespace pga::ext {
namespace {

emit_log_hook_type g_previous_hook = nullptr;
bool g_redaction_enabled = true;
char *g_redact_functions = nullptr;  // GUC storage; the parsed list is g_extra

// Functions whose arguments carry plaintext keys, tickets, session tokens, JWTs or Fernet
// material (matched as bare names, case-insensitively, so "alpaca"."_seal" and
// ALPACA_STORE_CREDENTIAL match too).
const char *const kSensitiveNames[] = {
    "alpaca_store_credential",
    "alpaca_update_credential",
    "alpaca_redeem_ticket",
    "alpaca_import_fernet_credential",
    "alpaca_import_fernet_credentials",
    "alpaca_set_user_jwt",
    "redeem_ticket",   // alpaca.redeem_ticket (0.2.0)
    "redeem_tickets",  // alpaca.redeem_tickets, the sidecar's batch (0.2.0)
    "_store_credential",
    "_import_fernet_credential",
    "_import_row",
    "_set_user_jwt",
    "_seal",
    "_reseal_credential",
    "_fingerprints",
    "_check_key_text",
    "_mint_ticket",
    "_verify_ticket",
    "_redeem_prepare",
    "_fernet_decrypt",
    "_alpaca_get",
    "_alpaca_send",
    "_audit_trade",
    "_record_outcomes",
    // Gateway session tokens (pgas_...): the procedure and functions that take one, and the
    // token's own prefix, so a token passed as a literal or bind value to any function (an
    // application's wrapper, a cast that fails) is masked too.
    "redeem_session",
    "_gateway_session",
    "_session_token_hash",
    "_session_for_token",
    "_session_redeem_prepare",
    "pgas_",
};
const char kRedacted[] = "[redacted by pg_alpaca]";
const char kAuditPrefix[] = "AUDIT: ";

// pg_alpaca.redact_functions, parsed by its check hook into a fixed-size list.
constexpr int kMaxExtra = 64;
struct ExtraNames {
    int count;
    char names[kMaxExtra][NAMEDATALEN];  // lower case, no schema
};
const ExtraNames *g_extra = nullptr;  // owned by guc.c (the check hook's `extra`)

// At most this many masks per field; after that the rest of the field is one marker. Keeps
// the output within input length + kMaxMarks * sizeof(kRedacted).
constexpr int kMaxMarks = 256;
// A field longer than this is replaced by one marker instead of being scanned and copied
// (bounds the memory the hook takes in ErrorContext).
constexpr std::size_t kMaxMaskInput = 1 << 20;
// EXECUTE names looked up per text.
constexpr int kMaxExecuteLookups = 16;

char lower(char c) {
    return (char)std::tolower((unsigned char)c);
}

bool is_ident_char(char c) {
    return std::isalnum((unsigned char)c) || c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

bool contains_ci(const char *haystack, const char *needle) {
    std::size_t n = std::strlen(needle);
    if (n == 0) return false;
    for (const char *p = haystack; *p; ++p) {
        std::size_t i = 0;
        while (i < n && p[i] && lower(p[i]) == needle[i]) ++i;
        if (i == n) return true;
    }
    return false;
}

// Does text hold needle as a whole word (no identifier character either side)?
bool contains_word_ci(const char *text, const char *needle) {
    std::size_t n = std::strlen(needle);
    if (n == 0) return false;
    for (const char *p = text; *p; ++p) {
        if (p > text && is_ident_char(p[-1])) continue;
        std::size_t i = 0;
        while (i < n && p[i] && lower(p[i]) == needle[i]) ++i;
        if (i == n && !is_ident_char(p[n])) return true;
    }
    return false;
}

// Does text name a sensitive function? pg_alpaca's names match anywhere (as substrings:
// masking too much is fine, and they are long and distinctive); the operator's names match
// as whole words, so that a short name does not mask every line.
bool mentions_name(const char *text) {
    if (text == nullptr) return false;
    // A Unicode-escaped identifier (U&"alpaca_\0073tore_credential") can spell any name without
    // its letters: fail closed and treat the text as naming one.
    if (contains_ci(text, "u&\"")) return true;
    for (const char *name : kSensitiveNames)
        if (contains_ci(text, name)) return true;
    if (g_extra != nullptr)
        for (int i = 0; i < g_extra->count; ++i)
            if (contains_word_ci(text, g_extra->names[i])) return true;
    return false;
}

// Is the identifier [p, p+len) (unquoted, or the inside of a quoted one) a sensitive name?
bool is_sensitive_ident(const char *p, std::size_t len) {
    auto equal = [&](const char *name) {
        std::size_t n = std::strlen(name);
        if (n != len) return false;
        for (std::size_t i = 0; i < n; ++i)
            if (lower(p[i]) != name[i]) return false;
        return true;
    };
    for (const char *name : kSensitiveNames)
        if (equal(name)) return true;
    if (g_extra != nullptr)
        for (int i = 0; i < g_extra->count; ++i)
            if (equal(g_extra->names[i])) return true;
    return false;
}

// Skips spaces and SQL comments (-- to end of line, /* ... */, nested).
const char *skip_space_and_comments(const char *p) {
    for (;;) {
        while (std::isspace((unsigned char)*p)) ++p;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n') ++p;
        } else if (p[0] == '/' && p[1] == '*') {
            int depth = 0;
            while (*p) {
                if (p[0] == '/' && p[1] == '*') {
                    ++depth;
                    p += 2;
                } else if (p[0] == '*' && p[1] == '/') {
                    p += 2;
                    if (--depth == 0) break;
                } else {
                    ++p;
                }
            }
        } else {
            return p;
        }
    }
}

// Does text hold `EXECUTE name` for a prepared statement of this backend whose source names a
// sensitive function? (SQL-level EXECUTE logs only its own text.)
bool executes_sensitive(const char *text) {
    if (text == nullptr) return false;
    int lookups = 0;
    for (const char *p = text; *p && lookups < kMaxExecuteLookups; ++p) {
        if (lower(*p) != 'e' || (p > text && is_ident_char(p[-1]))) continue;
        const char *kw = "execute";
        std::size_t i = 0;
        while (i < 7 && p[i] && lower(p[i]) == kw[i]) ++i;
        if (i < 7 || is_ident_char(p[7])) continue;
        const char *q = skip_space_and_comments(p + 7);
        char name[NAMEDATALEN];
        std::size_t n = 0;
        if (*q == '"') {
            for (++q; *q && n < NAMEDATALEN - 1; ++q) {
                if (*q == '"' && q[1] == '"') {
                    name[n++] = '"';
                    ++q;
                } else if (*q == '"') {
                    break;
                } else {
                    name[n++] = *q;
                }
            }
        } else {
            while (is_ident_char(*q) && n < NAMEDATALEN - 1) name[n++] = lower(*q++);
        }
        name[n] = '\0';
        if (n == 0) continue;
        ++lookups;
        PreparedStatement *ps = FetchPreparedStatement(name, false);
        if (ps != nullptr && ps->plansource != nullptr &&
            mentions_name(ps->plansource->query_string))
            return true;
    }
    return false;
}

bool sensitive_text(const char *text) {
    return mentions_name(text) || executes_sensitive(text);
}

// Length of a dollar-quote tag starting at p ("$$" or "$tag$"), or 0.
std::size_t dollar_tag_len(const char *p) {
    if (*p != '$') return 0;
    const char *q = p + 1;
    if (std::isdigit((unsigned char)*q)) return 0;  // $1 is a parameter
    while (*q && (std::isalnum((unsigned char)*q) || *q == '_')) ++q;
    return *q == '$' ? (std::size_t)(q - p + 1) : 0;
}

// The end of the quoted token starting at p ('...', E'...', "...", $tag$...$tag$): the
// character after its closing quote, or the terminating NUL. Returns p when p starts none.
const char *skip_quoted(const char *text, const char *p) {
    std::size_t tag = dollar_tag_len(p);
    if (tag > 0) {
        const char *end = p + tag;
        while (*end && std::strncmp(end, p, tag) != 0) ++end;
        return *end ? end + tag : end;
    }
    if (*p != '\'' && *p != '"') return p;
    char quote = *p;
    bool escape_string = quote == '\'' && p > text && (p[-1] == 'E' || p[-1] == 'e');
    const char *q = p + 1;
    while (*q) {
        if (escape_string && *q == '\\' && q[1]) {
            q += 2;
        } else if (*q == quote && q[1] == quote) {
            q += 2;
        } else if (*q == quote) {
            return q + 1;
        } else {
            ++q;
        }
    }
    return q;
}

// The end of the parenthesised list starting at p (which is '('), skipping quoted tokens.
const char *skip_parens(const char *text, const char *p, bool dq_ident) {
    int depth = 0;
    const char *end = p;
    while (*end) {
        if (*end == '\'' || *end == '$' || (dq_ident && *end == '"')) {
            const char *after = skip_quoted(text, end);
            if (after != end) {
                end = after;
                continue;
            }
        }
        if (*end == '(') ++depth;
        if (*end == ')' && --depth == 0) return end + 1;
        ++end;
    }
    return end;
}

// Masks literals and the whole argument list of every call of a sensitive function, so that
// keys written without quotes, psql variables or casts are hidden too. With dq_ident, "..."
// is a quoted identifier (kept); without, it is plain text whose inside is scanned too (as in
// CONTEXT's `SQL statement "..."` and pgaudit's CSV fields).
char *mask_text(const char *text, bool dq_ident) {
    if (std::strlen(text) > kMaxMaskInput) return pstrdup(kRedacted);
    StringInfoData out;
    initStringInfo(&out);
    int marks = 0;
    auto mark = [&]() -> bool {  // false: the mask budget is spent; the rest is one marker
        if (++marks > kMaxMarks) {
            appendStringInfoString(&out, kRedacted);
            return false;
        }
        appendStringInfoString(&out, kRedacted);
        return true;
    };
    const char *p = text;
    while (*p) {
        std::size_t tag = dollar_tag_len(p);
        if (tag > 0 || *p == '\'') {  // a literal ('...', E'...' after the word E, $tag$...$tag$)
            const char *end = skip_quoted(text, p);
            if (tag > 0) {
                appendBinaryStringInfo(&out, p, (int)tag);
                if (!mark()) return out.data;
                bool closed =
                    end - p >= (std::ptrdiff_t)(2 * tag) && std::strncmp(end - tag, p, tag) == 0;
                if (closed) appendBinaryStringInfo(&out, p, (int)tag);
            } else {
                appendStringInfoChar(&out, '\'');
                if (!mark()) return out.data;
                appendStringInfoChar(&out, '\'');
            }
            p = end;
            continue;
        }
        // An identifier, unquoted or quoted: a sensitive one followed by '(' is a call.
        const char *ident = nullptr;
        std::size_t ident_len = 0;
        const char *after = p;
        if (is_ident_char(*p)) {
            ident = p;
            while (is_ident_char(*after)) ++after;
            ident_len = (std::size_t)(after - p);
        } else if (*p == '"' && dq_ident) {
            after = skip_quoted(text, p);
            ident = p + 1;
            ident_len = after > p + 1 && after[-1] == '"' ? (std::size_t)(after - p - 2) : 0;
        }
        if (ident != nullptr) {
            if (ident_len > 0 && is_sensitive_ident(ident, ident_len)) {
                const char *q = skip_space_and_comments(after);
                if (*q == '(') {
                    appendBinaryStringInfo(&out, p, (int)(after - p));
                    appendStringInfoChar(&out, '(');
                    if (!mark()) return out.data;
                    appendStringInfoChar(&out, ')');
                    p = skip_parens(text, q, dq_ident);
                    continue;
                }
            }
            // A word or quoted identifier is copied whole, so a name inside a word never
            // matches.
            appendBinaryStringInfo(&out, p, (int)(after - p));
            p = after;
            continue;
        }
        appendStringInfoChar(&out, *p++);
    }
    return out.data;
}

// PostgreSQL's error messages quote the values they echo in double quotes
// (invalid input syntax for type uuid: "..."): mask everything from the first double quote
// to the last one.
char *mask_quoted_values(const char *text) {
    const char *first = std::strchr(text, '"');
    const char *last = std::strrchr(text, '"');
    if (first == nullptr || last == first) return pstrdup(text);
    StringInfoData out;
    initStringInfo(&out);
    appendBinaryStringInfo(&out, text, (int)(first - text + 1));
    appendStringInfoString(&out, kRedacted);
    appendStringInfoString(&out, last);
    return out.data;
}

// A pgaudit line: `AUDIT: type,statement id,substatement id,class,command,object type,object
// name,statement,parameter[,rows]`. Keeps the first seven fields (who did what to which
// object) and masks the statement text and the parameters.
char *mask_audit_line(const char *text) {
    const char *p = text + sizeof(kAuditPrefix) - 1;
    for (int field = 0; field < 7 && *p; ++field) {
        if (*p == '"') {  // a CSV-quoted field ("" inside is a quote)
            ++p;
            while (*p && !(*p == '"' && p[1] != '"')) p += (*p == '"') ? 2 : 1;
            if (*p) ++p;
        }
        while (*p && *p != ',') ++p;
        if (*p == ',') ++p;
    }
    StringInfoData out;
    initStringInfo(&out);
    appendBinaryStringInfo(&out, text, (int)(p - text));
    if (p > text && p[-1] != ',') appendStringInfoChar(&out, ',');
    appendStringInfoString(&out, kRedacted);
    return out.data;
}

bool is_sensitive(const ErrorData *edata) {
    return sensitive_text(debug_query_string) || sensitive_text(edata->message) ||
           mentions_name(edata->detail) || mentions_name(edata->detail_log) ||
           mentions_name(edata->context) || sensitive_text(edata->internalquery);
}

void redact(ErrorData *edata) {
    bool deadlock = edata->sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED;
    if (!is_sensitive(edata)) {
        // The process list of a deadlock report holds other backends' statements, which this
        // backend cannot judge (a wrapper, an EXECUTE of their prepared statement): mask all.
        if (deadlock && edata->detail_log) edata->detail_log = mask_text(edata->detail_log, false);
        return;
    }
    if (edata->message &&
        std::strncmp(edata->message, kAuditPrefix, sizeof(kAuditPrefix) - 1) == 0) {
        edata->message = mask_audit_line(edata->message);
    } else if (edata->elevel < ERROR) {
        // Statement and duration logs carry the SQL text and bind values: mask them.
        if (edata->message) edata->message = mask_text(edata->message, true);
        if (edata->detail)
            edata->detail = std::strncmp(edata->detail, "parameters:", 11) == 0
                                ? pstrdup("parameters: [redacted by pg_alpaca]")
                                : mask_text(edata->detail, true);
    } else {
        // An error goes to the client as well as to the log. pg_alpaca's own messages never
        // echo a value, but PostgreSQL's do (a key passed where a uuid is expected, a key
        // written without quotes): mask what they quote.
        if (edata->message) edata->message = mask_quoted_values(edata->message);
        if (edata->detail) edata->detail = mask_quoted_values(edata->detail);
        if (edata->hint) edata->hint = mask_quoted_values(edata->hint);
    }
    // detail_log (deadlock reports: every process's statement) goes to the log only.
    if (edata->detail_log)
        edata->detail_log = mask_quoted_values(mask_text(edata->detail_log, false));
    // CONTEXT may hold bind values ("extended query with parameters: $1 = '...'") and
    // statements with literals (SQL statement "..."); it is hidden from the log but still
    // sent to the client, masked.
    if (edata->context) edata->context = mask_text(edata->context, false);
    if (edata->internalquery) edata->internalquery = mask_text(edata->internalquery, true);
    // No error position: the client would print the line of its query around it.
    edata->cursorpos = 0;
    edata->internalpos = 0;
    edata->hide_stmt = true;
    edata->hide_ctx = true;
}

void redact_hook(ErrorData *edata) {
    if (g_redaction_enabled && edata != nullptr) redact(edata);
    if (g_previous_hook) g_previous_hook(edata);
}

// pg_alpaca.redact_functions: a comma-separated list of function names (optionally
// schema-qualified or double-quoted; the schema is ignored, matching is case-insensitive).
bool check_redact_functions(char **newval, void **extra, GucSource) {
    auto *list = static_cast<ExtraNames *>(std::malloc(sizeof(ExtraNames)));
    if (list == nullptr) {
        GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
        return false;
    }
    list->count = 0;
    const char *p = *newval != nullptr ? *newval : "";
    while (*p) {
        while (std::isspace((unsigned char)*p) || *p == ',') ++p;
        if (*p == '\0') break;
        char name[NAMEDATALEN];
        std::size_t n = 0;
        bool bad = false;
        // One possibly qualified name: parts separated by '.', each bare or "quoted"; the last
        // part is kept.
        for (;;) {
            n = 0;
            if (*p == '"') {
                for (++p; *p && !(*p == '"' && p[1] != '"'); ++p) {
                    if (*p == '"') ++p;
                    if (n >= NAMEDATALEN - 1)
                        bad = true;
                    else
                        name[n++] = lower(*p);
                }
                if (*p == '"')
                    ++p;
                else
                    bad = true;
            } else {
                while (is_ident_char(*p)) {
                    if (n >= NAMEDATALEN - 1)
                        bad = true;
                    else
                        name[n++] = lower(*p);
                    ++p;
                }
            }
            if (*p != '.') break;
            ++p;
        }
        while (std::isspace((unsigned char)*p)) ++p;
        if (n == 0 || (*p != ',' && *p != '\0')) bad = true;
        if (bad) {
            std::free(list);
            GUC_check_errdetail(
                "pg_alpaca.redact_functions must be a comma-separated list of "
                "function names of at most %d bytes each.",
                NAMEDATALEN - 1);
            return false;
        }
        if (list->count >= kMaxExtra) {
            std::free(list);
            GUC_check_errdetail("pg_alpaca.redact_functions holds at most %d names.", kMaxExtra);
            return false;
        }
        name[n] = '\0';
        std::memcpy(list->names[list->count++], name, n + 1);
    }
    *extra = list;
    return true;
}

void assign_redact_functions(const char *, void *extra) {
    g_extra = static_cast<const ExtraNames *>(extra);
}

}  // namespace

char *mask_sql_literals(const char *text) {
    return mask_text(text, true);
}

void install_log_redaction() {
    DefineCustomBoolVariable(
        "pg_alpaca.log_redaction",
        "Masks string literals and bind parameters of statements that pass credentials to "
        "pg_alpaca functions in the server log.",
        nullptr, &g_redaction_enabled, true, PGC_SUSET, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable(
        "pg_alpaca.redact_functions",
        "Further functions (for example your wrappers of alpaca_store_credential) whose calls "
        "the log redaction masks like pg_alpaca's own.",
        "A comma-separated list of function names; schemas are ignored, matching is "
        "case-insensitive.",
        &g_redact_functions, "", PGC_SUSET, GUC_LIST_INPUT, check_redact_functions,
        assign_redact_functions, nullptr);
    g_previous_hook = emit_log_hook;
    emit_log_hook = redact_hook;
}

}  // namespace pga::ext
