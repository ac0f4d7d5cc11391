#include "sidecar/rate_wait.hpp"

namespace pga::sidecar {

RateWait wait_for_rate_slot(RateLimiter &limiter, const std::string &credential_id,
                            Clock::time_point deadline, const std::function<bool()> &client_gone) {
    std::chrono::milliseconds wait{0};
    while (!limiter.try_acquire(credential_id, Clock::now(), wait)) {
        if (wait.count() >= ms_until(deadline)) return {RateWait::Status::Exhausted, wait};
        if (!sleep_unless_gone(wait, client_gone)) return {RateWait::Status::ClientGone, wait};
    }
    return {};
}

}  // namespace pga::sidecar
