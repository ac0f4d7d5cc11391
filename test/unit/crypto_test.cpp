#include "common/crypto.hpp"
#include "common/error.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

std::vector<std::uint8_t> unhex(std::string_view h) {
    std::vector<std::uint8_t> out;
    auto nib = [](char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return c - 'A' + 10;
    };
    for (std::size_t i = 0; i + 1 < h.size(); i += 2)
        out.push_back(static_cast<std::uint8_t>(nib(h[i]) * 16 + nib(h[i + 1])));
    return out;
}
std::vector<std::uint8_t> repeat(std::uint8_t b, std::size_t n) {
    return std::vector<std::uint8_t>(n, b);
}
std::vector<std::uint8_t> seq(std::uint8_t from, std::size_t n) {
    std::vector<std::uint8_t> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(from + i);
    return v;
}
std::vector<std::uint8_t> text(std::string_view s) {
    return std::vector<std::uint8_t>(s.begin(), s.end());
}

// ---- AES-256-GCM: McGrew & Viega, "The Galois/Counter Mode of Operation", Appendix B,
// test cases 13-16 (256-bit key, 96-bit IV). Cases 17 and 18 use 64-bit and 480-bit IVs,
// which this API (96-bit nonces only) does not accept, so they are not run.
struct GcmCase {
    int id;
    const char *key, *pt, *aad, *iv, *ct, *tag;
};

constexpr const char *kK15 = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
constexpr const char *kP15 =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
constexpr const char *kC15 =
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad";

const GcmCase kGcmCases[] = {
    {13, "0000000000000000000000000000000000000000000000000000000000000000", "", "",
     "000000000000000000000000", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {14, "0000000000000000000000000000000000000000000000000000000000000000",
     "00000000000000000000000000000000", "", "000000000000000000000000",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {15, kK15, kP15, "", "cafebabefacedbaddecaf888", kC15, "b094dac5d93471bdec1a502270e3cc6c"},
    {16, kK15,
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2", "cafebabefacedbaddecaf888",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

TEST(AesGcm, McGrewViegaVectors) {
    for (const auto &c : kGcmCases) {
        SCOPED_TRACE("GCM test case " + std::to_string(c.id));
        auto key = unhex(c.key), pt = unhex(c.pt), aad = unhex(c.aad), iv = unhex(c.iv);
        auto expect = unhex(c.ct);
        auto tag = unhex(c.tag);
        expect.insert(expect.end(), tag.begin(), tag.end());
        ASSERT_EQ(key.size(), 32u);
        ASSERT_EQ(iv.size(), 12u);
        pga::AesGcm gcm(key.data());
        std::vector<std::uint8_t> out(pt.size() + pga::kGcmTagLen);
        gcm.seal(iv.data(), aad.data(), aad.size(), pt.data(), pt.size(), out.data());
        EXPECT_EQ(out, expect);
        std::vector<std::uint8_t> back(pt.size() + 1, 0xee);
        ASSERT_TRUE(
            gcm.open(iv.data(), aad.data(), aad.size(), expect.data(), expect.size(), back.data()));
        back.resize(pt.size());
        EXPECT_EQ(back, pt);
    }
}

TEST(AesGcm, ContextReuseGivesSameAnswersInAnyOrder) {
    const auto &c = kGcmCases[3];
    auto key = unhex(c.key), pt = unhex(c.pt), aad = unhex(c.aad), iv = unhex(c.iv);
    pga::AesGcm gcm(key.data());
    std::vector<std::uint8_t> first(pt.size() + 16), again(pt.size() + 16), plain(pt.size());
    gcm.seal(iv.data(), aad.data(), aad.size(), pt.data(), pt.size(), first.data());
    for (int i = 0; i < 3; ++i) {
        // A failed open in between must not disturb the next seal.
        auto bad = first;
        bad[0] ^= 1;
        EXPECT_FALSE(
            gcm.open(iv.data(), aad.data(), aad.size(), bad.data(), bad.size(), plain.data()));
        gcm.seal(iv.data(), aad.data(), aad.size(), pt.data(), pt.size(), again.data());
        EXPECT_EQ(again, first);
        EXPECT_TRUE(
            gcm.open(iv.data(), aad.data(), aad.size(), first.data(), first.size(), plain.data()));
        EXPECT_EQ(plain, pt);
    }
}

TEST(AesGcm, EveryBitFlipAndWrongAadFailsAndWipesOutput) {
    auto key = seq(1, 32);
    auto iv = seq(100, 12);
    auto pt = text("a forty byte secret, like an api secret!");
    auto aad = text("credential-1/secret_key");
    pga::AesGcm gcm(key.data());
    std::vector<std::uint8_t> sealed(pt.size() + 16);
    gcm.seal(iv.data(), aad.data(), aad.size(), pt.data(), pt.size(), sealed.data());
    std::vector<std::uint8_t> out(pt.size());
    for (std::size_t i = 0; i < sealed.size(); ++i) {
        for (int bit = 0; bit < 8; ++bit) {
            auto bad = sealed;
            bad[i] ^= static_cast<std::uint8_t>(1 << bit);
            std::fill(out.begin(), out.end(), 0x55);
            ASSERT_FALSE(
                gcm.open(iv.data(), aad.data(), aad.size(), bad.data(), bad.size(), out.data()));
            ASSERT_EQ(out, std::vector<std::uint8_t>(out.size(), 0)) << "output not wiped";
        }
    }
    auto other = text("credential-2/secret_key");
    EXPECT_FALSE(
        gcm.open(iv.data(), other.data(), other.size(), sealed.data(), sealed.size(), out.data()));
    auto iv2 = iv;
    iv2[11] ^= 1;
    EXPECT_FALSE(
        gcm.open(iv2.data(), aad.data(), aad.size(), sealed.data(), sealed.size(), out.data()));
    EXPECT_FALSE(gcm.open(iv.data(), aad.data(), aad.size(), sealed.data(), 15, out.data()));
    auto key2 = key;
    key2[0] ^= 1;
    pga::AesGcm other_key(key2.data());
    EXPECT_FALSE(other_key.open(iv.data(), aad.data(), aad.size(), sealed.data(), sealed.size(),
                                out.data()));
}

TEST(AesGcm, MovedObjectKeepsWorking) {
    auto key = seq(7, 32);
    auto iv = seq(0, 12);
    auto pt = text("x");
    pga::AesGcm a(key.data());
    pga::AesGcm b(std::move(a));
    std::vector<std::uint8_t> out(17), back(1);
    b.seal(iv.data(), nullptr, 0, pt.data(), 1, out.data());
    EXPECT_TRUE(b.open(iv.data(), nullptr, 0, out.data(), out.size(), back.data()));
    EXPECT_EQ(back, pt);
}

// ---- HMAC-SHA256: RFC 4231 section 4, test cases 1-7.
struct HmacCase {
    int id;
    std::vector<std::uint8_t> key, data;
    const char *mac;
    std::size_t compare_len;
};

TEST(HmacSha256, Rfc4231Vectors) {
    const HmacCase cases[] = {
        {1, repeat(0x0b, 20), text("Hi There"),
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", 32},
        {2, text("Jefe"), text("what do ya want for nothing?"),
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", 32},
        {3, repeat(0xaa, 20), repeat(0xdd, 50),
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", 32},
        {4, seq(0x01, 25), repeat(0xcd, 50),
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", 32},
        {5, repeat(0x0c, 20), text("Test With Truncation"), "a3b6167473100ee06e0c796c2955552b", 16},
        {6, repeat(0xaa, 131), text("Test Using Larger Than Block-Size Key - Hash Key First"),
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", 32},
        {7, repeat(0xaa, 131),
         text("This is a test using a larger than block-size key and a larger than block-size "
              "data. The key needs to be hashed before being used by the HMAC algorithm."),
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", 32},
    };
    for (const auto &c : cases) {
        SCOPED_TRACE("RFC 4231 test case " + std::to_string(c.id));
        pga::Sha256 mac =
            pga::hmac_sha256(c.key.data(), c.key.size(), c.data.data(), c.data.size());
        auto expect = unhex(c.mac);
        ASSERT_EQ(expect.size(), c.compare_len);
        EXPECT_EQ(std::vector<std::uint8_t>(mac.begin(), mac.begin() + c.compare_len), expect);
    }
}

TEST(HmacSha256, EmptyKeyAndData) {
    // Well-known value: HMAC-SHA256 with empty key over empty message.
    pga::Sha256 mac = pga::hmac_sha256(nullptr, 0, nullptr, 0);
    EXPECT_EQ(std::vector<std::uint8_t>(mac.begin(), mac.end()),
              unhex("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"));
}

// ---- HKDF-SHA256: RFC 5869 appendix A, test cases 1-3.
TEST(HkdfSha256, Rfc5869Vectors) {
    {
        SCOPED_TRACE("RFC 5869 A.1");
        auto ikm = repeat(0x0b, 22), salt = seq(0x00, 13), info = seq(0xf0, 10);
        pga::SecureBytes okm = pga::hkdf_sha256(
            ikm.data(), ikm.size(), salt.data(), salt.size(),
            std::string_view(reinterpret_cast<const char *>(info.data()), info.size()), 42);
        EXPECT_EQ(std::vector<std::uint8_t>(okm.begin(), okm.end()),
                  unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                        "34007208d5b887185865"));
    }
    {
        SCOPED_TRACE("RFC 5869 A.2");
        auto ikm = seq(0x00, 80), salt = seq(0x60, 80), info = seq(0xb0, 80);
        pga::SecureBytes okm = pga::hkdf_sha256(
            ikm.data(), ikm.size(), salt.data(), salt.size(),
            std::string_view(reinterpret_cast<const char *>(info.data()), info.size()), 82);
        EXPECT_EQ(std::vector<std::uint8_t>(okm.begin(), okm.end()),
                  unhex("b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
                        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
                        "cc30c58179ec3e87c14c01d5c1f3434f1d87"));
    }
    {
        SCOPED_TRACE("RFC 5869 A.3");
        auto ikm = repeat(0x0b, 22);
        pga::SecureBytes okm = pga::hkdf_sha256(ikm.data(), ikm.size(), nullptr, 0, "", 42);
        EXPECT_EQ(std::vector<std::uint8_t>(okm.begin(), okm.end()),
                  unhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
                        "9d201395faa4b61a96c8"));
    }
}

TEST(HkdfSha256, RefusesImpossibleLengths) {
    auto ikm = repeat(1, 32);
    EXPECT_THROW(pga::hkdf_sha256(ikm.data(), 32, nullptr, 0, "x", 0), pga::Error);
    EXPECT_THROW(pga::hkdf_sha256(ikm.data(), 32, nullptr, 0, "x", 255 * 32 + 1), pga::Error);
    EXPECT_EQ(pga::hkdf_sha256(ikm.data(), 32, nullptr, 0, "x", 255 * 32).size(), 255u * 32);
}

TEST(Random, FillsAndDiffers) {
    std::vector<std::uint8_t> a(64, 0), b(64, 0);
    pga::random_bytes(a.data(), a.size());
    pga::random_bytes(b.data(), b.size());
    EXPECT_NE(a, b);
    EXPECT_NE(a, std::vector<std::uint8_t>(64, 0));
    pga::random_bytes(nullptr, 0);  // no-op
}

TEST(ConstantTimeEqual, ComparesAllBytes) {
    auto a = seq(0, 32), b = seq(0, 32);
    EXPECT_TRUE(pga::constant_time_equal(a.data(), b.data(), 32));
    for (std::size_t i = 0; i < 32; ++i) {
        auto c = b;
        c[i] ^= 0x80;
        EXPECT_FALSE(pga::constant_time_equal(a.data(), c.data(), 32)) << i;
    }
    EXPECT_TRUE(pga::constant_time_equal(a.data(), b.data(), 0));
}

TEST(SecureWipe, ZeroesMemory) {
    std::vector<std::uint8_t> v(40, 0xab);
    pga::secure_wipe(v.data(), v.size());
    EXPECT_EQ(v, std::vector<std::uint8_t>(40, 0));
    pga::secure_wipe(nullptr, 0);
}

}  // namespace
