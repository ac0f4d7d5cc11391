// Redeems tickets through `CALL alpaca.redeem_ticket` on a bounded pool of libpq connections.
// Connections are opened lazily, prepared once, and replaced when they break, so the sidecar
// carries on by itself after PostgreSQL restarts.
//
// Under load the redeems batch: a redeem that finds no free connection queues; the next thread
// to get a connection takes every queued ticket (at most kMaxBatch) and redeems them in one
// `CALL alpaca.redeem_tickets`: one round trip, one transaction, one commit and WAL flush for
// all, each ticket still checked, marked single-use and audited on its own. When the batch is
// refused (one of its tickets is: a replay, an expired ticket) nothing of it was committed:
// the refused ticket gets that refusal as its answer (the procedure names it) and the others go
// again without it; on any other failure each is redeemed alone. A ticket alone takes
// redeem_ticket.
#pragma once
#include "common/cpp_only.hpp"
#include "common/secure_memory.hpp"
#include "sidecar/pg_session.hpp"

#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
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

    static constexpr std::size_t kMaxBatch = 32;

  private:
    using Conn = PgConn;
    // A redeem waiting in queue_ (on its caller's stack). `taken`: a leader has it in a batch
    // (it is out of queue_ and must not return before `done`); `alone`: its batch failed with
    // nothing committed, so its caller redeems it alone. Guarded by mu_.
    struct Waiter {
        const SecureBytes *ticket;
        const std::string *purpose;
        RedeemResult result;
        bool taken = false, done = false, alone = false;
        std::condition_variable cv;
    };

    // How one CALL alpaca.redeem_tickets ended: every waiter got its credential; one ticket was
    // refused (nothing committed); committed but the result is unreadable; failed otherwise
    // (nothing committed, unless the connection was lost).
    enum class BatchEnd { Redeemed, Refused, Unreadable, Failed };

    RedeemResult redeem_alone(const SecureBytes &ticket, const std::string &purpose,
                              Clock::time_point deadline, Conn conn);
    // The leader's work: the batch on conn (mu_ not held); gives every waiter its result, or
    // marks it `alone`.
    void serve(std::vector<Waiter *> batch, Conn conn, Clock::time_point deadline);
    // refused: the refused ticket's index, and message its answer (Refused; Unreadable: why).
    BatchEnd redeem_batch(PGconn *conn, const std::vector<Waiter *> &batch, bool &lost,
                          std::size_t &refused, std::string &message);
    // mu_ held: a connection or a slot for one came free; wakes an acquire() and the first
    // queued redeem.
    void slot_freed();

    Conn acquire(Clock::time_point deadline, std::string &error);
    void release(Conn conn);
    Conn connect(std::string &error);

    const std::string conninfo_;
    const int pool_size_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<Conn> idle_;
    int open_ = 0;
    std::deque<Waiter *> queue_;
    std::atomic<bool> batches_{true};  // false once the database lacks alpaca.redeem_tickets
};

}  // namespace pga::sidecar
