// A fake gateway::Upstream for the MCP unit tests: records every call and answers from a
// script (path prefix -> status and body); an unscripted call answers 404 like Alpaca.
#pragma once
#include "sidecar/gateway_types.hpp"
#include "sidecar/mcp_json.hpp"

#include <map>
#include <string>
#include <vector>

namespace pga_test {

struct FakeUpstream : pga::sidecar::gateway::Upstream {
    struct Call {
        std::string method, path, body;
    };
    std::vector<Call> calls;
    std::map<std::string, pga::sidecar::gateway::Response> answers;  // "GET /v2/account"

    void answer(const std::string &key, int status, std::string body) {
        pga::sidecar::gateway::Response r;
        r.status = status;
        r.body = std::move(body);
        answers[key] = r;
    }
    pga::sidecar::gateway::Response call(const std::string &method, const std::string &path,
                                         const std::string &body) override {
        calls.push_back({method, path, body});
        const std::string bare = path.substr(0, path.find('?'));
        for (const std::string &k : {method + " " + path, method + " " + bare}) {
            const auto it = answers.find(k);
            if (it != answers.end()) return it->second;
        }
        pga::sidecar::gateway::Response r;
        r.status = 404;
        r.body = R"({"code":40410000,"message":"not found"})";
        return r;
    }
};

inline pga::sidecar::gateway::Session session(const std::string &scope) {
    return {"0b7f6f5e-5a43-4f0e-9d5c-4f1b7f0d6e11", "6a1c3f1e-2b0f-4c55-8f41-59e5a5d3e0aa", scope,
            "paper"};
}

}  // namespace pga_test
