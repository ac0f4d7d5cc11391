// The backend side of the backend <-> alpaca-sidecar protocol (common/wire.hpp): the GUCs
// that say where the sidecar listens and how long to wait for it, and the SQL function
// alpaca._alpaca_get (C symbol pga_alpaca_get) that sends one request and returns Alpaca's
// JSON answer as text. The wait uses WaitLatchOrSocket, so query cancel, statement_timeout
// and pg_alpaca.request_timeout_ms all end a call promptly; no signal handler is touched.
#pragma once

namespace pga::ext {

// Defines pg_alpaca.sidecar_socket and pg_alpaca.request_timeout_ms. Called once from
// _PG_init (no C++ object is alive there, so a GUC error may longjmp).
void define_sidecar_gucs();

}  // namespace pga::ext
