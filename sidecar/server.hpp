// The daemon's core: the listening unix socket, the connections still sending their request
// frame, a bounded queue of complete requests, the worker threads (one HttpClient each),
// SIGHUP reload and SIGTERM drain.
//
// The poll thread reads every new connection's frame: every socket is non-blocking, a request
// frame is assembled from whatever bytes have arrived (FrameReader) and reaches the queue only
// when it is complete. A connection that has not sent its whole frame within read_timeout_ms of
// being accepted is closed; so is the oldest such connection when more than
// max_pending_connections are waiting (backends send their frame right after connecting, so the
// one that has waited longest is the least likely to be a real call).
//
// A connection whose answer a worker sent is kept for the client's next request (a backend
// reuses its connection for look-ups, never for an order). The worker first lingers on it for
// kLingerMs (2 ms), unless other requests wait in the queue (checked before and after the
// wait): when the next request's whole frame has arrived by then (a backend calling again at
// once), the worker serves it itself, without the two hand-offs through the poll thread.
// Anything else — no frame yet, part of one, a frame that does not decode — leaves the bytes
// unread and the connection goes back to the poll thread, which reads and judges it as any
// other. So a worker never waits for a client's bytes beyond kLingerMs, and never reads a frame
// that is not whole. There the connection is idle: it has kIdleKeep to send a request, then is
// closed without a word; over max_pending_connections the oldest idle one goes first, also
// silently (it has asked nothing).
//
// A kept connection whose client sends its next request before it has read the previous answer
// is closed (a backend reads each answer whole before it asks again): otherwise a client that
// pipelines requests and never reads would fill its socket and hold the worker writing to it
// for kWriteTimeout each time.
#pragma once
#include "common/cpp_only.hpp"
#include "common/secure_memory.hpp"
#include "common/unique_fd.hpp"
#include "common/wire.hpp"
#include "sidecar/rate_limiter.hpp"
#include "sidecar/config.hpp"
#include "sidecar/http_client.hpp"
#include "sidecar/redeemer.hpp"
#include "sidecar/request_handler.hpp"
#include "sidecar/metrics.hpp"
#include "sidecar/work_queue.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pga::sidecar {

// Assembles one request frame (u32 BE length | payload) from bytes as they arrive; no I/O.
// Bytes are written straight into space() so the payload (it holds the ticket) lives only in
// SecureBytes. Never asks for a byte beyond the frame.
class FrameReader {
  public:
    enum class State { NeedMore, Complete, Invalid };
    explicit FrameReader(std::size_t max_payload = kMaxRequestPayload) noexcept
        : max_payload_(max_payload) {}

    // Where the next bytes go and how many the frame still needs (0 unless NeedMore).
    std::uint8_t *space() noexcept;
    std::size_t space_len() const noexcept;
    // Records that n (<= space_len()) bytes were written at space().
    State commit(std::size_t n);

    State state() const noexcept { return state_; }
    std::size_t bytes_received() const noexcept { return received_; }
    // Why the frame is Invalid (a message we composed; never frame bytes).
    const std::string &error() const noexcept { return error_; }
    // The payload once Complete (moved out; the reader is spent afterwards).
    SecureBytes take_payload() noexcept { return std::move(payload_); }

  private:
    std::size_t max_payload_;
    State state_ = State::NeedMore;
    std::uint8_t prefix_[kFramePrefixLen] = {};
    std::size_t received_ = 0;  // prefix and payload bytes so far
    SecureBytes payload_;
    std::string error_;
};

// At most one log line per interval for a kind of event; the events in between are counted and
// reported by the next line (or by flush() once the interval has passed).
class LogThrottle {
  public:
    using Clock = std::chrono::steady_clock;
    explicit LogThrottle(std::chrono::milliseconds interval) noexcept : interval_(interval) {}
    // Counts one event. True when it should be logged now; `suppressed` is then the number of
    // events not logged since the previous line.
    bool allow(Clock::time_point now, std::uint64_t &suppressed) noexcept;
    // True (with the count) when events were suppressed and the interval has passed since the
    // last line: log a summary.
    bool flush(Clock::time_point now, std::uint64_t &suppressed) noexcept;
    // When flush() next has something to say; time_point::max() when nothing is pending.
    Clock::time_point next_flush() const noexcept;

  private:
    std::chrono::milliseconds interval_;
    bool logged_ = false;
    Clock::time_point last_{};
    std::uint64_t suppressed_ = 0;
};

// How many connections may wait for their frame given the process's descriptor limit: the
// configured bound, lowered so that waiting + queued + served connections plus the daemon's own
// descriptors (listen socket, signalfd, log, libpq, curl) stay below `fd_limit`. At least 1.
std::size_t effective_max_pending(std::size_t configured, std::size_t fd_limit,
                                  std::size_t max_queue, int workers, int pool_size) noexcept;

class Server {
  public:
    // config_path is re-read on SIGHUP. Throws Error when the socket cannot be set up.
    Server(std::string config_path, Config cfg);
    ~Server();
    Server(const Server &) = delete;
    Server &operator=(const Server &) = delete;

    // Serves until SIGTERM or SIGINT, then stops accepting, finishes every queued and running
    // request and returns. signal_fd: a signalfd for SIGHUP, SIGTERM and SIGINT.
    void run(int signal_fd);

    // What the gateway (sidecar/gateway_listener.hpp) shares with the socket path: the database
    // pool, the per-credential rate limiter, the TLS session cache and the current settings.
    Redeemer &redeemer() noexcept { return redeemer_; }
    RateLimiter &limiter() noexcept { return limiter_; }
    const CurlShare &curl_share() const noexcept { return curl_share_; }
    std::shared_ptr<const Config> current_config() const { return config(); }

  private:
    using Clock = std::chrono::steady_clock;

    // A connection whose request frame has not fully arrived; owned by the poll thread.
    struct Pending {
        explicit Pending(int fd_, Clock::time_point now, Clock::time_point deadline_,
                         bool idle_ = false)
            : fd(fd_), accepted(now), deadline(deadline_), idle(idle_) {}
        UniqueFd fd;
        Clock::time_point accepted;  // or when its next frame began (a kept connection)
        Clock::time_point deadline;
        bool idle;  // a kept connection that has sent nothing of its next frame yet
        FrameReader frame;
    };
    // A complete request waiting for a worker.
    struct Job {
        explicit Job(int fd_) : fd(fd_) {}
        UniqueFd fd;
        SidecarRequest req;
    };
    using PendingList = std::list<Pending>;  // in accept order: front is the oldest

    std::shared_ptr<const Config> config() const;
    void reload();
    void open_socket();
    void accept_ready(Clock::time_point now);
    // Reads what has arrived; dispatches, answers or closes the connection when it is done.
    // Returns true when the connection left the pending list.
    bool read_pending(PendingList::iterator it);
    void dispatch(PendingList::iterator it);
    void drop_pending(PendingList::iterator it, const char *reason, Outcome outcome,
                      const std::string &message);
    void expire_pending(Clock::time_point now);
    // Closes the oldest idle kept connection; false when there is none.
    bool drop_idle();
    // Workers: a connection whose answer was sent goes back to the poll thread.
    void keep_connection(UniqueFd fd);
    // The poll thread: the connections workers handed back become idle pending ones.
    void take_kept(Clock::time_point now, std::size_t max_pending);
    void flush_drop_log(Clock::time_point now);
    int poll_timeout_ms(Clock::time_point now) const;
    void worker_loop();
    void serve_job(Job &job, HttpClient &http);
    // Serves one request of job's connection; false when its answer could not be sent.
    bool serve_request(Job &job, HttpClient &http);
    enum class NextFrame { Ready, HandBack, Gone };
    // Lingers on job's connection for its next request (see the top of this file): Ready with
    // job.req decoded and its frame consumed; HandBack with nothing read; Gone when the client
    // hung up.
    NextFrame linger_for_next(Job &job);

    const std::string config_path_;
    mutable std::mutex config_mu_;
    std::shared_ptr<const Config> config_;

    Redeemer redeemer_;
    OutcomeWriter outcomes_;  // outlives handler_ and the workers
    RateLimiter limiter_;
    CurlShare curl_share_;
    RequestHandler handler_;

    int listen_fd_ = -1;
    std::size_t fd_limit_ = 0;  // RLIMIT_NOFILE's soft limit at start
    PendingList pending_;
    UniqueFd kept_wake_;  // eventfd: a worker handed a connection back
    std::mutex kept_mu_;
    std::vector<UniqueFd> kept_;               // handed back, not yet taken by the poll thread
    bool kept_closed_ = false;                 // stopping: hand-backs are closed instead
    Clock::time_point accept_paused_until_{};  // after EMFILE with nothing left to drop
    LogThrottle drop_log_{std::chrono::seconds(1)};
    LogThrottle bad_log_{std::chrono::seconds(1)};
    LogThrottle accept_log_{std::chrono::seconds(1)};

    WorkQueue<Job> queue_{[](std::size_t n) { metrics::set_queue_depth(n); }};
    std::vector<std::thread> workers_;
};

}  // namespace pga::sidecar
