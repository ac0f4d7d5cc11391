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

# Debian's PostgreSQL is built with LLVM; we do not ship JIT bitcode for C++ sources.
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

