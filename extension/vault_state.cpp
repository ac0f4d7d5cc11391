#include "extension/vault_state.hpp"

#include <sys/stat.h>

#include <cstring>
#include <memory>

#include "common/error.hpp"
#include "extension/pg_guard.hpp"

extern "C" {
#include "utils/guc.h"
}

namespace pga::ext {
namespace {

char *g_key_file = nullptr;
char *g_user_setting = nullptr;

struct LoadedRing {
    std::string path;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    struct timespec mtime {};
    struct timespec ctime {};
    pga::KeyRing ring;
};
std::unique_ptr<LoadedRing> g_loaded;

bool same_file(const LoadedRing &l, const std::string &path, const struct stat &st) {
    return l.path == path && l.dev == st.st_dev && l.ino == st.st_ino && l.size == st.st_size &&
           l.mtime.tv_sec == st.st_mtim.tv_sec && l.mtime.tv_nsec == st.st_mtim.tv_nsec &&
           l.ctime.tv_sec == st.st_ctim.tv_sec && l.ctime.tv_nsec == st.st_ctim.tv_nsec;
}

// A setting name is a custom GUC name: two or more identifiers joined by dots.
bool valid_setting_name(const char *name) {
    if (name == nullptr || *name == '\0' || std::strlen(name) > 63) return false;
    bool dot = false, at_start = true;
    for (const char *p = name; *p; ++p) {
        char c = *p;
        if (c == '.') {
            if (at_start) return false;
            dot = true;
            at_start = true;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                   (!at_start && c >= '0' && c <= '9')) {
            at_start = false;
        } else {
            return false;
        }
    }
    return dot && !at_start;
}

bool check_user_setting(char **newval, void **, GucSource) {
    if (valid_setting_name(*newval)) return true;
    GUC_check_errdetail(
        "pg_alpaca.user_setting must be a custom setting name such as \"app.current_user_id\".");
    return false;
}

bool check_key_file(char **newval, void **, GucSource) {
    if (*newval == nullptr || (*newval)[0] == '\0' || (*newval)[0] == '/') return true;
    GUC_check_errdetail("pg_alpaca.key_file must be an absolute path.");
    return false;
}

}  // namespace

void define_vault_gucs() {
    DefineCustomStringVariable(
        "pg_alpaca.key_file", "Path of the pg_alpaca master key file.",
        "One key a line: <key id> <base64 of 32 bytes>; the highest id is the primary. "
        "The file must not be group- or world-readable.",
        &g_key_file, "", PGC_SUSET, GUC_SUPERUSER_ONLY, check_key_file, nullptr, nullptr);
    DefineCustomStringVariable(
        "pg_alpaca.user_setting",
        "Transaction-scoped setting that names the application user for row-level security.",
        nullptr, &g_user_setting, "app.current_user_id", PGC_SUSET, 0, check_user_setting, nullptr,
        nullptr);
}

const pga::KeyRing &keyring() {
    std::string path = g_key_file ? g_key_file : "";
    if (path.empty())
        throw pga::Error(pga::ErrorCode::ConfigFile, "pg_alpaca.key_file is not set",
                         "Create a key file with \"alpaca-keygen new FILE\", then ALTER SYSTEM "
                         "SET pg_alpaca.key_file = 'FILE' and SELECT pg_reload_conf().");
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
        int err = errno;
        throw pga::Error(pga::ErrorCode::ConfigFile,
                         "could not read key file \"" + path + "\": " + strerror(err),
                         "Check pg_alpaca.key_file and that the server's operating system user can "
                         "read the file.");
    }
    if (g_loaded && same_file(*g_loaded, path, st)) return g_loaded->ring;
    auto fresh = std::make_unique<LoadedRing>();
    fresh->ring = pga::KeyRing::load_file(path);
    fresh->path = path;
    fresh->dev = st.st_dev;
    fresh->ino = st.st_ino;
    fresh->size = st.st_size;
    fresh->mtime = st.st_mtim;
    fresh->ctime = st.st_ctim;
    g_loaded = std::move(fresh);
    return g_loaded->ring;
}

const char *user_setting_name() {
    return g_user_setting && *g_user_setting ? g_user_setting : "app.current_user_id";
}

std::optional<std::string> current_app_user() {
    const char *name = user_setting_name();
    const char *value = pga::pg::call([&] { return GetConfigOption(name, true, false); });
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
}

}  // namespace pga::ext
