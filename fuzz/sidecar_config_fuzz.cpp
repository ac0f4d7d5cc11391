// libFuzzer: alpaca-sidecar configuration parser. Any text either parses into a Config that
// satisfies every documented rule, or is refused with Error(ConfigFile) whose message starts
// "fuzz.conf:<line>: " (or "fuzz.conf: " for a missing socket_path) with a real line number,
// is bounded, and, when the refused line is a conninfo line mentioning a password, is one of
// the fixed messages that repeat nothing of the value. Every message is printable ASCII of at
// most kMaxMessage characters (fuzz/regressions/sidecar_config_fuzz: a 405-byte one that
// repeated 300 bytes of quotes and non-UTF-8 from an invalid conninfo option name).
#include "common/error.hpp"
#include "fuzz/fuzz_invariants.hpp"
#include "sidecar/config.hpp"

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

void check(bool cond) {
    if (!cond) std::abort();
}

// "fuzz.conf:<line>: " plus the longest message (an invalid conninfo option, 144 characters).
constexpr std::size_t kMaxMessage = 200;

bool starts_with_ci(std::string_view s, std::string_view p) {
    if (s.size() < p.size()) return false;
    for (std::size_t i = 0; i < p.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(s[i])) != p[i]) return false;
    return true;
}

void check_config(const pga::sidecar::Config &c) {
    check(!c.socket_path.empty() && c.socket_path[0] == '/' && c.socket_path.size() < 108);
    check((c.socket_mode & 0007) == 0 && (c.socket_mode & 0600) == 0600 && c.socket_mode <= 0777);
    check(c.pool_size >= 1 && c.pool_size <= 64);
    check(c.workers >= 1 && c.workers <= 256);
    check(c.max_queue >= 1 && c.max_queue <= 100000);
    for (const std::string *u : {&c.paper_base_url, &c.live_base_url}) {
        check(starts_with_ci(*u, "https://") && u->size() > 8 && u->back() != '/');
        check(u->find_first_of("@?# \t") == std::string::npos);
    }
    check(c.ca_file.empty() || c.ca_file[0] == '/');
    check(c.log_file.empty() || c.log_file[0] == '/');
    check(c.connect_timeout_ms >= 100 && c.request_timeout_ms >= 100);
    check(c.max_attempts >= 1 && c.max_attempts <= 10);
    check(c.retry_base_delay_ms <= c.retry_max_delay_ms);
    check(c.rate_limit_per_minute >= 1);
    check(c.max_response_bytes >= 1024 && c.max_response_bytes <= 16777216);
    check(c.read_timeout_ms >= 100);
    for (char ch : c.conninfo) check(static_cast<unsigned char>(ch) >= 0x20 || ch == '\t');
}

// The Nth line (1-based) of text.
std::string_view line_at(std::string_view text, long n) {
    std::size_t pos = 0;
    for (long i = 1; i < n; ++i) {
        const std::size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) return {};
        pos = nl + 1;
    }
    const std::size_t nl = text.find('\n', pos);
    return text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
}

bool is_conninfo_line_with_password(std::string_view line) {
    // A '#' may start a comment that hides the word from the parser: not judged here.
    if (line.find('#') != std::string_view::npos) return false;
    std::size_t i = 0;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (line.substr(i, 8) != "conninfo") return false;
    i += 8;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size() || line[i] != '=') return false;
    std::string lower(line.substr(i));
    for (char &ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return lower.find("password") != std::string::npos;
}

bool fixed_conninfo_message(const std::string &m) {
    return m.rfind("conninfo: contains a password;", 0) == 0 ||
           m == "conninfo: not a valid libpq connection string (check quoting and key=value "
                "pairs)" ||
           m == "control character in line" || m == "NUL byte in line" ||
           m == "unterminated double quote in value of 'conninfo'" ||
           m == "double quote inside a quoted value of 'conninfo'" ||
           m.rfind("conninfo is already set on line ", 0) == 0 ||
           m == "retry_max_delay_ms must be >= retry_base_delay_ms";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char *>(data), size);
    try {
        check_config(pga::sidecar::parse_config(text, "fuzz.conf"));
    } catch (const pga::Error &e) {
        check(e.code() == pga::ErrorCode::ConfigFile);
        pga_fuzz::check_error(e, kMaxMessage);
        const std::string m = e.what();
        if (m == "fuzz.conf: socket_path is required") return 0;
        check(m.rfind("fuzz.conf:", 0) == 0);
        std::size_t i = 10;
        long line = 0;
        while (i < m.size() && i < 20 && std::isdigit(static_cast<unsigned char>(m[i])))
            line = line * 10 + (m[i++] - '0');
        check(i > 10 && i + 1 < m.size() && m[i] == ':' && m[i + 1] == ' ');
        long lines = 1;
        for (char ch : text) lines += ch == '\n';
        check(line >= 1 && line <= lines);
        if (is_conninfo_line_with_password(line_at(text, line)))
            check(fixed_conninfo_message(m.substr(i + 2)));
    }
    return 0;
}
