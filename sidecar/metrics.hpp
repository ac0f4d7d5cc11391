// The sidecar's counters, gauges and histograms (a fixed, lock-free registry of atomics), their
// Prometheus text form, the JSON answer to the wire operation "status", and a tiny HTTP
// responder for GET /metrics on a loopback address (metrics_listen; off by default).
// Labels are operation, outcome and environment only: never a credential id, key or ticket.
#pragma once
#include "common/cpp_only.hpp"
#include "common/wire.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

namespace pga::sidecar::metrics {

using Clock = std::chrono::steady_clock;

enum class Histogram { Request, Redeem, AlpacaCall };

// One finished request (environment: "paper", "live" or "-" when the redeem failed).
// A failed one's message (already safe to log) becomes the "status" answer's last error.
void request_done(std::string_view operation, Outcome outcome, std::string_view environment,
                  Clock::time_point started, const std::string &message);
void observe(Histogram h, Clock::time_point started);
void count_retry();
// One gateway request answered (sidecar/gateway_*): scope "read", "trade" or "none" (no valid
// session); outcome one of kGatewayOutcomes. Labels never carry ids or tokens.
enum class GatewayOutcome { Ok, Unauthorized, Forbidden, BadRequest, Upstream, Unavailable };
constexpr int kGatewayOutcomes = 6;
void gateway_request(std::string_view scope, GatewayOutcome outcome);
void count_rate_wait();
// One CALL alpaca.redeem_tickets of `tickets` tickets, and whether it redeemed none of them
// (a ticket refused, or the call failed).
void count_redeem_batch(std::size_t tickets, bool refused);
void set_queue_depth(std::size_t depth);
// Busy workers: one alive per request being served.
struct BusyWorker {
    BusyWorker();
    ~BusyWorker();
    BusyWorker(const BusyWorker &) = delete;
    BusyWorker &operator=(const BusyWorker &) = delete;
};
// Set once before the threads start: the configured sizes.
void set_static(int workers, std::size_t max_queue);
// A reader of the redeem pool's size. Set by the server while it runs, reset (nullptr) before
// it ends.
void set_pool_source(std::function<int()> pool_connections);
// The outcome writer's figures (sidecar/outcome_writer): outcomes queued now, written and
// dropped since the start. Set by the server while it runs, reset (nullptr) before it ends.
struct OutcomeFigures {
    std::size_t queued = 0;
    std::uint64_t written = 0, dropped = 0;
};
void set_outcome_source(std::function<OutcomeFigures()> source);

std::string prometheus_text();
std::string status_json();

// "127.0.0.1:9187", "localhost:9187", "[::1]:9187" (any 127.0.0.0/8 address): true and the
// parts, or false and why. "off" or "" means disabled (true, empty host).
bool parse_listen(std::string_view text, std::string &host, int &port, std::string &why);

// Serves GET /metrics on the configured address in its own thread until destroyed. Each
// request: at most 8 KiB of request head, read within 2 s; one answer; connection closed.
class MetricsServer {
  public:
    explicit MetricsServer(const std::string &listen);  // "" = off; throws Error when bind fails
    ~MetricsServer();
    MetricsServer(const MetricsServer &) = delete;
    MetricsServer &operator=(const MetricsServer &) = delete;

  private:
    void loop();
    int listen_fd_ = -1;
    int stop_fd_ = -1;
    std::thread thread_;
};

}  // namespace pga::sidecar::metrics
