#include "sidecar/alpaca_routes.hpp"

namespace pga::sidecar {

std::string alpaca_path(const std::string &op) {
    if (op == "validate" || op == "account") return "/v2/account";
    if (op == "positions") return "/v2/positions";
    if (op == "orders") return "/v2/orders";
    if (op == "clock") return "/v2/clock";
    if (op == "get_order_by_client_id") return "/v2/orders:by_client_order_id";
    if (op == "get_order" || op == "replace_order" || op == "cancel_order") return "/v2/orders/";
    if (op == "submit_order" || op == "cancel_all_orders") return "/v2/orders";
    if (op == "close_position") return "/v2/positions/";
    return {};
}

std::string alpaca_method(const std::string &op) {
    if (op == "submit_order") return "POST";
    if (op == "replace_order") return "PATCH";
    if (op == "cancel_order" || op == "cancel_all_orders" || op == "close_position")
        return "DELETE";
    return "GET";
}

std::string alpaca_url(const std::string &base, const std::string &op,
                       const std::vector<std::pair<std::string, std::string>> &query) {
    return alpaca_url(base, op, std::string(), query);
}

std::string alpaca_url(const std::string &base, const std::string &op, const std::string &target,
                       const std::vector<std::pair<std::string, std::string>> &query) {
    std::string url = base + alpaca_path(op) + target;
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
