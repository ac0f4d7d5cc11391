// Included first by every header in common/: common/ is the PostgreSQL-free core.
// PostgreSQL's headers redefine names (e.g. printf, gettext) that break C++ library code;
// a file that needs both must include common/ headers before postgres.h.
#pragma once
#ifdef PG_VERSION_NUM
#error "common/ must not be compiled with PostgreSQL headers: include it before postgres.h"
#endif
