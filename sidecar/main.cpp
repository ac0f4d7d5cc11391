// alpaca-sidecar: redeems tickets for Alpaca keys and calls Alpaca on behalf of PostgreSQL
// backends. See README.md ("The sidecar") and sidecar/alpaca-sidecar.conf.example.
#include "common/error.hpp"
#include "common/version.hpp"
#include "sidecar/config.hpp"
#include "sidecar/config_check.hpp"
#include "sidecar/gateway_listener.hpp"
#include "sidecar/http_client.hpp"
#include "sidecar/log.hpp"
#include "sidecar/metrics.hpp"
#include "sidecar/server.hpp"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

constexpr const char *kDefaultConfig = "/etc/pg_alpaca/alpaca-sidecar.conf";

void usage(std::FILE *out) {
    std::fprintf(out,
                 "Usage: alpaca-sidecar [--config FILE] [--check-config [--no-database]]\n"
                 "\n"
                 "Redeems pg_alpaca tickets for Alpaca keys and calls Alpaca over HTTPS on behalf\n"
                 "of PostgreSQL backends, which reach it through a unix socket.\n"
                 "\n"
                 "  --config FILE    configuration file (default %s)\n"
                 "  --check-config   parse and check the configuration, log in to PostgreSQL\n"
                 "                   with conninfo (a member of alpaca_sidecar, not a superuser),\n"
                 "                   then exit (0 when all is well)\n"
                 "  --no-database    with --check-config: skip the PostgreSQL login\n"
                 "  --version        print the version and exit\n"
                 "  --help           print this help and exit\n"
                 "\n"
                 "Signals: SIGHUP reloads the configuration and reopens the log file;\n"
                 "SIGTERM or SIGINT stops accepting, finishes running requests and exits 0.\n",
                 kDefaultConfig);
}

// Keys pass through this process: keep them out of core files and away from ptrace by
// other processes of the same user.
void harden_process() {
    rlimit none{0, 0};
    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

// Every client connection holds a descriptor until it is answered or dropped. The soft limit
// is often 1024 while the hard one is far higher: take up to 65536 of it. The server still
// bounds its connections below whatever limit it ends up with (effective_max_pending).
void raise_fd_limit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    const rlim_t want =
        rl.rlim_max == RLIM_INFINITY ? rlim_t(65536) : std::min(rl.rlim_max, rlim_t(65536));
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

}  // namespace

int main(int argc, char **argv) {
    std::string config_path = kDefaultConfig;
    bool check_only = false;
    bool check_database = true;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            usage(stdout);
            return 0;
        } else if (arg == "--version") {
            std::printf("alpaca-sidecar %s\n", pga::kVersion);
            return 0;
        } else if (arg == "--check-config") {
            check_only = true;
        } else if (arg == "--no-database") {
            check_database = false;
        } else if (arg == "--config" && i + 1 < argc) {
            config_path = argv[++i];
        } else if (arg.rfind("--config=", 0) == 0) {
            config_path = arg.substr(9);
        } else {
            std::fprintf(stderr, "alpaca-sidecar: unknown argument \"%s\"\n\n", arg.c_str());
            usage(stderr);
            return 2;
        }
    }

    using namespace pga::sidecar;
    Config cfg;
    try {
        cfg = load_config(config_path);
        check_config_environment(cfg, config_path);
    } catch (const pga::Error &e) {
        std::fprintf(stderr, "alpaca-sidecar: %s\n", e.what());
        return 1;
    }
    if (check_only) {
        std::string db_line;
        if (check_database) {
            try {
                db_line = check_database_login(cfg, config_path);
            } catch (const pga::Error &e) {
                std::fprintf(stderr, "alpaca-sidecar: %s\n", e.what());
                return 1;
            }
        }
        if (!db_line.empty()) std::printf("%s: %s\n", config_path.c_str(), db_line.c_str());
        std::printf("%s: configuration ok\n", config_path.c_str());
        return 0;
    }

    harden_process();
    raise_fd_limit();
    // Signals are taken synchronously through a signalfd; every thread inherits the mask.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    const int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        std::fprintf(stderr, "alpaca-sidecar: signalfd: %s\n", std::strerror(errno));
        return 1;
    }

    try {
        log_configure(cfg.log_level, cfg.log_file);
        http_global_init();
        const metrics::MetricsServer metrics_http(cfg.metrics_listen);
        Server server(config_path, cfg);
        // The gateway (off unless gateway_listen is set) shares the database pool, the rate
        // limiter and the TLS session cache; it stops before the audit queue drains.
        gateway::ClientPool gateway_clients(server.curl_share());
        gateway::AuditQueue gateway_audit(server.redeemer());
        gateway::Listener gateway(
            cfg, gateway::Deps{server.redeemer(), server.limiter(), gateway_clients, gateway_audit,
                               [&server] { return server.current_config(); }});
        server.run(sfd);
    } catch (const std::exception &e) {
        log_event(LogLevel::Error, "fatal", {{"message", e.what()}});
        std::fprintf(stderr, "alpaca-sidecar: %s\n", e.what());
        return 1;
    }
    return 0;
}
