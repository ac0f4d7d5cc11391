#include "common/encoding.hpp"
#include "common/error.hpp"
#include "common/keyring.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace {

std::string key_b64(std::uint8_t seed) {
    std::uint8_t k[32];
    for (int i = 0; i < 32; ++i) k[i] = static_cast<std::uint8_t>(seed * 31 + i * 7);
    return pga::base64_encode(k, 32);
}

class TempDir {
  public:
    TempDir() {
        std::string t = "/tmp/pga_keyring_test.XXXXXX";
        path_ = mkdtemp(t.data()) ? t : std::string();
    }
    ~TempDir() {
        std::string cmd = "rm -rf '" + path_ + "'";
        if (!path_.empty()) (void)std::system(cmd.c_str());
    }
    std::string write(const std::string &name, const std::string &content, mode_t mode) {
        std::string p = path_ + "/" + name;
        std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
        ::chmod(p.c_str(), mode);
        return p;
    }
    const std::string &path() const { return path_; }

  private:
    std::string path_;
};

// Runs f, expects Error(ConfigFile), returns the message.
template <typename F>
std::string config_error(F f) {
    try {
        f();
    } catch (const pga::Error &e) {
        EXPECT_EQ(e.code(), pga::ErrorCode::ConfigFile);
        return e.what();
    }
    ADD_FAILURE() << "no error thrown";
    return {};
}

TEST(KeyRing, ParsesCommentsBlanksAndPicksHighestAsPrimary) {
    std::string text = "# pg_alpaca keys\n\n   \n" + std::string("2 ") + key_b64(2) +
                       "\n\t# indented comment\n7\t" + key_b64(7) + "  \r\n1 " + key_b64(1);
    pga::KeyRing ring = pga::KeyRing::parse(text, "keys.txt");
    EXPECT_EQ(ring.ids(), (std::vector<std::uint32_t>{1, 2, 7}));
    EXPECT_EQ(ring.primary_id(), 7u);
    EXPECT_EQ(ring.primary().id, 7u);
    ASSERT_NE(ring.find(2), nullptr);
    EXPECT_EQ(ring.find(2)->id, 2u);
    EXPECT_EQ(ring.find(3), nullptr);
    EXPECT_EQ(ring.require(1).id, 1u);
    EXPECT_EQ(ring.require(1).ticket_key.size(), 32u);
    EXPECT_EQ(ring.require(1).fingerprint_key.size(), 32u);
    EXPECT_NE(ring.require(1).data_cipher, nullptr);
    EXPECT_NE(ring.require(1).ticket_key, ring.require(2).ticket_key);
    EXPECT_NE(ring.require(1).ticket_key, ring.require(1).fingerprint_key);
}

TEST(KeyRing, MaxIdAccepted) {
    pga::KeyRing ring = pga::KeyRing::parse("4294967295 " + key_b64(1) + "\n", "k");
    EXPECT_EQ(ring.primary_id(), 4294967295u);
}

TEST(KeyRing, RequireNamesMissingId) {
    pga::KeyRing ring = pga::KeyRing::parse("1 " + key_b64(1) + "\n", "k");
    try {
        ring.require(42);
        FAIL() << "no error";
    } catch (const pga::Error &e) {
        EXPECT_EQ(e.code(), pga::ErrorCode::KeyMissing);
        EXPECT_NE(std::string(e.what()).find("key id 42"), std::string::npos) << e.what();
    }
    pga::KeyRing empty;
    EXPECT_TRUE(empty.empty());
    EXPECT_THROW(empty.primary(), pga::Error);
}

TEST(KeyRing, DerivationIsDeterministicAndPurposeSeparated) {
    std::uint8_t master[32] = {};
    pga::KeyEntry a = pga::KeyRing::derive(5, master);
    pga::KeyEntry b = pga::KeyRing::derive(5, master);
    EXPECT_EQ(a.ticket_key, b.ticket_key);
    EXPECT_EQ(a.fingerprint_key, b.fingerprint_key);
    EXPECT_NE(a.ticket_key, a.fingerprint_key);
    // The ticket key is HKDF-SHA256(master, salt "pg_alpaca", info "pg_alpaca ticket-mac v1").
    const std::string salt = "pg_alpaca";
    pga::SecureBytes expect =
        pga::hkdf_sha256(master, 32, reinterpret_cast<const std::uint8_t *>(salt.data()),
                         salt.size(), "pg_alpaca ticket-mac v1", 32);
    EXPECT_EQ(a.ticket_key, expect);
    pga::SecureBytes fp =
        pga::hkdf_sha256(master, 32, reinterpret_cast<const std::uint8_t *>(salt.data()),
                         salt.size(), "pg_alpaca fingerprint v1", 32);
    EXPECT_EQ(a.fingerprint_key, fp);
    // The data key is not the master key itself.
    pga::SecureBytes data =
        pga::hkdf_sha256(master, 32, reinterpret_cast<const std::uint8_t *>(salt.data()),
                         salt.size(), "pg_alpaca data-key v1", 32);
    std::uint8_t nonce[12] = {}, out[17], back[1];
    const std::uint8_t pt[1] = {'x'};
    pga::AesGcm direct(data.data());
    direct.seal(nonce, nullptr, 0, pt, 1, out);
    ASSERT_TRUE(a.data_cipher->open(nonce, nullptr, 0, out, 17, back));
    EXPECT_EQ(back[0], 'x');
    pga::AesGcm raw_master(master);
    EXPECT_FALSE(raw_master.open(nonce, nullptr, 0, out, 17, back));
}

struct BadCase {
    std::string text;
    std::string expect_in_message;
};

TEST(KeyRing, RefusesBadLinesNamingFileAndLineButNeverTheKey) {
    const std::string k1 = key_b64(1), k2 = key_b64(2);
    std::uint8_t short_key[31] = {9};
    std::uint8_t long_key[33] = {9};
    const std::string k31 = pga::base64_encode(short_key, 31);
    const std::string k33 = pga::base64_encode(long_key, 33);
    const BadCase cases[] = {
        {"1 " + k1 + "\n2 " + k1.substr(0, 43) + "\n", "keys.conf:2: key for id 2 is not valid"},
        {"# c\n1 " + k31 + "\n", "keys.conf:2: key for id 1 must be 32 bytes, got 31"},
        {"1 " + k33 + "\n", "keys.conf:1: key for id 1 must be 32 bytes, got 33"},
        {"1 " + k1 + "\n\n1 " + k2 + "\n", "keys.conf:3: duplicate key id 1 (first on line 1)"},
        {"1" + k1 + "\n", "keys.conf:1: malformed line"},
        {k1 + "\n", "keys.conf:1: malformed line"},
        {"1\n", "keys.conf:1: malformed line"},
        {"1 " + k1 + " extra\n", "keys.conf:1: malformed line"},
        {"0 " + k1 + "\n", "keys.conf:1: key id must be"},
        {"01 " + k1 + "\n", "keys.conf:1: key id must be"},
        {"4294967296 " + k1 + "\n", "keys.conf:1: key id must be"},
        {"99999999999999999999 " + k1 + "\n", "keys.conf:1: key id must be"},
        {"-1 " + k1 + "\n", "keys.conf:1: key id must be"},
        {"+1 " + k1 + "\n", "keys.conf:1: key id must be"},
        {"key1 " + k1 + "\n", "keys.conf:1: key id must be"},
        {"1 " + k1 + "#comment\n", "keys.conf:1: key for id 1 is not valid base64"},
        {"1 " + std::string(k1).replace(5, 1, "-") + "\n", "keys.conf:1: key for id 1 is not"},
        {std::string("1 ") + k1.substr(0, 10) + std::string(1, '\0') + k1.substr(11) + "\n",
         "keys.conf:1: key for id 1 is not valid base64"},
        {"", "keys.conf: key file holds no key"},
        {"# only a comment\n\n", "keys.conf: key file holds no key"},
    };
    for (const auto &c : cases) {
        std::string msg = config_error([&] { pga::KeyRing::parse(c.text, "keys.conf"); });
        EXPECT_NE(msg.find(c.expect_in_message), std::string::npos)
            << "message: " << msg << "\nexpected: " << c.expect_in_message;
        // Never a key: neither whole nor any 8-character piece of the base64 text.
        for (const std::string &k : {k1, k2, k31, k33})
            for (std::size_t i = 0; i + 8 <= k.size(); i += 4)
                EXPECT_EQ(msg.find(k.substr(i, 8)), std::string::npos) << msg;
    }
}

TEST(KeyRing, LoadFileRefusesGroupOrWorldAccess) {
    TempDir dir;
    ASSERT_FALSE(dir.path().empty());
    const std::string text = "1 " + key_b64(1) + "\n";
    for (mode_t mode : {0640, 0604, 0660, 0644, 0606, 0610, 0601, 0620, 0602, 0777}) {
        std::string p = dir.write("keys", text, mode);
        std::string msg = config_error([&] { pga::KeyRing::load_file(p); });
        EXPECT_NE(msg.find(p + ": key file is accessible by group or others"), std::string::npos)
            << msg;
        EXPECT_EQ(msg.find(key_b64(1).substr(0, 10)), std::string::npos);
        std::string msg2 = config_error([&] { pga::KeyRing::check_file_mode(p); });
        EXPECT_NE(msg2.find("accessible by group or others"), std::string::npos);
    }
    for (mode_t mode : {0600, 0400}) {
        std::string p = dir.write("keys", text, mode);
        EXPECT_EQ(pga::KeyRing::load_file(p).primary_id(), 1u);
        EXPECT_NO_THROW(pga::KeyRing::check_file_mode(p));
    }
}

TEST(KeyRing, LoadFileErrorsNameThePath) {
    TempDir dir;
    std::string missing = dir.path() + "/nope";
    std::string msg = config_error([&] { pga::KeyRing::load_file(missing); });
    EXPECT_NE(msg.find(missing + ": cannot open key file"), std::string::npos) << msg;
    msg = config_error([&] { pga::KeyRing::check_file_mode(missing); });
    EXPECT_NE(msg.find(missing), std::string::npos) << msg;

    ::chmod(dir.path().c_str(), 0700);
    msg = config_error([&] { pga::KeyRing::load_file(dir.path()); });
    EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;

    std::string fifo = dir.path() + "/fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    msg = config_error([&] { pga::KeyRing::load_file(fifo); });  // must not block
    EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;

    std::string bad = dir.write("bad", "# ok\n1 " + key_b64(1) + "\n2 short\n", 0600);
    msg = config_error([&] { pga::KeyRing::load_file(bad); });
    EXPECT_NE(msg.find(bad + ":3: key for id 2"), std::string::npos) << msg;
}

// The path is shown as given when printable; escaped and bounded when not (a GUC or a command
// line may hold anything).
TEST(KeyRing, PathInMessagesIsEscapedAndBounded) {
    const std::string odd = "/etc/\x1b[31mkeys\n\xff" + std::string(500, 'p');
    std::string msg = config_error([&] { pga::KeyRing::parse("1 short\n", odd); });
    EXPECT_EQ(msg.rfind("/etc/\\x1B[31mkeys\\x0A\\xFFppp", 0), 0u) << msg;
    EXPECT_NE(msg.find("...:1: key for id 1"), std::string::npos) << msg;
    EXPECT_LE(msg.size(), 260u) << msg;
    EXPECT_TRUE(pga::is_printable_ascii(msg)) << msg;
    msg = config_error([&] { pga::KeyRing::load_file(odd); });
    EXPECT_NE(msg.find("...: cannot open key file"), std::string::npos) << msg;
    EXPECT_TRUE(pga::is_printable_ascii(msg)) << msg;
}

TEST(KeyRing, LoadFileFollowsSymlinkToPrivateFile) {
    TempDir dir;
    std::string p = dir.write("real", "3 " + key_b64(3) + "\n", 0600);
    std::string link = dir.path() + "/link";
    ASSERT_EQ(::symlink(p.c_str(), link.c_str()), 0);
    EXPECT_EQ(pga::KeyRing::load_file(link).primary_id(), 3u);
}

TEST(KeyRing, FormatKeyLineParsesBack) {
    std::uint8_t master[32];
    for (int i = 0; i < 32; ++i) master[i] = static_cast<std::uint8_t>(200 + i);
    pga::SecureBytes line = pga::format_key_line(12, master);
    std::string text(pga::as_view(line));
    EXPECT_EQ(text, "12 " + pga::base64_encode(master, 32) + "\n");
    pga::KeyRing ring = pga::KeyRing::parse(text, "x");
    pga::KeyEntry direct = pga::KeyRing::derive(12, master);
    EXPECT_EQ(ring.require(12).ticket_key, direct.ticket_key);
}

}  // namespace
