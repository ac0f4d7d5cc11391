#pragma once
// The release version. Its one source is default_version in pg_alpaca.control: CMakeLists.txt
// and the Makefile read it from there and pass it in as PGA_VERSION.
#ifndef PGA_VERSION
#error "PGA_VERSION is defined by the build (from pg_alpaca.control)"
#endif

namespace pga {
inline constexpr const char *kVersion = PGA_VERSION;
}  // namespace pga
