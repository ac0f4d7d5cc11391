#include "sidecar/gateway_listener.hpp"

#include "common/error.hpp"
#include "common/session_token.hpp"
#include "common/unique_fd.hpp"
#include "sidecar/gateway_paths.hpp"
#include "sidecar/log.hpp"
#include "sidecar/mcp_route.hpp"
#include "sidecar/metrics.hpp"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace pga::sidecar::gateway {
namespace {

constexpr std::size_t kMaxUri = 4096;
constexpr const char *kTlsPriorities =
    "SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE";

// One request's state across libmicrohttpd's calls of the access handler.
struct Exchange {
    std::string uri;  // raw, as sent (from the URI log callback, before any unescaping)
    bool started = false;
    bool too_large = false;
    std::string body;
};

[[noreturn]] void io_error(const std::string &what) {
    throw Error(ErrorCode::Io, "gateway: " + what + ": " + std::strerror(errno));
}

std::string read_pem(const std::string &path, const char *what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorCode::ConfigFile, std::string("gateway: cannot read ") + what);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

int bind_address(const GatewayAddress &a, mode_t mode) {
    if (a.is_unix) {
        UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (fd.get() < 0) io_error("socket");
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::memcpy(sa.sun_path, a.path.c_str(), a.path.size() + 1);
        unlink(a.path.c_str());  // a stale socket of an earlier run
        const mode_t old = umask(0777 & ~mode);
        const int rc = bind(fd.get(), reinterpret_cast<sockaddr *>(&sa), sizeof sa);
        umask(old);
        if (rc != 0) io_error("bind " + a.path);
        if (chmod(a.path.c_str(), mode) != 0) io_error("chmod " + a.path);
        if (listen(fd.get(), 128) != 0) io_error("listen");
        return fd.release();
    }
    const bool v6 = a.host.find(':') != std::string::npos;
    UniqueFd fd(socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) io_error("socket");
    const int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc;
    if (v6) {
        sockaddr_in6 sa{};
        sa.sin6_family = AF_INET6;
        sa.sin6_port = htons(std::uint16_t(a.port));
        inet_pton(AF_INET6, a.host.c_str(), &sa.sin6_addr);
        rc = bind(fd.get(), reinterpret_cast<sockaddr *>(&sa), sizeof sa);
    } else {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(std::uint16_t(a.port));
        inet_pton(AF_INET, a.host.c_str(), &sa.sin_addr);
        rc = bind(fd.get(), reinterpret_cast<sockaddr *>(&sa), sizeof sa);
    }
    if (rc != 0) io_error("bind " + a.host + ":" + std::to_string(a.port));
    if (listen(fd.get(), 128) != 0) io_error("listen");
    return fd.release();
}

void *on_uri(void *, const char *uri, MHD_Connection *) {
    auto ex = std::make_unique<Exchange>();
    const std::size_t n = std::strlen(uri);
    ex->uri.assign(uri, n > kMaxUri ? kMaxUri + 1 : n);
    return ex.release();  // owned by MHD until on_completed
}

void on_completed(void *, MHD_Connection *, void **con_cls, MHD_RequestTerminationCode) {
    std::unique_ptr<Exchange> ex(static_cast<Exchange *>(*con_cls));
    *con_cls = nullptr;
    if (ex) secure_wipe(ex->body.data(), ex->body.size());
}

// Leaves every %xx as sent: the path and query are checked and forwarded as the client wrote
// them, never decoded (an encoded slash or dot cannot slip past the checks).
size_t no_unescape(void *, MHD_Connection *, char *s) {
    return std::strlen(s);
}

void on_mhd_log(void *, const char *fmt, va_list ap) {
    char buf[512];
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    std::string msg(buf);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    log_event(LogLevel::Debug, "gateway_http", {{"message", msg}});
}

struct HeaderSink {
    Request &req;
    std::string repeated;  // a header that decides anything, sent twice
};

enum MHD_Result collect_header(void *cls, enum MHD_ValueKind, const char *key, const char *value) {
    auto *sink = static_cast<HeaderSink *>(cls);
    std::string name(key ? key : "");
    for (char &c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool fresh = sink->req.headers.emplace(name, value ? value : "").second;
    if (!fresh && (name == "host" || name == "origin" || name == "authorization" ||
                   name == "apca-api-key-id")) {
        sink->repeated = name;
    }
    return MHD_YES;
}

enum MHD_Result send(MHD_Connection *conn, const Response &r) {
    MHD_Response *resp = MHD_create_response_from_buffer(r.body.size(), (void *)r.body.data(),
                                                         MHD_RESPMEM_MUST_COPY);
    if (resp == nullptr) return MHD_NO;
    for (const auto &[k, v] : r.headers) MHD_add_response_header(resp, k.c_str(), v.c_str());
    const enum MHD_Result rc = MHD_queue_response(conn, unsigned(r.status), resp);
    MHD_destroy_response(resp);
    return rc;
}

enum MHD_Result on_access(void *cls, MHD_Connection *conn, const char *, const char *method,
                          const char *, const char *upload_data, size_t *upload_data_size,
                          void **con_cls) {
    auto *self = static_cast<Listener *>(cls);
    auto *ex = static_cast<Exchange *>(*con_cls);
    if (ex == nullptr) return MHD_NO;
    if (!ex->started) {
        ex->started = true;
        return MHD_YES;  // headers in; the body (if any) comes next
    }
    if (*upload_data_size > 0) {
        if (ex->body.size() + *upload_data_size > self->max_body()) ex->too_large = true;
        if (!ex->too_large) ex->body.append(upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (ex->too_large) {
        metrics::gateway_request("none", metrics::GatewayOutcome::BadRequest);
        return send(conn, error_response(413, 41310000, "request body is too large"));
    }
    try {
        Request req;
        req.method = method ? method : "";
        const auto q = ex->uri.find('?');
        req.path = ex->uri.substr(0, q);
        if (q != std::string::npos) req.query = ex->uri.substr(q + 1);
        HeaderSink sink{req, {}};
        MHD_get_connection_values(conn, MHD_HEADER_KIND, &collect_header, &sink);
        if (!sink.repeated.empty()) {
            metrics::gateway_request("none", metrics::GatewayOutcome::BadRequest);
            return send(conn,
                        error_response(400, 40010000, "repeated " + sink.repeated + " header"));
        }
        req.body = std::move(ex->body);
        ex->body.clear();
        Response r = self->handle(req);
        secure_wipe(req.body.data(), req.body.size());
        return send(conn, r);
    } catch (const std::exception &e) {
        log_event(LogLevel::Error, "gateway", {{"message", e.what()}});
        return send(conn, error_response(500, 50010000, "internal gateway error"));
    }
}

const std::string *header(const Request &req, const char *name) {
    const auto it = req.headers.find(name);
    return it == req.headers.end() ? nullptr : &it->second;
}

bool is_mcp_path(const std::string &path) {
    return path == "/mcp" || path.rfind("/mcp/", 0) == 0;
}

// The MCP server (sidecar/mcp_route.cpp): it gets the request after the Host and Origin checks
// and answers it whole, bearer token included.
Response route_mcp(const Request &req, Deps &deps) {
    return mcp::route(req, deps);
}

}  // namespace

void Listener::DaemonDeleter::operator()(MHD_Daemon *d) const noexcept {
    MHD_stop_daemon(d);
}

Listener::Listener(const Config &cfg, Deps deps)
    : deps_(std::move(deps)),
      allowed_hosts_(cfg.gateway_allowed_hosts),
      allowed_origins_(cfg.gateway_allowed_origins),
      max_body_(cfg.gateway_max_body_bytes) {
    if (cfg.gateway_listen.empty()) return;
    const bool tls = !cfg.gateway_tls_cert.empty();
    if (tls) {
        tls_cert_ = read_pem(cfg.gateway_tls_cert, "gateway_tls_cert");
        tls_key_ = read_pem(cfg.gateway_tls_key, "gateway_tls_key");
    }
    for (const std::string &item : cfg.gateway_listen) {
        GatewayAddress a;
        std::string why;
        if (!parse_gateway_address(item, a, why)) throw Error(ErrorCode::ConfigFile, why);
        UniqueFd fd(bind_address(a, cfg.gateway_socket_mode));
        if (a.is_unix) unix_paths_.push_back(a.path);
        const bool use_tls = tls && !a.is_unix;
        unsigned flags =
            MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
        if (use_tls) flags |= MHD_USE_TLS;
        MHD_OptionItem opts[] = {
            {MHD_OPTION_LISTEN_SOCKET, fd.get(), nullptr},
            {MHD_OPTION_CONNECTION_LIMIT, cfg.gateway_max_connections, nullptr},
            {MHD_OPTION_CONNECTION_TIMEOUT, cfg.gateway_connection_timeout_s, nullptr},
            {MHD_OPTION_CONNECTION_MEMORY_LIMIT, 64 * 1024, nullptr},
            {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)&on_uri, nullptr},
            {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)&on_completed, nullptr},
            {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)&no_unescape, nullptr},
            {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)&on_mhd_log, nullptr},
            {use_tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0,
             use_tls ? (void *)tls_cert_.c_str() : nullptr},
            {use_tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0,
             use_tls ? (void *)tls_key_.c_str() : nullptr},
            // TLS 1.2 and 1.3 only, GnuTLS's secure defaults otherwise.
            {use_tls ? MHD_OPTION_HTTPS_PRIORITIES : MHD_OPTION_END, 0,
             use_tls ? (void *)kTlsPriorities : nullptr},
            {MHD_OPTION_END, 0, nullptr},
        };
        MHD_Daemon *d = MHD_start_daemon(flags, 0, nullptr, nullptr, &on_access, this,
                                         MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
        if (d == nullptr) {
            throw Error(ErrorCode::Io,
                        "gateway: libmicrohttpd could not start on " +
                            (a.is_unix ? a.path : a.host + ":" + std::to_string(a.port)));
        }
        fd.release();  // MHD closes it when it stops
        daemons_.emplace_back(d);
        log_event(LogLevel::Info, "gateway_listen",
                  {{"address", item}, {"tls", use_tls ? "on" : "off"}});
    }
}

Listener::~Listener() {
    daemons_.clear();
    for (const std::string &p : unix_paths_) unlink(p.c_str());
}

Response Listener::handle(const Request &req) {
    const std::string *host = header(req, "host");
    if (host == nullptr || !host_allowed(*host, allowed_hosts_)) {
        metrics::gateway_request("none", metrics::GatewayOutcome::Forbidden);
        log_event(LogLevel::Warn, "gateway", {{"refused", "host not allowed"}});
        return error_response(403, 40310000, "host not allowed");
    }
    if (!origin_allowed(header(req, "origin"), allowed_origins_)) {
        metrics::gateway_request("none", metrics::GatewayOutcome::Forbidden);
        log_event(LogLevel::Warn, "gateway", {{"refused", "origin not allowed"}});
        return error_response(403, 40310000, "origin not allowed");
    }
    if (is_mcp_path(req.path)) return route_mcp(req, deps_);
    if (req.body.size() > max_body_) {
        metrics::gateway_request("none", metrics::GatewayOutcome::BadRequest);
        return error_response(413, 41310000, "request body is too large");
    }
    if (req.path.size() > kMaxUri) {
        metrics::gateway_request("none", metrics::GatewayOutcome::Forbidden);
        return error_response(403, 40310000, "this path is not allowed by the gateway");
    }
    const std::string_view token =
        presented_token(header(req, "apca-api-key-id"), header(req, "authorization"));
    if (!looks_like_session_token(token)) {
        metrics::gateway_request("none", metrics::GatewayOutcome::Unauthorized);
        return unauthorized();
    }
    TokenUpstream up(deps_, secure_copy(token));
    return up.call(req.method, req.query.empty() ? req.path : req.path + "?" + req.query, req.body);
}

}  // namespace pga::sidecar::gateway
