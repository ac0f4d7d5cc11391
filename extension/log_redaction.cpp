// Written in plain C style on purpose: a log hook runs inside error reporting, where no C++
// exception may be thrown and no allocation may fail loudly. It uses only palloc in the
// ErrorContext (which always has reserve space) and plain loops.
#include "extension/log_redaction.hpp"

#include <cctype>
#include <cstring>

extern "C" {
#include "postgres.h"
#include "lib/stringinfo.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "tcop/tcopprot.h"
}

namespace pga::ext {
namespace {

emit_log_hook_type g_previous_hook = nullptr;
bool g_redaction_enabled = true;

// Functions whose arguments carry plaintext keys, tickets or Fernet material.
const char *const kSensitiveNames[] = {
    "alpaca_store_credential",
    "alpaca_update_credential",
    "alpaca_redeem_ticket",
    "alpaca_import_fernet_credential",
    "alpaca_set_user_jwt",
    "_seal",
    "_mint_ticket",
    "_verify_ticket",
    "_redeem_prepare",
    "_fernet_decrypt",
    "_alpaca_get",
};
const char kRedacted[] = "[redacted by pg_alpaca]";

bool contains_ci(const char *haystack, const char *needle) {
    if (haystack == nullptr) return false;
    std::size_t n = std::strlen(needle);
    for (const char *p = haystack; *p; ++p) {
        std::size_t i = 0;
        while (i < n && p[i] && std::tolower((unsigned char)p[i]) == needle[i]) ++i;
        if (i == n) return true;
    }
    return false;
}

bool mentions_sensitive(const char *text) {
    if (text == nullptr) return false;
    for (const char *name : kSensitiveNames)
        if (contains_ci(text, name)) return true;
    return false;
}

bool is_ident_char(char c) {
    return std::isalnum((unsigned char)c) || c == '_' || c == '$';
}

// Length of the sensitive function name that starts at p (a whole word), or 0.
std::size_t sensitive_name_at(const char *text, const char *p) {
    if (p > text && is_ident_char(p[-1])) return 0;
    for (const char *name : kSensitiveNames) {
        std::size_t n = std::strlen(name), i = 0;
        while (i < n && p[i] && std::tolower((unsigned char)p[i]) == name[i]) ++i;
        if (i == n && !is_ident_char(p[n])) return n;
    }
    return 0;
}

// Length of a dollar-quote tag starting at p ("$$" or "$tag$"), or 0.
std::size_t dollar_tag_len(const char *p) {
    if (*p != '$') return 0;
    const char *q = p + 1;
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

// Masks literals; with mask_calls, also the whole argument list of every call of a sensitive
// function, so that keys written without quotes, psql variables or casts are hidden too.
char *mask_text(const char *text, bool mask_calls) {
    StringInfoData out;
    initStringInfo(&out);
    const char *p = text;
    while (*p) {
        std::size_t name = mask_calls ? sensitive_name_at(text, p) : 0;
        if (name > 0) {
            const char *q = p + name;
            while (std::isspace((unsigned char)*q)) ++q;
            if (*q == '(') {
                int depth = 0;
                const char *end = q;
                while (*end) {
                    const char *after = skip_quoted(text, end);
                    if (after != end) {
                        end = after;
                        continue;
                    }
                    if (*end == '(') ++depth;
                    if (*end == ')' && --depth == 0) break;
                    ++end;
                }
                appendBinaryStringInfo(&out, p, (int)(q - p));
                appendStringInfoChar(&out, '(');
                appendStringInfoString(&out, kRedacted);
                appendStringInfoChar(&out, ')');
                p = *end ? end + 1 : end;
                continue;
            }
            appendBinaryStringInfo(&out, p, (int)name);
            p += name;
            continue;
        }
        if (*p == '"') {  // a quoted identifier: keep it
            const char *end = skip_quoted(text, p);
            appendBinaryStringInfo(&out, p, (int)(end - p));
            p = end;
            continue;
        }
        std::size_t tag = dollar_tag_len(p);
        if (tag > 0 || *p == '\'') {
            const char *end = skip_quoted(text, p);
            if (tag > 0) {
                appendBinaryStringInfo(&out, p, (int)tag);
                appendStringInfoString(&out, kRedacted);
                bool closed =
                    end - p >= (std::ptrdiff_t)(2 * tag) && std::strncmp(end - tag, p, tag) == 0;
                if (closed) appendBinaryStringInfo(&out, p, (int)tag);
            } else {
                appendStringInfoChar(&out, '\'');
                appendStringInfoString(&out, kRedacted);
                appendStringInfoChar(&out, '\'');
            }
            p = end;
            continue;
        }
        if (is_ident_char(*p)) {  // copy a whole word, so a name inside a word never matches
            while (is_ident_char(*p)) appendStringInfoChar(&out, *p++);
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

void redact_hook(ErrorData *edata) {
    if (g_redaction_enabled && edata != nullptr &&
        (mentions_sensitive(debug_query_string) || mentions_sensitive(edata->message) ||
         mentions_sensitive(edata->detail) || mentions_sensitive(edata->detail_log) ||
         mentions_sensitive(edata->internalquery))) {
        if (edata->elevel < ERROR) {
            // Statement and duration logs carry the SQL text and bind values: mask them.
            if (edata->message) edata->message = mask_sql_literals(edata->message);
            if (edata->detail)
                edata->detail = std::strncmp(edata->detail, "parameters:", 11) == 0
                                    ? pstrdup("parameters: [redacted by pg_alpaca]")
                                    : mask_sql_literals(edata->detail);
            if (edata->detail_log) edata->detail_log = mask_sql_literals(edata->detail_log);
        } else {
            // An error goes to the client as well as to the log. pg_alpaca's own messages never
            // echo a value, but PostgreSQL's do (a key passed where a uuid is expected, a key
            // written without quotes): mask what they quote.
            if (edata->message) edata->message = mask_quoted_values(edata->message);
            if (edata->detail) edata->detail = mask_quoted_values(edata->detail);
            if (edata->detail_log) edata->detail_log = mask_quoted_values(edata->detail_log);
            if (edata->hint) edata->hint = mask_quoted_values(edata->hint);
        }
        // CONTEXT may hold bind values ("extended query with parameters: $1 = '...'"); it is
        // hidden from the log but still sent to the client.
        if (edata->context) edata->context = mask_text(edata->context, false);
        if (edata->internalquery) edata->internalquery = mask_sql_literals(edata->internalquery);
        // No error position: the client would print the line of its query around it.
        edata->cursorpos = 0;
        edata->internalpos = 0;
        edata->hide_stmt = true;
        edata->hide_ctx = true;
    }
    if (g_previous_hook) g_previous_hook(edata);
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
    g_previous_hook = emit_log_hook;
    emit_log_hook = redact_hook;
}

}  // namespace pga::ext
