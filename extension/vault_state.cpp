#include "extension/vault_state.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "common/error.hpp"
#include "common/file_identity.hpp"
#include "extension/pg_guard.hpp"

extern "C" {
#include "access/parallel.h"
#include "access/xact.h"
#include "storage/proc.h"
#include "utils/guc.h"
}

namespace pga::ext {
namespace {

char *g_key_file = nullptr;
char *g_user_setting = nullptr;
int g_user_source = static_cast<int>(UserSource::Setting);

const struct config_enum_entry kUserSources[] = {
    {"setting", static_cast<int>(UserSource::Setting), false},
    {"jwt", static_cast<int>(UserSource::Jwt), false},
    {nullptr, 0, false},
};

// The verified users of the current transaction, innermost last: each with the
// subtransaction that set it, so ROLLBACK TO SAVEPOINT drops what the savepoint set, exactly as
// it undoes the SET LOCAL. lxid guards against a transaction boundary the callbacks missed.
struct VerifiedUser {
    SubTransactionId subid;
    std::string user;
};
std::vector<VerifiedUser> g_verified;
LocalTransactionId g_verified_lxid = InvalidLocalTransactionId;

// Callbacks run inside transaction machinery: no allocation, nothing that can throw.
void on_xact(XactEvent event, void *) {
    switch (event) {
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_PARALLEL_COMMIT:
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_ABORT:
        case XACT_EVENT_PREPARE:
            g_verified.clear();
            g_verified_lxid = InvalidLocalTransactionId;
            break;
        default:
            break;
    }
}

void on_subxact(SubXactEvent event, SubTransactionId sub, SubTransactionId parent, void *) {
    if (event == SUBXACT_EVENT_ABORT_SUB) {
        g_verified.erase(std::remove_if(g_verified.begin(), g_verified.end(),
                                        [sub](const VerifiedUser &v) { return v.subid == sub; }),
                         g_verified.end());
    } else if (event == SUBXACT_EVENT_COMMIT_SUB) {
        for (auto &v : g_verified)
            if (v.subid == sub) v.subid = parent;
    }
}

struct LoadedRing {
    pga::FileIdentity file;
    pga::KeyRing ring;
};
std::unique_ptr<LoadedRing> g_loaded;

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
    DefineCustomEnumVariable(
        "pg_alpaca.user_source", "Where the application user comes from: setting or jwt.",
        "setting: alpaca_set_user or the user setting names the user. jwt: only a token verified "
        "by alpaca_set_user_jwt does (alpaca_set_user is refused for non-superusers).",
        &g_user_source, static_cast<int>(UserSource::Setting), kUserSources, PGC_SIGHUP, 0, nullptr,
        nullptr, nullptr);
    RegisterXactCallback(on_xact, nullptr);
    RegisterSubXactCallback(on_subxact, nullptr);
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
    if (g_loaded && g_loaded->file.same(path, st)) return g_loaded->ring;
    auto fresh = std::make_unique<LoadedRing>();
    fresh->ring = pga::KeyRing::load_file(path);
    fresh->file = pga::FileIdentity::of(path, st);
    g_loaded = std::move(fresh);
    return g_loaded->ring;
}

const char *user_setting_name() {
    return g_user_setting && *g_user_setting ? g_user_setting : "app.current_user_id";
}

UserSource user_source() {
    return g_user_source == static_cast<int>(UserSource::Jwt) ? UserSource::Jwt
                                                              : UserSource::Setting;
}

std::optional<std::string> current_app_user() {
    const char *name = user_setting_name();
    const char *value = pga::pg::call([&] { return GetConfigOption(name, true, false); });
    if (value == nullptr || *value == '\0') return std::nullopt;
    if (user_source() == UserSource::Jwt) {
        if (IsParallelWorker()) return std::nullopt;  // the leader's memory is not here
        if (g_verified.empty() || g_verified_lxid != MyProc->lxid) return std::nullopt;
        if (g_verified.back().user != value) return std::nullopt;
    }
    return std::string(value);
}

void set_verified_user(const std::string &user) {
    if (g_verified_lxid != MyProc->lxid) {
        g_verified.clear();
        g_verified_lxid = MyProc->lxid;
    }
    const SubTransactionId sub = GetCurrentSubTransactionId();
    if (!g_verified.empty() && g_verified.back().subid == sub)
        g_verified.back().user = user;  // one entry per subtransaction level
    else
        g_verified.push_back(VerifiedUser{sub, user});
    const char *name = user_setting_name();
    const char *value = g_verified.back().user.c_str();
    pga::pg::call([&] {
        (void)set_config_option(name, value, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0,
                                false);
    });
}

void end_user() {
    g_verified.clear();  // every level: nobody is verified any more in this transaction
    const char *name = user_setting_name();
    pga::pg::call([&] {
        (void)set_config_option(name, "", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0,
                                false);
    });
}

}  // namespace pga::ext
