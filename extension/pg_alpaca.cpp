// Module entry: PG_MODULE_MAGIC and _PG_init (GUCs, the log redaction hook).
#include "extension/log_redaction.hpp"
#include "extension/pg_guard.hpp"
#include "extension/sidecar_client.hpp"
#include "extension/vault_state.hpp"

extern "C" {
#include "utils/guc.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);

void _PG_init(void) {
    pga::ext::define_vault_gucs();
    pga::ext::define_sidecar_gucs();
    pga::ext::install_log_redaction();
    MarkGUCPrefixReserved("pg_alpaca");
}
}
