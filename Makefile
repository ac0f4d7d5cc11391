# PGXS build of the extension (pg_alpaca.so) and its pg_regress suite.
# The sidecar, keygen tool, unit tests, fuzzers and benchmarks are built by CMakeLists.txt.
EXTENSION = pg_alpaca
MODULE_big = pg_alpaca
DATA = $(sort $(wildcard sql/pg_alpaca--*.sql))

# common/ holds only what both programs use; what only the sidecar needs (rate limiter, retry
# policy, ...) lives in sidecar/ and never reaches pg_alpaca.so.
EXTENSION_SRCS = $(sort $(wildcard extension/*.cpp))
COMMON_SRCS = $(sort $(wildcard common/*.cpp))
OBJS = $(EXTENSION_SRCS:.cpp=.o) $(COMMON_SRCS:.cpp=.o)

# The version's one source is pg_alpaca.control (default_version).
PGA_VERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(CURDIR)/pg_alpaca.control)
# Hidden symbol visibility: pg_alpaca.so exports only what PostgreSQL looks up (Pg_magic_func,
# _PG_init, the SQL entry points and their pg_finfo_* records), all declared PGDLLEXPORT by
# PG_MODULE_MAGIC / PG_FUNCTION_INFO_V1. PostgreSQL 15 leaves PGDLLEXPORT empty on ELF
# platforms (16 defines it like this), so we define it. extension/exports.map also keeps local
# the std:: template instances libstdc++ marks visible. Unused code is dropped at link time.
PG_CPPFLAGS = -I$(CURDIR) -DPGA_VERSION='"$(PGA_VERSION)"' \
              '-DPGDLLEXPORT=__attribute__((visibility("default")))'
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
              -Wno-cast-function-type -Wno-register \
              -fvisibility=hidden -fvisibility-inlines-hidden -ffunction-sections -fdata-sections
SHLIB_LINK = -lcrypto -lstdc++ -Wl,--gc-sections -Wl,--version-script=$(CURDIR)/extension/exports.map

REGRESS = $(shell sed -n 's/^test: *//p' test/schedule)
REGRESS_OPTS = --inputdir=test

# The key ring test (test/sql/key_ring.sql) needs key files the server's OS user owns, made
# from the server's own pg_alpaca.key_file: scripts/regress_keys.sh makes them before
# installcheck, in PGA_TEST_KEYS_DIR (a folder the server's OS user can reach).
PGA_TEST_KEYS_DIR ?= $(CURDIR)/tmp_check/keys
REGRESS_PREP = regress-keys
export PGA_TEST_KEYS_TWO = $(PGA_TEST_KEYS_DIR)/two.keys
export PGA_TEST_KEYS_ONLY2 = $(PGA_TEST_KEYS_DIR)/only2.keys
export PGA_TEST_KEYS_PUBLIC = $(PGA_TEST_KEYS_DIR)/public.keys
export PGA_TEST_KEYS_BAD_LINE = $(PGA_TEST_KEYS_DIR)/bad_line.keys
export PGA_TEST_KEYS_SHORT = $(PGA_TEST_KEYS_DIR)/short.keys
export PGA_TEST_KEYS_DUP = $(PGA_TEST_KEYS_DIR)/dup.keys
export PGA_TEST_KEYS_EMPTY = $(PGA_TEST_KEYS_DIR)/empty.keys
# Rebuild objects when a header they include changes (dependency files in .deps/).
override autodepend = yes

# Debian's PostgreSQL is built with LLVM; we do not ship JIT bitcode for C++ sources.
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

.PHONY: regress-keys
regress-keys:
	$(CURDIR)/scripts/regress_keys.sh $(PGA_TEST_KEYS_DIR)
$(shlib): extension/exports.map
