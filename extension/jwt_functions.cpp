// alpaca_set_user_jwt(token text) RETURNS text: verifies the token with the key set named by
// pg_alpaca.jwt_keys_file (cached per backend, re-read when the path or the file changes) and
// makes its user the application user of the transaction. A refused token is SQLSTATE 28000
// with the reason; the token is never repeated.
#include <sys/stat.h>

#include <chrono>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "common/error.hpp"
#include "common/file_identity.hpp"
#include "common/jwks.hpp"
#include "common/jwt.hpp"
#include "extension/jwt_functions.hpp"
#include "extension/vault_state.hpp"

#include "extension/pg_values.hpp"

extern "C" {
#include "access/detoast.h"
#include "utils/errcodes.h"
#include "utils/guc.h"
}

namespace pga::ext {
namespace {

char *g_keys_file = nullptr;
char *g_issuer = nullptr;
char *g_audience = nullptr;
char *g_user_claim = nullptr;
int g_leeway = 30;

struct LoadedJwks {
    pga::FileIdentity file;
    pga::jwt::Jwks keys;
};
std::unique_ptr<LoadedJwks> g_loaded;

bool check_keys_file(char **newval, void **, GucSource) {
    if (*newval == nullptr || (*newval)[0] == '\0' || (*newval)[0] == '/') return true;
    GUC_check_errdetail("pg_alpaca.jwt_keys_file must be an absolute path.");
    return false;
}

bool check_user_claim(char **newval, void **, GucSource) {
    if (*newval != nullptr && (*newval)[0] != '\0' && std::strlen(*newval) <= 64) return true;
    GUC_check_errdetail("pg_alpaca.jwt_user_claim must name a claim (1 to 64 bytes).");
    return false;
}

const pga::jwt::Jwks &jwks() {
    std::string path = g_keys_file ? g_keys_file : "";
    if (path.empty())
        throw pga::Error(pga::ErrorCode::ConfigFile, "pg_alpaca.jwt_keys_file is not set",
                         "Put the identity provider's JSON Web Key Set in a file only the "
                         "server's operating system user can read, then ALTER SYSTEM SET "
                         "pg_alpaca.jwt_keys_file = 'FILE' and SELECT pg_reload_conf().");
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
        int err = errno;
        throw pga::Error(
            pga::ErrorCode::ConfigFile,
            pga::escape_for_error(path, 200) + ": cannot read key set file: " + strerror(err));
    }
    if (g_loaded && g_loaded->file.same(path, st)) return g_loaded->keys;
    auto fresh = std::make_unique<LoadedJwks>();
    fresh->keys = pga::jwt::Jwks::load_file(path);
    fresh->file = pga::FileIdentity::of(path, st);
    g_loaded = std::move(fresh);
    return g_loaded->keys;
}

pga::jwt::Policy policy_from_settings() {
    pga::jwt::Policy policy;
    policy.now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    policy.leeway = g_leeway;
    policy.issuer = g_issuer ? g_issuer : "";
    policy.audience = g_audience ? g_audience : "";
    policy.user_claim = g_user_claim && *g_user_claim ? g_user_claim : "sub";
    return policy;
}

}  // namespace

void define_jwt_gucs() {
    DefineCustomStringVariable(
        "pg_alpaca.jwt_keys_file",
        "Path of the JSON Web Key Set that alpaca_set_user_jwt verifies tokens with.",
        "The file must not be group- or world-readable; it is re-read when it changes.",
        &g_keys_file, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, check_keys_file, nullptr, nullptr);
    DefineCustomStringVariable("pg_alpaca.jwt_issuer",
                               "The \"iss\" every token must carry (empty: not checked).", nullptr,
                               &g_issuer, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("pg_alpaca.jwt_audience",
                               "The audience every token's \"aud\" must name.",
                               "Empty: a token that carries \"aud\" is refused.", &g_audience, "",
                               PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable(
        "pg_alpaca.jwt_user_claim", "The claim that holds the application user id.", nullptr,
        &g_user_claim, "sub", PGC_SIGHUP, 0, check_user_claim, nullptr, nullptr);
    DefineCustomIntVariable(
        "pg_alpaca.jwt_leeway", "Clock skew allowed for exp, nbf and iat, in seconds.", nullptr,
        &g_leeway, 30, 0, 600, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
}

}  // namespace pga::ext

using pga::pg::text_datum;
using pga::pg::text_view;

// alpaca_set_user_jwt(token text) RETURNS text: the user id it set.
PGA_FUNCTION(pga_set_user_jwt) {
    if (PG_ARGISNULL(0))
        throw pga::pg::PgError(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
                               "token is malformed: the token is null");
    const Datum arg = PG_GETARG_DATUM(0);
    // Refused before it is detoasted, let alone parsed.
    const Size raw = pga::pg::call([&] { return toast_raw_datum_size(arg); });
    if (raw > VARHDRSZ + pga::jwt::kMaxTokenBytes)
        throw pga::pg::PgError(
            ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            std::string(pga::jwt::reason_text(pga::jwt::Reason::TooLarge)) + ": over 16 KiB");
    std::string_view token = text_view(arg);
    const pga::jwt::Jwks &keys = pga::ext::jwks();
    const pga::jwt::Policy policy = pga::ext::policy_from_settings();
    std::string user;
    try {
        user = pga::jwt::verify_token(token, keys, policy);
    } catch (const pga::jwt::JwtError &e) {
        throw pga::pg::PgError(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION, e.what());
    }
    pga::ext::set_verified_user(user);
    return text_datum(user);
}
