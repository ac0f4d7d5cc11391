// The backend's transport to alpaca-sidecar (see sidecar_transport.hpp).
//
// Error handling: every PostgreSQL call that may ereport goes through pga::pg::call, which
// turns the longjmp (including the one CHECK_FOR_INTERRUPTS makes on cancel) into a C++
// exception; the socket and its WaitEventSet are owned by SidecarConn (pga::UniqueFd and a
// unique_ptr calling FreeWaitEventSet), whose destructor frees both while that exception
// unwinds, so no path leaks a descriptor or the epoll set.
//
// Kept connection: a look-up's connection (any operation but an order's) stays open after a
// whole answer, for the backend's next look-up: one connection per backend, not one per call
// (a connect, an accept, an epoll set and two closes fewer). It is used again only if nothing
// has arrived on it since (the sidecar closes an idle one after a minute, and on restart); if
// the sidecar still closed it under us before any byte of the answer came, the look-up goes
// once more on a fresh connection. An order never uses a kept connection and never goes twice:
// it gets a fresh one, closed after its answer.
#include "extension/sidecar_transport.hpp"

#include "common/error.hpp"
#include "common/secure_memory.hpp"
#include "common/unique_fd.hpp"
#include "common/wire.hpp"

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "extension/pg_guard.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/errcodes.h"
#include "utils/guc.h"
#include "utils/wait_event.h"
}

namespace {

using pga::ext::SidecarAnswer;

constexpr const char *kDefaultSocket = "/run/alpaca-sidecar/alpaca-sidecar.sock";

char *g_sidecar_socket = nullptr;  // owned by the GUC machinery
int g_request_timeout_ms = 15000;
bool g_allow_live_trading = false;

// GUC check hook (called by PostgreSQL, C linkage not required). Must not throw.
bool check_sidecar_socket(char **newval, void **extra, GucSource source) {
    const char *v = *newval;
    if (v == nullptr || v[0] != '/') {
        GUC_check_errdetail("pg_alpaca.sidecar_socket must be an absolute path.");
        return false;
    }
    if (std::strlen(v) >= sizeof(((struct sockaddr_un *)nullptr)->sun_path)) {
        GUC_check_errdetail("pg_alpaca.sidecar_socket must be shorter than %d bytes.",
                            (int)sizeof(((struct sockaddr_un *)nullptr)->sun_path));
        return false;
    }
    return true;
}

using Clock = std::chrono::steady_clock;

// Everything about the call that error messages need.
struct SidecarCall {
    std::string socket_path;
    int timeout_ms = 0;
    Clock::time_point deadline;
};

[[noreturn]] void throw_timeout(const SidecarCall &ctx) {
    throw pga::pg::PgError(
        ERRCODE_QUERY_CANCELED,
        "alpaca-sidecar did not answer within " + std::to_string(ctx.timeout_ms) + " ms", "",
        "Raise pg_alpaca.request_timeout_ms or check the sidecar's log.");
}

[[noreturn]] void throw_connect_failure(const SidecarCall &ctx, int err) {
    throw pga::pg::PgError(
        ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
        "could not connect to alpaca-sidecar at " + pga::quote_for_error(ctx.socket_path, 128, '"'),
        std::string(strerror(err)) + ".",
        "Start alpaca-sidecar, or make pg_alpaca.sidecar_socket name its "
        "socket_path.");
}

[[noreturn]] void throw_lost(const std::string &what, int err) {
    std::string detail = err != 0 ? std::string(strerror(err)) + "." : std::string();
    throw pga::pg::PgError(ERRCODE_CONNECTION_FAILURE, "alpaca-sidecar " + what, detail,
                           "Check the sidecar's log.");
}

// A connection to the sidecar: its socket and the one WaitEventSet every wait on it uses (the
// latch, postmaster death and the socket). WaitLatchOrSocket would build and tear down an epoll
// set on every wait; this one is made once per connection, in the memory context current at the
// call (which outlives the connection), and freed with it on every path: the destructor runs
// while a PgError unwinds, before pga::pg::invoke reports it. FreeWaitEventSet closes the epoll
// descriptor and pfrees, and never ereports.
class SidecarConn {
  public:
    // cxt: where the wait set lives (TopMemoryContext for a connection that may be kept).
    explicit SidecarConn(MemoryContext cxt)
        : sock_(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) {
        if (sock_.get() < 0) throw_lost("socket could not be created", errno);
        set_.reset(pga::pg::call([&] { return CreateWaitEventSet(cxt, 3); }));
        WaitEventSet *set = set_.get();
        const int fd = sock_.get();
        pga::pg::call([&] {
            return AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
        });
        pga::pg::call([&] {
            return AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
        });
        socket_pos_ = pga::pg::call(
            [&] { return AddWaitEventToSet(set, WL_SOCKET_READABLE, fd, nullptr, nullptr); });
    }
    int fd() const noexcept { return sock_.get(); }
    // A kept connection is fit for the next request only if the sidecar has neither closed it
    // nor sent anything on it since the last answer.
    bool quiet() const noexcept {
        pollfd p{sock_.get(), POLLIN | POLLRDHUP, 0};
        return ::poll(&p, 1, 0) == 0;
    }

    // Waits until the socket is ready for `events` (WL_SOCKET_READABLE / WL_SOCKET_WRITEABLE)
    // or the deadline passes. Interrupts (cancel, statement_timeout, terminate) are serviced
    // on every wake-up; a pending cancel leaves as PgError through pga::pg::call.
    void wait(const SidecarCall &ctx, int events) {
        if (std::uint32_t(events) != socket_events_) {
            WaitEventSet *set = set_.get();
            pga::pg::call(
                [&] { ModifyWaitEvent(set, socket_pos_, std::uint32_t(events), nullptr); });
            socket_events_ = std::uint32_t(events);
        }
        for (;;) {
            pga::pg::call([&] { CHECK_FOR_INTERRUPTS(); });
            auto now = Clock::now();
            if (now >= ctx.deadline) throw_timeout(ctx);
            long remaining =
                (long)std::chrono::duration_cast<std::chrono::milliseconds>(ctx.deadline - now)
                    .count();
            if (remaining < 1) remaining = 1;
            WaitEvent occurred;
            WaitEventSet *set = set_.get();
            const int n = pga::pg::call(
                [&] { return WaitEventSetWait(set, remaining, &occurred, 1, PG_WAIT_EXTENSION); });
            if (n == 0) continue;  // timed out: the deadline check above decides
            if (occurred.events & WL_LATCH_SET) pga::pg::call([&] { ResetLatch(MyLatch); });
            if (occurred.events & std::uint32_t(events)) return;
        }
    }

  private:
    struct WaitSetDeleter {
        void operator()(WaitEventSet *set) const noexcept { FreeWaitEventSet(set); }
    };
    pga::UniqueFd sock_;
    std::unique_ptr<WaitEventSet, WaitSetDeleter> set_;  // freed before the socket is closed
    int socket_pos_ = 0;
    std::uint32_t socket_events_ = WL_SOCKET_READABLE;
};

void connect_socket(const SidecarCall &ctx, SidecarConn &conn) {
    const int fd = conn.fd();
    struct sockaddr_un addr;
    std::memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    // Length was checked by the GUC hook; check again, GUCs can be set before load.
    if (ctx.socket_path.size() >= sizeof addr.sun_path) throw_connect_failure(ctx, ENAMETOOLONG);
    std::memcpy(addr.sun_path, ctx.socket_path.data(), ctx.socket_path.size());

    for (;;) {
        if (::connect(fd, reinterpret_cast<struct sockaddr *>(&addr), sizeof addr) == 0) return;
        int err = errno;
        if (err == EINTR) continue;
        if (err == EINPROGRESS) {
            conn.wait(ctx, WL_SOCKET_WRITEABLE);
            int soerr = 0;
            socklen_t len = sizeof soerr;
            if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) soerr = errno;
            if (soerr != 0) throw_connect_failure(ctx, soerr);
            return;
        }
        if (err == EAGAIN) {
            // The listen backlog is full: the sidecar is alive but busy. Retry until the
            // deadline, sleeping on the latch so cancel still works.
            auto now = Clock::now();
            if (now >= ctx.deadline) throw_timeout(ctx);
            pga::pg::call([&] {
                return WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5L,
                                 PG_WAIT_EXTENSION);
            });
            pga::pg::call([&] {
                ResetLatch(MyLatch);
                CHECK_FOR_INTERRUPTS();
            });
            continue;
        }
        throw_connect_failure(ctx, err);
    }
}

// Sends the whole request. stale: the connection is a kept one; then a peer that has closed
// it (EPIPE, ECONNRESET) makes this return false instead of raising.
bool send_all(const SidecarCall &ctx, SidecarConn &conn, const std::uint8_t *data, std::size_t len,
              bool stale = false) {
    const int fd = conn.fd();
    std::size_t off = 0;
    while (off < len) {
        ssize_t n = ::send(fd, data + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (std::size_t)n;
            continue;
        }
        int err = errno;
        if (n < 0 && err == EINTR) continue;
        if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
            conn.wait(ctx, WL_SOCKET_WRITEABLE);
            continue;
        }
        if (stale && n < 0 && (err == EPIPE || err == ECONNRESET)) return false;
        throw_lost("closed the connection while the request was being sent", n < 0 ? err : 0);
    }
    return true;
}

// Reads at least `need` and at most `cap` bytes (whatever has arrived); returns how many.
// stale: a kept connection's first read; then the peer closing it before any byte (EOF,
// ECONNRESET) returns 0 instead of raising.
std::size_t recv_some(const SidecarCall &ctx, SidecarConn &conn, std::uint8_t *out,
                      std::size_t need, std::size_t cap, bool stale = false) {
    const int fd = conn.fd();
    std::size_t off = 0;
    while (off < need) {
        ssize_t n = ::recv(fd, out + off, cap - off, 0);
        if (n > 0) {
            off += (std::size_t)n;
            continue;
        }
        if (n == 0 && stale && off == 0) return 0;
        if (n == 0) throw_lost("closed the connection before answering", 0);
        int err = errno;
        if (err == EINTR) continue;
        if (err == ECONNRESET && stale && off == 0) return 0;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            conn.wait(ctx, WL_SOCKET_READABLE);
            continue;
        }
        throw_lost("connection failed while reading the answer", err);
    }
    return off;
}

[[noreturn]] void throw_bad_frame(const std::string &detail) {
    throw pga::pg::PgError(ERRCODE_PROTOCOL_VIOLATION, "invalid frame from alpaca-sidecar", detail);
}

std::uint32_t be32(const std::uint8_t *p) noexcept {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           std::uint32_t{p[3]};
}

// Reads one answer frame (u32 length | u32 header length | header | body). The first read takes
// whatever has arrived into a small buffer (prefix, header and usually some of the body: one
// system call for a short answer); the rest of the body goes straight from the socket into the
// text value that the SQL function returns, so a large answer is copied once, not three times.
// stale: a kept connection; false (nothing read) when the sidecar closed it before answering.
bool receive_answer(const SidecarCall &ctx, SidecarConn &conn, SidecarAnswer &answer,
                    bool stale = false) {
    constexpr std::size_t kLengths = pga::kFramePrefixLen + 4;  // frame length, header length
    std::uint8_t first[8192];
    const std::size_t have = recv_some(ctx, conn, first, kLengths, sizeof first, stale);
    if (have == 0) return false;
    std::uint32_t len = 0;
    try {
        len = pga::decode_frame_length(first, pga::kDefaultMaxResponsePayload);
    } catch (const pga::Error &e) {
        throw_bad_frame(e.what());
    }
    const std::uint32_t hlen = be32(first + pga::kFramePrefixLen);
    if (len < 4 || hlen == 0 || hlen > len - 4)
        throw_bad_frame("wire: header length does not fit in the payload");

    // The payload's header part (its own length included), as decode_response reads it.
    std::vector<std::uint8_t> header(4 + std::size_t(hlen));
    const std::size_t in_first = std::min(have - pga::kFramePrefixLen, header.size());
    std::memcpy(header.data(), first + pga::kFramePrefixLen, in_first);
    if (in_first < header.size())
        recv_some(ctx, conn, header.data() + in_first, header.size() - in_first,
                  header.size() - in_first);
    try {
        answer.resp = pga::decode_response(header.data(), header.size());
    } catch (const pga::Error &e) {
        throw_bad_frame(e.what());
    }

    const std::size_t body_len = std::size_t(len) - header.size();
    answer.body = pga::pg::call([&] { return (varlena *)palloc(VARHDRSZ + body_len); });
    SET_VARSIZE(answer.body, VARHDRSZ + body_len);
    auto *dest = reinterpret_cast<std::uint8_t *>(VARDATA(answer.body));
    const std::size_t consumed = pga::kFramePrefixLen + in_first;
    // Bytes past the frame (there should be none) are never taken into the body.
    const std::size_t body_in_first = std::min(have - consumed, body_len);
    std::memcpy(dest, first + consumed, body_in_first);
    if (body_in_first < body_len)
        recv_some(ctx, conn, dest + body_in_first, body_len - body_in_first,
                  body_len - body_in_first);
    return true;
}

// The backend's kept connection (one per backend) and the socket path it was made for. Freed
// at backend exit by kept_at_exit, before static destructors would run after PostgreSQL shut
// its memory down.
std::unique_ptr<SidecarConn> g_kept;
std::string g_kept_path;
bool g_kept_exit_hook = false;

void kept_at_exit(int, Datum) {
    g_kept.reset();
}

// The kept connection to socket_path if it is fit for a request, else null (and any other
// kept connection is closed).
std::unique_ptr<SidecarConn> take_kept(const std::string &socket_path) {
    std::unique_ptr<SidecarConn> conn = std::move(g_kept);
    if (conn && (g_kept_path != socket_path || !conn->quiet())) conn.reset();
    return conn;
}

void keep(std::unique_ptr<SidecarConn> conn, const std::string &socket_path) {
    if (!g_kept_exit_hook) {
        pga::pg::call([] { on_proc_exit(kept_at_exit, 0); });
        g_kept_exit_hook = true;
    }
    g_kept_path = socket_path;
    g_kept = std::move(conn);
}

}  // namespace

namespace pga::ext {

void define_sidecar_gucs() {
    DefineCustomStringVariable(
        "pg_alpaca.sidecar_socket", "Unix socket path of the alpaca-sidecar daemon.",
        "Absolute path; the sidecar's socket_path setting must name the same file.",
        &g_sidecar_socket, kDefaultSocket, PGC_SUSET, 0, check_sidecar_socket, nullptr, nullptr);
    DefineCustomIntVariable("pg_alpaca.request_timeout_ms",
                            "How long a call waits for alpaca-sidecar to answer.",
                            "Covers connecting, sending, the sidecar's work (including retries "
                            "and Alpaca itself) and reading the answer.",
                            &g_request_timeout_ms, 15000, 100, 600000, PGC_USERSET, GUC_UNIT_MS,
                            nullptr, nullptr, nullptr);
    // The cluster's key of live trading (README, "Trading"); the credential's owner holds
    // the other (alpaca_update_credential(id, live_trading => true)).
    DefineCustomBoolVariable("pg_alpaca.allow_live_trading",
                             "Whether live credentials may trade at all on this cluster.",
                             "Off by default. A live credential trades only when this is on AND "
                             "its owner opted in for it; paper credentials need neither.",
                             &g_allow_live_trading, false, PGC_SUSET, 0, nullptr, nullptr, nullptr);
}

bool live_trading_allowed() noexcept {
    return g_allow_live_trading;
}

SidecarAnswer exchange_with_sidecar_into_text(pga::SidecarRequest &req) {
    SidecarCall ctx;
    ctx.socket_path = g_sidecar_socket != nullptr ? g_sidecar_socket : kDefaultSocket;
    ctx.timeout_ms = g_request_timeout_ms;
    ctx.deadline = Clock::now() + std::chrono::milliseconds(ctx.timeout_ms);

    // Any look-up may use the kept connection (and, if the sidecar closed it before answering,
    // go again on a fresh one); an order never does.
    const bool reusable =
        pga::is_known_operation(req.operation) && !pga::is_trading_operation(req.operation);
    SidecarAnswer answer;
    {
        pga::SecureBytes frame = pga::encode_request(req);  // wiped when it goes out of scope
        pga::secure_wipe(req.ticket.data(), req.ticket.size());
        req.ticket.clear();

        std::unique_ptr<SidecarConn> conn = reusable ? take_kept(ctx.socket_path) : nullptr;
        if (conn && !(send_all(ctx, *conn, frame.data(), frame.size(), true) &&
                      receive_answer(ctx, *conn, answer, true)))
            conn.reset();  // closed under us before answering: a fresh connection
        if (!conn) {
            conn =
                std::make_unique<SidecarConn>(reusable ? TopMemoryContext : CurrentMemoryContext);
            connect_socket(ctx, *conn);
            send_all(ctx, *conn, frame.data(), frame.size());
            receive_answer(ctx, *conn, answer);
        }
        if (reusable) keep(std::move(conn), ctx.socket_path);
    }  // an order's wait set freed and socket closed here
    if (answer.resp.request_id != req.request_id)
        throw pga::pg::PgError(ERRCODE_PROTOCOL_VIOLATION, "invalid frame from alpaca-sidecar",
                               "The answer is for another request id.");
    return answer;
}

pga::SidecarResponse exchange_with_sidecar(pga::SidecarRequest &req) {
    SidecarAnswer answer = exchange_with_sidecar_into_text(req);
    answer.resp.body = std::string(answer.body_view());
    return std::move(answer.resp);
}

std::string_view SidecarAnswer::body_view() const noexcept {
    if (body == nullptr) return {};
    return std::string_view(VARDATA(body), VARSIZE(body) - VARHDRSZ);
}

}  // namespace pga::ext
