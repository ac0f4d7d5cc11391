// B1: seal and open of a 40-byte secret through pg_alpaca's envelope API (text form in, text
// form out, as the extension does it) against bare OpenSSL AES-256-GCM on the same bytes.
//
// One iteration = one seal + one open. Both sides use a key schedule made once, a fresh random
// 96-bit nonce per seal (RAND_bytes) and the same 43 bytes of associated data; "ours" also
// builds the AAD, base64-encodes the envelope, parses and decodes it again and wipes the
// plaintext. The verdict figure is BM_B1_Ours / BM_B1_Bare (items per second).
// BM_B1_BareNoRand shows what the random nonce costs; the component benchmarks show where time
// goes inside "ours".
#include <benchmark/benchmark.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "common/crypto.hpp"
#include "common/encoding.hpp"
#include "common/envelope.hpp"
#include "common/keyring.hpp"

namespace {

// 40 bytes: the length of an Alpaca secret key.
constexpr std::string_view kSecret = "Zq8vT3mB1nX6cR0pL5kW9hJ2gF7dS4aE1yU8iO3t";
static_assert(kSecret.size() == 40, "B1 measures a 40-byte secret");
constexpr std::string_view kColumn = "secret_key";

pga::Uuid credential_id() {
    pga::Uuid u{};
    for (std::size_t i = 0; i < u.size(); ++i) u[i] = static_cast<std::uint8_t>(0x10 + i);
    return u;
}

const pga::KeyRing &ring() {
    static const pga::KeyRing r = [] {
        std::array<std::uint8_t, pga::kAesKeyLen> master{};
        pga::random_bytes(master.data(), master.size());
        pga::SecureBytes line = pga::format_key_line(1, master.data());
        return pga::KeyRing::parse(pga::as_view(line), "bench");
    }();
    return r;
}

[[noreturn]] void die(const char *what) {
    std::fprintf(stderr, "crypto_bench: %s failed\n", what);
    std::abort();
}

// The associated data ours builds: "pg_alpaca/v1" 0x00 | key id u32 BE | uuid | column.
std::array<std::uint8_t, 43> same_aad() {
    std::array<std::uint8_t, 43> aad{};
    std::memcpy(aad.data(), "pg_alpaca/v1", 12);
    aad[12] = 0;
    aad[16] = 1;  // key id 1, big-endian in bytes 13..16
    pga::Uuid u = credential_id();
    std::memcpy(aad.data() + 17, u.data(), u.size());
    std::memcpy(aad.data() + 33, kColumn.data(), kColumn.size());
    return aad;
}

struct CtxFree {
    void operator()(EVP_CIPHER_CTX *c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

// Bare OpenSSL: two contexts keyed once, then per iteration nonce, AAD, data, final, tag.
void bare_loop(benchmark::State &state, bool random_nonce) {
    std::array<std::uint8_t, 32> key{};
    RAND_bytes(key.data(), key.size());
    Ctx enc(EVP_CIPHER_CTX_new()), dec(EVP_CIPHER_CTX_new());
    if (!enc || !dec) die("EVP_CIPHER_CTX_new");
    if (EVP_EncryptInit_ex2(enc.get(), EVP_aes_256_gcm(), key.data(), nullptr, nullptr) != 1 ||
        EVP_DecryptInit_ex2(dec.get(), EVP_aes_256_gcm(), key.data(), nullptr, nullptr) != 1)
        die("key setup");
    const auto aad = same_aad();
    const auto *pt = reinterpret_cast<const std::uint8_t *>(kSecret.data());
    const int pt_len = static_cast<int>(kSecret.size());
    std::array<std::uint8_t, 12> nonce{};
    std::array<std::uint8_t, 40> ct{}, back{};
    std::array<std::uint8_t, 16> tag{};
    std::uint64_t counter = 0;
    for (auto _ : state) {
        if (random_nonce) {
            if (RAND_bytes(nonce.data(), nonce.size()) != 1) die("RAND_bytes");
        } else {
            std::memcpy(nonce.data(), &++counter, sizeof counter);
        }
        int len = 0;
        if (EVP_EncryptInit_ex2(enc.get(), nullptr, nullptr, nonce.data(), nullptr) != 1 ||
            EVP_EncryptUpdate(enc.get(), nullptr, &len, aad.data(), aad.size()) != 1 ||
            EVP_EncryptUpdate(enc.get(), ct.data(), &len, pt, pt_len) != 1 ||
            EVP_EncryptFinal_ex(enc.get(), ct.data() + len, &len) != 1 ||
            EVP_CIPHER_CTX_ctrl(enc.get(), EVP_CTRL_GCM_GET_TAG, 16, tag.data()) != 1)
            die("seal");
        if (EVP_DecryptInit_ex2(dec.get(), nullptr, nullptr, nonce.data(), nullptr) != 1 ||
            EVP_DecryptUpdate(dec.get(), nullptr, &len, aad.data(), aad.size()) != 1 ||
            EVP_DecryptUpdate(dec.get(), back.data(), &len, ct.data(), pt_len) != 1 ||
            EVP_CIPHER_CTX_ctrl(dec.get(), EVP_CTRL_GCM_SET_TAG, 16, tag.data()) != 1 ||
            EVP_DecryptFinal_ex(dec.get(), back.data() + len, &len) != 1)
            die("open");
        benchmark::DoNotOptimize(back.data());
        benchmark::ClobberMemory();
    }
    if (std::memcmp(back.data(), pt, back.size()) != 0) die("bare round trip");
    state.SetItemsProcessed(state.iterations());
}

void BM_B1_Bare(benchmark::State &state) {
    bare_loop(state, true);
}
void BM_B1_BareNoRand(benchmark::State &state) {
    bare_loop(state, false);
}

void BM_B1_Ours(benchmark::State &state) {
    const pga::KeyRing &r = ring();
    const pga::Uuid cred = credential_id();
    std::size_t plain_len = 0;
    for (auto _ : state) {
        std::string env = pga::seal_secret(r, kSecret, cred, kColumn);
        pga::SecureBytes plain = pga::open_secret(r, env, cred, kColumn);
        plain_len = plain.size();
        benchmark::DoNotOptimize(plain.data());
    }
    if (plain_len != kSecret.size()) die("ours round trip");
    state.SetItemsProcessed(state.iterations());
}

// Components of "ours", to see where the time goes.
void BM_Ours_SealOnly(benchmark::State &state) {
    const pga::KeyRing &r = ring();
    const pga::Uuid cred = credential_id();
    for (auto _ : state) {
        std::string env = pga::seal_secret(r, kSecret, cred, kColumn);
        benchmark::DoNotOptimize(env.data());
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_Ours_OpenOnly(benchmark::State &state) {
    const pga::KeyRing &r = ring();
    const pga::Uuid cred = credential_id();
    const std::string env = pga::seal_secret(r, kSecret, cred, kColumn);
    for (auto _ : state) {
        pga::SecureBytes plain = pga::open_secret(r, env, cred, kColumn);
        benchmark::DoNotOptimize(plain.data());
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_Part_RandNonce(benchmark::State &state) {
    std::array<std::uint8_t, 12> nonce{};
    for (auto _ : state) {
        pga::random_bytes(nonce.data(), nonce.size());
        benchmark::DoNotOptimize(nonce.data());
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_Part_Base64RoundTrip(benchmark::State &state) {
    std::array<std::uint8_t, 68> payload{};  // nonce 12 + 40 + tag 16
    pga::random_bytes(payload.data(), payload.size());
    std::vector<std::uint8_t> back;
    for (auto _ : state) {
        std::string b64 = pga::base64_encode(payload.data(), payload.size());
        if (!pga::base64_decode(b64, back)) die("base64");
        benchmark::DoNotOptimize(back.data());
    }
    state.SetItemsProcessed(state.iterations());
}

// Other primitives on the ticket path (mint = 1 HMAC, redeem = 1 HMAC + 2 opens).
void BM_Part_HmacSha256(benchmark::State &state) {
    std::array<std::uint8_t, 32> key{};
    std::array<std::uint8_t, 100> data{};
    for (auto _ : state) {
        pga::Sha256 mac = pga::hmac_sha256(key.data(), key.size(), data.data(), data.size());
        benchmark::DoNotOptimize(mac.data());
    }
    state.SetItemsProcessed(state.iterations());
}

}  // namespace

// Short minimum times keep a full run in seconds; bench.sh adds repetitions and interleaving.
BENCHMARK(BM_B1_Bare)->MinTime(0.2);
BENCHMARK(BM_B1_Ours)->MinTime(0.2);
BENCHMARK(BM_B1_BareNoRand)->MinTime(0.2);
BENCHMARK(BM_Ours_SealOnly)->MinTime(0.2);
BENCHMARK(BM_Ours_OpenOnly)->MinTime(0.2);
BENCHMARK(BM_Part_RandNonce)->MinTime(0.2);
BENCHMARK(BM_Part_Base64RoundTrip)->MinTime(0.2);
BENCHMARK(BM_Part_HmacSha256)->MinTime(0.2);

BENCHMARK_MAIN();
