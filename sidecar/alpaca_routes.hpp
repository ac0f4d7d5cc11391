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

}  // namespace pga::sidecar
