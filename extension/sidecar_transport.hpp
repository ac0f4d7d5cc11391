// The transport between a backend and alpaca-sidecar (frames: common/wire.hpp): the GUCs that
// say where the sidecar listens and how long to wait for it, and one request/answer exchange
// over its unix socket. Every wait goes through WaitLatchOrSocket, so query cancel,
// statement_timeout and pg_alpaca.request_timeout_ms all end a call promptly; no signal
// handler is touched.
#pragma once

#include "common/wire.hpp"

namespace pga::ext {

// Defines pg_alpaca.sidecar_socket and pg_alpaca.request_timeout_ms. Called once from
// _PG_init (no C++ object is alive there, so a GUC error may longjmp).
void define_sidecar_gucs();

// Sends req to the sidecar and returns its answer (any outcome; the caller maps it). The
// ticket is wiped from req and from the sent frame. Throws pga::pg::PgError: 08001 when the
// sidecar cannot be reached, 08006 when the connection breaks, 57014 on timeout or cancel,
// 08P01 for a malformed answer or one for another request id.
pga::SidecarResponse exchange_with_sidecar(pga::SidecarRequest &req);

}  // namespace pga::ext
