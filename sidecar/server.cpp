#include "sidecar/server.hpp"

#include "common/error.hpp"
#include "common/version.hpp"
#include "common/unique_fd.hpp"
#include "common/wire.hpp"
#include "sidecar/log.hpp"
#include "sidecar/metrics.hpp"

#include <grp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/sockios.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <iterator>
#include <limits>
#include <utility>

namespace pga::sidecar {
namespace {

using Fd = UniqueFd;

constexpr int kAcceptBatch = 64;  // then the waiting connections get their turn
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
constexpr auto kWriteTimeout = std::chrono::seconds(5);
// How long a kept connection may sit idle before its client's next request.
constexpr auto kIdleKeep = std::chrono::seconds(60);
// How long a worker waits on the connection it answered for the next request (server.hpp).
constexpr int kLingerMs = 2;

// Waits until fd is ready for `events` or the deadline passes.
bool wait_fd(int fd, short events, std::chrono::steady_clock::time_point deadline) {
    using Clock = std::chrono::steady_clock;
    for (;;) {
        const long ms = long(
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
        if (ms <= 0) return false;
        pollfd p{fd, events, 0};
        const int rc = ::poll(&p, 1, int(std::min(ms, 1000L)));
        if (rc > 0) return (p.revents & (POLLERR | POLLHUP | POLLNVAL)) == 0;
        if (rc < 0 && errno != EINTR) return false;
    }
}

// Sends every byte of the parts, in order, with gathering writes (sendmsg): the body is never
// copied into a frame. Waits for the client to take them until the deadline.
bool write_all(int fd, iovec *parts, std::size_t count,
               std::chrono::steady_clock::time_point deadline) {
    while (count > 0 && parts->iov_len == 0) {
        ++parts;
        --count;
    }
    while (count > 0) {
        msghdr msg{};
        msg.msg_iov = parts;
        msg.msg_iovlen = count;
        const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            std::size_t sent = std::size_t(n);
            while (count > 0 && sent >= parts->iov_len) {
                sent -= parts->iov_len;
                ++parts;
                --count;
            }
            if (count > 0) {
                parts->iov_base = static_cast<std::uint8_t *>(parts->iov_base) + sent;
                parts->iov_len -= sent;
            }
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait_fd(fd, POLLOUT, deadline)) return false;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return false;  // EPIPE, ECONNRESET: the client hung up
        }
    }
    return true;
}

// A worker's answer: waits for the client to take it, at most kWriteTimeout. False when it
// could not be sent whole.
bool send_response(int fd, const SidecarResponse &resp) {
    std::string head = encode_response_head(resp);
    iovec parts[2] = {{head.data(), head.size()},
                      {const_cast<char *>(resp.body.data()), resp.body.size()}};
    return write_all(fd, parts, 2, std::chrono::steady_clock::now() + kWriteTimeout);
}

// The poll thread's answer: one non-blocking attempt (a short frame fits an empty socket
// buffer), because that thread must never wait for a client.
void send_now(int fd, const SidecarResponse &resp) noexcept {
    try {
        const std::string frame = encode_response(resp);
        (void)::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    } catch (const std::exception &) {
        // Nothing to answer with; the connection is closed anyway.
    }
}

// True when bytes we sent on fd are still waiting for the client to read them (SIOCOUTQ of a
// unix stream socket: what the peer has not consumed yet).
bool answer_unread(int fd) {
    int n = 0;
    return ::ioctl(fd, SIOCOUTQ, &n) == 0 && n > 0;
}

bool client_hung_up(int fd) {
    pollfd p{fd, POLLRDHUP, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

long ms_since(std::chrono::steady_clock::time_point from,
              std::chrono::steady_clock::time_point to) {
    return long(std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count());
}

// The connecting process (pid, uid) as the kernel saw it, for the operator hunting a client
// that holds connections open. "?" when unknown.
std::pair<std::string, std::string> peer_of(int fd) {
    ucred c{};
    socklen_t len = sizeof c;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0) return {"?", "?"};
    return {std::to_string(c.pid), std::to_string(c.uid)};
}

std::size_t current_fd_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return std::numeric_limits<std::size_t>::max();
    return std::size_t(rl.rlim_cur);
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

}  // namespace

// ---------------------------------------------------------------------------------------------
// FrameReader
// ---------------------------------------------------------------------------------------------
std::uint8_t *FrameReader::space() noexcept {
    if (state_ != State::NeedMore) return nullptr;
    if (received_ < kFramePrefixLen) return prefix_ + received_;
    return payload_.data() + (received_ - kFramePrefixLen);
}

std::size_t FrameReader::space_len() const noexcept {
    if (state_ != State::NeedMore) return 0;
    if (received_ < kFramePrefixLen) return kFramePrefixLen - received_;
    return payload_.size() - (received_ - kFramePrefixLen);
}

FrameReader::State FrameReader::commit(std::size_t n) {
    if (state_ != State::NeedMore || n == 0) return state_;
    if (n > space_len()) {
        state_ = State::Invalid;
        error_ = "internal: more bytes than the frame needs";
        return state_;
    }
    const bool in_prefix = received_ < kFramePrefixLen;
    received_ += n;
    if (in_prefix) {
        if (received_ < kFramePrefixLen) return state_;
        try {
            payload_.resize(decode_frame_length(prefix_, max_payload_));  // never 0
        } catch (const Error &e) {
            state_ = State::Invalid;
            error_ = e.what();
        }
        return state_;
    }
    if (received_ == kFramePrefixLen + payload_.size()) state_ = State::Complete;
    return state_;
}

// ---------------------------------------------------------------------------------------------
// LogThrottle
// ---------------------------------------------------------------------------------------------
bool LogThrottle::allow(Clock::time_point now, std::uint64_t &suppressed) noexcept {
    if (logged_ && now - last_ < interval_) {
        ++suppressed_;
        return false;
    }
    suppressed = suppressed_;
    suppressed_ = 0;
    last_ = now;
    logged_ = true;
    return true;
}

bool LogThrottle::flush(Clock::time_point now, std::uint64_t &suppressed) noexcept {
    if (suppressed_ == 0 || now - last_ < interval_) return false;
    suppressed = suppressed_;
    suppressed_ = 0;
    last_ = now;
    return true;
}

LogThrottle::Clock::time_point LogThrottle::next_flush() const noexcept {
    return suppressed_ == 0 ? Clock::time_point::max() : last_ + interval_;
}

// ---------------------------------------------------------------------------------------------
// Descriptor budget
// ---------------------------------------------------------------------------------------------
std::size_t effective_max_pending(std::size_t configured, std::size_t fd_limit,
                                  std::size_t max_queue, int workers, int pool_size) noexcept {
    // stdio, listen socket, signalfd, log file, slack; libpq; curl keeps a few per handle.
    const std::size_t own =
        16 + std::size_t(std::max(pool_size, 0)) + 4 * std::size_t(std::max(workers, 0));
    // Connections past the frame stage: queued and being served.
    const std::size_t held = max_queue + std::size_t(std::max(workers, 0));
    if (configured == 0) configured = 1;
    if (fd_limit <= own + held + 1) return 1;
    return std::min(configured, fd_limit - own - held);
}

Server::Server(std::string config_path, Config cfg)
    : config_path_(std::move(config_path)),
      config_(std::make_shared<const Config>(cfg)),
      redeemer_(cfg.conninfo, cfg.pool_size),
      outcomes_(cfg.conninfo),
      limiter_(double(cfg.rate_limit_per_minute), std::chrono::minutes(1)),
      handler_(redeemer_, limiter_, outcomes_),
      fd_limit_(current_fd_limit()) {
    kept_wake_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (kept_wake_.get() < 0)
        throw Error(ErrorCode::Io, std::string("eventfd: ") + std::strerror(errno));
    open_socket();
}

Server::~Server() {
    // redeemer_ and outcomes_ go away with this server.
    metrics::set_pool_source(nullptr);
    metrics::set_outcome_source(nullptr);
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

// ---------------------------------------------------------------------------------------------
// The poll thread: accepting and reading request frames
// ---------------------------------------------------------------------------------------------
void Server::drop_pending(PendingList::iterator it, const char *reason, Outcome outcome,
                          const std::string &message) {
    const auto now = Clock::now();
    std::uint64_t suppressed = 0;
    if (drop_log_.allow(now, suppressed)) {
        // Never the bytes: only how many arrived and how long the client had.
        const auto peer = peer_of(it->fd.get());
        log_event(LogLevel::Warn, "connection_dropped",
                  {{"reason", reason},
                   {"waited_ms", std::to_string(ms_since(it->accepted, now))},
                   {"bytes", std::to_string(it->frame.bytes_received())},
                   {"peer_pid", peer.first},
                   {"peer_uid", peer.second},
                   {"suppressed", std::to_string(suppressed)}});
    }
    // A backend that was merely slow gets a reason instead of a bare hang-up.
    SidecarResponse resp;
    resp.outcome = outcome;
    resp.message = message;
    send_now(it->fd.get(), resp);
    pending_.erase(it);
}

void Server::flush_drop_log(Clock::time_point now) {
    std::uint64_t n = 0;
    if (drop_log_.flush(now, n))
        log_event(LogLevel::Warn, "connection_dropped", {{"suppressed", std::to_string(n)}});
    if (bad_log_.flush(now, n))
        log_event(LogLevel::Warn, "bad_request", {{"suppressed", std::to_string(n)}});
    if (accept_log_.flush(now, n))
        log_event(LogLevel::Error, "accept_failed", {{"suppressed", std::to_string(n)}});
}

void Server::dispatch(PendingList::iterator it) {
    SecureBytes payload = it->frame.take_payload();  // holds the ticket; wiped on release
    auto job = std::make_unique<Job>(it->fd.release());
    pending_.erase(it);
    try {
        job->req = decode_request(payload.data(), payload.size());
    } catch (const Error &e) {
        std::uint64_t suppressed = 0;
        if (bad_log_.allow(Clock::now(), suppressed))
            log_event(LogLevel::Warn, "bad_request",
                      {{"message", e.what()}, {"suppressed", std::to_string(suppressed)}});
        SidecarResponse resp;
        resp.outcome = Outcome::BadRequest;
        resp.message = e.what();
        send_now(job->fd.get(), resp);
        return;
    }
    if (queue_.push(job, config()->max_queue)) return;
    SidecarResponse resp;
    resp.request_id = job->req.request_id;
    resp.outcome = Outcome::Overloaded;
    resp.message = "request queue is full";
    log_event(LogLevel::Warn, "request",
              {{"id", job->req.request_id}, {"op", job->req.operation}, {"outcome", "overloaded"}});
    metrics::request_done(job->req.operation, resp.outcome, "-", Clock::now(), resp.message);
    send_now(job->fd.get(), resp);
}

bool Server::read_pending(PendingList::iterator it) {
    if (it->idle && answer_unread(it->fd.get())) {
        drop_pending(it, "answer_unread", Outcome::BadRequest,
                     "a request came before the previous answer was read");
        return true;
    }
    FrameReader &frame = it->frame;
    while (frame.state() == FrameReader::State::NeedMore) {
        const ssize_t n = ::recv(it->fd.get(), frame.space(), frame.space_len(), MSG_DONTWAIT);
        if (n > 0) {
            if (it->idle) {  // a kept connection's next frame: read_timeout_ms from now on
                it->idle = false;
                it->accepted = Clock::now();
                it->deadline = it->accepted + std::chrono::milliseconds(config()->read_timeout_ms);
            }
            frame.commit(std::size_t(n));
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return false;  // the rest comes later (or the deadline closes it)
        } else {
            pending_.erase(it);  // went away before its frame was complete: nobody to answer
            return true;
        }
    }
    if (frame.state() == FrameReader::State::Invalid) {
        std::uint64_t suppressed = 0;
        if (bad_log_.allow(Clock::now(), suppressed))
            log_event(LogLevel::Warn, "bad_request",
                      {{"message", frame.error()}, {"suppressed", std::to_string(suppressed)}});
        SidecarResponse resp;
        resp.outcome = Outcome::BadRequest;
        resp.message = frame.error();
        send_now(it->fd.get(), resp);
        pending_.erase(it);
        return true;
    }
    dispatch(it);
    return true;
}

void Server::expire_pending(Clock::time_point now) {
    for (auto it = pending_.begin(); it != pending_.end();) {
        const auto next = std::next(it);
        if (now >= it->deadline) {
            if (it->idle)
                pending_.erase(it);  // asked nothing: closed without a word
            else
                drop_pending(it, "read_timeout", Outcome::BadRequest,
                             "the request frame did not arrive within read_timeout_ms");
        }
        it = next;
    }
}

bool Server::drop_idle() {
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
        if (it->idle) {
            pending_.erase(it);
            return true;
        }
    }
    return false;
}

void Server::keep_connection(UniqueFd fd) {
    {
        std::lock_guard<std::mutex> lock(kept_mu_);
        if (kept_closed_) return;  // stopping: fd closes here
        kept_.push_back(std::move(fd));
    }
    const std::uint64_t one = 1;
    (void)!::write(kept_wake_.get(), &one, sizeof one);
}

void Server::take_kept(Clock::time_point now, std::size_t max_pending) {
    std::uint64_t n = 0;
    (void)!::read(kept_wake_.get(), &n, sizeof n);
    std::vector<UniqueFd> kept;
    {
        std::lock_guard<std::mutex> lock(kept_mu_);
        kept.swap(kept_);
    }
    for (UniqueFd &fd : kept) {
        if (pending_.size() >= max_pending && !drop_idle()) break;  // the rest close here
        pending_.emplace_back(fd.release(), now, now + kIdleKeep, true);
    }
}

void Server::accept_ready(Clock::time_point now) {
    const auto cfg = config();
    const std::size_t max_pending = effective_max_pending(
        cfg->max_pending_connections, fd_limit_, cfg->max_queue, cfg->workers, cfg->pool_size);
    const auto timeout = std::chrono::milliseconds(cfg->read_timeout_ms);
    for (int i = 0; i < kAcceptBatch; ++i) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            const int err = errno;
            if (err == EINTR || err == ECONNABORTED) continue;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                // Out of descriptors: the oldest waiting connection makes room. With none to
                // drop, stop polling the listen socket for a moment instead of spinning on it;
                // new connections wait in the kernel's backlog meanwhile.
                if (drop_idle()) continue;
                if (!pending_.empty()) {
                    drop_pending(pending_.begin(), "fd_limit", Outcome::Overloaded,
                                 "the sidecar is out of file descriptors");
                    continue;
                }
                accept_paused_until_ = now + kAcceptPause;
                std::uint64_t suppressed = 0;
                if (accept_log_.allow(now, suppressed))
                    log_event(LogLevel::Error, "accept_failed",
                              {{"message", std::strerror(err)},
                               {"suppressed", std::to_string(suppressed)}});
            }
            return;  // EAGAIN: drained
        }
        while (!pending_.empty() && pending_.size() >= max_pending && !drop_idle())
            drop_pending(pending_.begin(), "too_many_pending", Outcome::Overloaded,
                         "too many connections are waiting to send a request");
        pending_.emplace_back(fd, now, now + timeout);
        // A backend sends its frame right after connecting: usually it is already here.
        read_pending(std::prev(pending_.end()));
    }
}

int Server::poll_timeout_ms(Clock::time_point now) const {
    Clock::time_point next = Clock::time_point::max();
    for (const auto &p : pending_) next = std::min(next, p.deadline);
    if (accept_paused_until_ > now) next = std::min(next, accept_paused_until_);
    next =
        std::min({next, drop_log_.next_flush(), bad_log_.next_flush(), accept_log_.next_flush()});
    if (next == Clock::time_point::max()) return -1;
    if (next <= now) return 0;
    // Round up so that the wake-up is not a millisecond early (which would spin).
    const long ms = ms_since(now, next) + 1;
    return int(std::min(ms, 60000L));
}

// ---------------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------------
bool Server::serve_request(Job &job, HttpClient &http) {
    const auto cfg = config();
    const int fd = job.fd.get();
    // A client that hung up while its request was queued (a cancelled backend, or one that
    // sends frames and leaves) costs no redeem and no upstream call.
    if (client_hung_up(fd)) {
        log_event(LogLevel::Warn, "request",
                  {{"id", job.req.request_id},
                   {"op", job.req.operation},
                   {"outcome", outcome_name(Outcome::Internal)},
                   {"message", "the client hung up before its request was served"}});
        return false;
    }
    if (job.req.operation == kStatusOperation) return send_response(fd, status_answer(job.req));
    // job.req.ticket is SecureBytes: wiped when the job is destroyed or reused.
    SidecarResponse resp =
        handler_.handle(job.req, *cfg, http, [fd] { return client_hung_up(fd); });
    const bool sent = send_response(fd, resp);
    http.recycle_body(std::move(resp.body));
    return sent;
}

Server::NextFrame Server::linger_for_next(Job &job) {
    // The queue says both: requests wait, or the sidecar is stopping (queue_.stop()).
    const auto others_wait = [this] { return queue_.has_waiting_or_stopped(); };
    if (others_wait()) return NextFrame::HandBack;
    const int fd = job.fd.get();
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, kLingerMs) <= 0) return NextFrame::HandBack;  // nothing yet (or EINTR)
    // Requests that came meanwhile go first; a client asking again before it read our answer
    // is judged (and closed) by the poll thread.
    if (others_wait() || answer_unread(fd)) return NextFrame::HandBack;
    // Only look (MSG_PEEK) until a whole frame that decodes is there: otherwise every byte is
    // left for the poll thread's FrameReader, which also reports bad frames.
    std::uint8_t prefix[kFramePrefixLen];
    const ssize_t got = ::recv(fd, prefix, sizeof prefix, MSG_PEEK | MSG_DONTWAIT);
    if (got == 0) return NextFrame::Gone;
    if (got != ssize_t(sizeof prefix)) return NextFrame::HandBack;
    try {
        const std::size_t len = decode_frame_length(prefix, kMaxRequestPayload);
        SecureBytes frame(kFramePrefixLen + len);  // holds the ticket: wiped
        if (::recv(fd, frame.data(), frame.size(), MSG_PEEK | MSG_DONTWAIT) !=
            ssize_t(frame.size()))
            return NextFrame::HandBack;
        SidecarRequest req = decode_request(frame.data() + kFramePrefixLen, len);
        // The frame is ours now: take its bytes off the socket (they are there: we saw them).
        if (::recv(fd, frame.data(), frame.size(), MSG_DONTWAIT) != ssize_t(frame.size()))
            return NextFrame::Gone;
        job.req = std::move(req);
        return NextFrame::Ready;
    } catch (const Error &) {
        return NextFrame::HandBack;
    }
}

void Server::serve_job(Job &job, HttpClient &http) {
    for (;;) {
        {
            const metrics::BusyWorker busy;         // the linger below does not count as busy
            if (!serve_request(job, http)) return;  // the connection closes with the job
        }
        switch (linger_for_next(job)) {
            case NextFrame::Ready:
                continue;
            case NextFrame::Gone:
                return;
            case NextFrame::HandBack:
                keep_connection(std::move(job.fd));
                return;
        }
    }
}

void Server::worker_loop() {
    HttpClient http(curl_share_);
    for (;;) {
        std::unique_ptr<Job> job = queue_.pop();
        if (!job) return;  // stopping and drained
        try {
            serve_job(*job, http);
        } catch (const std::exception &e) {
            log_event(LogLevel::Error, "internal", {{"message", e.what()}});
        }
    }
}

void Server::run(int signal_fd) {
    const auto cfg = config();
    metrics::set_static(cfg->workers, cfg->max_queue);
    metrics::set_pool_source([this] { return redeemer_.open_connections(); });
    metrics::set_outcome_source([this] {
        return metrics::OutcomeFigures{outcomes_.queued(), outcomes_.written(),
                                       outcomes_.dropped()};
    });
    for (int i = 0; i < cfg->workers; ++i) workers_.emplace_back([this] { worker_loop(); });
    const std::size_t max_pending = effective_max_pending(
        cfg->max_pending_connections, fd_limit_, cfg->max_queue, cfg->workers, cfg->pool_size);
    log_event(LogLevel::Info, "started",
              {{"socket", cfg->socket_path},
               {"workers", std::to_string(cfg->workers)},
               {"pool_size", std::to_string(cfg->pool_size)},
               {"max_pending_connections", std::to_string(max_pending)},
               {"read_timeout_ms", std::to_string(cfg->read_timeout_ms)},
               {"paper", cfg->paper_base_url},
               {"live", cfg->live_base_url},
               {"version", pga::kVersion}});
    if (max_pending < cfg->max_pending_connections)
        log_event(LogLevel::Warn, "fd_limit",
                  {{"limit", std::to_string(fd_limit_)},
                   {"max_pending_connections", std::to_string(max_pending)},
                   {"action", "raise RLIMIT_NOFILE (LimitNOFILE=) or lower max_queue"}});

    std::vector<pollfd> fds;
    std::vector<PendingList::iterator> polled;  // fds[3 + i] is polled[i]
    bool stop = false;
    while (!stop) {
        auto now = Clock::now();
        const bool accepting = now >= accept_paused_until_;
        fds.clear();
        polled.clear();
        fds.push_back({signal_fd, POLLIN, 0});
        fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});  // -1: ignored by poll
        fds.push_back({kept_wake_.get(), POLLIN, 0});
        for (auto it = pending_.begin(); it != pending_.end(); ++it) {
            fds.push_back({it->fd.get(), POLLIN, 0});
            polled.push_back(it);
        }
        if (::poll(fds.data(), nfds_t(fds.size()), poll_timeout_ms(now)) < 0) {
            if (errno == EINTR) continue;
            throw Error(ErrorCode::Io, std::string("poll: ") + std::strerror(errno));
        }
        if (fds[0].revents & POLLIN) {
            signalfd_siginfo si;
            while (::read(signal_fd, &si, sizeof si) == ssize_t(sizeof si)) {
                if (si.ssi_signo == SIGHUP) {
                    reload();
                } else {
                    stop = true;
                }
            }
        }
        if (stop) break;
        // Erasing one list element leaves the other iterators valid.
        for (std::size_t i = 0; i < polled.size(); ++i) {
            if (fds[3 + i].revents != 0) read_pending(polled[i]);
        }
        now = Clock::now();
        expire_pending(now);
        if (fds[2].revents & POLLIN) {
            const auto c = config();
            take_kept(now, effective_max_pending(c->max_pending_connections, fd_limit_,
                                                 c->max_queue, c->workers, c->pool_size));
        }
        if (accepting && (fds[1].revents & POLLIN)) accept_ready(now);
        flush_drop_log(now);
    }

    // Drain: no new connections; connections still sending their frame are closed (they have
    // not asked for anything yet); queued and running requests finish.
    ::close(listen_fd_);
    listen_fd_ = -1;
    ::unlink(cfg->socket_path.c_str());
    const std::size_t unsent = std::size_t(
        std::count_if(pending_.begin(), pending_.end(), [](const Pending &p) { return !p.idle; }));
    pending_.clear();
    {
        std::lock_guard<std::mutex> lock(kept_mu_);
        kept_closed_ = true;
        kept_.clear();
    }
    const std::size_t queued = queue_.stop();
    log_event(LogLevel::Info, "stopping",
              {{"queued", std::to_string(queued)}, {"closed_unsent", std::to_string(unsent)}});
    for (auto &t : workers_) t.join();
    workers_.clear();
    log_event(LogLevel::Info, "stopped", {});
}

}  // namespace pga::sidecar
