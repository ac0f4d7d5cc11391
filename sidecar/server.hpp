// The daemon's core: the listening unix socket, a bounded queue of accepted connections, the
// worker threads (one HttpClient each), SIGHUP reload and SIGTERM drain.
#pragma once
#include "common/cpp_only.hpp"
#include "sidecar/rate_limiter.hpp"
#include "sidecar/config.hpp"
#include "sidecar/http_client.hpp"
#include "sidecar/redeemer.hpp"
#include "sidecar/request_handler.hpp"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pga::sidecar {

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

  private:
    std::shared_ptr<const Config> config() const;
    void reload();
    void open_socket();
    void accept_ready();
    void worker_loop();
    void serve_connection(int fd, HttpClient &http);
    void refuse_overloaded(int fd);

    const std::string config_path_;
    mutable std::mutex config_mu_;
    std::shared_ptr<const Config> config_;

    Redeemer redeemer_;
    RateLimiter limiter_;
    CurlShare curl_share_;
    RequestHandler handler_;

    int listen_fd_ = -1;
    std::mutex queue_mu_;
    std::condition_variable queue_cv_;
    std::deque<int> queue_;
    bool stopping_ = false;
    std::vector<std::thread> workers_;
};

}  // namespace pga::sidecar
