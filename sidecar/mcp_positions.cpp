#include "sidecar/mcp_positions.hpp"

#include "common/occ_symbol.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>

namespace pga::sidecar::mcp {
namespace {

struct Decimal {
    bool negative = false;
    std::string digits;  // integer and fraction digits together, no leading zeros kept
    std::size_t scale = 0;
};

std::optional<Decimal> parse_decimal(std::string_view s) {
    Decimal d;
    std::size_t i = 0;
    if (!s.empty() && s[0] == '-') {
        d.negative = true;
        i = 1;
    }
    const std::size_t dot = s.find('.', i);
    const std::string_view ip = s.substr(i, dot == std::string_view::npos ? s.npos : dot - i);
    const std::string_view fp = dot == std::string_view::npos ? "" : s.substr(dot + 1);
    if (ip.empty() || ip.size() > 40 || fp.size() > 40) return std::nullopt;
    if (dot != std::string_view::npos && fp.empty()) return std::nullopt;
    for (const char c : ip)
        if (c < '0' || c > '9') return std::nullopt;
    for (const char c : fp)
        if (c < '0' || c > '9') return std::nullopt;
    d.digits = std::string(ip) + std::string(fp);
    d.scale = fp.size();
    return d;
}

// |a| >= |b| for digit strings of the same length.
bool not_less(const std::string &a, const std::string &b) {
    return a >= b;
}

std::string add_magnitudes(const std::string &a, const std::string &b) {
    std::string r(a.size() + 1, '0');
    int carry = 0;
    for (std::size_t k = 0; k < a.size(); ++k) {
        const std::size_t i = a.size() - 1 - k;
        const int s = (a[i] - '0') + (b[i] - '0') + carry;
        r[r.size() - 1 - k] = static_cast<char>('0' + s % 10);
        carry = s / 10;
    }
    r[0] = static_cast<char>('0' + carry);
    return r;
}

std::string sub_magnitudes(const std::string &a, const std::string &b) {  // a >= b
    std::string r(a.size(), '0');
    int borrow = 0;
    for (std::size_t k = 0; k < a.size(); ++k) {
        const std::size_t i = a.size() - 1 - k;
        int s = (a[i] - '0') - (b[i] - '0') - borrow;
        borrow = s < 0;
        if (s < 0) s += 10;
        r[i] = static_cast<char>('0' + s);
    }
    return r;
}

std::string format(bool negative, std::string digits, std::size_t scale) {
    std::string ip = digits.substr(0, digits.size() - scale);
    std::string fp = digits.substr(digits.size() - scale);
    while (!fp.empty() && fp.back() == '0') fp.pop_back();
    const std::size_t nz = ip.find_first_not_of('0');
    ip = nz == std::string::npos ? "0" : ip.substr(nz);
    const bool zero = ip == "0" && fp.empty();
    return (negative && !zero ? "-" : "") + ip + (fp.empty() ? "" : "." + fp);
}

void add_text(Json &o, const char *key, const std::optional<std::string> &v) {
    o.add(key, v ? Json::string(*v) : Json{});
}

struct Group {
    std::vector<std::string> symbols;
    std::optional<std::string> qty = "0", market_value = "0", cost_basis = "0", unrealized_pl = "0";
};

void accumulate(std::optional<std::string> &sum, const Json &position, const char *key) {
    if (!sum) return;
    const Json *v = position.find(key);
    sum = v && (v->is_string() || v->is_number()) ? add_decimals(*sum, v->text) : std::nullopt;
}

}  // namespace

std::optional<std::string> add_decimals(std::string_view a, std::string_view b) {
    auto x = parse_decimal(a), y = parse_decimal(b);
    if (!x || !y) return std::nullopt;
    const std::size_t scale = std::max(x->scale, y->scale);
    x->digits.append(scale - x->scale, '0');
    y->digits.append(scale - y->scale, '0');
    const std::size_t width = std::max(x->digits.size(), y->digits.size());
    x->digits.insert(0, width - x->digits.size(), '0');
    y->digits.insert(0, width - y->digits.size(), '0');
    if (x->negative == y->negative)
        return format(x->negative, add_magnitudes(x->digits, y->digits), scale);
    if (not_less(x->digits, y->digits))
        return format(x->negative, sub_magnitudes(x->digits, y->digits), scale);
    return format(y->negative, sub_magnitudes(y->digits, x->digits), scale);
}

Json positions_view(const Json &positions) {
    if (positions.type != Json::Type::Array) throw ParseError("positions: not a JSON array");
    Json list = Json::array();
    std::map<std::string, Group> groups;
    for (const Json &p : positions.items) {
        const Json *sym = p.find("symbol");
        if (!sym || !sym->is_string()) throw ParseError("positions: an element has no symbol");
        Json out = p;
        if (const auto occ = parse_occ_symbol(sym->text)) {
            char date[16];
            std::snprintf(date, sizeof date, "%04d-%02d-%02d", occ->year, occ->month, occ->day);
            Json option = Json::object();
            option.add("underlying", Json::string(occ->underlying))
                .add("expiration", Json::string(date))
                .add("type", Json::string(occ->type_name()))
                .add("strike", Json::string(occ->strike));
            out.add("option", std::move(option));
            Group &g = groups[occ->underlying];
            g.symbols.push_back(sym->text);
            accumulate(g.qty, p, "qty");
            accumulate(g.market_value, p, "market_value");
            accumulate(g.cost_basis, p, "cost_basis");
            accumulate(g.unrealized_pl, p, "unrealized_pl");
        } else {
            out.add("option", Json{});
        }
        list.items.push_back(std::move(out));
    }
    Json by = Json::array();
    for (const auto &[underlying, g] : groups) {
        Json o = Json::object();
        o.add("underlying", Json::string(underlying))
            .add("positions", Json::number(std::to_string(g.symbols.size())));
        Json syms = Json::array();
        for (const auto &s : g.symbols) syms.items.push_back(Json::string(s));
        o.add("symbols", std::move(syms));
        add_text(o, "qty", g.qty);
        add_text(o, "market_value", g.market_value);
        add_text(o, "cost_basis", g.cost_basis);
        add_text(o, "unrealized_pl", g.unrealized_pl);
        by.items.push_back(std::move(o));
    }
    Json view = Json::object();
    view.add("positions", std::move(list)).add("options_by_underlying", std::move(by));
    return view;
}

}  // namespace pga::sidecar::mcp
