#include "sidecar/alpaca_routes.hpp"

namespace pga::sidecar {

std::string alpaca_path(const std::string &op) {
    if (op == "validate" || op == "account") return "/v2/account";
    if (op == "positions") return "/v2/positions";
    if (op == "orders") return "/v2/orders";
    if (op == "clock") return "/v2/clock";
    return {};
}

std::string alpaca_url(const std::string &base, const std::string &op,
                       const std::vector<std::pair<std::string, std::string>> &query) {
    std::string url = base + alpaca_path(op);
    char sep = '?';
    for (const auto &[k, v] : query) {
        url += sep;
        url += k;
        url += '=';
        url += v;
        sep = '&';
    }
    return url;
}

}  // namespace pga::sidecar
