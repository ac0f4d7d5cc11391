// The gateway audit queue's coalescing of last_used_at: one element per distinct session, its
// latest time, entries without a session left out.
#include "sidecar/gateway_audit.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace {

using pga::sidecar::gateway::AuditEntry;
using pga::sidecar::gateway::used_params;

TEST(GatewayAudit, UsedParamsKeepsTheLatestTimePerSession) {
    using std::chrono::seconds;
    const std::chrono::system_clock::time_point t0{seconds(1764590400)};  // 2025-12-01 12:00:00Z
    const std::string a = "7d4a0e36-6c2c-4e9b-9f3a-2f5f0c9f1a11";
    const std::string b = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9";
    const std::vector<AuditEntry> batch = {{"1", 200, a, t0 + seconds(2)},
                                           {"2", 200, b, t0},
                                           {"3", 403, a, t0 + seconds(1)},
                                           {"4", 200, "", t0 + seconds(9)}};
    std::string ids, times;
    ASSERT_TRUE(used_params(batch, ids, times));
    EXPECT_EQ(ids, "{" + b + "," + a + "}");
    EXPECT_EQ(times, "{\"2025-12-01 12:00:00.000000+00\",\"2025-12-01 12:00:02.000000+00\"}");
}

TEST(GatewayAudit, UsedParamsWithoutSessions) {
    std::string ids, times;
    EXPECT_FALSE(used_params({}, ids, times));
    EXPECT_FALSE(used_params({{"1", 200, "", std::chrono::system_clock::now()}}, ids, times));
    EXPECT_EQ(ids, "{}");
    EXPECT_EQ(times, "{}");
}

}  // namespace
