// The MCP server's JSON: a small owned tree for what clients send and what Alpaca answers,
// parsed under limits (size, depth, node count), and a writer that keeps numbers as their
// exact source text. Money never passes through a double: a JSON number is kept as the text it
// was written as, both when it is read and when it is written out again.
//
// Hostile input is refused with a ParseError (a short printable message, never the input):
// raw control characters, invalid UTF-8 (raw or produced by \u escapes, lone surrogates
// included), U+0000 in a string, duplicate object keys, nesting deeper than max_depth, more
// than max_nodes values, documents larger than max_bytes.
#pragma once
#include "common/cpp_only.hpp"

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// RapidJSON's Writer without the SIMD specialisation RapidJSON 1.1.0 gives exactly
// Writer<StringBuffer> with default flags (it copies a raw 0x1A..0x1F into the output): the
// validating flag keeps the scalar path, which escapes every control character.
// (<cassert> first: declared inside the hidden region, libc's __assert_fail would be hidden
// too, and a build with assertions would not link.)
#include <cassert>
#pragma GCC visibility push(hidden)
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#pragma GCC visibility pop

namespace pga::sidecar::mcp {

using JsonWriter =
    rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                      rapidjson::CrtAllocator, rapidjson::kWriteValidateEncodingFlag>;

struct Json {
    enum class Type { Null, False, True, Number, String, Array, Object };
    Type type = Type::Null;
    std::string text;                                   // String: decoded; Number: source text
    std::vector<Json> items;                            // Array
    std::vector<std::pair<std::string, Json>> members;  // Object, in document order

    bool is_object() const noexcept { return type == Type::Object; }
    bool is_string() const noexcept { return type == Type::String; }
    bool is_number() const noexcept { return type == Type::Number; }
    bool is_bool() const noexcept { return type == Type::True || type == Type::False; }
    // The member named key, or nullptr (also when this is not an object).
    const Json *find(std::string_view key) const noexcept;
    // The member's string, or "" when absent or not a string.
    std::string_view string_of(std::string_view key) const noexcept;

    static Json string(std::string s);
    static Json number(std::string digits);  // the caller vouches for JSON number syntax
    static Json boolean(bool b);
    static Json object();
    static Json array();
    Json &add(std::string key, Json value);  // appends a member (this must be an object)
};

struct Limits {
    std::size_t max_bytes = 1024 * 1024;
    int max_depth = 32;
    std::size_t max_nodes = 100000;
};

class ParseError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Parses one complete JSON document (RFC 8259; whitespace around it allowed).
Json parse_json(std::string_view text, const Limits &limits = {});

// Whether s is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, nothing > U+10FFFF).
bool is_valid_utf8(std::string_view s) noexcept;

// Writes v (numbers by their text).
void write_json(JsonWriter &w, const Json &v);
std::string to_json(const Json &v);

}  // namespace pga::sidecar::mcp
