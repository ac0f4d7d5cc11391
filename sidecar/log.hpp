// One line per event, `key=value` pairs after a timestamp and level, written with a single
// write(2) so lines from many threads never interleave. Callers pass only values that are safe
// to log (ids, operations, statuses, messages we composed); the logger escapes quotes and
// control characters so a hostile value cannot forge a line.
#pragma once
#include "common/cpp_only.hpp"
#include "sidecar/config.hpp"

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace pga::sidecar {

using LogField = std::pair<std::string_view, std::string_view>;

// Sets the level and (re)opens the destination: a file opened for append (mode 0640), or
// stderr when path is empty. Throws Error(Io) when the file cannot be opened.
void log_configure(LogLevel level, const std::string &path);
bool log_enabled(LogLevel level) noexcept;
void log_event(LogLevel level, std::string_view event, std::initializer_list<LogField> fields);

}  // namespace pga::sidecar
