// Waiting on behalf of a backend that may hang up (cancel, timeout) while we wait.
#pragma once
#include "common/cpp_only.hpp"

#include <chrono>
#include <functional>

namespace pga::sidecar {

using Clock = std::chrono::steady_clock;

// Milliseconds left until deadline (negative once it has passed).
long ms_until(Clock::time_point deadline);

// Sleeps up to d, in slices, leaving early when client_gone() says true. False if it did.
bool sleep_unless_gone(std::chrono::milliseconds d, const std::function<bool()> &client_gone);

}  // namespace pga::sidecar
