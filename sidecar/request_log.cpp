#include "sidecar/request_log.hpp"

#include "sidecar/log.hpp"

#include <chrono>
#include <cstdio>

namespace pga::sidecar {

void log_request(const SidecarRequest &req, const std::string &credential_id,
                 const std::string &environment, const SidecarResponse &resp,
                 Clock::time_point started) {
    const double latency =
        std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    char latency_text[32];
    std::snprintf(latency_text, sizeof latency_text, "%.2f", latency);
    const bool ok = resp.outcome == Outcome::Ok;
    log_event(ok ? LogLevel::Info : LogLevel::Warn, "request",
              {{"id", req.request_id},
               {"cred", credential_id},
               {"op", req.operation},
               {"env", environment},
               {"outcome", outcome_name(resp.outcome)},
               {"status", std::to_string(resp.http_status)},
               {"attempts", std::to_string(resp.attempts)},
               {"latency_ms", latency_text},
               {"bytes", std::to_string(resp.body.size())},
               {"message", resp.message}});
}

void log_attempt(const std::string &request_id, int attempt, const HttpResponse &r) {
    log_event(LogLevel::Debug, "attempt",
              {{"id", request_id},
               {"attempt", std::to_string(attempt)},
               {"status", std::to_string(r.status)},
               {"transport", r.curl_code == CURLE_OK ? "ok" : r.error}});
}

}  // namespace pga::sidecar
