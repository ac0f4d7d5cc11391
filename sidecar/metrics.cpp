#include "sidecar/metrics.hpp"

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "common/version.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace pga::sidecar::metrics {
namespace {

constexpr int kOutcomes = int(Outcome::Internal) + 1;
constexpr int kEnvs = 3;  // paper, live, none
constexpr const char *kEnvNames[kEnvs] = {"paper", "live", "none"};
constexpr std::size_t kMaxOps = 32;
constexpr std::size_t kMaxOpName = 32;
constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,   0.25,   0.5,   1.0,  2.5,   10.0};

// Operation names claim slots in order, once each: a thread that loses the race for a slot
// waits until its winner has written the name and compares again, so no name takes two slots.
struct OpSlot {
    std::atomic<int> state{0};  // 0 free, 1 being written, 2 ready
    char name[kMaxOpName] = {};
    std::atomic<std::uint64_t> counts[kOutcomes][kEnvs] = {};
};

struct Hist {
    std::atomic<std::uint64_t> buckets[kBuckets.size()] = {};
    std::atomic<std::uint64_t> count{0};
    std::atomic<std::uint64_t> sum_us{0};
};

struct Registry {
    OpSlot ops[kMaxOps];
    std::atomic<std::uint64_t> other_ops{0};  // names beyond kMaxOps (never expected)
    Hist hists[3];
    std::atomic<std::uint64_t> retries{0}, rate_waits{0}, requests{0}, failed{0};
    std::atomic<std::uint64_t> redeem_batches{0}, batched_tickets{0}, refused_batches{0};
    std::atomic<std::uint64_t> gateway[3][kGatewayOutcomes] = {};  // scope x outcome
    std::atomic<std::int64_t> queue_depth{0}, busy{0};
    std::atomic<int> workers{0};
    std::atomic<std::size_t> max_queue{0};
    // The metrics server may scrape before these are set or after the server that set them ends.
    std::mutex sources_mu;
    std::function<int()> pool;
    std::function<OutcomeFigures()> outcomes;
    Clock::time_point started = Clock::now();
    std::mutex error_mu;  // "status" only; never on a request's path but for failures
    std::string last_error;
    Clock::time_point last_error_at;
};

Registry &reg() {
    static Registry r;
    return r;
}

OpSlot *slot_for(std::string_view op) {
    if (op.empty() || op.size() >= kMaxOpName) return nullptr;
    for (OpSlot &s : reg().ops) {
        int st = s.state.load(std::memory_order_acquire);
        if (st == 0) {
            int expected = 0;
            if (s.state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
                std::memcpy(s.name, op.data(), op.size());
                s.name[op.size()] = 0;
                s.state.store(2, std::memory_order_release);
                return &s;
            }
            st = expected;
        }
        while (st == 1) st = s.state.load(std::memory_order_acquire);
        if (std::string_view(s.name) == op) return &s;
    }
    return nullptr;
}

int env_index(std::string_view env) {
    return env == "paper" ? 0 : env == "live" ? 1 : 2;
}

void observe_seconds(Hist &h, double s) {
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
        if (s <= kBuckets[i]) h.buckets[i].fetch_add(1, std::memory_order_relaxed);
    }
    h.count.fetch_add(1, std::memory_order_relaxed);
    h.sum_us.fetch_add(std::uint64_t(s * 1e6), std::memory_order_relaxed);
}

double since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

void line(std::string &out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void line(std::string &out, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) out.append(buf, std::min(std::size_t(n), sizeof buf - 1));
    out += '\n';
}

void render_hist(std::string &out, const char *name, const char *help, const Hist &h) {
    line(out, "# HELP %s %s", name, help);
    line(out, "# TYPE %s histogram", name);
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
        line(out, "%s_bucket{le=\"%g\"} %llu", name, kBuckets[i],
             (unsigned long long)h.buckets[i].load(std::memory_order_relaxed));
    }
    const auto count = (unsigned long long)h.count.load(std::memory_order_relaxed);
    line(out, "%s_bucket{le=\"+Inf\"} %llu", name, count);
    line(out, "%s_sum %.6f", name, double(h.sum_us.load(std::memory_order_relaxed)) / 1e6);
    line(out, "%s_count %llu", name, count);
}

std::string json_escape(const std::string &s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", unsigned(static_cast<unsigned char>(c)));
            out += b;
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace

void note_error(const std::string &message);

void request_done(std::string_view operation, Outcome outcome, std::string_view environment,
                  Clock::time_point started, const std::string &message) {
    Registry &r = reg();
    r.requests.fetch_add(1, std::memory_order_relaxed);
    if (outcome != Outcome::Ok) {
        r.failed.fetch_add(1, std::memory_order_relaxed);
        note_error(std::string(operation) + ": " + outcome_name(outcome) + ": " + message);
    }
    observe_seconds(r.hists[int(Histogram::Request)], since(started));
    OpSlot *s = slot_for(operation);
    if (s == nullptr) {
        r.other_ops.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    s->counts[int(outcome)][env_index(environment)].fetch_add(1, std::memory_order_relaxed);
}

void observe(Histogram h, Clock::time_point started) {
    observe_seconds(reg().hists[int(h)], since(started));
}

constexpr const char *kGatewayScopes[3] = {"read", "trade", "none"};
constexpr const char *kGatewayOutcomeNames[kGatewayOutcomes] = {
    "ok", "unauthorized", "forbidden", "bad_request", "upstream_error", "unavailable"};

void gateway_request(std::string_view scope, GatewayOutcome outcome) {
    const int s = scope == "read" ? 0 : scope == "trade" ? 1 : 2;
    reg().gateway[s][int(outcome)].fetch_add(1, std::memory_order_relaxed);
}

void count_retry() {
    reg().retries.fetch_add(1, std::memory_order_relaxed);
}

void count_rate_wait() {
    reg().rate_waits.fetch_add(1, std::memory_order_relaxed);
}

void count_redeem_batch(std::size_t tickets, bool refused) {
    reg().redeem_batches.fetch_add(1, std::memory_order_relaxed);
    reg().batched_tickets.fetch_add(tickets, std::memory_order_relaxed);
    if (refused) reg().refused_batches.fetch_add(1, std::memory_order_relaxed);
}

void set_queue_depth(std::size_t depth) {
    reg().queue_depth.store(std::int64_t(depth), std::memory_order_relaxed);
}

BusyWorker::BusyWorker() {
    reg().busy.fetch_add(1, std::memory_order_relaxed);
}

BusyWorker::~BusyWorker() {
    reg().busy.fetch_sub(1, std::memory_order_relaxed);
}

void set_static(int workers, std::size_t max_queue) {
    Registry &r = reg();
    r.workers.store(workers);
    r.max_queue.store(max_queue);
}

void set_pool_source(std::function<int()> pool_connections) {
    Registry &r = reg();
    std::lock_guard<std::mutex> lock(r.sources_mu);
    r.pool = std::move(pool_connections);
}

namespace {
int pool_connections(Registry &r) {
    std::lock_guard<std::mutex> lock(r.sources_mu);
    return r.pool ? r.pool() : 0;
}
}  // namespace

void set_outcome_source(std::function<OutcomeFigures()> source) {
    Registry &r = reg();
    std::lock_guard<std::mutex> lock(r.sources_mu);
    r.outcomes = std::move(source);
}

void note_error(const std::string &message) {
    Registry &r = reg();
    std::lock_guard<std::mutex> lock(r.error_mu);
    r.last_error = message.substr(0, 512);
    r.last_error_at = Clock::now();
}

std::string prometheus_text() {
    Registry &r = reg();
    std::string out;
    out.reserve(8192);
    line(out, "# HELP pga_sidecar_info The running alpaca-sidecar.");
    line(out, "# TYPE pga_sidecar_info gauge");
    line(out, "pga_sidecar_info{version=\"%s\"} 1", pga::kVersion);
    line(out, "# HELP pga_sidecar_uptime_seconds Seconds since the sidecar started.");
    line(out, "# TYPE pga_sidecar_uptime_seconds gauge");
    line(out, "pga_sidecar_uptime_seconds %.3f", since(r.started));
    line(out,
         "# HELP pga_sidecar_requests_total Requests answered, by operation, outcome and "
         "environment.");
    line(out, "# TYPE pga_sidecar_requests_total counter");
    for (const OpSlot &s : r.ops) {
        if (s.state.load(std::memory_order_acquire) != 2) continue;
        for (int o = 0; o < kOutcomes; ++o) {
            for (int e = 0; e < kEnvs; ++e) {
                const auto n = s.counts[o][e].load(std::memory_order_relaxed);
                if (n == 0) continue;
                line(out,
                     "pga_sidecar_requests_total{operation=\"%s\",outcome=\"%s\",environment=\"%"
                     "s\"} %llu",
                     s.name, outcome_name(Outcome(o)), kEnvNames[e], (unsigned long long)n);
            }
        }
    }
    line(out,
         "# HELP pga_sidecar_gateway_requests_total Gateway requests answered, by session scope "
         "and outcome.");
    line(out, "# TYPE pga_sidecar_gateway_requests_total counter");
    for (int sc = 0; sc < 3; ++sc) {
        for (int o = 0; o < kGatewayOutcomes; ++o) {
            const auto n = r.gateway[sc][o].load(std::memory_order_relaxed);
            if (n == 0) continue;
            line(out, "pga_sidecar_gateway_requests_total{scope=\"%s\",outcome=\"%s\"} %llu",
                 kGatewayScopes[sc], kGatewayOutcomeNames[o], (unsigned long long)n);
        }
    }
    render_hist(out, "pga_sidecar_request_duration_seconds",
                "Whole requests, from the frame read to the answer.",
                r.hists[int(Histogram::Request)]);
    render_hist(out, "pga_sidecar_redeem_duration_seconds",
                "CALL alpaca.redeem_ticket, connection wait included.",
                r.hists[int(Histogram::Redeem)]);
    render_hist(out, "pga_sidecar_alpaca_call_duration_seconds", "Each HTTPS attempt to Alpaca.",
                r.hists[int(Histogram::AlpacaCall)]);
    line(out,
         "# HELP pga_sidecar_retries_total Upstream attempts repeated after a retryable answer.");
    line(out, "# TYPE pga_sidecar_retries_total counter");
    line(out, "pga_sidecar_retries_total %llu", (unsigned long long)r.retries.load());
    line(out,
         "# HELP pga_sidecar_rate_limit_waits_total Waits for a slot of the per-credential rate "
         "limit.");
    line(out, "# TYPE pga_sidecar_rate_limit_waits_total counter");
    line(out, "pga_sidecar_rate_limit_waits_total %llu", (unsigned long long)r.rate_waits.load());
    line(out,
         "# HELP pga_sidecar_redeem_batches_total Redeems of several waiting tickets in one "
         "transaction (alpaca.redeem_tickets).");
    line(out, "# TYPE pga_sidecar_redeem_batches_total counter");
    line(out, "pga_sidecar_redeem_batches_total %llu", (unsigned long long)r.redeem_batches.load());
    line(out, "# HELP pga_sidecar_redeem_batched_tickets_total The tickets in those batches.");
    line(out, "# TYPE pga_sidecar_redeem_batched_tickets_total counter");
    line(out, "pga_sidecar_redeem_batched_tickets_total %llu",
         (unsigned long long)r.batched_tickets.load());
    line(out,
         "# HELP pga_sidecar_redeem_batches_refused_total Batches that redeemed none of their "
         "tickets: one was refused (answered so; the others went again without it) or the call "
         "failed (each ticket then alone).");
    line(out, "# TYPE pga_sidecar_redeem_batches_refused_total counter");
    line(out, "pga_sidecar_redeem_batches_refused_total %llu",
         (unsigned long long)r.refused_batches.load());
    line(out, "# HELP pga_sidecar_queue_depth Accepted connections waiting for a worker.");
    line(out, "# TYPE pga_sidecar_queue_depth gauge");
    line(out, "pga_sidecar_queue_depth %lld", (long long)r.queue_depth.load());
    line(out, "# HELP pga_sidecar_queue_capacity max_queue.");
    line(out, "# TYPE pga_sidecar_queue_capacity gauge");
    line(out, "pga_sidecar_queue_capacity %zu", r.max_queue.load());
    line(out, "# HELP pga_sidecar_workers Worker threads.");
    line(out, "# TYPE pga_sidecar_workers gauge");
    line(out, "pga_sidecar_workers %d", r.workers.load());
    line(out, "# HELP pga_sidecar_busy_workers Workers serving a request now.");
    line(out, "# TYPE pga_sidecar_busy_workers gauge");
    line(out, "pga_sidecar_busy_workers %lld", (long long)r.busy.load());
    line(out,
         "# HELP pga_sidecar_pool_connections Open PostgreSQL connections of the redeem pool.");
    line(out, "# TYPE pga_sidecar_pool_connections gauge");
    line(out, "pga_sidecar_pool_connections %d", pool_connections(r));
    OutcomeFigures of;
    {
        std::lock_guard<std::mutex> lock(r.sources_mu);
        if (r.outcomes) of = r.outcomes();
    }
    line(out,
         "# HELP pga_sidecar_outcome_queue_depth Call outcomes queued for the outcome writer.");
    line(out, "# TYPE pga_sidecar_outcome_queue_depth gauge");
    line(out, "pga_sidecar_outcome_queue_depth %zu", of.queued);
    line(out, "# HELP pga_sidecar_outcomes_written_total Call outcomes recorded in PostgreSQL.");
    line(out, "# TYPE pga_sidecar_outcomes_written_total counter");
    line(out, "pga_sidecar_outcomes_written_total %llu", (unsigned long long)of.written);
    line(out,
         "# HELP pga_sidecar_outcomes_dropped_total Call outcomes not recorded (queue full, "
         "refused by PostgreSQL, or left at shutdown); their decrypt rows remain.");
    line(out, "# TYPE pga_sidecar_outcomes_dropped_total counter");
    line(out, "pga_sidecar_outcomes_dropped_total %llu", (unsigned long long)of.dropped);
    return out;
}

std::string status_json() {
    Registry &r = reg();
    std::string out = "{";
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "\"version\":\"%s\",\"uptime_s\":%.3f,\"workers\":%d,\"busy_workers\":%lld,"
                  "\"queue_depth\":%lld,\"max_queue\":%zu,\"pool_connections\":%d,"
                  "\"requests\":%llu,\"failed_requests\":%llu",
                  pga::kVersion, since(r.started), r.workers.load(), (long long)r.busy.load(),
                  (long long)r.queue_depth.load(), r.max_queue.load(), pool_connections(r),
                  (unsigned long long)r.requests.load(), (unsigned long long)r.failed.load());
    out += buf;
    {
        std::lock_guard<std::mutex> lock(r.error_mu);
        if (!r.last_error.empty()) {
            std::snprintf(buf, sizeof buf, ",\"last_error_age_s\":%.3f", since(r.last_error_at));
            out += ",\"last_error\":\"" + json_escape(r.last_error) + "\"" + buf;
        }
    }
    out += "}";
    return out;
}

bool parse_listen(std::string_view text, std::string &host, int &port, std::string &why) {
    host.clear();
    port = 0;
    if (text.empty() || text == "off") return true;
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
        why = "metrics_listen: expected HOST:PORT (for example 127.0.0.1:9187) or off";
        return false;
    }
    std::string h(text.substr(0, colon));
    const std::string_view p = text.substr(colon + 1);
    long v = 0;
    if (p.empty() || p.size() > 5) v = -1;
    for (char c : p) v = (c >= '0' && c <= '9' && v >= 0) ? v * 10 + (c - '0') : -1;
    if (v < 1 || v > 65535) {
        why = "metrics_listen: the port must be 1-65535";
        return false;
    }
    if (h == "localhost") h = "127.0.0.1";
    if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
    in_addr a4{};
    in6_addr a6{};
    bool loopback = false;
    if (::inet_pton(AF_INET, h.c_str(), &a4) == 1) {
        loopback = (ntohl(a4.s_addr) >> 24) == 127;
    } else if (::inet_pton(AF_INET6, h.c_str(), &a6) == 1) {
        loopback = IN6_IS_ADDR_LOOPBACK(&a6);
    } else {
        why = "metrics_listen: the host must be a loopback address (127.0.0.1, [::1], localhost)";
        return false;
    }
    if (!loopback) {
        why =
            "metrics_listen: refusing a non-loopback address (the metrics have no "
            "authentication; put a proxy in front to publish them)";
        return false;
    }
    host = h;
    port = int(v);
    return true;
}

MetricsServer::MetricsServer(const std::string &listen) {
    std::string host, why;
    int port = 0;
    if (!parse_listen(listen, host, port, why)) throw Error(ErrorCode::ConfigFile, why);
    if (host.empty()) return;
    const bool v6 = host.find(':') != std::string::npos;
    UniqueFd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.get() < 0)
        throw Error(ErrorCode::Io, std::string("metrics socket: ") + std::strerror(errno));
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc;
    if (v6) {
        sockaddr_in6 a{};
        a.sin6_family = AF_INET6;
        a.sin6_port = htons(std::uint16_t(port));
        ::inet_pton(AF_INET6, host.c_str(), &a.sin6_addr);
        rc = ::bind(fd.get(), reinterpret_cast<sockaddr *>(&a), sizeof a);
    } else {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(std::uint16_t(port));
        ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
        rc = ::bind(fd.get(), reinterpret_cast<sockaddr *>(&a), sizeof a);
    }
    if (rc != 0 || ::listen(fd.get(), 16) != 0)
        throw Error(ErrorCode::Io, "cannot listen on metrics_listen " + host + ":" +
                                       std::to_string(port) + ": " + std::strerror(errno));
    UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (stop.get() < 0) throw Error(ErrorCode::Io, std::string("eventfd: ") + std::strerror(errno));
    listen_fd_ = fd.release();
    stop_fd_ = stop.release();
    thread_ = std::thread([this] { loop(); });
}

MetricsServer::~MetricsServer() {
    if (thread_.joinable()) {
        const std::uint64_t one = 1;
        (void)!::write(stop_fd_, &one, sizeof one);
        thread_.join();
    }
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (stop_fd_ >= 0) ::close(stop_fd_);
}

namespace {

constexpr std::size_t kMaxRequestHead = 8192;
constexpr auto kRequestTime = std::chrono::seconds(2);

bool wait_for(int fd, short events, Clock::time_point deadline) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (ms.count() <= 0) return false;
    pollfd p{fd, events, 0};
    return ::poll(&p, 1, int(ms.count())) > 0 && (p.revents & events) != 0;
}

void answer(int fd, Clock::time_point deadline) {
    std::string head;
    char buf[1024];
    while (head.find("\r\n\r\n") == std::string::npos && head.size() <= kMaxRequestHead) {
        if (!wait_for(fd, POLLIN, deadline)) return;  // too slow: closed without an answer
        const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0) return;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            return;
        }
        head.append(buf, std::size_t(n));
    }
    std::string status, type = "text/plain; charset=utf-8", body;
    if (head.size() > kMaxRequestHead) {
        status = "431 Request Header Fields Too Large";
        body = "request too large\n";
    } else if (head.rfind("GET /metrics HTTP/1.", 0) == 0 || head.rfind("GET /metrics?", 0) == 0) {
        status = "200 OK";
        type = "text/plain; version=0.0.4; charset=utf-8";
        body = prometheus_text();
    } else {
        status = "404 Not Found";
        body = "only GET /metrics is served here\n";
    }
    const std::string out = "HTTP/1.1 " + status + "\r\nContent-Type: " + type +
                            "\r\nContent-Length: " + std::to_string(body.size()) +
                            "\r\nConnection: close\r\n\r\n" + body;
    std::size_t off = 0;
    while (off < out.size()) {
        const ssize_t n =
            ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += std::size_t(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_for(fd, POLLOUT, deadline)) return;
        } else {
            return;
        }
    }
}

}  // namespace

void MetricsServer::loop() {
    for (;;) {
        pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (fds[1].revents & POLLIN) return;
        if (!(fds[0].revents & POLLIN)) continue;
        UniqueFd conn(::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (conn.get() < 0) continue;
        answer(conn.get(), Clock::now() + kRequestTime);  // one at a time: bounded by design
    }
}

}  // namespace pga::sidecar::metrics
