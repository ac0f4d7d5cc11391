#include "keyring.hpp"

#include "encoding.hpp"
#include "error.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

namespace pga {
namespace {

constexpr std::string_view kSalt = "pg_alpaca";
constexpr std::string_view kInfoData = "pg_alpaca data-key v1";
constexpr std::string_view kInfoTicket = "pg_alpaca ticket-mac v1";
constexpr std::string_view kInfoFingerprint = "pg_alpaca fingerprint v1";
constexpr std::string_view kInfoSession = "pg_alpaca session-token v1";
constexpr std::size_t kMaxKeyFileSize = 1 << 20;

constexpr std::size_t kMaxShownPath = 200;

// Messages name the key file (escaped and bounded: a path is operator input like any other)
// and, for a line, its number. Nothing of the file's text is ever shown. The message is built
// before the path is escaped, so errno is read first.
[[noreturn]] void config_error(const std::string &path, const std::string &what) {
    throw Error(ErrorCode::ConfigFile, escape_for_error(path, kMaxShownPath) + ": " + what);
}

[[noreturn]] void line_error(const std::string &path, std::size_t line, const std::string &what) {
    throw Error(ErrorCode::ConfigFile,
                escape_for_error(path, kMaxShownPath) + ":" + std::to_string(line) + ": " + what);
}

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r';
}

// Decimal 1..4294967295, no sign, no leading zero.
bool parse_key_id(std::string_view s, std::uint32_t &out) {
    if (s.empty() || s.size() > 10 || s[0] == '0') return false;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (v > 0xffffffffull) return false;
    out = static_cast<std::uint32_t>(v);
    return true;
}

std::string errno_text(int err) {
    return std::strerror(err);
}

struct FdCloser {
    int fd;
    ~FdCloser() {
        if (fd >= 0) ::close(fd);
    }
};

void check_stat(const std::string &path, const struct stat &st) {
    if (!S_ISREG(st.st_mode)) config_error(path, "key file is not a regular file");
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        config_error(path, std::string("key file is accessible by group or others (mode ") + mode +
                               "); it must be readable by its owner only (chmod 600)");
    }
}

}  // namespace

KeyEntry KeyRing::derive(std::uint32_t id, const std::uint8_t master[kAesKeyLen]) {
    const auto *salt = reinterpret_cast<const std::uint8_t *>(kSalt.data());
    KeyEntry e;
    e.id = id;
    SecureBytes data_key = hkdf_sha256(master, kAesKeyLen, salt, kSalt.size(), kInfoData, 32);
    e.data_cipher = std::make_unique<AesGcm>(data_key.data());
    e.ticket_key = hkdf_sha256(master, kAesKeyLen, salt, kSalt.size(), kInfoTicket, 32);
    e.fingerprint_key = hkdf_sha256(master, kAesKeyLen, salt, kSalt.size(), kInfoFingerprint, 32);
    e.session_key = hkdf_sha256(master, kAesKeyLen, salt, kSalt.size(), kInfoSession, 32);
    return e;
}

KeyRing KeyRing::parse(std::string_view text, const std::string &source_name) {
    KeyRing ring;
    std::map<std::uint32_t, std::size_t> line_of;  // key id -> line, for duplicate messages
    std::size_t line_no = 0;
    std::size_t pos = 0;
    SecureBytes key;
    while (pos < text.size()) {
        ++line_no;
        std::size_t nl = text.find('\n', pos);
        std::string_view line =
            text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = (nl == std::string_view::npos) ? text.size() : nl + 1;

        std::size_t b = 0, e = line.size();
        while (b < e && is_blank(line[b])) ++b;
        while (e > b && is_blank(line[e - 1])) --e;
        line = line.substr(b, e - b);
        if (line.empty() || line[0] == '#') continue;

        std::size_t sep = 0;
        while (sep < line.size() && line[sep] != ' ' && line[sep] != '\t') ++sep;
        std::size_t kb = sep;
        while (kb < line.size() && (line[kb] == ' ' || line[kb] == '\t')) ++kb;
        if (sep == line.size() || kb == line.size())
            line_error(source_name, line_no, "malformed line: expected '<key id> <base64 key>'");
        std::string_view id_text = line.substr(0, sep);
        std::string_view key_text = line.substr(kb);
        std::uint32_t id = 0;
        if (!parse_key_id(id_text, id))
            line_error(source_name, line_no,
                       "key id must be a decimal number from 1 to 4294967295 without leading "
                       "zeros");
        for (char c : key_text)
            if (c == ' ' || c == '\t')
                line_error(source_name, line_no,
                           "malformed line: expected '<key id> <base64 key>' and nothing more");
        if (!base64_decode(key_text, key))
            line_error(source_name, line_no,
                       "key for id " + std::to_string(id) + " is not valid base64");
        if (key.size() != kAesKeyLen)
            line_error(source_name, line_no,
                       "key for id " + std::to_string(id) + " must be 32 bytes, got " +
                           std::to_string(key.size()));
        auto [it, fresh] = line_of.emplace(id, line_no);
        if (!fresh)
            line_error(source_name, line_no,
                       "duplicate key id " + std::to_string(id) + " (first on line " +
                           std::to_string(it->second) + ")");
        ring.entries_.push_back(derive(id, key.data()));
    }
    if (ring.entries_.empty()) config_error(source_name, "key file holds no key");
    std::sort(ring.entries_.begin(), ring.entries_.end(),
              [](const KeyEntry &a, const KeyEntry &b) { return a.id < b.id; });
    ring.primary_id_ = ring.entries_.back().id;
    return ring;
}

void KeyRing::check_file_mode(const std::string &path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        config_error(path, "cannot access key file: " + errno_text(errno));
    check_stat(path, st);
}

KeyRing KeyRing::load_file(const std::string &path) {
    // O_NONBLOCK: opening a FIFO must not hang; fstat on the open descriptor avoids a race
    // between the permission check and the read.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        const int err = errno;
        throw Error(
            ErrorCode::ConfigFile,
            escape_for_error(path, kMaxShownPath) + ": cannot open key file: " + errno_text(err),
            err == EACCES ? "The key file must be readable by the operating system user "
                            "the server runs as (usually postgres), and by it only: "
                            "chown postgres FILE; chmod 600 FILE."
                          : "");
    }
    FdCloser closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) config_error(path, "cannot stat key file: " + errno_text(errno));
    check_stat(path, st);
    if (st.st_size < 0 || static_cast<std::uint64_t>(st.st_size) > kMaxKeyFileSize)
        config_error(path, "key file is larger than 1 MiB");
    SecureBytes buf(static_cast<std::size_t>(st.st_size) + 1);
    std::size_t have = 0;
    for (;;) {
        if (have == buf.size()) {
            if (buf.size() > kMaxKeyFileSize) config_error(path, "key file is larger than 1 MiB");
            SecureBytes bigger(buf.size() * 2);
            std::copy(buf.begin(), buf.end(), bigger.begin());
            buf.swap(bigger);
        }
        ssize_t n = ::read(fd, buf.data() + have, buf.size() - have);
        if (n < 0) {
            if (errno == EINTR) continue;
            config_error(path, "cannot read key file: " + errno_text(errno));
        }
        if (n == 0) break;
        have += static_cast<std::size_t>(n);
    }
    return parse(std::string_view(reinterpret_cast<const char *>(buf.data()), have), path);
}

const KeyEntry &KeyRing::primary() const {
    if (entries_.empty()) throw Error(ErrorCode::KeyMissing, "the key ring holds no key");
    return entries_.back();
}

const KeyEntry *KeyRing::find(std::uint32_t id) const noexcept {
    auto it = std::lower_bound(entries_.begin(), entries_.end(), id,
                               [](const KeyEntry &e, std::uint32_t v) { return e.id < v; });
    return (it != entries_.end() && it->id == id) ? &*it : nullptr;
}

const KeyEntry &KeyRing::require(std::uint32_t id) const {
    const KeyEntry *e = find(id);
    if (e == nullptr)
        throw Error(ErrorCode::KeyMissing,
                    "key id " + std::to_string(id) + " is not in the key ring",
                    "add the key with that id back to the key file and reload");
    return *e;
}

std::vector<std::uint32_t> KeyRing::ids() const {
    std::vector<std::uint32_t> out;
    out.reserve(entries_.size());
    for (const auto &e : entries_) out.push_back(e.id);
    return out;
}

SecureBytes format_key_line(std::uint32_t id, const std::uint8_t master[kAesKeyLen]) {
    std::string b64 = base64_encode(master, kAesKeyLen);  // 44 chars: heap, wiped below
    std::string id_text = std::to_string(id);
    SecureBytes out;
    out.reserve(id_text.size() + 1 + b64.size() + 1);
    out.insert(out.end(), id_text.begin(), id_text.end());
    out.push_back(' ');
    out.insert(out.end(), b64.begin(), b64.end());
    out.push_back('\n');
    secure_wipe(b64.data(), b64.size());
    return out;
}

}  // namespace pga
