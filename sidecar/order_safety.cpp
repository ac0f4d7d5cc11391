#include "sidecar/order_safety.hpp"

#include "common/alpaca_models.hpp"

#include <rapidjson/document.h>

#include <cctype>

namespace pga::sidecar {
namespace {

constexpr unsigned kFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag |
                            rapidjson::kParseNumbersAsStringsFlag;

bool parse_object(std::string_view json, rapidjson::Document &doc) {
    doc.Parse<kFlags>(json.data(), json.size());
    return !doc.HasParseError() && doc.IsObject();
}

// A member as text: strings as they are, numbers (kept as strings by the flags) too; null,
// absent or another type -> nullopt.
std::optional<std::string> member_text(const rapidjson::Value &obj, const char *name) {
    auto m = obj.FindMember(name);
    if (m == obj.MemberEnd() || !m->value.IsString()) return std::nullopt;
    return std::string(m->value.GetString(), m->value.GetStringLength());
}

std::string lower(std::string s) {
    for (char &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string symbol_key(std::string s) {
    std::string out;
    for (char c : s) {
        if (c != '/') out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

bool same_decimal(const std::optional<std::string> &a, const std::optional<std::string> &b) {
    if (!a || !b) return !a && !b;
    auto ca = canonical_decimal(*a), cb = canonical_decimal(*b);
    return ca && cb && *ca == *cb;
}

// Compares the price/quantity field `name`: when the request gives it the order must hold
// the same number; when it does not, the order must not hold one either (strict: a limit
// order never matches a market request).
bool price_field_matches(const rapidjson::Value &req, const rapidjson::Value &ord,
                         const char *name) {
    return same_decimal(member_text(req, name), member_text(ord, name));
}

}  // namespace

bool is_duplicate_client_order_id(std::string_view body) noexcept {
    const AlpacaError e = parse_error_body(body);
    return e.message.find("client_order_id must be unique") != std::string::npos;
}

TradeVerdict classify_trade_attempt(bool transport_error, bool permanent, int status,
                                    std::string_view body) noexcept {
    if (transport_error) return permanent ? TradeVerdict::Stop : TradeVerdict::Unknown;
    if (status == 429) return TradeVerdict::Retry;
    if (status >= 500) return TradeVerdict::Unknown;
    if (status == 422 && is_duplicate_client_order_id(body)) return TradeVerdict::Duplicate;
    return TradeVerdict::Final;
}

std::optional<std::string> canonical_decimal(std::string_view s) {
    if (s.empty() || s.size() > 64) return std::nullopt;
    bool neg = false;
    std::size_t i = 0;
    if (s[0] == '-' || s[0] == '+') {
        neg = s[0] == '-';
        i = 1;
    }
    std::string ip, fp;
    bool dot = false;
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '.') {
            if (dot) return std::nullopt;
            dot = true;
        } else if (c >= '0' && c <= '9') {
            (dot ? fp : ip) += c;
        } else {
            return std::nullopt;
        }
    }
    if (ip.empty() && fp.empty()) return std::nullopt;
    while (!ip.empty() && ip.front() == '0') ip.erase(0, 1);
    while (!fp.empty() && fp.back() == '0') fp.pop_back();
    if (ip.empty()) ip = "0";
    std::string out = ip;
    if (!fp.empty()) out += "." + fp;
    if (neg && out != "0") out = "-" + out;
    return out;
}

OrderMatch order_matches_submit(std::string_view request, std::string_view order) {
    rapidjson::Document rq, od;
    if (!parse_object(request, rq)) return {false, "request"};
    if (!parse_object(order, od)) return {false, "order"};
    auto rsym = member_text(rq, "symbol");
    auto osym = member_text(od, "symbol");
    if (rsym && !(osym && symbol_key(*rsym) == symbol_key(*osym))) return {false, "symbol"};
    auto rside = member_text(rq, "side");
    auto oside = member_text(od, "side");
    if (rside && !(oside && lower(*rside) == lower(*oside))) return {false, "side"};
    auto rtype = member_text(rq, "type");
    auto otype = member_text(od, "type");
    if (!otype || otype->empty()) otype = member_text(od, "order_type");
    // mleg parents carry type "" or the order type; compare when both say something.
    if (rtype && otype && !otype->empty() && lower(*rtype) != lower(*otype)) return {false, "type"};
    for (const char *f : {"qty", "notional"}) {
        auto r = member_text(rq, f);
        if (r && !same_decimal(r, member_text(od, f))) return {false, f};
    }
    for (const char *f : {"limit_price", "stop_price"}) {
        if (!price_field_matches(rq, od, f)) return {false, f};
    }
    return {true, {}};
}

OrderMatch order_matches_replace(std::string_view request, std::string_view order,
                                 std::string_view replaced_id) {
    rapidjson::Document rq, od;
    if (!parse_object(request, rq)) return {false, "request"};
    if (!parse_object(order, od)) return {false, "order"};
    auto replaces = member_text(od, "replaces");
    if (!replaces || lower(*replaces) != lower(std::string(replaced_id))) {
        return {false, "replaces"};
    }
    for (const char *f : {"qty", "limit_price", "stop_price"}) {
        auto r = member_text(rq, f);
        if (r && !same_decimal(r, member_text(od, f))) return {false, f};
    }
    auto rtif = member_text(rq, "time_in_force");
    auto otif = member_text(od, "time_in_force");
    if (rtif && !(otif && lower(*rtif) == lower(*otif))) return {false, "time_in_force"};
    return {true, {}};
}

std::string json_client_order_id(std::string_view json) {
    rapidjson::Document d;
    if (!parse_object(json, d)) return {};
    return member_text(d, "client_order_id").value_or("");
}

std::string json_order_status(std::string_view json) {
    rapidjson::Document d;
    if (!parse_object(json, d)) return {};
    return member_text(d, "status").value_or("");
}

bool is_closed_order_status(std::string_view s) noexcept {
    return s == "filled" || s == "canceled" || s == "expired" || s == "replaced" ||
           s == "rejected" || s == "done_for_day";
}

}  // namespace pga::sidecar
