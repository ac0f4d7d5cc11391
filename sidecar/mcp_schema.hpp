// Tool arguments: one description per parameter gives both the JSON Schema a tool publishes
// (inputSchema, with additionalProperties: false) and the check that enforces it before any
// upstream call. Decimals (quantities, prices) are strings of digits, never floats; a JSON
// number is accepted only through its exact source text, under the same pattern.
#pragma once
#include "common/cpp_only.hpp"
#include "sidecar/mcp_json.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

namespace pga::sidecar::mcp {

enum class ParamKind { String, Decimal, Integer, Boolean };

struct Param {
    std::string name;
    ParamKind kind = ParamKind::String;
    std::string description;
    bool required = false;
    // String: an anchored ECMAScript pattern (also published), checked after max_length.
    std::string pattern;
    std::shared_ptr<const std::regex> regex;
    std::size_t max_length = 64;
    std::vector<std::string> choices;       // String: enum
    std::int64_t minimum = 0, maximum = 0;  // Integer bounds (inclusive)
    std::string default_json;               // published as "default" (JSON text), not applied here
};

Param string_param(std::string name, std::string description, std::string pattern,
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
bool is_plain_decimal(const std::string &s);

}  // namespace pga::sidecar::mcp
