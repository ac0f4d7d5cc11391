// The transport between a backend and alpaca-sidecar (frames: common/wire.hpp): the GUCs that
// say where the sidecar listens and how long to wait for it, and one request/answer exchange
// over its unix socket. Every wait goes through WaitLatchOrSocket, so query cancel,
// statement_timeout and pg_alpaca.request_timeout_ms all end a call promptly; no signal
// handler is touched.
#pragma once

#include "common/wire.hpp"

#include <string_view>

struct varlena;  // PostgreSQL's text

namespace pga::ext {

// An answer whose body was read from the socket straight into a text value.
struct SidecarAnswer {
    pga::SidecarResponse resp;  // resp.body stays empty: the body is `body`
    // VARHDRSZ + the body bytes exactly as the sidecar sent them (Alpaca's UTF-8, unchecked),
    // palloc'd in the memory context current at the call; never null once returned.
    varlena *body = nullptr;
    std::string_view body_view() const noexcept;
};

// Defines pg_alpaca.sidecar_socket and pg_alpaca.request_timeout_ms. Called once from
// _PG_init (no C++ object is alive there, so a GUC error may longjmp).
void define_sidecar_gucs();

// pg_alpaca.allow_live_trading (superuser-only, default off).
bool live_trading_allowed() noexcept;

// Sends req to the sidecar and returns its answer (any outcome; the caller maps it). The
// ticket is wiped from req and from the sent frame. Throws pga::pg::PgError: 08001 when the
// sidecar cannot be reached, 08006 when the connection breaks, 57014 on timeout or cancel,
// 08P01 for a malformed answer or one for another request id.
pga::SidecarResponse exchange_with_sidecar(pga::SidecarRequest &req);
// The same, with the body left in the text value (one copy from the socket, none after).
SidecarAnswer exchange_with_sidecar_into_text(pga::SidecarRequest &req);

}  // namespace pga::ext
