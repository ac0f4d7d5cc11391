// Strict parser for the alpaca-sidecar configuration file.
#include "sidecar/config.hpp"

#include "common/error.hpp"
#include "sidecar/metrics.hpp"

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <libpq-fe.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>

namespace pga::sidecar {
namespace {

// Every message names the file: a path of printable ASCII is shown as it is, anything else
// escaped and bounded like any other input (pga::escape_for_error).
constexpr std::size_t kMaxShownPath = 200;

[[noreturn]] void fail_at(const std::string &file, int line, const std::string &msg) {
    throw Error(ErrorCode::ConfigFile,
                escape_for_error(file, kMaxShownPath) + ":" + std::to_string(line) + ": " + msg);
}

[[noreturn]] void fail_file(const std::string &file, const std::string &msg) {
    throw Error(ErrorCode::ConfigFile, escape_for_error(file, kMaxShownPath) + ": " + msg);
}

std::string_view trim(std::string_view s) {
    const char *ws = " \t\r\f\v";
    const auto b = s.find_first_not_of(ws);
    if (b == std::string_view::npos) return {};
    const auto e = s.find_last_not_of(ws);
    return s.substr(b, e - b + 1);
}

// Shows a value in a message: quoted, printable ASCII only, at most 64 characters.
std::string shown(std::string_view v) {
    return quote_for_error(v, kMaxQuotedInput);
}

bool parse_decimal(std::string_view v, long long lo, long long hi, long long &out) {
    if (v.empty() || v.size() > 18) return false;
    long long n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return false;
        n = n * 10 + (c - '0');
    }
    if (n < lo || n > hi) return false;
    out = n;
    return true;
}

struct Line {
    int number;
    std::string_view value;
    const std::string &file;
    [[noreturn]] void fail(const std::string &msg) const { fail_at(file, number, msg); }
};

long long number_in(const Line &l, const char *key, long long lo, long long hi) {
    long long n = 0;
    if (!parse_decimal(l.value, lo, hi, n)) {
        l.fail(std::string(key) + ": expected a whole number from " + std::to_string(lo) + " to " +
               std::to_string(hi) + ", got " + shown(l.value));
    }
    return n;
}

// https://host[:port][/path] with no credentials, query or fragment; trailing '/' removed.
std::string base_url_in(const Line &l, const char *key) {
    std::string_view v = l.value;
    constexpr std::string_view kScheme = "https://";
    auto lower_prefix = [&](std::string_view p) {
        if (v.size() < p.size()) return false;
        for (std::size_t i = 0; i < p.size(); ++i) {
            if (std::tolower(static_cast<unsigned char>(v[i])) != p[i]) return false;
        }
        return true;
    };
    if (!lower_prefix(kScheme)) {
        if (lower_prefix("http://")) {
            l.fail(std::string(key) +
                   ": plain http:// is refused (keys would cross the network unencrypted); "
                   "use https://");
        }
        l.fail(std::string(key) + ": expected an https:// URL, got " + shown(v));
    }
    for (char c : v) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f) l.fail(std::string(key) + ": URL contains a space or control");
    }
    std::string_view rest = v.substr(kScheme.size());
    const auto slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    if (authority.empty()) l.fail(std::string(key) + ": URL has no host");
    if (authority.find('@') != std::string_view::npos) {
        l.fail(std::string(key) + ": URL must not contain credentials (user@host)");
    }
    if (v.find_first_of("?#") != std::string_view::npos) {
        l.fail(std::string(key) + ": URL must not contain a query or fragment");
    }
    std::string out(v);
    while (out.size() > kScheme.size() && out.back() == '/') out.pop_back();
    return out;
}

struct PqOptionsDeleter {
    void operator()(PQconninfoOption *o) const noexcept { PQconninfoFree(o); }
};

void check_conninfo(const Line &l) {
    const std::string text(l.value);
    if (text.empty()) return;  // libpq defaults and PG* environment variables
    char *err = nullptr;
    std::unique_ptr<PQconninfoOption, PqOptionsDeleter> opts(PQconninfoParse(text.c_str(), &err));
    if (!opts) {
        // libpq's message may quote parts of the string; only the option-name form is safe,
        // and only when no password is near: an unquoted password with a space in it
        // ("password=abc def=x") makes part of it an "option name".
        std::string lower(text);
        for (char &ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::string detail;
        if (err && std::strncmp(err, "invalid connection option", 25) == 0 &&
            lower.find("password") == std::string::npos) {
            std::string_view d(err);
            while (!d.empty() && d.back() == '\n') d.remove_suffix(1);  // libpq ends with one
            // The option name is the input's own bytes: bounded and escaped (a 300-byte
            // name of quotes and non-UTF-8 once made a 405-byte message that repeated it).
            detail = escape_for_error(trim(d), kMaxQuotedInput + 32);
        }
        PQfreemem(err);
        l.fail("conninfo: not a valid libpq connection string" +
               (detail.empty() ? std::string(" (check quoting and key=value pairs)")
                               : " (" + detail + ")"));
    }
    for (const PQconninfoOption *o = opts.get(); o->keyword; ++o) {
        const bool secret_keyword =
            std::strcmp(o->keyword, "password") == 0 || std::strcmp(o->keyword, "sslpassword") == 0;
        if (secret_keyword && o->val && o->val[0]) {
            l.fail(
                "conninfo: contains a password; put it in a passfile (~/.pgpass or "
                "passfile=...) or use peer/cert authentication, never in this file");
        }
    }
}

LogLevel log_level_in(const Line &l) {
    if (l.value == "error") return LogLevel::Error;
    if (l.value == "warn" || l.value == "warning") return LogLevel::Warn;
    if (l.value == "info") return LogLevel::Info;
    if (l.value == "debug") return LogLevel::Debug;
    l.fail("log_level: expected error, warn, info or debug, got " + shown(l.value));
}

std::string absolute_path_in(const Line &l, const char *key) {
    if (l.value.empty() || l.value[0] != '/') {
        l.fail(std::string(key) + ": expected an absolute path, got " + shown(l.value));
    }
    for (char c : l.value) {
        if (static_cast<unsigned char>(c) < 0x20) l.fail(std::string(key) + ": control character");
    }
    return std::string(l.value);
}

// A comma-separated list; items trimmed, empty items refused.
std::vector<std::string> list_in(const Line &l) {
    std::vector<std::string> out;
    std::string_view rest = l.value;
    while (!rest.empty()) {
        const auto comma = rest.find(',');
        const std::string_view item = trim(rest.substr(0, comma));
        if (item.empty()) l.fail("empty item in a comma-separated list");
        out.emplace_back(item);
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
        if (trim(rest).empty()) l.fail("empty item in a comma-separated list");
    }
    return out;
}

unsigned octal_mode_in(const Line &l, const char *key) {
    std::string_view v = l.value;
    bool ok = !v.empty() && v.size() <= 4;
    unsigned mode = 0;
    for (char ch : v) {
        if (ch < '0' || ch > '7') ok = false;
        mode = mode * 8 + static_cast<unsigned>(ch - '0');
    }
    if (!ok || mode > 0777) {
        l.fail(std::string(key) + ": expected an octal mode such as 0660, got " + shown(v));
    }
    if (mode & 0007) {
        l.fail(std::string(key) + ": must not give access to others (use the group, e.g. 0660)");
    }
    return mode;
}

using Setter = std::function<void(Config &, const Line &)>;

const std::map<std::string, Setter, std::less<>> &setters() {
    static const std::map<std::string, Setter, std::less<>> table = {
        {"socket_path",
         [](Config &c, const Line &l) {
             c.socket_path = absolute_path_in(l, "socket_path");
             if (c.socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
                 l.fail("socket_path: longer than " +
                        std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                        " bytes, the limit for a unix socket");
             }
         }},
        {"socket_mode",
         [](Config &c, const Line &l) {
             const unsigned mode = octal_mode_in(l, "socket_mode");
             if ((mode & 0600) != 0600) {
                 l.fail("socket_mode: the owner needs read and write (e.g. 0660)");
             }
             c.socket_mode = static_cast<mode_t>(mode);
         }},
        {"socket_group",
         [](Config &c, const Line &l) {
             if (l.value.empty() || l.value.size() > 64)
                 l.fail("socket_group: expected a group name");
             for (char ch : l.value) {
                 if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-' &&
                     ch != '.') {
                     l.fail("socket_group: not a valid group name: " + shown(l.value));
                 }
             }
             c.socket_group = std::string(l.value);
         }},
        {"conninfo",
         [](Config &c, const Line &l) {
             check_conninfo(l);
             c.conninfo = std::string(l.value);
         }},
        {"pool_size",
         [](Config &c, const Line &l) { c.pool_size = int(number_in(l, "pool_size", 1, 64)); }},
        {"workers",
         [](Config &c, const Line &l) { c.workers = int(number_in(l, "workers", 1, 256)); }},
        {"max_queue",
         [](Config &c, const Line &l) {
             c.max_queue = std::size_t(number_in(l, "max_queue", 1, 100000));
         }},
        {"paper_base_url",
         [](Config &c, const Line &l) { c.paper_base_url = base_url_in(l, "paper_base_url"); }},
        {"live_base_url",
         [](Config &c, const Line &l) { c.live_base_url = base_url_in(l, "live_base_url"); }},
        {"ca_file", [](Config &c, const Line &l) { c.ca_file = absolute_path_in(l, "ca_file"); }},
        {"connect_timeout_ms",
         [](Config &c, const Line &l) {
             c.connect_timeout_ms = long(number_in(l, "connect_timeout_ms", 100, 600000));
         }},
        {"request_timeout_ms",
         [](Config &c, const Line &l) {
             c.request_timeout_ms = long(number_in(l, "request_timeout_ms", 100, 600000));
         }},
        // At most 55 s: a trade's audit row is recorded with its ticket after the call, and a
        // trade ticket is valid for 60 s (alpaca._audit_trade refuses an expired one).
        {"request_deadline_ms",
         [](Config &c, const Line &l) {
             c.request_deadline_ms = long(number_in(l, "request_deadline_ms", 100, 55000));
         }},
        {"max_attempts",
         [](Config &c, const Line &l) {
             c.max_attempts = int(number_in(l, "max_attempts", 1, 10));
         }},
        {"retry_base_delay_ms",
         [](Config &c, const Line &l) {
             c.retry_base_delay_ms = long(number_in(l, "retry_base_delay_ms", 0, 60000));
         }},
        {"retry_max_delay_ms",
         [](Config &c, const Line &l) {
             c.retry_max_delay_ms = long(number_in(l, "retry_max_delay_ms", 0, 600000));
         }},
        {"rate_limit_per_minute",
         [](Config &c, const Line &l) {
             c.rate_limit_per_minute = int(number_in(l, "rate_limit_per_minute", 1, 100000));
         }},
        {"max_response_bytes",
         [](Config &c, const Line &l) {
             // The wire protocol caps a response frame at 16 MiB (pga::kDefaultMaxResponsePayload).
             c.max_response_bytes = std::size_t(number_in(l, "max_response_bytes", 1024, 16777216));
         }},
        {"log_level", [](Config &c, const Line &l) { c.log_level = log_level_in(l); }},
        {"log_file",
         [](Config &c, const Line &l) {
             c.log_file = l.value == "stderr" ? std::string() : absolute_path_in(l, "log_file");
         }},
        {"read_timeout_ms",
         [](Config &c, const Line &l) {
             c.read_timeout_ms = long(number_in(l, "read_timeout_ms", 100, 600000));
         }},
        {"max_pending_connections",
         [](Config &c, const Line &l) {
             c.max_pending_connections =
                 std::size_t(number_in(l, "max_pending_connections", 1, 100000));
         }},
        {"metrics_listen",
         [](Config &c, const Line &l) {
             std::string host, why;
             int port = 0;
             if (!metrics::parse_listen(l.value, host, port, why)) l.fail(why);
             c.metrics_listen = host.empty() ? std::string() : std::string(l.value);
         }},
        {"gateway_listen",
         [](Config &c, const Line &l) {
             c.gateway_listen.clear();
             for (const std::string &item : list_in(l)) {
                 if (item == "off") continue;
                 GatewayAddress a;
                 std::string why;
                 if (!parse_gateway_address(item, a, why)) l.fail("gateway_listen: " + why);
                 c.gateway_listen.push_back(item);
             }
         }},
        {"gateway_tls_cert",
         [](Config &c, const Line &l) {
             c.gateway_tls_cert = absolute_path_in(l, "gateway_tls_cert");
         }},
        {"gateway_tls_key",
         [](Config &c, const Line &l) {
             c.gateway_tls_key = absolute_path_in(l, "gateway_tls_key");
         }},
        {"gateway_socket_mode",
         [](Config &c, const Line &l) {
             c.gateway_socket_mode = mode_t(octal_mode_in(l, "gateway_socket_mode"));
         }},
        {"data_base_url",
         [](Config &c, const Line &l) { c.data_base_url = base_url_in(l, "data_base_url"); }},
        {"gateway_allowed_hosts",
         [](Config &c, const Line &l) {
             c.gateway_allowed_hosts = list_in(l);
             for (const std::string &h : c.gateway_allowed_hosts) {
                 if (h.find_first_of("/@ ") != std::string::npos)
                     l.fail("gateway_allowed_hosts: expected host names, got " + shown(h));
             }
         }},
        {"gateway_allowed_origins",
         [](Config &c, const Line &l) {
             c.gateway_allowed_origins = list_in(l);
             for (const std::string &o : c.gateway_allowed_origins) {
                 if ((o.rfind("http://", 0) != 0 && o.rfind("https://", 0) != 0) || o.back() == '/')
                     l.fail("gateway_allowed_origins: expected scheme://host[:port], got " +
                            shown(o));
             }
         }},
        {"gateway_max_connections",
         [](Config &c, const Line &l) {
             c.gateway_max_connections = int(number_in(l, "gateway_max_connections", 1, 1024));
         }},
        {"gateway_max_body_bytes",
         [](Config &c, const Line &l) {
             c.gateway_max_body_bytes =
                 std::size_t(number_in(l, "gateway_max_body_bytes", 256, 1048576));
         }},
        {"gateway_connection_timeout_s",
         [](Config &c, const Line &l) {
             c.gateway_connection_timeout_s = number_in(l, "gateway_connection_timeout_s", 1, 3600);
         }},
    };
    return table;
}

// Splits "key = value  # comment" into key and value. A '#' starts a comment at the start of
// a line or after whitespace, outside double quotes. A value may be wrapped in double quotes
// (no escapes inside), e.g. conninfo = "host=/run/postgresql dbname=app".
bool split_line(std::string_view raw, const std::string &file, int number, std::string_view &key,
                std::string_view &value) {
    // Strip the comment.
    bool in_quotes = false;
    std::size_t end = raw.size();
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '"') in_quotes = !in_quotes;
        if (raw[i] == '#' && !in_quotes && (i == 0 || raw[i - 1] == ' ' || raw[i - 1] == '\t')) {
            end = i;
            break;
        }
    }
    std::string_view line = trim(raw.substr(0, end));
    if (line.empty()) return false;
    for (char c : line) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 && c != '\t') fail_at(file, number, "control character in line");
    }
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) fail_at(file, number, "expected key = value");
    key = trim(line.substr(0, eq));
    value = trim(line.substr(eq + 1));
    if (key.empty()) fail_at(file, number, "missing key before '='");
    if (!value.empty() && value.front() == '"') {
        if (value.size() < 2 || value.back() != '"') {
            fail_at(file, number, "unterminated double quote in value of " + shown(key));
        }
        value = value.substr(1, value.size() - 2);
        if (value.find('"') != std::string_view::npos) {
            fail_at(file, number, "double quote inside a quoted value of " + shown(key));
        }
    }
    return true;
}

}  // namespace

const char *log_level_name(LogLevel l) noexcept {
    switch (l) {
        case LogLevel::Error:
            return "error";
        case LogLevel::Warn:
            return "warn";
        case LogLevel::Info:
            return "info";
        case LogLevel::Debug:
            return "debug";
    }
    return "info";
}

Config parse_config(std::string_view text, const std::string &filename) {
    Config cfg;
    std::map<std::string, int, std::less<>> seen;  // key -> line
    int number = 0;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        const auto nl = text.find('\n', pos);
        const std::string_view raw =
            text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        ++number;
        pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
        if (raw.find('\0') != std::string_view::npos) fail_at(filename, number, "NUL byte in line");

        std::string_view key, value;
        if (!split_line(raw, filename, number, key, value)) continue;
        const auto &table = setters();
        const auto it = table.find(key);
        if (it == table.end()) {
            fail_at(filename, number, "unknown setting " + shown(key));
        }
        if (const auto prev = seen.find(key); prev != seen.end()) {
            fail_at(filename, number,
                    std::string(key) + " is already set on line " + std::to_string(prev->second));
        }
        seen.emplace(std::string(key), number);
        it->second(cfg, Line{number, value, filename});
    }

    if (cfg.socket_path.empty()) fail_file(filename, "socket_path is required");
    if (cfg.gateway_tls_cert.empty() != cfg.gateway_tls_key.empty()) {
        fail_file(filename,
                  "gateway_tls_cert and gateway_tls_key go together: set both or neither");
    }
    for (const std::string &item : cfg.gateway_listen) {
        GatewayAddress a;
        std::string why;
        parse_gateway_address(item, a, why);
        if (!a.is_unix && !a.loopback && cfg.gateway_tls_cert.empty()) {
            fail_at(filename, seen.find("gateway_listen")->second,
                    "gateway_listen: " + shown(item) +
                        " is not a loopback address; it needs gateway_tls_cert and "
                        "gateway_tls_key (tokens would cross the network unencrypted)");
        }
    }
    if (cfg.retry_max_delay_ms < cfg.retry_base_delay_ms) {
        fail_at(filename,
                seen.count("retry_max_delay_ms") ? seen.find("retry_max_delay_ms")->second
                                                 : seen.find("retry_base_delay_ms")->second,
                "retry_max_delay_ms must be >= retry_base_delay_ms");
    }
    return cfg;
}

Config load_config(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        fail_file(path, std::string("cannot open: ") + std::strerror(errno));
    }
    std::ostringstream ss;
    constexpr std::size_t kMax = 1 << 20;
    std::string buf(kMax + 1, '\0');
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.bad()) fail_file(path, "read error");
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n > kMax) fail_file(path, "larger than 1 MiB");
    buf.resize(n);
    return parse_config(buf, path);
}

void check_config_environment(const Config &cfg, const std::string &filename) {
    if (!cfg.ca_file.empty() && access(cfg.ca_file.c_str(), R_OK) != 0) {
        const int err = errno;
        fail_file(filename, "ca_file: cannot read " + quote_for_error(cfg.ca_file, kMaxShownPath) +
                                ": " + std::strerror(err));
    }
    if (!cfg.socket_group.empty()) {
        group grp{};
        group *found = nullptr;
        std::string buf(16384, '\0');
        const int rc = getgrnam_r(cfg.socket_group.c_str(), &grp, buf.data(), buf.size(), &found);
        if (rc != 0 || !found)
            fail_file(filename, "socket_group: no group named " + shown(cfg.socket_group));
    }
    const auto slash = cfg.socket_path.rfind('/');
    const std::string dir = slash == 0 ? "/" : cfg.socket_path.substr(0, slash);
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        fail_file(filename, "socket_path: directory " + quote_for_error(dir, kMaxShownPath) +
                                " does not exist");
    }
    if (!cfg.log_file.empty()) {
        const auto ls = cfg.log_file.rfind('/');
        const std::string ldir = ls == 0 ? "/" : cfg.log_file.substr(0, ls);
        if (stat(ldir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
            fail_file(filename, "log_file: directory " + quote_for_error(ldir, kMaxShownPath) +
                                    " does not exist");
        }
    }
}

bool parse_gateway_address(std::string_view text, GatewayAddress &out, std::string &why) {
    out = GatewayAddress{};
    if (!text.empty() && text.front() == '/') {
        for (char c : text) {
            if (static_cast<unsigned char>(c) <= 0x20) {
                why = "a socket path must not contain spaces or control characters";
                return false;
            }
        }
        if (text.size() >= sizeof(sockaddr_un{}.sun_path)) {
            why = "socket path longer than " + std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                  " bytes";
            return false;
        }
        out.is_unix = true;
        out.path = std::string(text);
        return true;
    }
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
        why = "expected HOST:PORT or an absolute unix socket path, got " + shown(text);
        return false;
    }
    std::string_view host = text.substr(0, colon);
    long long port = 0;
    if (!parse_decimal(text.substr(colon + 1), 1, 65535, port)) {
        why = "expected a port from 1 to 65535 in " + shown(text);
        return false;
    }
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    in_addr v4{};
    in6_addr v6{};
    const std::string h(host == "localhost" ? std::string_view("127.0.0.1") : host);
    if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
        out.loopback = (ntohl(v4.s_addr) >> 24) == 127;
    } else if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
        out.loopback = IN6_IS_ADDR_LOOPBACK(&v6);
    } else {
        why = "expected a numeric IP address (or localhost) in " + shown(text);
        return false;
    }
    out.host = h;
    out.port = int(port);
    return true;
}

std::vector<std::string> restart_required_changes(const Config &a, const Config &b) {
    std::vector<std::string> out;
    if (a.socket_path != b.socket_path) out.emplace_back("socket_path");
    if (a.metrics_listen != b.metrics_listen) out.emplace_back("metrics_listen");
    if (a.gateway_listen != b.gateway_listen) out.emplace_back("gateway_listen");
    if (a.gateway_tls_cert != b.gateway_tls_cert) out.emplace_back("gateway_tls_cert");
    if (a.gateway_tls_key != b.gateway_tls_key) out.emplace_back("gateway_tls_key");
    if (a.gateway_max_connections != b.gateway_max_connections)
        out.emplace_back("gateway_max_connections");
    if (a.socket_mode != b.socket_mode) out.emplace_back("socket_mode");
    if (a.socket_group != b.socket_group) out.emplace_back("socket_group");
    if (a.conninfo != b.conninfo) out.emplace_back("conninfo");
    if (a.pool_size != b.pool_size) out.emplace_back("pool_size");
    if (a.workers != b.workers) out.emplace_back("workers");
    return out;
}

}  // namespace pga::sidecar
