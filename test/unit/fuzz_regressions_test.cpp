// Every input a fuzz target once broke on is kept in fuzz/regressions/<target>/ (the same files
// seed the fuzzer) and replayed here: the parser refuses it or accepts it, and any message is
// printable ASCII and bounded, the invariant the fuzz targets assert.
#include "common/alpaca_models.hpp"
#include "common/envelope.hpp"
#include "common/jwks.hpp"
#include "common/jwt.hpp"
#include "common/error.hpp"
#include "common/keyring.hpp"
#include "common/ticket.hpp"
#include "common/wire.hpp"
#include "fuzz/fuzz_keys.hpp"
#include "sidecar/config.hpp"

#include <gtest/gtest.h>

#include <dirent.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace {

const std::string kRegressions = std::string(PGA_SOURCE_DIR) + "/fuzz/regressions/";

std::string read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<std::string> files_in(const std::string &dir) {
    std::vector<std::string> out;
    if (DIR *d = opendir(dir.c_str())) {
        while (const dirent *e = readdir(d)) {
            if (e->d_name[0] != '.') out.push_back(dir + "/" + e->d_name);
        }
        closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

// Runs f; if it throws pga::Error, the message must be printable and at most max characters.
// Returns the message ("" when accepted).
std::string refusal(const std::function<void()> &f, std::size_t max) {
    try {
        f();
    } catch (const pga::Error &e) {
        const std::string m = e.what();
        EXPECT_LE(m.size(), max) << m;
        EXPECT_TRUE(pga::is_printable_ascii(m)) << m;
        EXPECT_TRUE(pga::is_printable_ascii(e.hint())) << e.hint();
        return m;
    }
    return {};
}

// How each target's input reaches the code under test (as in fuzz/<target>.cpp).
void replay(const std::string &target, const std::string &in) {
    const std::string_view rest = in.empty() ? std::string_view() : std::string_view(in).substr(1);
    if (target == "sidecar_config_fuzz") {
        refusal([&] { (void)pga::sidecar::parse_config(in, "fuzz.conf"); }, 200);
    } else if (target == "keyring_fuzz") {
        refusal([&] { (void)pga::KeyRing::parse(in, "fuzz.keys"); }, 200);
    } else if (target == "envelope_fuzz") {
        refusal([&] { (void)pga::parse_envelope(in); }, 200);
        refusal([&] { (void)pga::open_secret(pga_fuzz::ring(), in, {}, "secret_key"); }, 200);
    } else if (target == "ticket_fuzz") {
        refusal([&] { (void)pga::verify_ticket(pga_fuzz::ring(), rest, 0); }, 60);
    } else if (target == "alpaca_models_fuzz") {
        refusal([&] { (void)pga::parse_account(in); }, 200);
        refusal([&] { (void)pga::parse_positions(in); }, 200);
        refusal([&] { (void)pga::parse_orders(in); }, 200);
        const std::string m = pga::parse_error_body(in).message;
        EXPECT_LE(m.size(), pga::kMaxAlpacaErrorMessage);
        EXPECT_TRUE(pga::is_printable_ascii(m));
    } else if (target == "wire_fuzz") {
        const auto *p = reinterpret_cast<const std::uint8_t *>(rest.data());
        refusal([&] { (void)pga::decode_request(p, rest.size()); }, 120);
        refusal(
            [&] {
                const auto r = pga::decode_response(p, rest.size());
                EXPECT_LE(r.message.size(), pga::kMaxResponseMessage);
                EXPECT_TRUE(pga::is_printable_ascii(r.message));
            },
            120);
    } else if (target == "jwt_fuzz") {
        refusal([&] { (void)pga::jwt::Jwks::parse(rest, "fuzz.jwks"); }, 300);
        try {
            (void)pga::jwt::parse_header(pga::jwt::split(rest).header_json);
        } catch (const pga::jwt::JwtError &e) {
            EXPECT_LE(std::string(e.what()).size(), 200u);
            EXPECT_TRUE(pga::is_printable_ascii(e.what())) << e.what();
        }
    } else {
        ADD_FAILURE() << "no replay for fuzz target " << target;
    }
}

TEST(FuzzRegressions, EveryKeptInputIsRefusedWithABoundedPrintableMessage) {
    std::size_t n = 0;
    for (const std::string &dir : files_in(kRegressions)) {
        const std::string target = dir.substr(dir.rfind('/') + 1);
        for (const std::string &file : files_in(dir)) {
            SCOPED_TRACE(file);
            replay(target, read_file(file));
            ++n;
        }
    }
    EXPECT_GE(n, 1u);  // at least the conninfo finding below
}

// The finding of a 60-second run: an invalid conninfo option name of 300 bytes of quotes and
// non-UTF-8 came back whole in a 405-byte message.
TEST(FuzzRegressions, ConninfoWithAHugeInvalidOptionName) {
    const std::string in = read_file(
        kRegressions + "sidecar_config_fuzz/crash-be158109310a629be31260dfa0c53f4d90431753");
    ASSERT_EQ(in.size(), 358u);
    std::string m;
    try {
        (void)pga::sidecar::parse_config(in, "fuzz.conf");
        ADD_FAILURE() << "accepted";
    } catch (const pga::Error &e) {
        EXPECT_EQ(e.code(), pga::ErrorCode::ConfigFile);
        m = e.what();
    }
    const std::string head =
        "fuzz.conf:2: conninfo: not a valid libpq connection string (invalid connection "
        "option \"";
    EXPECT_EQ(m.substr(0, head.size()), head) << m;
    EXPECT_LE(m.size(), 200u) << m;
    EXPECT_TRUE(pga::is_printable_ascii(m)) << m;
    EXPECT_NE(m.find("...)"), std::string::npos) << m;  // the name was cut
    EXPECT_EQ(m.find(std::string(20, '\'')), std::string::npos) << m;
}

}  // namespace
