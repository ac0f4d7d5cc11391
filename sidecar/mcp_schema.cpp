#include "sidecar/mcp_schema.hpp"

#include "common/error.hpp"

#include <cctype>

namespace pga::sidecar::mcp {
namespace {

constexpr std::size_t kDecimalMaxLength = 25;

bool digit(char c) {
    return c >= '0' && c <= '9';
}
bool upper(char c) {
    return c >= 'A' && c <= 'Z';
}
bool hex(char c) {
    return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool uuid_text(std::string_view s) {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !hex(s[i])) return false;
    }
    return true;
}

bool symbol_text(std::string_view s) {
    bool after_word = false;  // the previous character belongs to a word
    for (const char c : s) {
        if (upper(c) || digit(c)) {
            after_word = true;
        } else if ((c == '.' || c == '/') && after_word) {
            after_word = false;
        } else {
            return false;
        }
    }
    return after_word;
}

bool stock_text(std::string_view s) {
    const std::size_t dot = s.find('.');
    const std::string_view base = s.substr(0, dot);
    if (base.empty()) return false;
    for (const char c : base)
        if (!upper(c)) return false;
    if (dot == std::string_view::npos) return true;
    const std::string_view cls = s.substr(dot + 1);
    if (cls.empty()) return false;
    for (const char c : cls)
        if (!upper(c) && !digit(c)) return false;
    return true;
}

bool client_id_text(std::string_view s) {
    if (s.empty() || s.size() > 128) return false;
    for (const char c : s)
        if (!upper(c) && !digit(c) && !(c >= 'a' && c <= 'z') && c != '.' && c != '_' && c != ':' &&
            c != '-')
            return false;
    return true;
}

bool decimal_text(std::string_view s) {
    const std::size_t dot = s.find('.');
    const std::string_view ip = s.substr(0, dot);
    if (ip.empty() || ip.size() > 15 || (ip.size() > 1 && ip[0] == '0')) return false;
    for (const char c : ip)
        if (!digit(c)) return false;
    if (dot == std::string_view::npos) return true;
    const std::string_view fp = s.substr(dot + 1);
    if (fp.empty() || fp.size() > 9) return false;
    for (const char c : fp)
        if (!digit(c)) return false;
    return true;
}

void write_text(JsonWriter &w, const std::string &s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

std::string bad(const Param &p, const std::string &what) {
    return "invalid argument '" + p.name + "': " + what;
}

std::string check_one(const Param &p, const Json &v, std::string &out) {
    switch (p.kind) {
        case ParamKind::Boolean:
            if (!v.is_bool()) return bad(p, "must be true or false");
            out = v.type == Json::Type::True ? "true" : "false";
            return {};
        case ParamKind::Integer: {
            if (!v.is_number()) return bad(p, "must be an integer");
            const std::string &t = v.text;
            const bool digits = !t.empty() && t.size() <= 18 &&
                                t.find_first_not_of("-0123456789") == std::string::npos &&
                                t.find('-', 1) == std::string::npos &&
                                std::isdigit(static_cast<unsigned char>(t.back()));
            if (!digits) return bad(p, "must be an integer");
            const std::int64_t n = std::stoll(t);
            if (n < p.minimum || n > p.maximum)
                return bad(p, "must be between " + std::to_string(p.minimum) + " and " +
                                  std::to_string(p.maximum));
            out = std::to_string(n);
            return {};
        }
        case ParamKind::Decimal: {
            if (!v.is_string() && !v.is_number())
                return bad(p, "must be a decimal string such as \"10\" or \"0.5\"");
            if (v.text.size() > kDecimalMaxLength || !is_plain_decimal(v.text))
                return bad(p, quote_for_error(v.text) +
                                  " is not a plain decimal (digits, at most 9 after the point)");
            if (v.text.find_first_not_of("0.") == std::string::npos)
                return bad(p, "must be greater than 0");
            out = v.text;
            return {};
        }
        case ParamKind::String: {
            if (!v.is_string()) return bad(p, "must be a string");
            if (!p.choices.empty()) {
                for (const auto &c : p.choices)
                    if (c == v.text) {
                        out = v.text;
                        return {};
                    }
                std::string list;
                for (const auto &c : p.choices) list += (list.empty() ? "" : ", ") + c;
                return bad(p, quote_for_error(v.text) + " is not one of " + list);
            }
            if (v.text.size() > p.max_length)
                return bad(p, "longer than " + std::to_string(p.max_length) + " characters");
            if (p.pattern && !p.pattern->matches(v.text))
                return bad(p, quote_for_error(v.text) + " does not match " + p.pattern->regex);
            out = v.text;
            return {};
        }
    }
    return bad(p, "unsupported");
}

Param base(std::string name, ParamKind kind, std::string description) {
    Param p;
    p.name = std::move(name);
    p.kind = kind;
    p.description = std::move(description);
    return p;
}

}  // namespace

const Pattern kUuidPattern{
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", uuid_text};
const Pattern kSymbolPattern{"^[A-Z0-9]+([./][A-Z0-9]+)*$", symbol_text};
const Pattern kStockPattern{"^[A-Z]+([.][A-Z0-9]+)?$", stock_text};
const Pattern kClientIdPattern{"^[A-Za-z0-9._:-]{1,128}$", client_id_text};
const Pattern kDecimalPattern{"^(0|[1-9][0-9]{0,14})(\\.[0-9]{1,9})?$", decimal_text};

bool is_plain_decimal(std::string_view s) {
    return decimal_text(s);
}

Param string_param(std::string name, std::string description, const Pattern &pattern,
                   std::size_t max_length, bool req) {
    Param p = base(std::move(name), ParamKind::String, std::move(description));
    p.pattern = &pattern;
    p.max_length = max_length;
    p.required = req;
    return p;
}

Param enum_param(std::string name, std::string description, std::vector<std::string> choices,
                 std::string default_value) {
    Param p = base(std::move(name), ParamKind::String, std::move(description));
    p.choices = std::move(choices);
    if (!default_value.empty()) p.default_json = "\"" + default_value + "\"";
    return p;
}

Param decimal_param(std::string name, std::string description, bool req) {
    Param p = base(std::move(name), ParamKind::Decimal, std::move(description));
    p.pattern = &kDecimalPattern;
    p.max_length = kDecimalMaxLength;
    p.required = req;
    return p;
}

Param integer_param(std::string name, std::string description, std::int64_t minimum,
                    std::int64_t maximum, std::int64_t default_value) {
    Param p = base(std::move(name), ParamKind::Integer, std::move(description));
    p.minimum = minimum;
    p.maximum = maximum;
    p.default_json = std::to_string(default_value);
    return p;
}

Param boolean_param(std::string name, std::string description) {
    Param p = base(std::move(name), ParamKind::Boolean, std::move(description));
    p.default_json = "false";
    return p;
}

Param required(Param p) {
    p.required = true;
    return p;
}

std::string validate_arguments(const Json *arguments, const std::vector<Param> &params, Args &out) {
    out.clear();
    static const Json empty = Json::object();
    const Json &args = arguments && arguments->type != Json::Type::Null ? *arguments : empty;
    if (!args.is_object()) return "the arguments must be a JSON object";
    for (const auto &m : args.members) {
        const Param *p = nullptr;
        for (const auto &q : params)
            if (q.name == m.first) p = &q;
        if (!p) return "unknown argument " + quote_for_error(m.first);
        if (m.second.type == Json::Type::Null) return bad(*p, "must not be null");
        std::string value;
        std::string err = check_one(*p, m.second, value);
        if (!err.empty()) return err;
        out.emplace(p->name, std::move(value));
    }
    for (const auto &p : params)
        if (p.required && !out.count(p.name)) return "missing required argument '" + p.name + "'";
    return {};
}

void write_input_schema(JsonWriter &w, const std::vector<Param> &params) {
    w.StartObject();
    w.Key("type");
    w.String("object");
    w.Key("properties");
    w.StartObject();
    for (const auto &p : params) {
        write_text(w, p.name);
        w.StartObject();
        w.Key("description");
        write_text(w, p.description);
        switch (p.kind) {
            case ParamKind::Boolean:
                w.Key("type");
                w.String("boolean");
                break;
            case ParamKind::Integer:
                w.Key("type");
                w.String("integer");
                w.Key("minimum");
                w.Int64(p.minimum);
                w.Key("maximum");
                w.Int64(p.maximum);
                break;
            case ParamKind::Decimal:
                w.Key("type");
                w.StartArray();
                w.String("string");
                w.String("number");
                w.EndArray();
                w.Key("pattern");
                w.String(p.pattern->regex);
                w.Key("maxLength");
                w.Uint64(p.max_length);
                w.Key("exclusiveMinimum");
                w.Int(0);
                break;
            case ParamKind::String:
                w.Key("type");
                w.String("string");
                if (!p.choices.empty()) {
                    w.Key("enum");
                    w.StartArray();
                    for (const auto &c : p.choices) write_text(w, c);
                    w.EndArray();
                } else if (p.pattern) {
                    w.Key("pattern");
                    w.String(p.pattern->regex);
                    w.Key("maxLength");
                    w.Uint64(p.max_length);
                }
                break;
        }
        if (!p.default_json.empty()) {
            w.Key("default");
            w.RawValue(p.default_json.data(), p.default_json.size(), rapidjson::kStringType);
        }
        w.EndObject();
    }
    w.EndObject();
    bool any = false;
    for (const auto &p : params) any = any || p.required;
    if (any) {
        w.Key("required");
        w.StartArray();
        for (const auto &p : params)
            if (p.required) write_text(w, p.name);
        w.EndArray();
    }
    w.Key("additionalProperties");
    w.Bool(false);
    w.EndObject();
}

}  // namespace pga::sidecar::mcp
