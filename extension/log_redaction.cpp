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
    "alpaca_store_credential", "alpaca_update_credential", "alpaca_redeem_ticket",
    "alpaca_import_fernet_credential", "_seal", "_mint_ticket", "_verify_ticket",
    "_redeem_prepare", "_fernet_decrypt", "_alpaca_get",
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

// Length of a dollar-quote tag starting at p ("$$" or "$tag$"), or 0.
std::size_t dollar_tag_len(const char *p) {
    if (*p != '$') return 0;
    const char *q = p + 1;
    while (*q && (std::isalnum((unsigned char)*q) || *q == '_')) ++q;
    return *q == '$' ? (std::size_t)(q - p + 1) : 0;
}

void redact_hook(ErrorData *edata) {
    if (g_redaction_enabled && edata != nullptr &&
        (mentions_sensitive(edata->message) || mentions_sensitive(edata->detail) ||
         mentions_sensitive(edata->internalquery) ||
         (edata->elevel >= ERROR && mentions_sensitive(debug_query_string)))) {
        // Statement logs (below ERROR) carry the SQL text and bind values: mask them. An
        // error's own message goes to the client too and pg_alpaca's messages never echo a
        // value, so it stays readable; its STATEMENT and CONTEXT lines are hidden below.
        if (edata->elevel < ERROR) {
            if (edata->message) edata->message = mask_sql_literals(edata->message);
            if (edata->detail)
                edata->detail = std::strncmp(edata->detail, "parameters:", 11) == 0
                                    ? pstrdup("parameters: [redacted by pg_alpaca]")
                                    : mask_sql_literals(edata->detail);
            if (edata->detail_log) edata->detail_log = mask_sql_literals(edata->detail_log);
        }
        if (edata->internalquery) edata->internalquery = mask_sql_literals(edata->internalquery);
        edata->hide_stmt = true;
        edata->hide_ctx = true;
    }
    if (g_previous_hook) g_previous_hook(edata);
}

}  // namespace

char *mask_sql_literals(const char *text) {
    StringInfoData out;
    initStringInfo(&out);
    const char *p = text;
    while (*p) {
        std::size_t tag = dollar_tag_len(p);
        if (tag > 0) {  // $tag$ ... $tag$
            const char *end = p + tag;
            while (*end && std::strncmp(end, p, tag) != 0) ++end;
            appendBinaryStringInfo(&out, p, (int)tag);
            appendStringInfoString(&out, kRedacted);
            if (*end) {
                appendBinaryStringInfo(&out, p, (int)tag);
                p = end + tag;
            } else {
                p = end;
            }
            continue;
        }
        if (*p == '\'') {  // '...' with '' escapes; backslash escapes in E'...'
            bool escape_string = p > text && (p[-1] == 'E' || p[-1] == 'e');
            ++p;
            while (*p) {
                if (escape_string && *p == '\\' && p[1]) {
                    p += 2;
                } else if (*p == '\'' && p[1] == '\'') {
                    p += 2;
                } else if (*p == '\'') {
                    break;
                } else {
                    ++p;
                }
            }
            appendStringInfoChar(&out, '\'');
            appendStringInfoString(&out, kRedacted);
            appendStringInfoChar(&out, '\'');
            if (*p) ++p;
            continue;
        }
        appendStringInfoChar(&out, *p++);
    }
    return out.data;
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
