#include "sidecar/log.hpp"

#include "common/error.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <mutex>

namespace pga::sidecar {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};
std::mutex g_mu;
int g_fd = STDERR_FILENO;

bool needs_quotes(std::string_view v) {
    if (v.empty()) return true;
    for (char c : v) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f || c == '"' || c == '=' || c == '\\') return true;
    }
    return false;
}

void append_value(std::string &out, std::string_view v) {
    if (!needs_quotes(v)) {
        out += v;
        return;
    }
    out += '"';
    for (char c : v.substr(0, 1000)) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20 || u == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[u >> 4];
            out += hex[u & 15];
        } else {
            out += c;
        }
    }
    if (v.size() > 1000) out += "...";
    out += '"';
}

std::string timestamp() {
    const auto now = std::chrono::system_clock::now();
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, int(ms % 1000));
    return buf;
}

}  // namespace

void log_configure(LogLevel level, const std::string &path) {
    int fd = STDERR_FILENO;
    if (!path.empty()) {
        fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0) {
            throw Error(ErrorCode::Io,
                        "cannot open log file " + path + ": " + std::strerror(errno));
        }
    }
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_fd != STDERR_FILENO) ::close(g_fd);
    g_fd = fd;
    g_level.store(static_cast<int>(level));
}

bool log_enabled(LogLevel level) noexcept {
    return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

void log_event(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
    if (!log_enabled(level)) return;
    std::string line = timestamp();
    line += " level=";
    line += log_level_name(level);
    line += " event=";
    append_value(line, event);
    for (const auto &[key, value] : fields) {
        line += ' ';
        line += key;
        line += '=';
        append_value(line, value);
    }
    line += '\n';
    std::lock_guard<std::mutex> lock(g_mu);
    std::size_t off = 0;
    while (off < line.size()) {
        const ssize_t n = ::write(g_fd, line.data() + off, line.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // nowhere left to report it
        off += static_cast<std::size_t>(n);
    }
}

}  // namespace pga::sidecar
