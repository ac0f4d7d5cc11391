#include "sidecar/mcp_tools.hpp"

#include "common/crypto.hpp"
#include "common/encoding.hpp"
#include "common/error.hpp"
#include "sidecar/mcp_positions.hpp"

#include <array>
#include <cstdint>

namespace pga::sidecar::mcp {
namespace {

// Alpaca's answers may be large (500 orders, many positions); still bounded.
const Limits kAlpacaLimits{32 * 1024 * 1024, 64, 4 * 1024 * 1024};
constexpr std::size_t kMaxMessage = 500;

Param order_id_param() {
    return string_param("order_id", "The order's id (a UUID, as Alpaca gives it)", kUuidPattern, 36,
                        true);
}
Param client_order_id_param(const char *what) {
    return string_param("client_order_id", what, kClientIdPattern, 128);
}
Param tif_param() {
    return enum_param("time_in_force", "How long the order stays working",
                      {"day", "gtc", "opg", "cls", "ioc", "fok"});
}

// Adds the given arguments to a JSON object, decimals as strings, booleans as booleans.
void copy_args(Json &body, const Args &a, std::initializer_list<const char *> names,
               const std::vector<Param> &params) {
    for (const char *n : names) {
        const auto it = a.find(n);
        if (it == a.end()) continue;
        bool boolean = false;
        for (const auto &p : params)
            if (p.name == n) boolean = p.kind == ParamKind::Boolean;
        body.add(n, boolean ? Json::boolean(it->second == "true") : Json::string(it->second));
    }
}

std::string arg(const Args &a, const char *name, const char *fallback = "") {
    const auto it = a.find(name);
    return it == a.end() ? fallback : it->second;
}

Json keep(Json body, const Args &) {
    return body;
}
Json wrap(const char *key, Json body) {
    Json o = Json::object();
    o.add(key, std::move(body));
    return o;
}

const std::vector<std::pair<std::string, std::string>> kOrderOutput{
    {"id", "string"}, {"symbol", "string"}, {"status", "string"}};

std::string replace_changes_something(const Args &a) {
    for (const char *n : {"qty", "limit_price", "stop_price", "trail", "time_in_force"})
        if (a.count(n)) return {};
    return "give at least one of qty, limit_price, stop_price, trail, time_in_force";
}

// qty or percentage (at most 100), not both; neither closes the whole position.
std::string close_amount_ok(const Args &a) {
    if (a.count("qty") && a.count("percentage")) return "give qty or percentage, not both";
    if (!a.count("percentage")) return {};
    const std::string p = arg(a, "percentage");  // a plain decimal (checked by its schema)
    const auto dot = p.find('.');
    const std::string ip = p.substr(0, dot);
    const bool fraction =
        dot != std::string::npos && p.find_first_not_of('0', dot + 1) != std::string::npos;
    if (ip.size() > 3 || std::stoi(ip) > 100 || (std::stoi(ip) == 100 && fraction))
        return "percentage must be at most 100";
    return {};
}

using Output = std::vector<std::pair<std::string, std::string>>;

// Appends a tool (its shape: Alpaca's answer as it is, until the caller says otherwise).
Tool &add(std::vector<Tool> &tools, const char *name, const char *title, const char *description,
          Output output, bool trade = false) {
    Tool x;
    x.name = name;
    x.title = title;
    x.description = description;
    x.output = std::move(output);
    x.trade = trade;
    x.shape = keep;
    tools.push_back(std::move(x));
    return tools.back();
}

std::vector<Tool> make_tools() {
    std::vector<Tool> t;
    {
        Tool &x =
            add(t, "get_account", "Account",
                "The Alpaca account of this session's credential: status, currency, cash, buying "
                "power, equity, portfolio value (decimals as strings).",
                {{"id", "string"}, {"status", "string"}, {"currency", "string"}});
        x.request = [](const Args &) { return UpstreamCall{"GET", "/v2/account", ""}; };
    }
    {
        Tool &x =
            add(t, "get_positions", "Open positions",
                "All open positions. Option positions carry the fields of their OCC symbol "
                "(underlying, expiration, type, strike); options_by_underlying groups them by "
                "underlying with exact totals of qty, market value, cost basis and unrealized P/L.",
                {{"positions", "array"}, {"options_by_underlying", "array"}});
        x.request = [](const Args &) { return UpstreamCall{"GET", "/v2/positions", ""}; };
        x.shape = [](Json body, const Args &) { return positions_view(body); };
    }
    {
        Tool &x = add(t, "get_orders", "Orders",
                      "Orders of the account, newest first unless direction is asc.",
                      {{"orders", "array"}});
        x.params = {enum_param("status", "Which orders: open, closed or all",
                               {"open", "closed", "all"}, "open"),
                    integer_param("limit", "At most this many orders", 1, 500, 50),
                    enum_param("direction", "Order by submission time", {"asc", "desc"}, "desc")};
        x.request = [](const Args &a) {
            return UpstreamCall{"GET",
                                "/v2/orders?status=" + arg(a, "status", "open") +
                                    "&limit=" + arg(a, "limit", "50") +
                                    "&direction=" + arg(a, "direction", "desc"),
                                ""};
        };
        x.shape = [](Json body, const Args &) {
            if (body.type != Json::Type::Array) throw ParseError("orders: not a JSON array");
            return wrap("orders", std::move(body));
        };
    }
    {
        Tool &x = add(t, "get_order", "One order", "One order by its id.", kOrderOutput);
        x.params = {order_id_param()};
        x.request = [](const Args &a) {
            return UpstreamCall{"GET", "/v2/orders/" + arg(a, "order_id"), ""};
        };
    }
    {
        Tool &x = add(t, "get_clock", "Market clock",
                      "Whether the market is open now, and the next open and close.",
                      {{"is_open", "boolean"}, {"next_open", "string"}, {"next_close", "string"}});
        x.request = [](const Args &) { return UpstreamCall{"GET", "/v2/clock", ""}; };
    }
    {
        Tool &x = add(t, "get_latest_quote", "Latest stock quote",
                      "The latest bid and ask of one stock (market data).",
                      {{"symbol", "string"}, {"quote", "object"}});
        x.params = {string_param("symbol", "Stock symbol in upper case, e.g. AAPL or BRK.B",
                                 kStockPattern, 16, true),
                    enum_param("feed", "Market data feed", {"iex", "sip", "delayed_sip"})};
        x.request = [](const Args &a) {
            std::string path = "/v2/stocks/" + arg(a, "symbol") + "/quotes/latest";
            if (a.count("feed")) path += "?feed=" + arg(a, "feed");
            return UpstreamCall{"GET", path, ""};
        };
    }
    {
        Tool &x = add(
            t, "place_order", "Place an order",
            "Submits an order. Give exactly one of qty or notional, as decimal strings. Pass your "
            "own client_order_id to make a retry of this call safe: Alpaca refuses a second "
            "order with the same one. Without it a fresh id is generated.",
            kOrderOutput, true);
        x.params = {
            string_param("symbol",
                         "Symbol: stock (AAPL), option (OCC, AAPL240119C00190000) or "
                         "crypto pair (BTC/USD)",
                         kSymbolPattern, 32, true),
            enum_param("side", "buy or sell", {"buy", "sell"}),
            enum_param("type", "Order type",
                       {"market", "limit", "stop", "stop_limit", "trailing_stop"}, "market"),
            tif_param(),
            decimal_param("qty", "Quantity (shares, contracts or coins), e.g. \"10\" or \"0.5\""),
            decimal_param("notional", "Dollar amount instead of qty (market orders)"),
            decimal_param("limit_price", "Limit price (limit and stop_limit orders)"),
            decimal_param("stop_price", "Stop price (stop and stop_limit orders)"),
            decimal_param("trail_price", "Trailing amount in dollars (trailing_stop)"),
            decimal_param("trail_percent", "Trailing amount in percent (trailing_stop)"),
            boolean_param("extended_hours", "Allow pre- and after-market execution (limit, day)"),
            client_order_id_param("Your id for this order (1 to 128 of A-Z a-z 0-9 . _ : -)"),
            enum_param("position_intent", "Options: what the order does to the position",
                       {"buy_to_open", "buy_to_close", "sell_to_open", "sell_to_close"})};
        x.params[1].required = true;
        x.cross_check = [](const Args &a) -> std::string {
            if (a.count("qty") == a.count("notional")) return "give exactly one of qty or notional";
            return {};
        };
        x.request = [params = x.params](const Args &a) {
            Json body = Json::object();
            body.add("symbol", Json::string(arg(a, "symbol")))
                .add("side", Json::string(arg(a, "side")))
                .add("type", Json::string(arg(a, "type", "market")))
                .add("time_in_force", Json::string(arg(a, "time_in_force", "day")));
            copy_args(body, a,
                      {"qty", "notional", "limit_price", "stop_price", "trail_price",
                       "trail_percent", "extended_hours", "position_intent"},
                      params);
            const std::string coid = arg(a, "client_order_id");
            body.add("client_order_id", Json::string(coid.empty() ? new_client_order_id() : coid));
            return UpstreamCall{"POST", "/v2/orders", to_json(body)};
        };
    }
    {
        Tool &x = add(
            t, "replace_order", "Replace an order",
            "Replaces a working order with new qty, prices or time in force; Alpaca answers with "
            "the new order (the old one becomes replaced).",
            kOrderOutput, true);
        x.params = {order_id_param(),
                    decimal_param("qty", "New quantity"),
                    decimal_param("limit_price", "New limit price"),
                    decimal_param("stop_price", "New stop price"),
                    decimal_param("trail", "New trail (price or percent, as the order has)"),
                    tif_param(),
                    client_order_id_param("A client_order_id for the new order")};
        x.cross_check = replace_changes_something;
        x.request = [params = x.params](const Args &a) {
            Json body = Json::object();
            copy_args(
                body, a,
                {"qty", "limit_price", "stop_price", "trail", "time_in_force", "client_order_id"},
                params);
            return UpstreamCall{"PATCH", "/v2/orders/" + arg(a, "order_id"), to_json(body)};
        };
    }
    {
        Tool &x =
            add(t, "cancel_order", "Cancel an order", "Asks Alpaca to cancel a working order.",
                {{"order_id", "string"}, {"cancel_requested", "boolean"}}, true);
        x.idempotent = true;
        x.params = {order_id_param()};
        x.request = [](const Args &a) {
            return UpstreamCall{"DELETE", "/v2/orders/" + arg(a, "order_id"), ""};
        };
        x.shape = [](Json, const Args &a) {
            Json o = Json::object();
            o.add("order_id", Json::string(arg(a, "order_id")))
                .add("cancel_requested", Json::boolean(true));
            return o;
        };
    }
    {
        Tool &x = add(
            t, "close_position", "Close a position",
            "Closes a position (all of it, or qty, or a percentage) with a market order; Alpaca "
            "answers with that order.",
            kOrderOutput, true);
        x.params = {string_param("symbol", "The position's symbol (BTC/USD and BTCUSD alike)",
                                 kSymbolPattern, 32, true),
                    decimal_param("qty", "Close this quantity"),
                    decimal_param("percentage", "Close this percentage (0 to 100)")};
        x.cross_check = close_amount_ok;
        x.request = [](const Args &a) {
            std::string sym;
            for (const char c : arg(a, "symbol"))
                if (c != '/') sym += c;
            std::string path = "/v2/positions/" + sym;
            if (a.count("qty")) path += "?qty=" + arg(a, "qty");
            if (a.count("percentage")) path += "?percentage=" + arg(a, "percentage");
            return UpstreamCall{"DELETE", path, ""};
        };
    }
    return t;
}

bool has_type(const Json &v, const std::string &type) {
    if (type == "string") return v.is_string();
    if (type == "boolean") return v.is_bool();
    if (type == "array") return v.type == Json::Type::Array;
    if (type == "object") return v.is_object();
    return false;
}

void write_text(JsonWriter &w, const std::string &s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void write_tool(JsonWriter &w, const Tool &t) {
    w.StartObject();
    w.Key("name");
    write_text(w, t.name);
    w.Key("title");
    write_text(w, t.title);
    w.Key("description");
    write_text(w, t.description);
    w.Key("inputSchema");
    write_input_schema(w, t.params);
    w.Key("outputSchema");
    w.StartObject();
    w.Key("type");
    w.String("object");
    w.Key("properties");
    w.StartObject();
    for (const auto &[k, type] : t.output) {
        write_text(w, k);
        w.StartObject();
        w.Key("type");
        write_text(w, type);
        w.EndObject();
    }
    w.EndObject();
    w.Key("required");
    w.StartArray();
    for (const auto &o : t.output) write_text(w, o.first);
    w.EndArray();
    w.EndObject();
    w.Key("annotations");
    w.StartObject();
    w.Key("title");
    write_text(w, t.title);
    w.Key("readOnlyHint");
    w.Bool(!t.trade);
    if (t.trade) {
        w.Key("destructiveHint");
        w.Bool(true);
        w.Key("idempotentHint");
        w.Bool(t.idempotent);
    }
    w.Key("openWorldHint");
    w.Bool(true);
    w.EndObject();
    w.EndObject();
}

ToolResult tool_error(std::string text) {
    ToolResult r;
    r.is_error = true;
    r.text = std::move(text);
    return r;
}

// A non-2xx answer: Alpaca's {"code":..,"message":".."} (or the gateway's, in the same form).
ToolResult alpaca_error(const gateway::Response &resp) {
    std::string message, code;
    try {
        const Json body = parse_json(resp.body, Limits{64 * 1024, 8, 1000});
        message = std::string(body.string_of("message"));
        if (const Json *c = body.find("code"); c && c->is_number()) code = c->text;
    } catch (const ParseError &) {
    }
    message = message.empty() ? "no message" : escape_for_error(message, kMaxMessage);
    std::string text = "Alpaca refused the request (HTTP " + std::to_string(resp.status);
    if (!code.empty()) text += ", code " + code;
    text += "): " + message;
    // No structuredContent: clients validate it against the tool's outputSchema even on errors.
    return tool_error(std::move(text));
}

}  // namespace

const std::vector<Tool> &all_tools() {
    static const std::vector<Tool> tools = make_tools();
    return tools;
}

bool scope_allows(const Tool &t, const std::string &scope) noexcept {
    if (scope == "trade") return true;
    return scope == "read" && !t.trade;
}

const Tool *find_tool(const std::string &name, const std::string &scope) {
    for (const auto &t : all_tools())
        if (t.name == name) return scope_allows(t, scope) ? &t : nullptr;
    return nullptr;
}

void write_tool_list(JsonWriter &w, const std::string &scope) {
    w.StartObject();
    w.Key("tools");
    w.StartArray();
    for (const auto &t : all_tools())
        if (scope_allows(t, scope)) write_tool(w, t);
    w.EndArray();
    w.EndObject();
}

std::string new_client_order_id() {
    std::array<std::uint8_t, 16> r{};
    random_bytes(r.data(), r.size());
    return "mcp-" + hex_encode(r.data(), r.size());
}

ToolResult call_tool(const Tool &t, const Json *arguments, gateway::Upstream &upstream) {
    Args args;
    std::string err = validate_arguments(arguments, t.params, args);
    if (err.empty() && t.cross_check) err = t.cross_check(args);
    if (!err.empty()) return tool_error(t.name + ": " + err + " (nothing was sent to Alpaca)");

    const UpstreamCall call = t.request(args);
    const gateway::Response resp = upstream.call(call.method, call.path_and_query, call.body);
    if (resp.status < 200 || resp.status > 299) return alpaca_error(resp);

    ToolResult r;
    try {
        Json body = resp.body.empty() ? Json{} : parse_json(resp.body, kAlpacaLimits);
        r.structured = t.shape(std::move(body), args);
    } catch (const ParseError &e) {
        return tool_error(t.name + ": Alpaca's answer was not what was expected (" +
                          std::string(e.what()) + ")");
    }
    for (const auto &[k, type] : t.output) {
        const Json *v = r.structured.find(k);
        if (!v || !has_type(*v, type))
            return tool_error(t.name + ": Alpaca's answer has no " + type + " '" + k + "'");
    }
    r.text = to_json(r.structured);
    return r;
}

}  // namespace pga::sidecar::mcp
