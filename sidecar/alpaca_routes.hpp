// Which Alpaca URL each wire operation reads.
#pragma once
#include "common/cpp_only.hpp"

#include <string>
#include <utility>
#include <vector>

namespace pga::sidecar {

// Alpaca path for an operation ("/v2/account", ...); empty for an unknown one.
std::string alpaca_path(const std::string &operation);

// base + path + "?k=v&..." (query keys and values are already restricted by the wire decoder).
std::string alpaca_url(const std::string &base, const std::string &operation,
                       const std::vector<std::pair<std::string, std::string>> &query);

// The HTTP method of an operation: GET, POST (submit), PATCH (replace), DELETE (cancel, close).
std::string alpaca_method(const std::string &operation);

// base + path with the target (order id, symbol; restricted to [A-Za-z0-9.-] by the wire
// decoder) + query.
std::string alpaca_url(const std::string &base, const std::string &operation,
                       const std::string &target,
                       const std::vector<std::pair<std::string, std::string>> &query);

}  // namespace pga::sidecar
