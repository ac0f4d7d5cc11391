// The sidecar's metrics registry, its loopback-only listen address and the wire operation
// "status" (no ticket).
#include "common/error.hpp"
#include "common/wire.hpp"
#include "sidecar/metrics.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

namespace m = pga::sidecar::metrics;

TEST(Metrics, ListenAcceptsOnlyLoopback) {
    std::string host, why;
    int port = 0;
    for (const char *ok : {"127.0.0.1:9187", "localhost:9187", "[::1]:9187", "127.8.9.10:1"}) {
        EXPECT_TRUE(m::parse_listen(ok, host, port, why)) << ok << ": " << why;
        EXPECT_FALSE(host.empty()) << ok;
    }
    EXPECT_TRUE(m::parse_listen("off", host, port, why));
    EXPECT_TRUE(host.empty());
    for (const char *bad :
         {"0.0.0.0:9187", "10.0.0.1:9187", "[::]:9187", "192.168.1.1:80", "example.com:9187",
          "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1", ":9187", "127.0.0.1:9x"}) {
        EXPECT_FALSE(m::parse_listen(bad, host, port, why)) << bad;
        EXPECT_NE(why.find("metrics_listen"), std::string::npos) << bad;
    }
}

TEST(Metrics, RequestsAreCountedByOperationOutcomeAndEnvironment) {
    const auto t = m::Clock::now();
    m::request_done("unit_op", pga::Outcome::Ok, "paper", t, "");
    m::request_done("unit_op", pga::Outcome::Ok, "paper", t, "");
    m::request_done("unit_op", pga::Outcome::TicketRejected, "-", t, "42501: refused");
    const std::string text = m::prometheus_text();
    EXPECT_NE(text.find("pga_sidecar_requests_total{operation=\"unit_op\",outcome=\"ok\","
                        "environment=\"paper\"} 2\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("pga_sidecar_requests_total{operation=\"unit_op\",outcome=\"ticket_"
                        "rejected\",environment=\"none\"} 1\n"),
              std::string::npos);
    const std::string status = m::status_json();
    EXPECT_NE(status.find("\"last_error\":\"unit_op: ticket_rejected: 42501: refused\""),
              std::string::npos)
        << status;
}

TEST(Metrics, GatewayRequestsByScopeAndOutcomeOnly) {
    m::gateway_request("read", m::GatewayOutcome::Ok);
    m::gateway_request("read", m::GatewayOutcome::Ok);
    m::gateway_request("trade", m::GatewayOutcome::Forbidden);
    m::gateway_request("pgas_not_a_scope", m::GatewayOutcome::Unauthorized);  // -> none
    const std::string text = m::prometheus_text();
    EXPECT_NE(text.find("pga_sidecar_gateway_requests_total{scope=\"read\",outcome=\"ok\"} 2\n"),
              std::string::npos)
        << text;
    EXPECT_NE(
        text.find("pga_sidecar_gateway_requests_total{scope=\"trade\",outcome=\"forbidden\"} 1\n"),
        std::string::npos);
    EXPECT_NE(
        text.find(
            "pga_sidecar_gateway_requests_total{scope=\"none\",outcome=\"unauthorized\"} 1\n"),
        std::string::npos);
    EXPECT_EQ(text.find("pgas_"), std::string::npos);
}

TEST(Metrics, OutcomeWriterFigures) {
    m::set_outcome_source([] { return m::OutcomeFigures{7, 40, 2}; });
    std::string text = m::prometheus_text();
    for (const char *want :
         {"\npga_sidecar_outcome_queue_depth 7\n", "\npga_sidecar_outcomes_written_total 40\n",
          "\npga_sidecar_outcomes_dropped_total 2\n",
          "# TYPE pga_sidecar_outcome_queue_depth gauge\n",
          "# TYPE pga_sidecar_outcomes_dropped_total counter\n"})
        EXPECT_NE(text.find(want), std::string::npos) << want;
    m::set_outcome_source(nullptr);  // a server that ended: zeros, no call into it
    text = m::prometheus_text();
    EXPECT_NE(text.find("\npga_sidecar_outcome_queue_depth 0\n"), std::string::npos);
    EXPECT_NE(text.find("\npga_sidecar_outcomes_dropped_total 0\n"), std::string::npos);
}

TEST(Metrics, PoolSourceIsReadUntilReset) {
    m::set_pool_source([] { return 3; });
    EXPECT_NE(m::prometheus_text().find("\npga_sidecar_pool_connections 3\n"), std::string::npos);
    EXPECT_NE(m::status_json().find("\"pool_connections\":3,"), std::string::npos);
    m::set_pool_source(nullptr);  // the server that set it ended: no call into it
    EXPECT_NE(m::prometheus_text().find("\npga_sidecar_pool_connections 0\n"), std::string::npos);
}

TEST(Wire, StatusTakesNoTicket) {
    pga::SidecarRequest req;
    req.request_id = "s1";
    req.operation = "status";
    const pga::SecureBytes frame = pga::encode_request(req);
    const auto back = pga::decode_request(frame.data() + pga::kFramePrefixLen,
                                          frame.size() - pga::kFramePrefixLen);
    EXPECT_EQ(back.operation, "status");
    EXPECT_TRUE(back.ticket.empty());
    req.ticket = pga::secure_copy("pgat1.x.y");
    EXPECT_THROW(pga::encode_request(req), pga::Error);
    req.operation = "account";
    req.ticket.clear();
    EXPECT_THROW(pga::encode_request(req), pga::Error);
}

}  // namespace
