// Redeems tickets through `CALL alpaca.redeem_ticket` on a bounded pool of libpq connections.
// Connections are opened lazily, prepared once, and replaced when they break, so the sidecar
// carries on by itself after PostgreSQL restarts.
#pragma once
#include "common/cpp_only.hpp"
#include "common/secure_memory.hpp"
#include "sidecar/pg_session.hpp"

#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace pga::sidecar {

struct RedeemedCredential {
    std::string credential_id;
    std::string environment;  // "paper" or "live"
    SecureBytes api_key;
    SecureBytes secret_key;
};

enum class RedeemStatus {
    Ok,
    Rejected,       // the database refused the ticket (SQLSTATE class 42 or 22)
    DatabaseError,  // no connection, connection lost twice, pool exhausted until the deadline
    Failed,         // any other SQL error (e.g. a key id missing from the key ring)
};

struct RedeemResult {
    RedeemStatus status = RedeemStatus::Failed;
    RedeemedCredential credential;  // only for Ok
    std::string message;            // safe to log: SQLSTATE and PostgreSQL's primary message
};

class Redeemer {
  public:
    using Clock = std::chrono::steady_clock;
    Redeemer(std::string conninfo, int pool_size);
    Redeemer(const Redeemer &) = delete;
    Redeemer &operator=(const Redeemer &) = delete;

    RedeemResult redeem(const SecureBytes &ticket, const std::string &purpose,
                        Clock::time_point deadline);

    // Records a trading call (operation, client_order_id, outcome; never a key) through
    // alpaca._audit_trade on a pooled connection in autocommit mode, so the row is committed
    // at once. The ticket proves the redeem; each redeemed ticket gives one audit row. Failures
    // are logged, never thrown.
    void audit_trade(const SecureBytes &ticket, const std::string &operation,
                     const std::string &client_order_id, const std::string &outcome,
                     Clock::time_point deadline);

    // Connections currently open (idle + in use), for the status log.
    int open_connections();

    // Runs fn on a pooled connection (autocommit, search_path pinned empty). fn returns
    // whether the connection is still good to keep. False with error when none came before the
    // deadline. For the gateway's statements (sidecar/gateway_db.hpp).
    bool with_connection(Clock::time_point deadline, const std::function<bool(PGconn *)> &fn,
                         std::string &error);

    // Closes every idle pooled connection: after a restart ("terminating connection", 57P01)
    // they are all dead, though libpq may still call them open.
    void discard_idle();

  private:
    using Conn = PgConn;

    Conn acquire(Clock::time_point deadline, std::string &error);
    void release(Conn conn);
    Conn connect(std::string &error);

    const std::string conninfo_;
    const int pool_size_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<Conn> idle_;
    int open_ = 0;
};

}  // namespace pga::sidecar
