#include "sidecar/server.hpp"

#include "common/error.hpp"
#include "common/version.hpp"
#include "common/unique_fd.hpp"
#include "common/wire.hpp"
#include "sidecar/log.hpp"
#include "sidecar/metrics.hpp"

#include <grp.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>

namespace pga::sidecar {
namespace {

using Clock = std::chrono::steady_clock;

using Fd = UniqueFd;

// Waits until fd is ready for `events` or the deadline passes.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        const long ms = long(
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
        if (ms <= 0) return false;
        pollfd p{fd, events, 0};
        const int rc = ::poll(&p, 1, int(std::min(ms, 1000L)));
        if (rc > 0) return true;
        if (rc < 0 && errno != EINTR) return false;
    }
}

bool read_exact(int fd, std::uint8_t *out, std::size_t len, Clock::time_point deadline) {
    std::size_t off = 0;
    while (off < len) {
        const ssize_t n = ::recv(fd, out + off, len - off, MSG_DONTWAIT);
        if (n > 0) {
            off += std::size_t(n);
        } else if (n == 0) {
            return false;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!wait_fd(fd, POLLIN, deadline)) return false;
        } else if (errno != EINTR) {
            return false;
        }
    }
    return true;
}

bool write_all(int fd, const std::uint8_t *data, std::size_t len, Clock::time_point deadline) {
    std::size_t off = 0;
    while (off < len) {
        const ssize_t n = ::send(fd, data + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += std::size_t(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait_fd(fd, POLLOUT, deadline)) return false;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return false;
        }
    }
    return true;
}

// Reads one request frame. Returns false (and sets error) when the client sent garbage or
// nothing in time; an empty error means the client simply went away.
bool read_request(int fd, long timeout_ms, SidecarRequest &req, std::string &error) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    std::uint8_t prefix[kFramePrefixLen];
    if (!read_exact(fd, prefix, sizeof prefix, deadline)) return false;
    try {
        const std::uint32_t len = decode_frame_length(prefix, kMaxRequestPayload);
        SecureBytes payload(len);  // holds the ticket
        if (!read_exact(fd, payload.data(), payload.size(), deadline)) {
            error = "incomplete request frame";
            return false;
        }
        req = decode_request(payload.data(), payload.size());
        return true;
    } catch (const Error &e) {
        error = e.what();
        return false;
    }
}

void send_response(int fd, const SidecarResponse &resp) {
    const std::string frame = encode_response(resp);
    write_all(fd, reinterpret_cast<const std::uint8_t *>(frame.data()), frame.size(),
              Clock::now() + std::chrono::seconds(5));
}

// The answer to "status": the sidecar's own state, without a ticket and without Alpaca.
SidecarResponse status_answer(const SidecarRequest &req) {
    SidecarResponse resp;
    resp.request_id = req.request_id;
    resp.outcome = Outcome::Ok;
    resp.http_status = 200;
    resp.body = metrics::status_json();
    return resp;
}

bool client_hung_up(int fd) {
    pollfd p{fd, POLLRDHUP, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

}  // namespace

Server::Server(std::string config_path, Config cfg)
    : config_path_(std::move(config_path)),
      config_(std::make_shared<const Config>(cfg)),
      redeemer_(cfg.conninfo, cfg.pool_size),
      limiter_(double(cfg.rate_limit_per_minute), std::chrono::minutes(1)),
      handler_(redeemer_, limiter_) {
    open_socket();
}

Server::~Server() {
    if (listen_fd_ >= 0) ::close(listen_fd_);
}

std::shared_ptr<const Config> Server::config() const {
    std::lock_guard<std::mutex> lock(config_mu_);
    return config_;
}

void Server::open_socket() {
    const Config &cfg = *config_;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (cfg.socket_path.size() >= sizeof addr.sun_path)
        throw Error(ErrorCode::ConfigFile, "socket_path is too long for a unix socket");
    std::memcpy(addr.sun_path, cfg.socket_path.c_str(), cfg.socket_path.size() + 1);

    // A socket file left by a crashed sidecar is removed; a live one is not stolen.
    struct stat st;
    if (::lstat(cfg.socket_path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            throw Error(ErrorCode::ConfigFile, cfg.socket_path + " exists and is not a socket");
        Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (::connect(probe.get(), reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0)
            throw Error(ErrorCode::Io, "another alpaca-sidecar is listening on " + cfg.socket_path);
        ::unlink(cfg.socket_path.c_str());
    }

    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listen_fd_ < 0) throw Error(ErrorCode::Io, std::string("socket: ") + std::strerror(errno));
    const mode_t old_umask = ::umask(0177);  // never world-connectable, even for a moment
    const int rc = ::bind(listen_fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
    const int bind_errno = errno;
    ::umask(old_umask);
    if (rc != 0)
        throw Error(ErrorCode::Io,
                    "cannot bind " + cfg.socket_path + ": " + std::strerror(bind_errno));
    if (!cfg.socket_group.empty()) {
        const group *g = ::getgrnam(cfg.socket_group.c_str());
        if (g == nullptr || ::chown(cfg.socket_path.c_str(), uid_t(-1), g->gr_gid) != 0)
            throw Error(ErrorCode::Io,
                        "cannot give " + cfg.socket_path + " to group " + cfg.socket_group);
    }
    if (::chmod(cfg.socket_path.c_str(), cfg.socket_mode) != 0 ||
        ::listen(listen_fd_, SOMAXCONN) != 0)
        throw Error(ErrorCode::Io,
                    "cannot listen on " + cfg.socket_path + ": " + std::strerror(errno));
}

void Server::reload() {
    Config fresh;
    try {
        fresh = load_config(config_path_);
        check_config_environment(fresh, config_path_);
    } catch (const Error &e) {
        log_event(LogLevel::Error, "reload_failed",
                  {{"message", e.what()}, {"action", "keeping the running configuration"}});
        return;
    }
    const auto running = config();
    const auto fixed = restart_required_changes(*running, fresh);
    std::string fixed_list;
    for (const auto &name : fixed) fixed_list += (fixed_list.empty() ? "" : ",") + name;
    // Settings bound at start-up keep their running values.
    fresh.socket_path = running->socket_path;
    fresh.socket_mode = running->socket_mode;
    fresh.socket_group = running->socket_group;
    fresh.conninfo = running->conninfo;
    fresh.pool_size = running->pool_size;
    fresh.workers = running->workers;
    try {
        log_configure(fresh.log_level, fresh.log_file);
    } catch (const Error &e) {
        log_event(LogLevel::Error, "reload_failed", {{"message", e.what()}});
        return;
    }
    limiter_.reconfigure(double(fresh.rate_limit_per_minute), std::chrono::minutes(1));
    {
        std::lock_guard<std::mutex> lock(config_mu_);
        config_ = std::make_shared<const Config>(std::move(fresh));
    }
    log_event(LogLevel::Info, "reloaded", {{"config", config_path_}});
    if (!fixed.empty()) log_event(LogLevel::Warn, "restart_required", {{"settings", fixed_list}});
}

void Server::refuse_overloaded(int fd) {
    SidecarRequest req;
    std::string error;
    if (!read_request(fd, 200, req, error)) return;
    SidecarResponse resp;
    resp.request_id = req.request_id;
    resp.outcome = Outcome::Overloaded;
    resp.message = "request queue is full";
    log_event(LogLevel::Warn, "request",
              {{"id", req.request_id}, {"op", req.operation}, {"outcome", "overloaded"}});
    metrics::request_done(req.operation, resp.outcome, "-", Clock::now(), resp.message);
    send_response(fd, resp);
}

void Server::accept_ready() {
    const std::size_t max_queue = config()->max_queue;
    for (;;) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) return;  // EAGAIN: drained; anything else: try again on the next wake-up
        {
            std::lock_guard<std::mutex> lock(queue_mu_);
            if (queue_.size() < max_queue) {
                queue_.push_back(fd);
                metrics::set_queue_depth(queue_.size());
                queue_cv_.notify_one();
                continue;
            }
        }
        refuse_overloaded(fd);
        ::close(fd);
    }
}

void Server::serve_connection(int fd, HttpClient &http) {
    const auto cfg = config();
    SidecarRequest req;
    std::string error;
    if (!read_request(fd, cfg->read_timeout_ms, req, error)) {
        if (error.empty()) return;
        SidecarResponse resp;
        resp.outcome = Outcome::BadRequest;
        resp.message = error;
        log_event(LogLevel::Warn, "bad_request", {{"message", error}});
        send_response(fd, resp);
        return;
    }
    if (req.operation == kStatusOperation) return send_response(fd, status_answer(req));
    // req.ticket is SecureBytes: wiped when req goes out of scope.
    SidecarResponse resp = handler_.handle(req, *cfg, http, [fd] { return client_hung_up(fd); });
    send_response(fd, resp);
}

void Server::worker_loop() {
    HttpClient http(curl_share_);
    for (;;) {
        int fd;
        {
            std::unique_lock<std::mutex> lock(queue_mu_);
            queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping and drained
            fd = queue_.front();
            queue_.pop_front();
            metrics::set_queue_depth(queue_.size());
        }
        Fd conn(fd);
        const metrics::BusyWorker busy;
        try {
            serve_connection(fd, http);
        } catch (const std::exception &e) {
            log_event(LogLevel::Error, "internal", {{"message", e.what()}});
        }
    }
}

void Server::run(int signal_fd) {
    const auto cfg = config();
    metrics::set_static(cfg->workers, cfg->max_queue, [this] { return redeemer_.open_connections(); });
    for (int i = 0; i < cfg->workers; ++i) workers_.emplace_back([this] { worker_loop(); });
    log_event(LogLevel::Info, "started",
              {{"socket", cfg->socket_path},
               {"workers", std::to_string(cfg->workers)},
               {"pool_size", std::to_string(cfg->pool_size)},
               {"paper", cfg->paper_base_url},
               {"live", cfg->live_base_url},
               {"version", pga::kVersion}});

    bool stop = false;
    while (!stop) {
        pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {signal_fd, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            throw Error(ErrorCode::Io, std::string("poll: ") + std::strerror(errno));
        }
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo si;
            while (::read(signal_fd, &si, sizeof si) == ssize_t(sizeof si)) {
                if (si.ssi_signo == SIGHUP) {
                    reload();
                } else {
                    stop = true;
                }
            }
        }
        if (!stop && (fds[0].revents & POLLIN)) accept_ready();
    }

    // Drain: no new connections; queued and running requests finish.
    ::close(listen_fd_);
    listen_fd_ = -1;
    ::unlink(cfg->socket_path.c_str());
    std::size_t queued;
    {
        std::lock_guard<std::mutex> lock(queue_mu_);
        stopping_ = true;
        queued = queue_.size();
    }
    queue_cv_.notify_all();
    log_event(LogLevel::Info, "stopping", {{"queued", std::to_string(queued)}});
    for (auto &t : workers_) t.join();
    workers_.clear();
    log_event(LogLevel::Info, "stopped", {});
}

}  // namespace pga::sidecar
