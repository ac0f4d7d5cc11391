// Alpaca Trading API JSON -> structs. Numbers are never converted to double: the reader hands
// every JSON number over as its exact source text (kParseNumbersAsStringsFlag); a small SAX
// adapter remembers which DOM strings were numbers, so a field can insist on a real string
// (symbol: 5 is an error) or accept either (decimals and integers).
#include "common/alpaca_models.hpp"

#include "common/error.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/encodedstream.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstring>
#include <deque>
#include <limits>
#include <unordered_set>

namespace pga {
namespace {

using rapidjson::SizeType;
using rapidjson::Value;

constexpr unsigned kParseFlags =
    rapidjson::kParseFullPrecisionFlag | rapidjson::kParseNumbersAsStringsFlag |
    rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;
constexpr int kMaxDepth = 64;              // Alpaca nests 4 levels; deeper is hostile or broken
constexpr int kMaxDecimalExponent = 1000;  // PostgreSQL numeric refuses larger exponents

[[noreturn]] void fail(const std::string &where, const std::string &what) {
    throw Error(ErrorCode::Protocol, "alpaca " + where + ": " + what);
}

// A parsed document plus the set of DOM strings that were JSON numbers.
struct Parsed {
    rapidjson::Document doc;
    std::deque<std::string> number_text;       // stable storage (deque never moves elements)
    std::unordered_set<const char *> numbers;  // GetString() pointers of number values

    bool is_number(const Value &v) const {
        return v.IsString() && numbers.count(v.GetString()) != 0;
    }
};

// SAX adapter between the reader and the document.
class Builder {
  public:
    explicit Builder(Parsed &p) : p_(p) {}
    bool Null() { return p_.doc.Null(); }
    bool Bool(bool b) { return p_.doc.Bool(b); }
    // With kParseNumbersAsStringsFlag every number arrives through RawNumber; these remain for
    // completeness of the handler concept.
    bool Int(int i) { return p_.doc.Int(i); }
    bool Uint(unsigned u) { return p_.doc.Uint(u); }
    bool Int64(std::int64_t i) { return p_.doc.Int64(i); }
    bool Uint64(std::uint64_t u) { return p_.doc.Uint64(u); }
    bool Double(double d) { return p_.doc.Double(d); }
    bool RawNumber(const char *s, SizeType len, bool) {
        p_.number_text.emplace_back(s, len);
        const char *stable = p_.number_text.back().c_str();
        p_.numbers.insert(stable);
        return p_.doc.String(stable, len, false);  // not copied: the pointer identifies it
    }
    bool String(const char *s, SizeType len, bool copy) {
        if (std::memchr(s, 0, len) != nullptr) {
            nul_ = true;
            return false;
        }
        return p_.doc.String(s, len, copy);
    }
    bool Key(const char *s, SizeType len, bool copy) {
        if (std::memchr(s, 0, len) != nullptr) {
            nul_ = true;
            return false;
        }
        return p_.doc.Key(s, len, copy);
    }
    bool StartObject() { return enter() && p_.doc.StartObject(); }
    bool EndObject(SizeType n) { return --depth_, p_.doc.EndObject(n); }
    bool StartArray() { return enter() && p_.doc.StartArray(); }
    bool EndArray(SizeType n) { return --depth_, p_.doc.EndArray(n); }

    bool too_deep() const { return too_deep_; }
    bool has_nul() const { return nul_; }

  private:
    bool enter() {
        if (++depth_ > kMaxDepth) {
            too_deep_ = true;
            return false;
        }
        return true;
    }
    Parsed &p_;
    int depth_ = 0;
    bool too_deep_ = false;
    bool nul_ = false;
};

struct Generator {
    std::string_view json;
    Builder *builder;
    rapidjson::ParseResult result;
    bool operator()(rapidjson::Document &) {
        rapidjson::MemoryStream ms(json.data(), json.size());
        rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> is(ms);
        rapidjson::Reader reader;
        result = reader.Parse<kParseFlags>(is, *builder);
        return !result.IsError();
    }
};

void parse_into(Parsed &p, std::string_view json, const char *what) {
    // JSON text never holds a raw NUL; RapidJSON would take one for the end of input.
    if (std::memchr(json.data(), 0, json.size()) != nullptr)
        fail(what, "malformed JSON (NUL byte)");
    Builder builder(p);
    Generator gen{json, &builder, {}};
    p.doc.Populate(gen);
    if (builder.too_deep()) {
        fail(what, "JSON nested deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    if (builder.has_nul()) fail(what, "JSON string contains a NUL character");
    if (gen.result.IsError()) {
        fail(what, std::string("malformed JSON (") +
                       rapidjson::GetParseError_En(gen.result.Code()) + ") at offset " +
                       std::to_string(gen.result.Offset()));
    }
}

bool parse_int64_text(std::string_view s, std::int64_t &out) noexcept {
    if (s.empty()) return false;
    bool neg = false;
    std::size_t i = 0;
    if (s[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == s.size()) return false;
    // Accumulate negatively so INT64_MIN fits.
    std::int64_t v = 0;
    const std::int64_t lim = std::numeric_limits<std::int64_t>::min();
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (c < '0' || c > '9') return false;
        const int d = c - '0';
        if (v < (lim + d) / 10) return false;
        v = v * 10 - d;
    }
    if (!neg) {
        if (v == lim) return false;
        v = -v;
    }
    out = v;
    return true;
}

// Field access on one JSON object; `where` names it ("account", "positions[3]").
class Fields {
  public:
    Fields(const Parsed &p, const Value &obj, std::string where)
        : p_(p), obj_(obj), where_(std::move(where)) {}

    // nullptr when absent or null.
    const Value *get(const char *name) const {
        auto m = obj_.FindMember(name);
        if (m == obj_.MemberEnd() || m->value.IsNull()) return nullptr;
        return &m->value;
    }

    OptString text(const char *name) const {
        const Value *v = get(name);
        if (!v) return std::nullopt;
        if (!v->IsString() || p_.is_number(*v)) bad(name, "expected a string");
        return std::string(v->GetString(), v->GetStringLength());
    }

    std::string required_text(const char *name) const {
        OptString s = text(name);
        if (!s) bad(name, "missing required field");
        if (s->empty()) bad(name, "expected a non-empty string");
        return std::move(*s);
    }

    // A decimal string, or a JSON number taken by its exact source text. "" counts as absent.
    OptString decimal(const char *name) const {
        const Value *v = get(name);
        if (!v) return std::nullopt;
        if (!v->IsString()) bad(name, "expected a decimal string");
        std::string_view s(v->GetString(), v->GetStringLength());
        if (s.empty() && !p_.is_number(*v)) return std::nullopt;
        if (!is_decimal_text(s)) bad(name, "expected a decimal string");
        return std::string(s);
    }

    // An integer, as a JSON number or a numeric string.
    OptInt integer(const char *name) const {
        const Value *v = get(name);
        if (!v) return std::nullopt;
        std::int64_t out = 0;
        if (!v->IsString() || !parse_int64_text({v->GetString(), v->GetStringLength()}, out)) {
            bad(name, "expected an integer");
        }
        return out;
    }

    OptBool boolean(const char *name) const {
        const Value *v = get(name);
        if (!v) return std::nullopt;
        if (!v->IsBool()) bad(name, "expected a boolean");
        return v->GetBool();
    }

    [[noreturn]] void bad(const char *name, const char *what) const {
        fail(where_ + "." + name, what);
    }

  private:
    const Parsed &p_;
    const Value &obj_;
    std::string where_;
};

// Re-serialise a value compactly, numbers by their exact source text. Depth is bounded by
// kMaxDepth at parse time, so the recursion is too.
template <typename W>
void write_value(const Parsed &p, const Value &v, W &w) {
    switch (v.GetType()) {
        case rapidjson::kNullType:
            w.Null();
            break;
        case rapidjson::kFalseType:
            w.Bool(false);
            break;
        case rapidjson::kTrueType:
            w.Bool(true);
            break;
        case rapidjson::kNumberType:
            w.RawValue("0", 1, rapidjson::kNumberType);
            break;  // unused
        case rapidjson::kStringType:
            if (p.is_number(v)) {
                w.RawValue(v.GetString(), v.GetStringLength(), rapidjson::kNumberType);
            } else {
                w.String(v.GetString(), v.GetStringLength());
            }
            break;
        case rapidjson::kArrayType:
            w.StartArray();
            for (const auto &e : v.GetArray()) write_value(p, e, w);
            w.EndArray();
            break;
        case rapidjson::kObjectType:
            w.StartObject();
            for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
                w.Key(m->name.GetString(), m->name.GetStringLength());
                write_value(p, m->value, w);
            }
            w.EndObject();
            break;
    }
}

AlpacaAccount account_from(const Parsed &p, const Value &obj, const std::string &where) {
    if (!obj.IsObject()) fail(where, "expected a JSON object");
    Fields f(p, obj, where);
    AlpacaAccount a;
    a.id = f.required_text("id");
    a.account_number = f.required_text("account_number");
    a.status = f.required_text("status");
    a.crypto_status = f.text("crypto_status");
    a.currency = f.text("currency");
    a.cash = f.decimal("cash");
    a.buying_power = f.decimal("buying_power");
    a.regt_buying_power = f.decimal("regt_buying_power");
    a.daytrading_buying_power = f.decimal("daytrading_buying_power");
    a.non_marginable_buying_power = f.decimal("non_marginable_buying_power");
    a.options_buying_power = f.decimal("options_buying_power");
    a.equity = f.decimal("equity");
    a.last_equity = f.decimal("last_equity");
    a.portfolio_value = f.decimal("portfolio_value");
    a.long_market_value = f.decimal("long_market_value");
    a.short_market_value = f.decimal("short_market_value");
    a.initial_margin = f.decimal("initial_margin");
    a.maintenance_margin = f.decimal("maintenance_margin");
    a.last_maintenance_margin = f.decimal("last_maintenance_margin");
    a.sma = f.decimal("sma");
    a.multiplier = f.decimal("multiplier");
    a.accrued_fees = f.decimal("accrued_fees");
    a.pending_transfer_in = f.decimal("pending_transfer_in");
    a.pending_transfer_out = f.decimal("pending_transfer_out");
    a.daytrade_count = f.integer("daytrade_count");
    a.options_approved_level = f.integer("options_approved_level");
    a.options_trading_level = f.integer("options_trading_level");
    a.pattern_day_trader = f.boolean("pattern_day_trader");
    a.shorting_enabled = f.boolean("shorting_enabled");
    a.trading_blocked = f.boolean("trading_blocked");
    a.transfers_blocked = f.boolean("transfers_blocked");
    a.account_blocked = f.boolean("account_blocked");
    a.trade_suspended_by_user = f.boolean("trade_suspended_by_user");
    a.created_at = f.text("created_at");
    a.balance_asof = f.text("balance_asof");
    return a;
}

AlpacaPosition position_from(const Parsed &p, const Value &obj, const std::string &where) {
    if (!obj.IsObject()) fail(where, "expected a JSON object");
    Fields f(p, obj, where);
    AlpacaPosition x;
    x.symbol = f.required_text("symbol");
    x.asset_id = f.text("asset_id");
    x.exchange = f.text("exchange");
    x.asset_class = f.text("asset_class");
    x.side = f.text("side");
    x.qty = f.decimal("qty");
    x.qty_available = f.decimal("qty_available");
    x.avg_entry_price = f.decimal("avg_entry_price");
    x.market_value = f.decimal("market_value");
    x.cost_basis = f.decimal("cost_basis");
    x.unrealized_pl = f.decimal("unrealized_pl");
    x.unrealized_plpc = f.decimal("unrealized_plpc");
    x.unrealized_intraday_pl = f.decimal("unrealized_intraday_pl");
    x.unrealized_intraday_plpc = f.decimal("unrealized_intraday_plpc");
    x.current_price = f.decimal("current_price");
    x.lastday_price = f.decimal("lastday_price");
    x.change_today = f.decimal("change_today");
    return x;
}

AlpacaOrder order_from(const Parsed &p, const Value &obj, const std::string &where) {
    if (!obj.IsObject()) fail(where, "expected a JSON object");
    Fields f(p, obj, where);
    AlpacaOrder o;
    o.id = f.required_text("id");
    o.client_order_id = f.text("client_order_id");
    o.symbol = f.text("symbol");
    o.asset_id = f.text("asset_id");
    o.asset_class = f.text("asset_class");
    o.side = f.text("side");
    o.type = f.text("type");
    o.order_type = f.text("order_type");
    o.time_in_force = f.text("time_in_force");
    o.status = f.text("status");
    o.order_class = f.text("order_class");
    o.position_intent = f.text("position_intent");
    o.qty = f.decimal("qty");
    o.notional = f.decimal("notional");
    o.filled_qty = f.decimal("filled_qty");
    o.filled_avg_price = f.decimal("filled_avg_price");
    o.limit_price = f.decimal("limit_price");
    o.stop_price = f.decimal("stop_price");
    o.trail_price = f.decimal("trail_price");
    o.trail_percent = f.decimal("trail_percent");
    o.hwm = f.decimal("hwm");
    o.created_at = f.text("created_at");
    o.updated_at = f.text("updated_at");
    o.submitted_at = f.text("submitted_at");
    o.filled_at = f.text("filled_at");
    o.expired_at = f.text("expired_at");
    o.canceled_at = f.text("canceled_at");
    o.failed_at = f.text("failed_at");
    o.replaced_at = f.text("replaced_at");
    o.extended_hours = f.boolean("extended_hours");
    if (const Value *legs = f.get("legs")) {
        if (!legs->IsArray()) f.bad("legs", "expected an array or null");
        rapidjson::StringBuffer sb;
        rapidjson::Writer<rapidjson::StringBuffer> w(sb);
        write_value(p, *legs, w);
        o.legs_json = std::string(sb.GetString(), sb.GetSize());
    }
    return o;
}

template <typename T, typename F>
std::vector<T> parse_array(std::string_view json, const char *what, F from) {
    Parsed p;
    parse_into(p, json, what);
    if (!p.doc.IsArray()) fail(what, "expected an array");
    std::vector<T> out;
    out.reserve(p.doc.Size());
    SizeType i = 0;
    for (const auto &e : p.doc.GetArray()) {
        out.push_back(from(p, e, std::string(what) + "[" + std::to_string(i) + "]"));
        ++i;
    }
    return out;
}

}  // namespace

bool is_decimal_text(std::string_view s) noexcept {
    std::size_t i = 0;
    const std::size_t n = s.size();
    auto digits = [&]() {
        const std::size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') ++i;
        return i - start;
    };
    if (i < n && s[i] == '-') ++i;
    if (digits() == 0) return false;
    if (i < n && s[i] == '.') {
        ++i;
        if (digits() == 0) return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
        const std::size_t start = i;
        if (digits() == 0) return false;
        // Exponent magnitude within what PostgreSQL numeric accepts (leading zeros allowed).
        std::size_t k = start;
        while (k < i - 1 && s[k] == '0') ++k;
        if (i - k > 4) return false;
        int e = 0;
        for (; k < i; ++k) e = e * 10 + (s[k] - '0');
        if (e > kMaxDecimalExponent) return false;
    }
    return i == n;
}

AlpacaAccount parse_account(std::string_view json) {
    Parsed p;
    parse_into(p, json, "account");
    return account_from(p, p.doc, "account");
}

std::vector<AlpacaPosition> parse_positions(std::string_view json) {
    return parse_array<AlpacaPosition>(json, "positions", position_from);
}

std::vector<AlpacaOrder> parse_orders(std::string_view json) {
    return parse_array<AlpacaOrder>(json, "orders", order_from);
}

AlpacaError parse_error_body(std::string_view json) noexcept {
    AlpacaError out;
    try {
        Parsed p;
        parse_into(p, json, "error");
        if (!p.doc.IsObject()) return out;
        auto code = p.doc.FindMember("code");
        std::int64_t c = 0;
        if (code != p.doc.MemberEnd() && code->value.IsString() &&
            parse_int64_text({code->value.GetString(), code->value.GetStringLength()}, c)) {
            out.code = c;
        }
        auto msg = p.doc.FindMember("message");
        if (msg != p.doc.MemberEnd() && msg->value.IsString() && !p.is_number(msg->value)) {
            out.message = escape_for_error(
                std::string_view(msg->value.GetString(), msg->value.GetStringLength()),
                kMaxAlpacaErrorMessage);
        }
    } catch (...) {
        out = AlpacaError{};
    }
    return out;
}

}  // namespace pga
