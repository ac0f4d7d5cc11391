#include "sidecar/mcp_server.hpp"

#include "common/error.hpp"
#include "common/version.hpp"
#include "sidecar/mcp_json.hpp"
#include "sidecar/mcp_tools.hpp"

#include <algorithm>
#include <cctype>
#include <functional>
#include <optional>

namespace pga::sidecar::mcp {
namespace {

constexpr int kParseError = -32700, kInvalidRequest = -32600, kMethodNotFound = -32601,
              kInvalidParams = -32602, kInternalError = -32603, kServerError = -32000;
constexpr std::size_t kMaxIdLength = 256;
const Limits kRequestLimits{kMaxBody, 32, 20000};

const char *const kVersions[] = {"2025-11-25", "2025-06-18", "2025-03-26"};

using Body = std::function<void(JsonWriter &)>;

std::string envelope(const Json &id, const char *member, const Body &body) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("jsonrpc");
    w.String("2.0");
    w.Key("id");
    write_json(w, id);
    w.Key(member);
    body(w);
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

std::string error_message(const Json &id, int code, const std::string &message) {
    return envelope(id, "error", [&](JsonWriter &w) {
        w.StartObject();
        w.Key("code");
        w.Int(code);
        w.Key("message");
        w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
        w.EndObject();
    });
}

gateway::Response json_answer(int status, std::string body) {
    gateway::Response r;
    r.status = status;
    r.headers = {{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}};
    r.body = std::move(body);
    return r;
}

gateway::Response http_error(int status, int code, const std::string &message) {
    return json_answer(status, error_message(Json{}, code, message));
}

gateway::Response method_not_allowed(const std::string &why) {
    gateway::Response r = http_error(405, kServerError, why);
    r.headers.emplace_back("Allow", "POST");
    return r;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

std::string trim(const std::string &s) {
    const auto b = s.find_first_not_of(" \t");
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

const std::string *header(const gateway::Request &req, const char *name) {
    const auto it = req.headers.find(name);
    return it == req.headers.end() ? nullptr : &it->second;
}

bool accepts_json(const std::string &accept) {
    std::string rest = lower(accept);
    std::size_t pos = 0;
    while (pos <= rest.size()) {
        const std::size_t comma = rest.find(',', pos);
        std::string item = rest.substr(pos, comma == std::string::npos ? rest.npos : comma - pos);
        item = trim(item.substr(0, item.find(';')));
        if (item == "application/json" || item == "application/*" || item == "*/*") return true;
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    return false;
}

// One JSON-RPC message's outcome: a response to send (requests), or none (notifications and
// responses); invalid marks a message the transport must refuse with 400.
struct Outcome {
    std::optional<std::string> response;
    bool invalid = false;
};

class Dispatcher {
  public:
    Dispatcher(const gateway::Session &s, gateway::Upstream &u) : session_(s), upstream_(u) {}

    Outcome message(const Json &m, bool in_batch) {
        Outcome o;
        if (!m.is_object()) return invalid(o, Json{}, "a JSON-RPC message must be an object");
        const Json *id = m.find("id");
        const Json null_id;
        const Json &echo = id && valid_id(*id) ? *id : null_id;
        const Json *version = m.find("jsonrpc");
        if (!version || !version->is_string() || version->text != "2.0")
            return invalid(o, echo, "jsonrpc must be \"2.0\"");
        if (id && !valid_id(*id))
            return invalid(o, null_id, "id must be a string or an integer (not null)");
        const Json *method = m.find("method");
        if (!method) {
            // A client's response to a server request: this server sends none, so a response
            // is accepted and dropped (202), as the transport says.
            if (id && (m.find("result") || m.find("error"))) return o;
            return invalid(o, echo, "a JSON-RPC message needs a method");
        }
        if (!method->is_string()) return invalid(o, echo, "method must be a string");
        const Json *params = m.find("params");
        if (params && !params->is_object() && params->type != Json::Type::Array)
            return invalid(o, echo, "params must be an object");
        if (!id) return o;  // a notification: notifications/initialized, cancelled, ...
        o.response = request(*id, method->text, params, in_batch, o);
        return o;
    }

  private:
    static bool valid_id(const Json &id) {
        if (id.is_string()) return id.text.size() <= kMaxIdLength;
        return id.is_number() && id.text.size() <= 20 &&
               id.text.find_first_of(".eE") == std::string::npos;
    }

    static Outcome &invalid(Outcome &o, const Json &id, const std::string &why) {
        o.invalid = true;
        o.response = error_message(id, kInvalidRequest, "Invalid Request: " + why);
        return o;
    }

    std::string request(const Json &id, const std::string &method, const Json *params,
                        bool in_batch, Outcome &o) {
        if (params && !params->is_object())
            return error_message(id, kInvalidParams, "Invalid params: params must be an object");
        if (method == "initialize") {
            if (in_batch) {
                o.invalid = true;
                return error_message(id, kInvalidRequest,
                                     "Invalid Request: initialize must not be part of a batch");
            }
            return initialize(id, params);
        }
        if (method == "ping")
            return envelope(id, "result", [](JsonWriter &w) {
                w.StartObject();
                w.EndObject();
            });
        if (method == "tools/list") {
            if (params && params->find("cursor"))
                return error_message(id, kInvalidParams, "Invalid params: unknown cursor");
            return envelope(id, "result",
                            [&](JsonWriter &w) { write_tool_list(w, session_.scope); });
        }
        if (method == "tools/call") return tools_call(id, params);
        return error_message(id, kMethodNotFound, "Method not found: " + quote_for_error(method));
    }

    std::string initialize(const Json &id, const Json *params) {
        const Json *pv = params ? params->find("protocolVersion") : nullptr;
        if (!pv || !pv->is_string())
            return error_message(id, kInvalidParams,
                                 "Invalid params: initialize needs protocolVersion");
        // The client's version when this server speaks it, else the latest (the client then
        // decides whether it can go on).
        const std::string chosen =
            is_supported_protocol_version(pv->text) ? pv->text : kLatestProtocolVersion;
        const std::string instructions =
            "Tools for one Alpaca " + session_.environment +
            " account, through the pg_alpaca gateway; this session's scope is '" + session_.scope +
            "'. Quantities and prices are decimal strings. The session may be revoked or "
            "expire at any time: then every call fails with 401.";
        return envelope(id, "result", [&](JsonWriter &w) {
            w.StartObject();
            w.Key("protocolVersion");
            w.String(chosen.c_str());
            w.Key("capabilities");
            w.StartObject();
            w.Key("tools");
            w.StartObject();
            w.Key("listChanged");
            w.Bool(false);
            w.EndObject();
            w.EndObject();
            w.Key("serverInfo");
            w.StartObject();
            w.Key("name");
            w.String("pg_alpaca");
            w.Key("title");
            w.String("pg_alpaca gateway (Alpaca without keys)");
            w.Key("version");
            w.String(pga::kVersion);
            w.EndObject();
            w.Key("instructions");
            w.String(instructions.data(), static_cast<rapidjson::SizeType>(instructions.size()));
            w.EndObject();
        });
    }

    std::string tools_call(const Json &id, const Json *params) {
        const Json *name = params ? params->find("name") : nullptr;
        if (!name || !name->is_string())
            return error_message(id, kInvalidParams, "Invalid params: tools/call needs a name");
        const Json *arguments = params->find("arguments");
        if (arguments && !arguments->is_object() && arguments->type != Json::Type::Null)
            return error_message(id, kInvalidParams, "Invalid params: arguments must be an object");
        const Tool *tool = find_tool(name->text, session_.scope);
        if (!tool)
            return error_message(id, kInvalidParams,
                                 "Unknown tool: " + quote_for_error(name->text) +
                                     " (tools/list names the tools of this session's scope)");
        ToolResult r;
        try {
            r = call_tool(*tool, arguments, upstream_);
        } catch (const std::exception &) {  // never its text: it may name internals
            return error_message(id, kInternalError, "Internal error: the tool call failed");
        }
        return envelope(id, "result", [&](JsonWriter &w) {
            w.StartObject();
            w.Key("content");
            w.StartArray();
            w.StartObject();
            w.Key("type");
            w.String("text");
            w.Key("text");
            w.String(r.text.data(), static_cast<rapidjson::SizeType>(r.text.size()));
            w.EndObject();
            w.EndArray();
            if (r.structured.is_object()) {
                w.Key("structuredContent");
                write_json(w, r.structured);
            }
            w.Key("isError");
            w.Bool(r.is_error);
            w.EndObject();
        });
    }

    const gateway::Session &session_;
    gateway::Upstream &upstream_;
};

gateway::Response post(const gateway::Request &req, const gateway::Session &session,
                       gateway::Upstream &upstream) {
    std::string version = "2025-03-26";  // what the transport says to assume without the header
    if (const std::string *v = header(req, "mcp-protocol-version")) {
        if (!is_supported_protocol_version(trim(*v)))
            return http_error(400, kInvalidRequest,
                              "Bad Request: unsupported MCP-Protocol-Version " +
                                  quote_for_error(*v) +
                                  " (this server speaks 2025-11-25, "
                                  "2025-06-18 and 2025-03-26)");
        version = trim(*v);
    }
    const std::string *ctype = header(req, "content-type");
    if (!ctype || lower(trim(ctype->substr(0, ctype->find(';')))) != "application/json")
        return http_error(415, kInvalidRequest,
                          "Unsupported Media Type: the body must be application/json");
    if (const std::string *accept = header(req, "accept"); accept && !accepts_json(*accept))
        return http_error(406, kInvalidRequest,
                          "Not Acceptable: this server answers application/json");
    if (req.body.size() > kMaxBody)
        return http_error(413, kInvalidRequest, "Payload Too Large: at most 1 MiB");

    Json doc;
    try {
        doc = parse_json(req.body, kRequestLimits);
    } catch (const ParseError &e) {
        return http_error(400, kParseError, std::string("Parse error: ") + e.what());
    }

    Dispatcher d(session, upstream);
    if (doc.type != Json::Type::Array) {
        const Outcome o = d.message(doc, false);
        if (!o.response) {
            gateway::Response r;
            r.status = 202;
            return r;
        }
        return json_answer(o.invalid ? 400 : 200, *o.response);
    }
    if (version != "2025-03-26")
        return http_error(400, kInvalidRequest,
                          "Invalid Request: JSON-RPC batches are not part of MCP " + version);
    if (doc.items.empty() || doc.items.size() > kMaxBatch)
        return http_error(
            400, kInvalidRequest,
            "Invalid Request: a batch holds 1 to " + std::to_string(kMaxBatch) + " messages");
    std::string out;
    bool all_invalid = true;
    for (const Json &m : doc.items) {
        const Outcome o = d.message(m, true);
        all_invalid = all_invalid && o.invalid;
        if (!o.response) continue;
        out += out.empty() ? "[" : ",";
        out += *o.response;
    }
    if (out.empty()) {
        gateway::Response r;
        r.status = 202;
        return r;
    }
    return json_answer(all_invalid ? 400 : 200, out + "]");
}

}  // namespace

bool is_supported_protocol_version(const std::string &v) noexcept {
    for (const char *k : kVersions)
        if (v == k) return true;
    return false;
}

std::string www_authenticate(bool token_presented) {
    std::string v = "Bearer realm=\"pg_alpaca\"";
    if (token_presented)
        v += ", error=\"invalid_token\", error_description=\"the session token is not valid, "
             "expired or revoked\"";
    return v;
}

gateway::Response handle(const gateway::Request &req, const gateway::Session &session,
                         gateway::Upstream &upstream) {
    try {
        if (req.method == "POST") return post(req, session, upstream);
        if (req.method == "GET")
            return method_not_allowed(
                "Method Not Allowed: this server offers no SSE stream; POST JSON-RPC messages");
        if (req.method == "DELETE")
            return method_not_allowed(
                "Method Not Allowed: no MCP session to end (revoke the gateway session with "
                "alpaca_revoke_session)");
        return method_not_allowed("Method Not Allowed: POST JSON-RPC messages to /mcp");
    } catch (const std::exception &) {
        return http_error(500, kInternalError, "Internal error");
    } catch (...) {
        return http_error(500, kInternalError, "Internal error");
    }
}

}  // namespace pga::sidecar::mcp
