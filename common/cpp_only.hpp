// Included first by every header in common/ (and sidecar/): they are the PostgreSQL-free core.
// PostgreSQL's headers redefine names (e.g. printf, gettext) that break C++ library code, so a
// translation unit that needs both must include every common/ header before postgres.h.
//
// Deliberately no #pragma once and no include guard: the check runs at every inclusion, so a
// common/ header first reached after postgres.h fails the build even when another common/
// header already pulled this file in before postgres.h.
#if defined(POSTGRES_H) || defined(POSTGRES_FE_H) || defined(PG_VERSION_NUM)
#error "common/ must not be compiled with PostgreSQL headers: include it before postgres.h"
#endif
