// The MCP server's JSON tree: RapidJSON's SAX reader (iterative, numbers as their source text)
// over a MemoryStream, which no SIMD specialisation of RapidJSON 1.1.0 applies to.
#include "sidecar/mcp_json.hpp"

#pragma GCC visibility push(hidden)
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/error/en.h>
#pragma GCC visibility pop

#include <unordered_set>

namespace pga::sidecar::mcp {
namespace {

constexpr unsigned kParseFlags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseNumbersAsStringsFlag;

class TreeBuilder {
  public:
    TreeBuilder(Json &root, const Limits &limits) : root_(root), limits_(limits) {}

    bool Null() { return value(Json{}); }
    bool Bool(bool b) { return value(Json::boolean(b)); }
    bool RawNumber(const char *s, rapidjson::SizeType n, bool) {
        return value(Json::number(std::string(s, n)));
    }
    bool String(const char *s, rapidjson::SizeType n, bool) {
        if (!decoded_ok(s, n)) return false;
        return value(Json::string(std::string(s, n)));
    }
    bool StartObject() { return open(Json::object()); }
    bool Key(const char *s, rapidjson::SizeType n, bool) {
        if (!decoded_ok(s, n)) return false;
        std::string k(s, n);
        if (!keys_.back().insert(k).second) return fail("duplicate object key");
        key_ = std::move(k);
        return true;
    }
    bool EndObject(rapidjson::SizeType) { return close(); }
    bool StartArray() { return open(Json::array()); }
    bool EndArray(rapidjson::SizeType) { return close(); }
    // Unused with kParseNumbersAsStringsFlag, but the reader's interface names them.
    bool Int(int) { return fail("number"); }
    bool Uint(unsigned) { return fail("number"); }
    bool Int64(std::int64_t) { return fail("number"); }
    bool Uint64(std::uint64_t) { return fail("number"); }
    bool Double(double) { return fail("number"); }

    const char *why() const noexcept { return why_; }

  private:
    bool fail(const char *why) {
        why_ = why;
        return false;
    }
    bool decoded_ok(const char *s, std::size_t n) {
        const std::string_view v(s, n);
        if (v.find('\0') != std::string_view::npos) return fail("U+0000 in a string");
        if (!is_valid_utf8(v)) return fail("invalid UTF-8 in a string");
        return true;
    }
    Json *place(Json v) {
        if (++nodes_ > limits_.max_nodes) {
            fail("too many values");
            return nullptr;
        }
        if (stack_.empty()) {
            root_ = std::move(v);
            return &root_;
        }
        Json &top = *stack_.back();
        if (top.type == Json::Type::Array) {
            top.items.push_back(std::move(v));
            return &top.items.back();
        }
        top.members.emplace_back(std::move(key_), std::move(v));
        key_.clear();
        return &top.members.back().second;
    }
    bool value(Json v) { return place(std::move(v)) != nullptr; }
    bool open(Json v) {
        if (static_cast<int>(stack_.size()) >= limits_.max_depth) return fail("nested too deeply");
        Json *p = place(std::move(v));
        if (!p) return false;
        stack_.push_back(p);
        keys_.emplace_back();
        return true;
    }
    bool close() {
        stack_.pop_back();
        keys_.pop_back();
        return true;
    }

    Json &root_;
    const Limits &limits_;
    std::vector<Json *> stack_;
    std::vector<std::unordered_set<std::string>> keys_;
    std::string key_;
    std::size_t nodes_ = 0;
    const char *why_ = nullptr;
};

void write_string(JsonWriter &w, const std::string &s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

}  // namespace

bool is_valid_utf8(std::string_view s) noexcept {
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    const std::size_t n = s.size();
    std::size_t i = 0;
    while (i < n) {
        const unsigned c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len;
        unsigned lo = 0x80, hi = 0xBF;  // bounds of the second byte
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;  // no UTF-16 surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
        } else {
            return false;
        }
        if (n - i < len) return false;
        if (p[i + 1] < lo || p[i + 1] > hi) return false;
        for (std::size_t k = 2; k < len; ++k)
            if (p[i + k] < 0x80 || p[i + k] > 0xBF) return false;
        i += len;
    }
    return true;
}

const Json *Json::find(std::string_view key) const noexcept {
    if (type != Type::Object) return nullptr;
    for (const auto &m : members)
        if (m.first == key) return &m.second;
    return nullptr;
}

std::string_view Json::string_of(std::string_view key) const noexcept {
    const Json *v = find(key);
    return v && v->is_string() ? std::string_view(v->text) : std::string_view();
}

Json Json::string(std::string s) {
    Json j;
    j.type = Type::String;
    j.text = std::move(s);
    return j;
}
Json Json::number(std::string digits) {
    Json j;
    j.type = Type::Number;
    j.text = std::move(digits);
    return j;
}
Json Json::boolean(bool b) {
    Json j;
    j.type = b ? Type::True : Type::False;
    return j;
}
Json Json::object() {
    Json j;
    j.type = Type::Object;
    return j;
}
Json Json::array() {
    Json j;
    j.type = Type::Array;
    return j;
}
Json &Json::add(std::string key, Json value) {
    members.emplace_back(std::move(key), std::move(value));
    return *this;
}

Json parse_json(std::string_view text, const Limits &limits) {
    if (text.size() > limits.max_bytes) throw ParseError("the JSON text is too large");
    // A raw control character (other than whitespace) is invalid anywhere in JSON; refusing it
    // here keeps it away from every scanner of the reader.
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            throw ParseError("a raw control character in the JSON text");
    }
    Json root;
    TreeBuilder builder(root, limits);
    rapidjson::MemoryStream ms(text.data(), text.size());
    rapidjson::Reader reader;
    const rapidjson::ParseResult ok = reader.Parse<kParseFlags>(ms, builder);
    if (!ok) {
        std::string why = builder.why() ? builder.why() : rapidjson::GetParseError_En(ok.Code());
        throw ParseError("invalid JSON at offset " + std::to_string(ok.Offset()) + ": " + why);
    }
    return root;
}

void write_json(JsonWriter &w, const Json &v) {
    switch (v.type) {
        case Json::Type::Null:
            w.Null();
            return;
        case Json::Type::False:
            w.Bool(false);
            return;
        case Json::Type::True:
            w.Bool(true);
            return;
        case Json::Type::Number:
            w.RawValue(v.text.data(), v.text.size(), rapidjson::kNumberType);
            return;
        case Json::Type::String:
            write_string(w, v.text);
            return;
        case Json::Type::Array:
            w.StartArray();
            for (const auto &i : v.items) write_json(w, i);
            w.EndArray();
            return;
        case Json::Type::Object:
            w.StartObject();
            for (const auto &m : v.members) {
                w.Key(m.first.data(), static_cast<rapidjson::SizeType>(m.first.size()));
                write_json(w, m.second);
            }
            w.EndObject();
            return;
    }
}

std::string to_json(const Json &v) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    write_json(w, v);
    return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace pga::sidecar::mcp
