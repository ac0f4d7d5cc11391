// Gateway sessions: the GUC pg_alpaca.max_session_ttl (extension/session_tokens.cpp).
#pragma once

namespace pga::ext {

void define_session_gucs();

}  // namespace pga::ext
