#include "sidecar/client_wait.hpp"

#include <algorithm>
#include <thread>

namespace pga::sidecar {

using std::chrono::milliseconds;

long ms_until(Clock::time_point deadline) {
    return long(std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count());
}

bool sleep_unless_gone(milliseconds d, const std::function<bool()> &client_gone) {
    const auto until = Clock::now() + d;
    while (Clock::now() < until) {
        if (client_gone()) return false;
        std::this_thread::sleep_for(
            std::min<Clock::duration>(milliseconds(50), until - Clock::now()));
    }
    return true;
}

}  // namespace pga::sidecar
