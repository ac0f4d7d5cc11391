#include "sidecar/redeem_step.hpp"

#include <utility>

namespace pga::sidecar {

std::optional<RedeemedCredential> redeem_for_request(Redeemer &redeemer, const SidecarRequest &req,
                                                     Clock::time_point deadline,
                                                     SidecarResponse &resp) {
    RedeemResult redeemed = redeemer.redeem(req.ticket, req.operation, deadline);
    switch (redeemed.status) {
        case RedeemStatus::Ok:
            return std::move(redeemed.credential);
        case RedeemStatus::Rejected:
            resp.outcome = Outcome::TicketRejected;
            resp.message = redeemed.message;
            return std::nullopt;
        case RedeemStatus::DatabaseError:
            resp.outcome = Outcome::DatabaseError;
            resp.message = redeemed.message;
            return std::nullopt;
        case RedeemStatus::Failed:
            break;
    }
    resp.outcome = Outcome::Internal;
    resp.message = "redeeming the ticket failed: " + redeemed.message;
    return std::nullopt;
}

}  // namespace pga::sidecar
