// Tool arguments: one description per parameter gives both the JSON Schema a tool publishes
// (inputSchema, with additionalProperties: false) and the check that enforces it before any
// upstream call. Decimals (quantities, prices) are strings of digits, never floats; a JSON
// number is accepted only through its exact source text, under the same pattern.
#pragma once
#include "common/cpp_only.hpp"
#include "sidecar/mcp_json.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace pga::sidecar::mcp {

// A string pattern: the anchored ECMAScript regular expression a schema publishes, and the
// hand-written check that enforces exactly it (no regex engine at run time: bounded, linear).
struct Pattern {
    const char *regex;
    bool (*matches)(std::string_view);
};

extern const Pattern kUuidPattern;      // 8-4-4-4-12 hex digits, either case
extern const Pattern kSymbolPattern;    // [A-Z0-9] words joined by single '.' or '/'
extern const Pattern kStockPattern;     // letters, optionally '.' and a class (BRK.B)
extern const Pattern kClientIdPattern;  // 1 to 128 of A-Z a-z 0-9 . _ : -
extern const Pattern kDecimalPattern;   // digits (no leading zeros), optionally . and 1-9 digits

enum class ParamKind { String, Decimal, Integer, Boolean };

struct Param {
    std::string name;
    ParamKind kind = ParamKind::String;
    std::string description;
    bool required = false;
    // String and Decimal: the pattern (published, and checked after max_length).
    const Pattern *pattern = nullptr;
    std::size_t max_length = 64;
    std::vector<std::string> choices;       // String: enum
    std::int64_t minimum = 0, maximum = 0;  // Integer bounds (inclusive)
    std::string default_json;               // published as "default" (JSON text), not applied here
};

Param string_param(std::string name, std::string description, const Pattern &pattern,
                   std::size_t max_length, bool required = false);
Param enum_param(std::string name, std::string description, std::vector<std::string> choices,
                 std::string default_value = {});
Param decimal_param(std::string name, std::string description, bool required = false);
Param integer_param(std::string name, std::string description, std::int64_t minimum,
                    std::int64_t maximum, std::int64_t default_value);
Param boolean_param(std::string name, std::string description);
Param required(Param p);

// The validated arguments by name: strings as decoded, decimals and integers as their text,
// booleans as "true"/"false". Absent optional parameters are absent.
using Args = std::map<std::string, std::string>;

// Checks `arguments` (absent = {}) against params. Returns "" and fills out, or a message for
// the agent naming the argument (its value repeated only escaped and cut short).
std::string validate_arguments(const Json *arguments, const std::vector<Param> &params, Args &out);

// {"type":"object","properties":{...},"required":[...],"additionalProperties":false}
void write_input_schema(JsonWriter &w, const std::vector<Param> &params);

// Plain positive decimal text: digits, optionally '.' and 1..9 digits; no sign, no exponent.
bool is_plain_decimal(std::string_view s);

}  // namespace pga::sidecar::mcp
