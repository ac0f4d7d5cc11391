// Module entry: PG_MODULE_MAGIC and _PG_init (GUCs, the log redaction hook).
#include "extension/jwt_functions.hpp"
#include "extension/log_redaction.hpp"
#include "extension/preload_check.hpp"
#include "extension/session_tokens.hpp"
#include "extension/sidecar_transport.hpp"
#include "extension/vault_state.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);

void _PG_init(void) {
    pga::ext::define_vault_gucs();
    pga::ext::define_sidecar_gucs();
    pga::ext::define_jwt_gucs();
    pga::ext::define_session_gucs();
    pga::ext::install_log_redaction();
    pga::ext::note_preload();
    MarkGUCPrefixReserved("pg_alpaca");
}
}
