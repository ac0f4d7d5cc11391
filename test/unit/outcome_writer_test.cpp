// The outcome writer's batch parameters: PostgreSQL array literals that quote every element,
// keep NULL for "no HTTP status", and spell times in UTC with microseconds.
#include "sidecar/outcome_writer.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using pga::sidecar::CallOutcome;

CallOutcome outcome(std::string ticket, std::string op, std::string what, int status,
                    long long unix_us) {
    CallOutcome o;
    o.ticket = pga::secure_copy(ticket);
    o.operation = std::move(op);
    o.outcome = std::move(what);
    o.http_status = status;
    o.finished = std::chrono::system_clock::time_point(std::chrono::microseconds(unix_us));
    return o;
}

TEST(OutcomeWriter, BatchParamsAreArrayLiterals) {
    std::vector<CallOutcome> batch;
    batch.push_back(outcome("pgat1.abc.def", "positions", "ok", 200, 1'790'000'000'123'456));
    batch.push_back(outcome("pgat1.x\"y\\z", "validate", "timeout", 0, 0));
    const pga::sidecar::OutcomeBatchParams p = pga::sidecar::batch_params(batch);
    const std::string tickets(reinterpret_cast<const char *>(p.tickets.data()));
    EXPECT_EQ(tickets, R"({"pgat1.abc.def","pgat1.x\"y\\z"})");
    EXPECT_EQ(p.tickets.back(), 0);  // NUL-terminated for libpq
    EXPECT_EQ(p.operations, R"({"positions","validate"})");
    EXPECT_EQ(p.outcomes, R"({"ok","timeout"})");
    EXPECT_EQ(p.http_statuses, "{200,NULL}");
    EXPECT_EQ(p.finished_at,
              R"({"2026-09-21 14:13:20.123456+00","1970-01-01 00:00:00.000000+00"})");
}

TEST(OutcomeWriter, OneOutcomeHasNoSeparator) {
    std::vector<CallOutcome> batch;
    batch.push_back(outcome("t", "account", "rejected", 401, 1'000'000));
    const pga::sidecar::OutcomeBatchParams p = pga::sidecar::batch_params(batch);
    EXPECT_EQ(p.operations, R"({"account"})");
    EXPECT_EQ(p.http_statuses, "{401}");
    EXPECT_EQ(p.finished_at, R"({"1970-01-01 00:00:01.000000+00"})");
}

}  // namespace
