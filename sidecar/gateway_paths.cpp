#include "sidecar/gateway_paths.hpp"

#include <rapidjson/document.h>

#include <cctype>

namespace pga::sidecar::gateway {
namespace {

bool iequal(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    }
    return true;
}

// "name:port" -> name; "[::1]:port" -> "[::1]".
std::string_view host_name(std::string_view host) noexcept {
    if (!host.empty() && host.front() == '[') {
        const auto close = host.find(']');
        return close == std::string_view::npos ? std::string_view() : host.substr(0, close + 1);
    }
    const auto colon = host.find(':');
    return colon == std::string_view::npos ? host : host.substr(0, colon);
}

}  // namespace

bool path_shape_ok(std::string_view path) noexcept {
    if (path.size() < 5 || path.size() > 256 || path.substr(0, 4) != "/v2/") return false;
    if (path.back() == '/') return false;
    if (path.find("..") != std::string_view::npos || path.find("//") != std::string_view::npos)
        return false;
    for (char c : path) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '/' && c != '.' && c != '_' &&
            c != ':' && c != '-')
            return false;
    }
    return true;
}

bool query_shape_ok(std::string_view query) noexcept {
    if (query.size() > 2048) return false;
    for (char c : query) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != ',' &&
            c != ':' && c != '%' && c != '+' && c != '=' && c != '&' && c != '-')
            return false;
    }
    return true;
}

std::vector<std::pair<std::string, std::string>> split_query(std::string_view query) {
    std::vector<std::pair<std::string, std::string>> out;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view item = query.substr(0, amp);
        if (!item.empty()) {
            const auto eq = item.find('=');
            out.emplace_back(
                std::string(item.substr(0, eq)),
                eq == std::string_view::npos ? std::string() : std::string(item.substr(eq + 1)));
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return out;
}

bool host_allowed(std::string_view host, const std::vector<std::string> &allowed) {
    const std::string_view name = host_name(host);
    if (name.empty()) return false;
    if (iequal(name, "localhost") || name == "127.0.0.1" || name == "[::1]") return true;
    for (const std::string &a : allowed) {
        if (iequal(name, host_name(a))) return true;
    }
    return false;
}

bool origin_allowed(const std::string *origin, const std::vector<std::string> &allowed) {
    if (origin == nullptr) return true;
    for (const std::string &a : allowed) {
        if (iequal(*origin, a)) return true;
    }
    return false;
}

std::string_view presented_token(const std::string *key_id, const std::string *authorization) {
    if (key_id != nullptr && !key_id->empty()) return *key_id;
    if (authorization != nullptr) {
        std::string_view a = *authorization;
        if (a.size() > 7 && iequal(a.substr(0, 7), "bearer ")) {
            a.remove_prefix(7);
            while (!a.empty() && a.front() == ' ') a.remove_prefix(1);
            return a;
        }
    }
    return {};
}

std::string with_client_order_id(std::string_view body, const std::string &new_id) {
    for (char c : body) {
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\r' && c != '\t')
            return {};  // raw control characters: never valid JSON (RapidJSON's SIMD lets some by)
    }
    rapidjson::Document d;
    d.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(body.data(),
                                                                                    body.size());
    if (d.HasParseError() || !d.IsObject()) return {};
    // A name given twice is read differently by different parsers (Alpaca's may take the last
    // client_order_id where ours takes the first): refused.
    for (auto a = d.MemberBegin(); a != d.MemberEnd(); ++a) {
        for (auto b = a + 1; b != d.MemberEnd(); ++b) {
            if (a->name == b->name) return {};
        }
    }
    const auto coid = d.FindMember("client_order_id");
    if (coid != d.MemberEnd()) {
        if (!coid->value.IsString() || coid->value.GetStringLength() == 0) return {};
        return std::string(body);
    }
    const auto brace = body.find('{');
    std::string out(body.substr(0, brace + 1));
    out += "\"client_order_id\":\"" + new_id + "\"";
    if (d.MemberCount() > 0) out += ',';
    out += body.substr(brace + 1);
    return out;
}

}  // namespace pga::sidecar::gateway
