// The MCP server's tools: what each one asks Alpaca (through the gateway's Upstream, which
// holds the session and re-checks it), its argument schema, its result shape, and which
// session scope may see and call it. Read tools for every session; trading tools
// (destructiveHint) only for a "trade" session.
#pragma once
#include "common/cpp_only.hpp"
#include "sidecar/gateway_types.hpp"
#include "sidecar/mcp_json.hpp"
#include "sidecar/mcp_schema.hpp"

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace pga::sidecar::mcp {

struct UpstreamCall {
    std::string method, path_and_query, body;
};

struct Tool {
    std::string name, title, description;
    bool trade = false;  // needs the "trade" scope; annotated destructive
    bool idempotent = false;
    std::vector<Param> params;
    // Checks across arguments that one parameter's schema cannot say ("" = fine).
    std::function<std::string(const Args &)> cross_check;
    std::function<UpstreamCall(const Args &)> request;
    // Alpaca's parsed 2xx body (Null when empty) -> structuredContent (an object).
    std::function<Json(Json, const Args &)> shape;
    // The members structuredContent always has, with their JSON types (the outputSchema).
    std::vector<std::pair<std::string, std::string>> output;
};

struct ToolResult {
    bool is_error = false;
    Json structured;  // an object, or Null
    std::string text;
};

const std::vector<Tool> &all_tools();
bool scope_allows(const Tool &t, const std::string &scope) noexcept;
// The tool of that name the scope may use, or nullptr.
const Tool *find_tool(const std::string &name, const std::string &scope);
// {"tools":[...]} for the scope.
void write_tool_list(JsonWriter &w, const std::string &scope);
// Validates the arguments (nothing is sent when they fail), calls Upstream, shapes the answer.
ToolResult call_tool(const Tool &t, const Json *arguments, gateway::Upstream &upstream);

// A fresh client_order_id for place_order when the agent gives none: "mcp-" + 32 hex digits.
std::string new_client_order_id();

}  // namespace pga::sidecar::mcp
