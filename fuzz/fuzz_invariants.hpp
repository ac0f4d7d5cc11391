// The invariant every fuzz target asserts on every refusal: an error message (and its hint)
// is printable ASCII and bounded, whatever the input was. Input never comes back unbounded or
// raw (pga::escape_for_error / pga::quote_for_error are the only way it may appear at all).
#pragma once
#include "common/error.hpp"

#include <cstddef>
#include <cstdlib>
#include <string_view>

namespace pga_fuzz {

// Hints are fixed text; this bound only catches one that starts repeating input.
constexpr std::size_t kMaxHint = 300;

inline void check_error_text(std::string_view message, std::size_t max) {
    if (message.empty() || message.size() > max || !pga::is_printable_ascii(message)) std::abort();
}

inline void check_error(const pga::Error &e, std::size_t max) {
    check_error_text(e.what(), max);
    if (e.hint().size() > kMaxHint || !pga::is_printable_ascii(e.hint())) std::abort();
}

}  // namespace pga_fuzz
