// alpaca-sidecar configuration: a `key = value` file, parsed strictly.
//
// Every problem is reported as pga::Error(ErrorCode::ConfigFile) whose message starts with
// "<file>:<line>: " (or "<file>: " for file-level problems such as a missing required key).
// Messages never repeat a conninfo value (it might hold a password despite the rules).
#pragma once
#include "common/cpp_only.hpp"

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pga::sidecar {

enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 };
const char *log_level_name(LogLevel l) noexcept;

struct Config {
    std::string socket_path;      // required
    mode_t socket_mode = 0660;    // octal in the file
    std::string socket_group;     // empty: the daemon's primary group
    std::string conninfo;         // libpq; never a password (use a passfile)
    int pool_size = 4;            // libpq connections
    int workers = 8;              // request threads (one curl handle each)
    std::size_t max_queue = 256;  // waiting requests; beyond: Overloaded
    std::string paper_base_url = "https://paper-api.alpaca.markets";
    std::string live_base_url = "https://api.alpaca.markets";
    std::string ca_file;  // empty: the system CA bundle
    long connect_timeout_ms = 3000;
    long request_timeout_ms = 10000;   // total per upstream attempt
    long request_deadline_ms = 12000;  // whole request; below the backend's 15 s wait
    int max_attempts = 4;
    long retry_base_delay_ms = 100;
    long retry_max_delay_ms = 5000;
    int rate_limit_per_minute = 200;            // per credential
    std::size_t max_response_bytes = 16777216;  // upstream body cap
    LogLevel log_level = LogLevel::Info;
    std::string log_file;  // empty: stderr
    // A client's whole request frame must arrive within this of its connection being accepted.
    long read_timeout_ms = 2000;
    // Connections accepted but not yet through their frame; beyond it the oldest is closed.
    std::size_t max_pending_connections = 256;
    std::string metrics_listen;  // empty: off; else a loopback HOST:PORT (sidecar/metrics.hpp)

    // The gateway (sidecar/gateway_listener.hpp): off unless gateway_listen names at least one
    // address. Each entry is a HOST:PORT (loopback unless TLS is configured) or an absolute
    // unix socket path.
    std::vector<std::string> gateway_listen;
    std::string gateway_tls_cert, gateway_tls_key;  // PEM files; both or neither
    mode_t gateway_socket_mode = 0660;              // unix socket entries
    std::string data_base_url = "https://data.alpaca.markets";
    std::vector<std::string> gateway_allowed_hosts;    // beyond localhost, 127.0.0.1, [::1]
    std::vector<std::string> gateway_allowed_origins;  // exact scheme://host[:port]
    int gateway_max_connections = 64;                  // one thread each, at most
    std::size_t gateway_max_body_bytes = 16384;        // request body cap (413 beyond)
    long gateway_connection_timeout_s = 30;            // idle or slow client connections
};

// One gateway_listen entry: a TCP HOST:PORT or a unix socket path.
struct GatewayAddress {
    bool is_unix = false;
    std::string path;  // unix
    std::string host;  // tcp: "127.0.0.1", "::1", "0.0.0.0", ...
    int port = 0;
    bool loopback = false;
};
// Parses one entry; false with why when it is not one.
bool parse_gateway_address(std::string_view text, GatewayAddress &out, std::string &why);

// Parse config text. `filename` is used only in messages.
Config parse_config(std::string_view text, const std::string &filename);

// Read and parse a file (refuses files over 1 MiB).
Config load_config(const std::string &path);

// Checks that need the machine rather than the text: the CA file is readable, the socket
// group exists, the socket's directory exists. Throws Error(ConfigFile) naming the key.
void check_config_environment(const Config &cfg, const std::string &filename);

// Names of the settings that differ between `running` and `reloaded` and that only take
// effect after a restart (socket_path, socket_mode, socket_group, conninfo, pool_size, workers).
std::vector<std::string> restart_required_changes(const Config &running, const Config &reloaded);

}  // namespace pga::sidecar
