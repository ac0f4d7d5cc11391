# PGXS build of the extension (pg_alpaca.so) and its pg_regress suite.
# The sidecar, keygen tool, unit tests, fuzzers and benchmarks are built by CMakeLists.txt.
EXTENSION = pg_alpaca
MODULE_big = pg_alpaca
DATA = $(sort $(wildcard sql/pg_alpaca--*.sql))

EXTENSION_SRCS = $(sort $(wildcard extension/*.cpp))
COMMON_SRCS = $(sort $(wildcard common/*.cpp))
OBJS = $(EXTENSION_SRCS:.cpp=.o) $(COMMON_SRCS:.cpp=.o)

# The version's one source is pg_alpaca.control (default_version).
PGA_VERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(CURDIR)/pg_alpaca.control)
PG_CPPFLAGS = -I$(CURDIR) -DPGA_VERSION='"$(PGA_VERSION)"'
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
              -Wno-cast-function-type -Wno-register
SHLIB_LINK = -lcrypto -lstdc++

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

# Debian's PostgreSQL is built with LLVM; we do not ship JIT bitcode for C++ sources.
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

.PHONY: regress-keys
regress-keys:
	$(CURDIR)/scripts/regress_keys.sh $(PGA_TEST_KEYS_DIR)
