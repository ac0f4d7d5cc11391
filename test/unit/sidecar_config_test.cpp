// alpaca-sidecar configuration parser: a full file, defaults, and one bad line at a time.
// Every refusal is Error(ConfigFile) starting "<file>:<line>: " and never repeats a conninfo
// value or a password.
#include "common/error.hpp"
#include "sidecar/config.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using pga::sidecar::Config;
using pga::sidecar::LogLevel;
using pga::sidecar::parse_config;

constexpr const char *kFile = "/etc/alpaca/sidecar.conf";
constexpr const char *kPassword = "hunter2-Sup3rSecret";

struct Refusal {
    bool threw = false;
    pga::ErrorCode code = pga::ErrorCode::Internal;
    std::string message;
};

Refusal refusal(const std::string &text, const std::string &file = kFile) {
    Refusal r;
    try {
        (void)parse_config(text, file);
    } catch (const pga::Error &e) {
        r.threw = true;
        r.code = e.code();
        r.message = e.what();
    }
    return r;
}

const std::string kMinimal = "socket_path = /run/alpaca/sidecar.sock\n";

TEST(SidecarConfig, FullFileWithCommentsQuotesAndBlankLines) {
    const std::string text =
        "# alpaca-sidecar\n"
        "\n"
        "socket_path = /run/alpaca/sidecar.sock   # trailing comment\n"
        "socket_mode = 0640\n"
        "socket_group = postgres\n"
        "conninfo = \"host=/var/run/postgresql dbname=app user=sidecar passfile=/etc/a#b\"\n"
        "\tpool_size\t=\t6\n"
        "workers = 12\r\n"
        "max_queue = 1000\n"
        "paper_base_url = https://127.0.0.1:8443/\n"
        "live_base_url = HTTPS://api.example.test/v2//\n"
        "ca_file = /etc/alpaca/ca.pem\n"
        "connect_timeout_ms = 100\n"
        "request_timeout_ms = 600000\n"
        "request_deadline_ms = 55000\n"
        "max_attempts = 10\n"
        "retry_base_delay_ms = 0\n"
        "retry_max_delay_ms = 0\n"
        "rate_limit_per_minute = 100000\n"
        "max_response_bytes = 1024\n"
        "log_level = warning\n"
        "log_file = /var/log/alpaca-sidecar.log\n"
        "read_timeout_ms = 250\n"
        "   # indented comment\n";
    const Config c = parse_config(text, kFile);
    EXPECT_EQ(c.socket_path, "/run/alpaca/sidecar.sock");
    EXPECT_EQ(c.socket_mode, 0640u);
    EXPECT_EQ(c.socket_group, "postgres");
    EXPECT_EQ(c.conninfo, "host=/var/run/postgresql dbname=app user=sidecar passfile=/etc/a#b");
    EXPECT_EQ(c.pool_size, 6);
    EXPECT_EQ(c.workers, 12);
    EXPECT_EQ(c.max_queue, 1000u);
    EXPECT_EQ(c.paper_base_url, "https://127.0.0.1:8443");
    EXPECT_EQ(c.live_base_url, "HTTPS://api.example.test/v2");
    EXPECT_EQ(c.ca_file, "/etc/alpaca/ca.pem");
    EXPECT_EQ(c.connect_timeout_ms, 100);
    EXPECT_EQ(c.request_timeout_ms, 600000);
    EXPECT_EQ(c.request_deadline_ms, 55000);
    EXPECT_EQ(c.max_attempts, 10);
    EXPECT_EQ(c.retry_base_delay_ms, 0);
    EXPECT_EQ(c.retry_max_delay_ms, 0);
    EXPECT_EQ(c.rate_limit_per_minute, 100000);
    EXPECT_EQ(c.max_response_bytes, 1024u);
    EXPECT_EQ(c.log_level, LogLevel::Warn);
    EXPECT_EQ(c.log_file, "/var/log/alpaca-sidecar.log");
    EXPECT_EQ(c.read_timeout_ms, 250);
}

TEST(SidecarConfig, TheShippedExampleParses) {
    std::ifstream in(std::string(PGA_SOURCE_DIR) + "/sidecar/alpaca-sidecar.conf.example");
    ASSERT_TRUE(in);
    std::stringstream ss;
    ss << in.rdbuf();
    const Config c = parse_config(ss.str(), "alpaca-sidecar.conf.example");
    // The README's default for pg_alpaca.sidecar_socket.
    EXPECT_EQ(c.socket_path, "/run/alpaca-sidecar/alpaca-sidecar.sock");
    EXPECT_EQ(c.conninfo.find("password"), std::string::npos);
}

TEST(SidecarConfig, DefaultsMatchTheReadme) {
    const Config c = parse_config(kMinimal, kFile);
    EXPECT_EQ(c.socket_path, "/run/alpaca/sidecar.sock");
    EXPECT_EQ(c.socket_mode, 0660u);
    EXPECT_EQ(c.socket_group, "");
    EXPECT_EQ(c.conninfo, "");
    EXPECT_EQ(c.pool_size, 4);
    EXPECT_EQ(c.workers, 8);
    EXPECT_EQ(c.max_queue, 256u);
    EXPECT_EQ(c.paper_base_url, "https://paper-api.alpaca.markets");
    EXPECT_EQ(c.live_base_url, "https://api.alpaca.markets");
    EXPECT_EQ(c.ca_file, "");
    EXPECT_EQ(c.connect_timeout_ms, 3000);
    EXPECT_EQ(c.request_timeout_ms, 10000);
    EXPECT_EQ(c.max_attempts, 4);
    EXPECT_EQ(c.retry_base_delay_ms, 100);
    EXPECT_EQ(c.retry_max_delay_ms, 5000);
    EXPECT_EQ(c.rate_limit_per_minute, 200);
    EXPECT_EQ(c.max_response_bytes, 16777216u);
    EXPECT_EQ(c.log_level, LogLevel::Info);
    EXPECT_EQ(c.log_file, "");
    // No trailing newline, CRLF, "stderr" log file, every log level name.
    EXPECT_EQ(parse_config("socket_path=/s", kFile).socket_path, "/s");
    EXPECT_EQ(parse_config("socket_path = /s\r\nlog_file = stderr\r\n", kFile).log_file, "");
    for (const auto &[name, level] :
         std::vector<std::pair<std::string, LogLevel>>{{"error", LogLevel::Error},
                                                       {"warn", LogLevel::Warn},
                                                       {"info", LogLevel::Info},
                                                       {"debug", LogLevel::Debug}}) {
        EXPECT_EQ(parse_config(kMinimal + "log_level = " + name, kFile).log_level, level);
        EXPECT_STREQ(pga::sidecar::log_level_name(level), name.c_str());
    }
}

struct BadLine {
    std::string line;     // appended after kMinimal, so it is line 2
    const char *message;  // expected part of the message
};

TEST(SidecarConfig, EachBadLineNamesFileAndLine) {
    const std::vector<BadLine> cases = {
        {"no_such_setting = 1", "unknown setting 'no_such_setting'"},
        {"Socket_Path = /x", "unknown setting"},
        {"password = " + std::string(kPassword), "unknown setting 'password'"},
        {"socket_path = /other", "socket_path is already set on line 1"},
        {"just words", "expected key = value"},
        {"= 5", "missing key"},
        {"pool_size = \"4", "unterminated double quote"},
        {"pool_size = \"4\"\"", "double quote inside"},
        {"socket_group = a\x01", "control character"},
        {std::string("workers = 1\0", 12), "NUL byte"},
        {"pool_size = four", "pool_size: expected a whole number from 1 to 64, got 'four'"},
        {"pool_size = 0", "pool_size: expected a whole number from 1 to 64"},
        {"pool_size = 65", "from 1 to 64"},
        {"pool_size = -1", "from 1 to 64"},
        {"pool_size = +4", "from 1 to 64"},
        {"pool_size = 4.0", "from 1 to 64"},
        {"pool_size = 0x10", "from 1 to 64"},
        {"pool_size = 4 4", "from 1 to 64"},
        {"pool_size =", "from 1 to 64"},
        {"pool_size = 99999999999999999999999", "from 1 to 64"},
        {"workers = 257", "workers: expected a whole number from 1 to 256"},
        {"max_queue = 100001", "max_queue"},
        {"connect_timeout_ms = 99", "connect_timeout_ms"},
        {"request_timeout_ms = 600001", "request_timeout_ms"},
        {"request_deadline_ms = 99", "request_deadline_ms"},
        {"request_deadline_ms = 55001", "request_deadline_ms"},
        {"max_attempts = 0", "max_attempts"},
        {"max_attempts = 11", "max_attempts"},
        {"retry_base_delay_ms = 60001", "retry_base_delay_ms"},
        {"rate_limit_per_minute = 0", "rate_limit_per_minute"},
        {"max_response_bytes = 16777217", "max_response_bytes"},
        {"max_response_bytes = 1023", "max_response_bytes"},
        {"read_timeout_ms = 99", "read_timeout_ms"},
        {"socket_mode = 0666", "must not give access to others"},
        {"socket_mode = 0060", "owner needs read and write"},
        {"socket_mode = 0680", "expected an octal mode"},
        {"socket_mode = 01660", "expected an octal mode"},
        {"socket_mode = rw", "expected an octal mode"},
        {"socket_group = wheel;rm", "not a valid group name"},
        {"socket_group = " + std::string(65, 'g'), "expected a group name"},
        {"ca_file = ca.pem", "ca_file: expected an absolute path, got 'ca.pem'"},
        {"ca_file = ./ca.pem", "expected an absolute path"},
        {"ca_file = ~/ca.pem", "expected an absolute path"},
        {"log_file = logs/sidecar.log", "log_file: expected an absolute path"},
        {"log_level = verbose", "log_level: expected error, warn, info or debug"},
        {"log_level = INFO", "log_level"},
        {"paper_base_url = http://paper-api.alpaca.markets", "plain http:// is refused"},
        {"live_base_url = ftp://api.alpaca.markets", "expected an https:// URL"},
        {"live_base_url = api.alpaca.markets", "expected an https:// URL"},
        {"live_base_url = https://", "URL has no host"},
        {"live_base_url = https:///v2", "URL has no host"},
        {"live_base_url = https://user:" + std::string(kPassword) + "@api.alpaca.markets",
         "must not contain credentials"},
        {"live_base_url = https://api.alpaca.markets/?x=1", "query or fragment"},
        {"live_base_url = https://api.alpaca.markets/#x", "query or fragment"},
        {"live_base_url = \"https://api.alpaca.markets/a b\"", "space or control"},
        {"retry_max_delay_ms = 50", "retry_max_delay_ms must be >= retry_base_delay_ms"},
        {"retry_base_delay_ms = 6000", "retry_max_delay_ms must be >= retry_base_delay_ms"},
    };
    for (const auto &c : cases) {
        SCOPED_TRACE(c.line);
        const Refusal r = refusal(kMinimal + c.line + "\n");
        ASSERT_TRUE(r.threw);
        EXPECT_EQ(r.code, pga::ErrorCode::ConfigFile);
        EXPECT_EQ(r.message.rfind(std::string(kFile) + ":2: ", 0), 0u) << r.message;
        EXPECT_NE(r.message.find(c.message), std::string::npos) << r.message;
        EXPECT_EQ(r.message.find(kPassword), std::string::npos) << r.message;
    }
}

TEST(SidecarConfig, LineNumbersCountBlankAndCommentLines) {
    const Refusal r = refusal("# one\n\n" + kMinimal + "\n  # five\nworkers = 0\n", "a.conf");
    EXPECT_EQ(r.message.rfind("a.conf:6: workers", 0), 0u) << r.message;
    const Refusal dup = refusal("workers = 2\n" + kMinimal + "workers = 3\n", "b.conf");
    EXPECT_EQ(dup.message, "b.conf:3: workers is already set on line 1");
    // A duplicate is refused even when the first value was the same.
    EXPECT_TRUE(refusal(kMinimal + kMinimal).threw);
}

TEST(SidecarConfig, FileLevelProblems) {
    for (const std::string &text :
         {std::string(), std::string("# only a comment\n"), std::string("workers = 2\n")}) {
        const Refusal r = refusal(text, "c.conf");
        ASSERT_TRUE(r.threw);
        EXPECT_EQ(r.code, pga::ErrorCode::ConfigFile);
        EXPECT_EQ(r.message, "c.conf: socket_path is required");
    }
    const Refusal r = refusal("socket_path = /" + std::string(110, 'a') + "\n");
    EXPECT_NE(r.message.find(std::string(kFile) + ":1: socket_path: longer than 107 bytes"),
              std::string::npos)
        << r.message;
    EXPECT_EQ(parse_config("socket_path = /" + std::string(106, 'a'), kFile).socket_path.size(),
              107u);
}

TEST(SidecarConfig, ConninfoWithAPasswordIsRefusedWithoutEchoingIt) {
    const std::vector<std::string> lines = {
        "conninfo = host=/tmp dbname=app password=" + std::string(kPassword),
        "conninfo = \"host=/tmp password='" + std::string(kPassword) + "' dbname=app\"",
        "conninfo = password=" + std::string(kPassword),
        "conninfo = postgresql://sidecar:" + std::string(kPassword) + "@localhost/app",
        "conninfo = postgresql://sidecar@localhost/app?password=" + std::string(kPassword),
        "conninfo = host=/tmp sslkey=/k.pem sslpassword=" + std::string(kPassword),
    };
    for (const auto &line : lines) {
        SCOPED_TRACE(line);
        const Refusal r = refusal(kMinimal + line + "\n");
        ASSERT_TRUE(r.threw);
        EXPECT_EQ(r.code, pga::ErrorCode::ConfigFile);
        EXPECT_EQ(r.message.rfind(std::string(kFile) + ":2: conninfo: contains a password", 0), 0u)
            << r.message;
        EXPECT_EQ(r.message.find(kPassword), std::string::npos) << r.message;
        EXPECT_EQ(r.message.find("hunter2"), std::string::npos) << r.message;
    }
    // An empty password is no secret; passfile is the recommended place.
    EXPECT_EQ(parse_config(kMinimal + "conninfo = dbname=app password=''", kFile).conninfo,
              "dbname=app password=''");
    EXPECT_EQ(parse_config(kMinimal + "conninfo = dbname=app passfile=/etc/pgpass", kFile).conninfo,
              "dbname=app passfile=/etc/pgpass");
}

TEST(SidecarConfig, MalformedConninfoIsRefusedWithoutEchoingIt) {
    const std::vector<std::string> lines = {
        // An unquoted password with a space: libpq reads "Sup3rSecret" as an option name.
        "conninfo = host=/tmp password=hunter2 Sup3rSecret=x",
        "conninfo = host=/tmp password=\"hunter2 Sup3rSecret=x\"",
        "conninfo = host='/tmp " + std::string(kPassword),     // unterminated quote
        "conninfo = " + std::string(kPassword),                // no '='
        "conninfo = postgresql://[" + std::string(kPassword),  // bad URI
    };
    for (const auto &line : lines) {
        SCOPED_TRACE(line);
        const Refusal r = refusal(kMinimal + line + "\n");
        ASSERT_TRUE(r.threw);
        EXPECT_EQ(r.code, pga::ErrorCode::ConfigFile);
        EXPECT_EQ(r.message.rfind(std::string(kFile) + ":2: conninfo: ", 0), 0u) << r.message;
        EXPECT_EQ(r.message.find("hunter2"), std::string::npos) << r.message;
        EXPECT_EQ(r.message.find("Sup3r"), std::string::npos) << r.message;
    }
}

TEST(SidecarConfig, MisspelledConninfoOptionIsNamedWhenNoPasswordIsNear) {
    const Refusal r = refusal(kMinimal + "conninfo = host=/tmp dbnam=app\n");
    ASSERT_TRUE(r.threw);
    EXPECT_NE(r.message.find("invalid connection option \"dbnam\")"), std::string::npos)
        << r.message;
    EXPECT_EQ(r.message.find('\n'), std::string::npos) << r.message;
}

// A long invalid option name of quotes and non-UTF-8 (what the fuzzer found, see
// fuzz_regressions_test.cpp) is cut and escaped like any other input.
TEST(SidecarConfig, InvalidConninfoOptionNameIsEscapedAndBounded) {
    const std::string name = "x\xff\x7f[2J" + std::string(300, '\'') + std::string(50, '\xfe');
    const Refusal r = refusal(kMinimal + "conninfo = host=/tmp " + name + "=1\n");
    ASSERT_TRUE(r.threw);
    EXPECT_EQ(r.code, pga::ErrorCode::ConfigFile);
    EXPECT_NE(r.message.find("invalid connection option \"x\\xFF\\x7F[2J''"), std::string::npos)
        << r.message;
    EXPECT_NE(r.message.find("...)"), std::string::npos) << r.message;
    EXPECT_LE(r.message.size(), std::string(kFile).size() + 160) << r.message;
    EXPECT_TRUE(pga::is_printable_ascii(r.message)) << r.message;
}

// The file name is shown as given when printable, escaped and bounded when not.
TEST(SidecarConfig, FileNameInMessagesIsEscapedAndBounded) {
    const Refusal r = refusal("bogus = 1\n", "/etc/\x1b]0;x\x07" + std::string(400, 'd') + ".conf");
    ASSERT_TRUE(r.threw);
    EXPECT_EQ(r.message.rfind("/etc/\\x1B]0;x\\x07ddd", 0), 0u) << r.message;
    EXPECT_LE(r.message.size(), 260u) << r.message;
    EXPECT_TRUE(pga::is_printable_ascii(r.message)) << r.message;
}

TEST(SidecarConfig, ValuesShownInMessagesAreSanitisedAndBounded) {
    const Refusal r = refusal(kMinimal + "workers = \x7f" + std::string(200, '9') + "\n");
    ASSERT_TRUE(r.threw);
    EXPECT_LT(r.message.size(), 200u) << r.message;
    EXPECT_NE(r.message.find("..."), std::string::npos);
    EXPECT_NE(r.message.find("'\\x7F9"), std::string::npos) << r.message;
    EXPECT_TRUE(pga::is_printable_ascii(r.message)) << r.message;
    const Refusal u = refusal(kMinimal + std::string(300, 'k') + " = 1\n");
    EXPECT_LT(u.message.size(), 200u) << u.message;
    // Quote errors name the key the same bounded way.
    for (const std::string &tail : {std::string(" = \"x\n"), std::string(" = \"x\"y\"\n")}) {
        const Refusal q = refusal(kMinimal + std::string(300, 'k') + tail);
        ASSERT_TRUE(q.threw);
        EXPECT_NE(q.message.find("quote"), std::string::npos) << q.message;
        EXPECT_LT(q.message.size(), 200u) << q.message;
    }
}

TEST(SidecarConfig, RestartRequiredChanges) {
    const Config a = parse_config(kMinimal, kFile);
    EXPECT_TRUE(pga::sidecar::restart_required_changes(a, a).empty());
    // Reloadable settings need no restart.
    const Config reloadable = parse_config(kMinimal +
                                               "log_level = debug\nmax_attempts = 2\n"
                                               "paper_base_url = https://localhost:1\n"
                                               "rate_limit_per_minute = 5\nmax_queue = 3\n",
                                           kFile);
    EXPECT_TRUE(pga::sidecar::restart_required_changes(a, reloadable).empty());
    const Config b = parse_config(
        "socket_path = /run/other.sock\nsocket_mode = 0600\nsocket_group = alpaca\n"
        "conninfo = dbname=other\npool_size = 2\nworkers = 3\n",
        kFile);
    EXPECT_EQ(pga::sidecar::restart_required_changes(a, b),
              (std::vector<std::string>{"socket_path", "socket_mode", "socket_group", "conninfo",
                                        "pool_size", "workers"}));
    const Config only_pool = parse_config(kMinimal + "pool_size = 5\n", kFile);
    EXPECT_EQ(pga::sidecar::restart_required_changes(a, only_pool),
              (std::vector<std::string>{"pool_size"}));
}

TEST(SidecarConfig, LoadConfigReadsAFileAndNamesIt) {
    char dir[] = "/tmp/pga_sidecar_config_test.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string path = std::string(dir) + "/sidecar.conf";
    std::ofstream(path) << kMinimal << "workers = 3\n";
    EXPECT_EQ(pga::sidecar::load_config(path).workers, 3);
    std::ofstream(path, std::ios::trunc) << kMinimal << "workers = 300\n";
    try {
        pga::sidecar::load_config(path);
        ADD_FAILURE() << "accepted workers = 300";
    } catch (const pga::Error &e) {
        EXPECT_EQ(std::string(e.what()).rfind(path + ":2: workers", 0), 0u) << e.what();
    }
    {
        std::ofstream big(path, std::ios::trunc);
        big << kMinimal << std::string((1 << 20) + 10, '#');
    }
    try {
        pga::sidecar::load_config(path);
        ADD_FAILURE() << "accepted a file over 1 MiB";
    } catch (const pga::Error &e) {
        EXPECT_EQ(e.code(), pga::ErrorCode::ConfigFile);
        EXPECT_EQ(std::string(e.what()), path + ": larger than 1 MiB");
    }
    ::unlink(path.c_str());
    try {
        pga::sidecar::load_config(path);
        ADD_FAILURE() << "read a missing file";
    } catch (const pga::Error &e) {
        EXPECT_EQ(e.code(), pga::ErrorCode::ConfigFile);
        EXPECT_EQ(std::string(e.what()).rfind(path + ": cannot open", 0), 0u) << e.what();
    }
    ::rmdir(dir);
}

}  // namespace

namespace {

TEST(SidecarConfig, GatewaySettings) {
    const Config c =
        parse_config(kMinimal +
                         "gateway_listen = 127.0.0.1:8443, /run/alpaca/gateway.sock, [::1]:8444\n"
                         "data_base_url = https://data.example/\n"
                         "gateway_allowed_hosts = gw.internal, gw.example\n"
                         "gateway_allowed_origins = http://localhost:3000\n"
                         "gateway_max_connections = 32\n"
                         "gateway_max_body_bytes = 4096\n"
                         "gateway_socket_mode = 0660\n",
                     kFile);
    EXPECT_EQ(c.gateway_listen, (std::vector<std::string>{
                                    "127.0.0.1:8443", "/run/alpaca/gateway.sock", "[::1]:8444"}));
    EXPECT_EQ(c.data_base_url, "https://data.example");
    EXPECT_EQ(c.gateway_allowed_hosts, (std::vector<std::string>{"gw.internal", "gw.example"}));
    EXPECT_EQ(c.gateway_max_connections, 32);
    EXPECT_EQ(c.gateway_max_body_bytes, 4096u);
    const Config d = parse_config(kMinimal, kFile);
    EXPECT_TRUE(d.gateway_listen.empty()) << "the gateway is off by default";
    EXPECT_EQ(d.data_base_url, "https://data.alpaca.markets");
}

TEST(SidecarConfig, GatewayRefusals) {
    const struct {
        const char *line;
        const char *says;
    } cases[] = {
        {"gateway_listen = 0.0.0.0:8443\n", "needs gateway_tls_cert"},
        {"gateway_listen = 192.168.1.5:8443\n", "not a loopback address"},
        {"gateway_listen = localhost\n", "expected HOST:PORT"},
        {"gateway_listen = 127.0.0.1:0\n", "port from 1 to 65535"},
        {"gateway_listen = gw.example:8443\n", "numeric IP address"},
        {"gateway_listen = 127.0.0.1:8443,\n", "empty item"},
        {"gateway_listen = relative.sock\n", "expected HOST:PORT"},
        {"data_base_url = http://data.example\n", "plain http://"},
        {"gateway_allowed_origins = localhost:3000\n", "scheme://host"},
        {"gateway_allowed_hosts = evil/x\n", "host names"},
        {"gateway_socket_mode = 0666\n", "others"},
        {"gateway_max_connections = 0\n", "from 1 to 1024"},
        {"gateway_tls_cert = /etc/x.pem\n", "go together"},
    };
    for (const auto &c : cases) {
        const Refusal r = refusal(kMinimal + c.line);
        EXPECT_TRUE(r.threw) << c.line;
        EXPECT_NE(r.message.find(c.says), std::string::npos) << c.line << " -> " << r.message;
    }
    // With TLS, any address.
    const Config t =
        parse_config(kMinimal +
                         "gateway_listen = 0.0.0.0:8443\ngateway_tls_cert = /etc/c.pem\n"
                         "gateway_tls_key = /etc/k.pem\n",
                     kFile);
    EXPECT_EQ(t.gateway_listen.size(), 1u);
}

}  // namespace
