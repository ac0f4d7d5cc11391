// alpaca-keygen: writes and extends pg_alpaca key files. Never prints key material.
#include "common/crypto.hpp"
#include "common/error.hpp"
#include "common/version.hpp"
#include "common/keyring.hpp"
#include "common/secure_memory.hpp"
#include "common/unique_fd.hpp"

#include <fcntl.h>
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

namespace {

constexpr const char *kFileHeader =
    "# pg_alpaca key ring: one key a line, \"<key id> <base64 of 32 random bytes>\".\n"
    "# The highest id is the primary key. Keep this file mode 0600 and out of backups of\n"
    "# the database; losing it makes every stored secret unreadable.\n";

struct Failure {
    std::string message;
};

[[noreturn]] void fail(const std::string &path, const std::string &what) {
    throw Failure{path + ": " + what};
}

std::string errno_text() {
    return std::strerror(errno);
}

using Fd = pga::UniqueFd;

void write_all(int fd, const std::uint8_t *p, std::size_t n, const std::string &path) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail(path, "cannot write: " + errno_text());
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

std::string dir_of(const std::string &path) {
    std::vector<char> buf(path.begin(), path.end());
    buf.push_back('\0');
    return ::dirname(buf.data());
}

void fsync_dir(const std::string &path) {
    std::string dir = dir_of(path);
    Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d.get() < 0 || ::fsync(d.get()) != 0) fail(dir, "cannot sync directory: " + errno_text());
}

void close_checked(Fd &fd, const std::string &path) {
    if (::close(fd.release()) != 0) fail(path, "cannot close: " + errno_text());
}

// A fresh random key line for id; the master key never outlives this call.
pga::SecureBytes new_key_line(std::uint32_t id) {
    std::array<std::uint8_t, pga::kAesKeyLen> master{};
    pga::random_bytes(master.data(), master.size());
    pga::SecureBytes line = pga::format_key_line(id, master.data());
    pga::secure_wipe(master.data(), master.size());
    return line;
}

int cmd_new(const std::string &path) {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.get() < 0) fail(path, "cannot create key file: " + errno_text());
    try {
        if (::fchmod(fd.get(), 0600) != 0) fail(path, "cannot set mode 0600: " + errno_text());
        write_all(fd.get(), reinterpret_cast<const std::uint8_t *>(kFileHeader),
                  std::strlen(kFileHeader), path);
        pga::SecureBytes line = new_key_line(1);
        write_all(fd.get(), line.data(), line.size(), path);
        if (::fsync(fd.get()) != 0) fail(path, "cannot sync: " + errno_text());
        close_checked(fd, path);
        fsync_dir(path);
        pga::KeyRing::load_file(path);  // what we wrote must load
    } catch (...) {
        ::unlink(path.c_str());
        throw;
    }
    std::cout << "created " << path << " with key id 1 (primary)\n";
    return 0;
}

pga::SecureBytes read_all(const std::string &path, struct stat &st) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0) fail(path, "cannot open: " + errno_text());
    if (::fstat(fd.get(), &st) != 0) fail(path, "cannot stat: " + errno_text());
    pga::KeyRing::check_file_mode(path);
    pga::SecureBytes buf(static_cast<std::size_t>(st.st_size) + 4096);
    std::size_t have = 0;
    for (;;) {
        if (have == buf.size()) fail(path, "file changed while reading");
        ssize_t n = ::read(fd.get(), buf.data() + have, buf.size() - have);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail(path, "cannot read: " + errno_text());
        }
        if (n == 0) break;
        have += static_cast<std::size_t>(n);
    }
    buf.resize(have);
    return buf;
}

int cmd_add(const std::string &path) {
    pga::KeyRing ring = pga::KeyRing::load_file(path);
    if (ring.primary_id() == 0xffffffffu) fail(path, "the highest key id is already 4294967295");
    std::uint32_t id = ring.primary_id() + 1;
    struct stat st {};
    pga::SecureBytes content = read_all(path, st);
    // The file must not have changed between the check and the read.
    pga::KeyRing again = pga::KeyRing::parse(pga::as_view(content), path);
    if (again.ids() != ring.ids()) fail(path, "file changed while reading; try again");
    if (!content.empty() && content.back() != '\n') content.push_back('\n');
    pga::SecureBytes line = new_key_line(id);
    content.insert(content.end(), line.begin(), line.end());

    std::string tmpl = path + ".tmp.XXXXXX";
    std::vector<char> tmp(tmpl.begin(), tmpl.end());
    tmp.push_back('\0');
    Fd fd(::mkstemp(tmp.data()));  // mode 0600
    if (fd.get() < 0) fail(path, "cannot create temporary file: " + errno_text());
    std::string tmp_path(tmp.data());
    try {
        if (::fchmod(fd.get(), st.st_mode & 0700) != 0)
            fail(tmp_path, "cannot set mode: " + errno_text());
        // Keep the owner (e.g. postgres) when run as root.
        if ((st.st_uid != ::geteuid() || st.st_gid != ::getegid()) &&
            ::fchown(fd.get(), st.st_uid, st.st_gid) != 0)
            fail(tmp_path, "cannot keep the key file's owner: " + errno_text());
        write_all(fd.get(), content.data(), content.size(), tmp_path);
        if (::fsync(fd.get()) != 0) fail(tmp_path, "cannot sync: " + errno_text());
        close_checked(fd, tmp_path);
        pga::KeyRing check = pga::KeyRing::load_file(tmp_path);
        if (check.primary_id() != id) fail(tmp_path, "new key file does not verify");
        if (::rename(tmp_path.c_str(), path.c_str()) != 0)
            fail(path, "cannot replace key file: " + errno_text());
    } catch (...) {
        ::unlink(tmp_path.c_str());
        throw;
    }
    fsync_dir(path);
    std::cout << "added key id " << id << " to " << path << " (now primary)\n";
    return 0;
}

int cmd_list(const std::string &path) {
    pga::KeyRing ring = pga::KeyRing::load_file(path);
    for (std::uint32_t id : ring.ids()) {
        std::cout << "key id " << id;
        if (id == ring.primary_id()) std::cout << " (primary)";
        std::cout << '\n';
    }
    return 0;
}

void usage(std::ostream &os) {
    os << "Usage: alpaca-keygen COMMAND FILE\n"
          "Manage a pg_alpaca key file (one key a line: <key id> <base64 of 32 bytes>).\n"
          "\n"
          "Commands:\n"
          "  new FILE    create FILE (mode 0600, must not exist) holding one new key, id 1\n"
          "  add FILE    append a new key with the next id; it becomes the primary key\n"
          "  list FILE   print the key ids and which one is primary (never key material)\n"
          "\n"
          "Options:\n"
          "  --help      show this help\n"
          "  --version   show the version\n"
          "\n"
          "After 'add', reload PostgreSQL (SIGHUP) and run alpaca_rotate_keys().\n"
          "Exit status: 0 on success, 1 on error.\n";
}

}  // namespace

int main(int argc, char **argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
        usage(std::cout);
        return 0;
    }
    if (args.size() == 1 && args[0] == "--version") {
        std::cout << "alpaca-keygen " << pga::kVersion << '\n';
        return 0;
    }
    if (args.size() != 2 || args[1].empty()) {
        usage(std::cerr);
        return 1;
    }
    try {
        if (args[0] == "new") return cmd_new(args[1]);
        if (args[0] == "add") return cmd_add(args[1]);
        if (args[0] == "list") return cmd_list(args[1]);
        std::cerr << "alpaca-keygen: unknown command \"" << args[0] << "\"\n";
        usage(std::cerr);
        return 1;
    } catch (const Failure &f) {
        std::cerr << "alpaca-keygen: " << f.message << '\n';
    } catch (const pga::Error &e) {
        std::cerr << "alpaca-keygen: " << e.what() << '\n';
    } catch (const std::exception &e) {
        std::cerr << "alpaca-keygen: " << args[1] << ": " << e.what() << '\n';
    }
    return 1;
}
