// libFuzzer: ticket verification. The first byte picks a mode:
//   0: the rest is ticket text, verified as it comes (a forger's view): refused with
//      TicketInvalid or KeyMissing, or, for a genuine ticket (seeds), accepted;
//   1: the rest is a payload signed here with the real ticket key, so the checks that run
//      only after the MAC see arbitrary bytes: refused as malformed or expired, or accepted
//      and then its claims serialise back to exactly that payload;
//   2: the rest chooses claims (purpose, app user, expiry); mint then verify round-trips.
// Messages are fixed text: they never repeat the ticket.
#include "common/crypto.hpp"
#include "common/encoding.hpp"
#include "common/error.hpp"
#include "common/keyring.hpp"
#include "fuzz/fuzz_invariants.hpp"
#include "fuzz/fuzz_keys.hpp"
#include "common/ticket.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

void check(bool cond) {
    if (!cond) std::abort();
}

constexpr std::int64_t kNow = 1'790'000'000'000;

using pga_fuzz::ring;

bool allowed_refusal(const pga::Error &e) {
    pga_fuzz::check_error(e, 60);
    const std::string m = e.what();
    if (e.code() == pga::ErrorCode::TicketInvalid)
        return m == "malformed ticket" || m == "ticket signature does not verify" ||
               m == "ticket expired";
    if (e.code() == pga::ErrorCode::KeyMissing)
        return m.rfind("ticket key id ", 0) == 0 && m.size() < 60;
    return false;
}

void put_be(std::vector<std::uint8_t> &out, std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

// The documented payload layout (ticket.hpp), written independently of ticket.cpp.
std::vector<std::uint8_t> serialise(const pga::TicketClaims &c) {
    std::vector<std::uint8_t> p;
    put_be(p, c.key_id, 4);
    p.insert(p.end(), c.credential_id.begin(), c.credential_id.end());
    put_be(p, static_cast<std::uint64_t>(c.expires_at_ms), 8);
    p.insert(p.end(), c.nonce.begin(), c.nonce.end());
    put_be(p, c.purpose.size(), 1);
    p.insert(p.end(), c.purpose.begin(), c.purpose.end());
    put_be(p, c.app_user.size(), 2);
    p.insert(p.end(), c.app_user.begin(), c.app_user.end());
    if (!c.db_role.empty()) {
        put_be(p, c.db_role.size(), 1);
        p.insert(p.end(), c.db_role.begin(), c.db_role.end());
    }
    return p;
}

void check_claims(const pga::TicketClaims &c) {
    check(!c.purpose.empty() && c.purpose.size() <= pga::kMaxPurposeLen);
    check(!c.app_user.empty() && c.app_user.size() <= pga::kMaxAppUserLen);
    check(c.db_role.size() <= pga::kMaxDbRoleLen);
    check(c.expires_at_ms > kNow);
    check(ring().find(c.key_id) != nullptr);
}

void fuzz_text(std::string_view ticket) {
    try {
        const pga::TicketClaims c = pga::verify_ticket(ring(), ticket, kNow);
        check_claims(c);
        // Only a ticket whose text is the canonical encoding of its claims verifies.
        const std::vector<std::uint8_t> p = serialise(c);
        check(ticket.substr(0, ticket.find('.', 6)) ==
              "pgat1." + pga::base64url_encode(p.data(), p.size()));
    } catch (const pga::Error &e) {
        check(allowed_refusal(e));
    }
}

void fuzz_signed(std::string_view in) {
    // Key id 1 or 7 chosen by the payload itself; sign with that key if the ring holds it.
    const std::vector<std::uint8_t> payload(in.begin(), in.end());
    std::uint32_t key_id = 0;
    if (payload.size() >= 4) {
        for (int i = 0; i < 4; ++i) key_id = (key_id << 8) | payload[static_cast<std::size_t>(i)];
    }
    const pga::KeyEntry *key = ring().find(key_id);
    if (key == nullptr) key = &ring().primary();
    std::string text = "pgat1." + pga::base64url_encode(payload.data(), payload.size());
    const pga::Sha256 mac =
        pga::hmac_sha256(key->ticket_key.data(), key->ticket_key.size(),
                         reinterpret_cast<const std::uint8_t *>(text.data()), text.size());
    text += "." + pga::base64url_encode(mac.data(), mac.size());
    try {
        const pga::TicketClaims c = pga::verify_ticket(ring(), text, kNow);
        check_claims(c);
        check(c.key_id == key_id && key->id == key_id);
        check(serialise(c) == payload);
    } catch (const pga::Error &e) {
        check(allowed_refusal(e));
        // Signed with the key the payload names: the MAC itself always verifies.
        if (ring().find(key_id) != nullptr && text.size() <= pga::kMaxTicketTextLen)
            check(std::string(e.what()) != "ticket signature does not verify");
    }
}

void fuzz_mint(std::string_view in) {
    // expires delta (2 bytes, seconds) | purpose length (1) | purpose | app user
    if (in.size() < 3) return;
    pga::TicketClaims c;
    const auto delta = static_cast<std::int64_t>((static_cast<std::uint8_t>(in[0]) << 8) |
                                                 static_cast<std::uint8_t>(in[1])) -
                       100;
    c.expires_at_ms = kNow + delta * 1000;
    const std::size_t plen = static_cast<std::uint8_t>(in[2]);
    in.remove_prefix(3);
    if (in.size() < plen) return;
    c.purpose = std::string(in.substr(0, plen));
    c.app_user = std::string(in.substr(plen));
    for (std::size_t i = 0; i < c.credential_id.size(); ++i)
        c.credential_id[i] = static_cast<std::uint8_t>(c.app_user.size() + i);
    std::string ticket;
    try {
        ticket = pga::mint_ticket(ring(), c);
    } catch (const pga::Error &e) {
        check(e.code() == pga::ErrorCode::InvalidParameter);
        pga_fuzz::check_error(e, 100);
        check(c.purpose.empty() || c.purpose.size() > pga::kMaxPurposeLen || c.app_user.empty() ||
              c.app_user.size() > pga::kMaxAppUserLen);
        return;
    }
    check(ticket.size() <= pga::kMaxTicketTextLen);
    check(c.key_id == ring().primary_id());
    try {
        const pga::TicketClaims v = pga::verify_ticket(ring(), ticket, kNow);
        check(delta > 0);
        check(v.key_id == c.key_id && v.credential_id == c.credential_id &&
              v.expires_at_ms == c.expires_at_ms && v.nonce == c.nonce && v.purpose == c.purpose &&
              v.app_user == c.app_user);
    } catch (const pga::Error &e) {
        check(delta <= 0 && std::string(e.what()) == "ticket expired");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    if (size < 1) return 0;
    const std::string_view in(reinterpret_cast<const char *>(data + 1), size - 1);
    switch (data[0] % 3) {
        case 0:
            fuzz_text(in);
            break;
        case 1:
            fuzz_signed(in);
            break;
        default:
            fuzz_mint(in);
            break;
    }
    return 0;
}
