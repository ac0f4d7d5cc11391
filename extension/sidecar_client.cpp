// alpaca._alpaca_get: one request to alpaca-sidecar over its unix socket, waited for with
// WaitLatchOrSocket so cancel, statement_timeout and pg_alpaca.request_timeout_ms end it.
//
// Error handling: every PostgreSQL call that may ereport goes through pga::pg::call, which
// turns the longjmp (including the one CHECK_FOR_INTERRUPTS makes on cancel) into a C++
// exception; the socket is owned by pga::UniqueFd, whose destructor closes it while that
// exception unwinds, so no path leaks the descriptor.
#include "common/alpaca_models.hpp"
#include "common/encoding.hpp"
#include "common/error.hpp"
#include "common/secure_memory.hpp"
#include "common/unique_fd.hpp"
#include "common/wire.hpp"

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "extension/pg_values.hpp"
#include "extension/sidecar_client.hpp"

extern "C" {
#include "miscadmin.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/errcodes.h"
#include "utils/guc.h"
#include "utils/wait_event.h"
}

namespace {

constexpr const char *kDefaultSocket = "/run/alpaca-sidecar/alpaca-sidecar.sock";

char *g_sidecar_socket = nullptr;  // owned by the GUC machinery
int g_request_timeout_ms = 15000;

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
    throw pga::pg::PgError(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                           "could not connect to alpaca-sidecar at " +
                               pga::quote_for_error(ctx.socket_path, 128, '"'),
                           std::string(strerror(err)) + ".",
                           "Start alpaca-sidecar, or make pg_alpaca.sidecar_socket name its "
                           "socket_path.");
}

[[noreturn]] void throw_lost(const std::string &what, int err) {
    std::string detail = err != 0 ? std::string(strerror(err)) + "." : std::string();
    throw pga::pg::PgError(ERRCODE_CONNECTION_FAILURE, "alpaca-sidecar " + what, detail,
                           "Check the sidecar's log.");
}

// Waits until fd is ready for `events` (WL_SOCKET_READABLE / WL_SOCKET_WRITEABLE) or the
// deadline passes. Interrupts (cancel, statement_timeout, terminate) are serviced on every
// wake-up; a pending cancel leaves as PgError through pga::pg::call.
void wait_socket(const SidecarCall &ctx, int fd, int events) {
    for (;;) {
        pga::pg::call([&] { CHECK_FOR_INTERRUPTS(); });
        auto now = Clock::now();
        if (now >= ctx.deadline) throw_timeout(ctx);
        long remaining =
            (long)std::chrono::duration_cast<std::chrono::milliseconds>(ctx.deadline - now).count();
        if (remaining < 1) remaining = 1;
        int rc = pga::pg::call([&] {
            return WaitLatchOrSocket(MyLatch,
                                     WL_LATCH_SET | events | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, fd,
                                     remaining, PG_WAIT_EXTENSION);
        });
        if (rc & WL_LATCH_SET) pga::pg::call([&] { ResetLatch(MyLatch); });
        if (rc & events) return;
    }
}

void connect_socket(const SidecarCall &ctx, int fd) {
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
            wait_socket(ctx, fd, WL_SOCKET_WRITEABLE);
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

void send_all(const SidecarCall &ctx, int fd, const std::uint8_t *data, std::size_t len) {
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
            wait_socket(ctx, fd, WL_SOCKET_WRITEABLE);
            continue;
        }
        throw_lost("closed the connection while the request was being sent", n < 0 ? err : 0);
    }
}

// Reads exactly len bytes; EOF before that is a lost connection.
void recv_all(const SidecarCall &ctx, int fd, std::uint8_t *out, std::size_t len) {
    std::size_t off = 0;
    while (off < len) {
        ssize_t n = ::recv(fd, out + off, len - off, 0);
        if (n > 0) {
            off += (std::size_t)n;
            continue;
        }
        if (n == 0) throw_lost("closed the connection before answering", 0);
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            wait_socket(ctx, fd, WL_SOCKET_READABLE);
            continue;
        }
        throw_lost("connection failed while reading the answer", err);
    }
}

std::string random_request_id() {
    std::uint8_t raw[8];
    if (!pg_strong_random(raw, sizeof raw))
        throw pga::pg::PgError(ERRCODE_INTERNAL_ERROR, "could not generate a random request id");
    return pga::hex_encode(raw, sizeof raw);
}

// Reads the text[] argument k1,v1,k2,v2 into pairs.
std::vector<std::pair<std::string, std::string>> query_pairs(Datum arr_datum) {
    ArrayType *arr = pga::pg::call([&] { return DatumGetArrayTypeP(arr_datum); });
    std::vector<std::pair<std::string, std::string>> out;
    if (ARR_NDIM(arr) == 0) return out;
    if (ARR_NDIM(arr) != 1)
        throw pga::pg::PgError(ERRCODE_INVALID_PARAMETER_VALUE,
                               "query must be a one-dimensional text array");
    Datum *elems = nullptr;
    bool *nulls = nullptr;
    int n = 0;
    pga::pg::call(
        [&] { deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n); });
    if (n % 2 != 0)
        throw pga::pg::PgError(ERRCODE_INVALID_PARAMETER_VALUE,
                               "query must hold key/value pairs (an even number of elements)");
    for (int i = 0; i < n; i += 2) {
        if (nulls[i] || nulls[i + 1])
            throw pga::pg::PgError(ERRCODE_NULL_VALUE_NOT_ALLOWED,
                                   "query keys and values must not be NULL");
        out.emplace_back(std::string(pga::pg::text_view(elems[i])),
                         std::string(pga::pg::text_view(elems[i + 1])));
    }
    return out;
}

// Alpaca's error text, made safe for an error message: at most 300 bytes, no control chars.
std::string alpaca_message(const std::string &body) {
    pga::AlpacaError e = pga::parse_error_body(body);
    std::string msg = e.message;
    if (msg.size() > 300) {
        std::size_t cut = 300;
        // Do not cut a UTF-8 sequence in half.
        while (cut > 0 && (static_cast<unsigned char>(msg[cut]) & 0xC0) == 0x80) --cut;
        msg = msg.substr(0, cut) + "...";
    }
    for (char &c : msg) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    }
    if (e.code) {
        return msg.empty() ? "code " + std::to_string(*e.code)
                           : msg + " (code " + std::to_string(*e.code) + ")";
    }
    return msg;
}

std::string attempts_detail(const pga::SidecarResponse &r) {
    return r.attempts > 0 ? "The sidecar made " + std::to_string(r.attempts) + " attempt(s)."
                          : std::string();
}

// Maps an answer that is not a 2xx (or an outcome other than ok) to the agreed SQLSTATE.
[[noreturn]] void throw_for_response(const pga::SidecarResponse &r, const std::string &cred) {
    using pga::Outcome;
    using pga::pg::PgError;
    const std::string &m = r.message;
    switch (r.outcome) {
        case Outcome::Ok:
            break;
        case Outcome::TicketRejected:
            throw PgError(ERRCODE_INSUFFICIENT_PRIVILEGE,
                          "alpaca-sidecar refused the ticket for credential " + cred, m,
                          "Tickets are short-lived and bound to one session user and operation.");
        case Outcome::Unreachable:
            throw PgError(ERRCODE_CONNECTION_FAILURE,
                          "Alpaca is unreachable" + (m.empty() ? std::string() : ": " + m),
                          attempts_detail(r),
                          "Check the sidecar's network access and its base URLs.");
        case Outcome::Timeout:
            throw PgError(ERRCODE_CONNECTION_FAILURE,
                          "Alpaca did not answer in time" + (m.empty() ? std::string() : ": " + m),
                          attempts_detail(r), "Check the sidecar's upstream timeouts.");
        case Outcome::RateLimited:
            throw PgError(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
                          "rate limit reached for credential " + cred +
                              (m.empty() ? std::string() : ": " + m),
                          attempts_detail(r),
                          "Alpaca allows about 200 requests a minute per account; retry later.");
        case Outcome::TooLarge:
            throw PgError(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                          "Alpaca's answer is larger than the sidecar accepts", m,
                          "Ask for fewer rows or raise the sidecar's response size cap.");
        case Outcome::Overloaded:
            throw PgError(ERRCODE_TOO_MANY_CONNECTIONS, "alpaca-sidecar is overloaded", m,
                          "Retry later or raise the sidecar's queue size.");
        case Outcome::DatabaseError:
            throw PgError(ERRCODE_CONNECTION_FAILURE, "alpaca-sidecar could not reach PostgreSQL",
                          m, "Check the sidecar's conninfo and the alpaca_sidecar role.");
        case Outcome::BadRequest:
            throw PgError(ERRCODE_INTERNAL_ERROR, "alpaca-sidecar rejected the request", m);
        case Outcome::Internal:
            throw PgError(ERRCODE_INTERNAL_ERROR, "alpaca-sidecar failed internally", m,
                          "Check the sidecar's log.");
    }
    // Outcome ok with a status that is not 2xx.
    const int s = r.http_status;
    const std::string am = alpaca_message(r.body);
    if (s == 401 || s == 403) {
        throw PgError(ERRCODE_INSUFFICIENT_PRIVILEGE, "Alpaca rejected credential " + cred,
                      am.empty() ? "Alpaca answered " + std::to_string(s) + "."
                                 : "Alpaca answered " + std::to_string(s) + ": " + am,
                      "Check that the key id and secret key are current and that the "
                      "credential's environment (paper or live) matches the keys.");
    }
    if (s == 429) {
        throw PgError(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
                      "rate limit: Alpaca answered 429 for credential " + cred +
                          (am.empty() ? std::string() : ": " + am),
                      attempts_detail(r), "Retry later.");
    }
    if (s >= 400 && s < 500) {
        throw PgError(
            ERRCODE_INVALID_PARAMETER_VALUE,
            "Alpaca answered " + std::to_string(s) + (am.empty() ? std::string() : ": " + am), "",
            "");
    }
    if (s >= 500 && s < 600) {
        throw PgError(
            ERRCODE_CONNECTION_FAILURE,
            "Alpaca answered " + std::to_string(s) + (am.empty() ? std::string() : ": " + am),
            attempts_detail(r), "Alpaca may be having an outage; retry later.");
    }
    throw PgError(ERRCODE_PROTOCOL_VIOLATION,
                  "alpaca-sidecar reported an unexpected HTTP status " + std::to_string(s));
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
}

}  // namespace pga::ext

// alpaca._alpaca_get(cred uuid, op text, ticket text, query text[] DEFAULT '{}',
//                    accept_unauthorized boolean DEFAULT false) RETURNS text
PGA_FUNCTION(pga_alpaca_get) {
    for (int i = 0; i < 3; ++i) {
        if (PG_ARGISNULL(i))
            throw pga::pg::PgError(ERRCODE_NULL_VALUE_NOT_ALLOWED,
                                   "cred, op and ticket must not be NULL");
    }
    const std::string cred = pga::format_uuid(pga::pg::uuid_value(PG_GETARG_DATUM(0)));
    const bool accept_unauthorized = !PG_ARGISNULL(4) && PG_GETARG_BOOL(4);

    pga::SidecarRequest req;
    req.operation = std::string(pga::pg::text_view(PG_GETARG_DATUM(1)));
    if (!pga::is_known_operation(req.operation))
        throw pga::pg::PgError(
            ERRCODE_INVALID_PARAMETER_VALUE,
            "unknown alpaca-sidecar operation " + pga::quote_for_error(req.operation, 64, '"'));
    req.ticket = pga::secure_copy(pga::pg::text_view(PG_GETARG_DATUM(2)));
    if (!PG_ARGISNULL(3)) req.query = query_pairs(PG_GETARG_DATUM(3));
    req.request_id = random_request_id();

    SidecarCall ctx;
    ctx.socket_path = g_sidecar_socket != nullptr ? g_sidecar_socket : kDefaultSocket;
    ctx.timeout_ms = g_request_timeout_ms;
    ctx.deadline = Clock::now() + std::chrono::milliseconds(ctx.timeout_ms);

    pga::SidecarResponse resp;
    {
        pga::SecureBytes frame = pga::encode_request(req);
        pga::secure_wipe(req.ticket.data(), req.ticket.size());
        req.ticket.clear();

        pga::UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (sock.get() < 0) throw_lost("socket could not be created", errno);
        connect_socket(ctx, sock.get());
        send_all(ctx, sock.get(), frame.data(), frame.size());
        pga::secure_wipe(frame.data(), frame.size());  // it carried the ticket

        std::uint8_t prefix[pga::kFramePrefixLen];
        recv_all(ctx, sock.get(), prefix, sizeof prefix);
        std::uint32_t len = 0;
        try {
            len = pga::decode_frame_length(prefix, pga::kDefaultMaxResponsePayload);
        } catch (const pga::Error &e) {
            throw pga::pg::PgError(ERRCODE_PROTOCOL_VIOLATION, "invalid frame from alpaca-sidecar",
                                   e.what());
        }
        std::vector<std::uint8_t> payload(len);
        recv_all(ctx, sock.get(), payload.data(), payload.size());
        try {
            resp = pga::decode_response(payload.data(), payload.size());
        } catch (const pga::Error &e) {
            throw pga::pg::PgError(ERRCODE_PROTOCOL_VIOLATION, "invalid frame from alpaca-sidecar",
                                   e.what());
        }
    }  // socket closed here
    if (resp.request_id != req.request_id)
        throw pga::pg::PgError(ERRCODE_PROTOCOL_VIOLATION, "invalid frame from alpaca-sidecar",
                               "The answer is for another request id.");

    if (resp.outcome == pga::Outcome::Ok && resp.http_status >= 200 && resp.http_status < 300) {
        // Alpaca sends UTF-8; convert to the database encoding (verifies, rejects NUL bytes).
        const std::string &b = resp.body;
        char *conv =
            pga::pg::call([&] { return pg_any_to_server(b.data(), (int)b.size(), PG_UTF8); });
        std::size_t conv_len = conv == b.data() ? b.size() : std::strlen(conv);
        return pga::pg::text_datum(std::string_view(conv, conv_len));
    }
    if (resp.outcome == pga::Outcome::Ok && accept_unauthorized &&
        (resp.http_status == 401 || resp.http_status == 403)) {
        PG_RETURN_NULL();
    }
    throw_for_response(resp, cred);
}
