// The gateway's HTTP listener (libmicrohttpd): one daemon per gateway_listen entry, each on a
// socket we create and bind ourselves (a loopback or TLS TCP address, or a unix socket with
// gateway_socket_mode), thread per connection up to gateway_max_connections, idle or slow
// connections closed after gateway_connection_timeout_s, request heads bounded by MHD's
// connection memory limit and bodies by gateway_max_body_bytes (413 beyond).
//
// Per request: Host must name a loopback address or one of gateway_allowed_hosts, and an
// Origin, when present, one of gateway_allowed_origins (else 403: no DNS rebinding, no
// browser page of another site); then /mcp goes to the MCP front (route_mcp, the one place it
// is wired), everything else to the REST front: the session token from APCA-API-KEY-ID or
// Authorization: Bearer (missing or not of our form: 401 at once) and a TokenUpstream call.
#pragma once
#include "common/cpp_only.hpp"
#include "sidecar/config.hpp"
#include "sidecar/gateway_upstream.hpp"

#include <memory>
#include <string>
#include <vector>

struct MHD_Daemon;

namespace pga::sidecar::gateway {

class Listener {
  public:
    // Starts nothing when cfg.gateway_listen is empty. Throws Error(Io/ConfigFile) when an
    // address cannot be bound or the TLS files cannot be read.
    Listener(const Config &cfg, Deps deps);
    ~Listener();
    Listener(const Listener &) = delete;
    Listener &operator=(const Listener &) = delete;

    // Answers one request (the part after libmicrohttpd; public for unit tests).
    Response handle(const Request &req);
    std::size_t max_body() const noexcept { return max_body_; }

  private:
    struct DaemonDeleter {
        void operator()(MHD_Daemon *d) const noexcept;
    };
    Deps deps_;
    std::vector<std::string> allowed_hosts_, allowed_origins_;
    std::size_t max_body_ = 16384;
    std::string tls_cert_, tls_key_;  // PEM text (MHD keeps pointers to it)
    std::vector<std::unique_ptr<MHD_Daemon, DaemonDeleter>> daemons_;
    std::vector<std::string> unix_paths_;  // unlinked when the listener stops
};

}  // namespace pga::sidecar::gateway
