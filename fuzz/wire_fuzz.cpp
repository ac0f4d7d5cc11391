// libFuzzer: wire frame decoding. Any input either decodes or throws pga::Error; whatever
// decodes re-encodes to a frame that decodes to the same value. Refusals are short fixed text
// (printable, bounded); a decoded response message is printable ASCII of bounded length.
#include "common/error.hpp"
#include "common/wire.hpp"
#include "fuzz/fuzz_invariants.hpp"

#include <cstdint>
#include <cstdlib>
#include <vector>

namespace {

void check(bool cond) {
    if (!cond) std::abort();
}

void fuzz_request(const std::uint8_t *data, std::size_t size) {
    pga::SidecarRequest req;
    try {
        req = pga::decode_request(data, size);
    } catch (const pga::Error &e) {
        check(e.code() == pga::ErrorCode::Protocol);
        pga_fuzz::check_error(e, 120);
        return;
    }
    const pga::SecureBytes frame = pga::encode_request(req);  // must not throw
    check(frame.size() > pga::kFramePrefixLen);
    check(pga::decode_frame_length(frame.data(), pga::kMaxRequestPayload) ==
          frame.size() - pga::kFramePrefixLen);
    const auto again = pga::decode_request(frame.data() + 4, frame.size() - 4);
    check(again.request_id == req.request_id);
    check(again.operation == req.operation);
    check(again.ticket == req.ticket);
    check(again.query == req.query);
}

// Whatever message the sidecar hands the encoder (curl's text, PostgreSQL's, Alpaca's) crosses
// the wire as printable ASCII, bounded, and decodes to exactly what the encoder sent.
void fuzz_message(const std::uint8_t *data, std::size_t size) {
    pga::SidecarResponse in;
    in.request_id = "r1";
    in.message.assign(reinterpret_cast<const char *>(data), size);
    const std::string frame = pga::encode_response(in);
    const auto *p = reinterpret_cast<const std::uint8_t *>(frame.data());
    const auto out = pga::decode_response(p + 4, frame.size() - 4);
    check(out.message == pga::escape_for_error(in.message, pga::kMaxResponseMessage));
    check(out.message.size() <= pga::kMaxResponseMessage && pga::is_printable_ascii(out.message));
}

void fuzz_response(const std::uint8_t *data, std::size_t size) {
    fuzz_message(data, size);
    pga::SidecarResponse resp;
    try {
        resp = pga::decode_response(data, size);
    } catch (const pga::Error &e) {
        check(e.code() == pga::ErrorCode::Protocol);
        pga_fuzz::check_error(e, 120);
        return;
    }
    check(resp.message.size() <= pga::kMaxResponseMessage && pga::is_printable_ascii(resp.message));
    const std::string frame = pga::encode_response(resp);
    check(pga::encode_response_head(resp) + resp.body == frame);  // the sidecar's gathered send
    const auto *p = reinterpret_cast<const std::uint8_t *>(frame.data());
    check(pga::decode_frame_length(p, 0xffffffffu) == frame.size() - 4);
    const auto again = pga::decode_response(p + 4, frame.size() - 4);
    check(again.request_id == resp.request_id);
    check(again.outcome == resp.outcome);
    check(again.http_status == resp.http_status);
    check(again.attempts == resp.attempts);
    check(again.message == resp.message);
    check(again.body == resp.body);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    if (size < 1) return 0;
    // First byte picks the decoder; the rest is a payload (the bytes after the prefix).
    const std::uint8_t which = data[0];
    ++data;
    --size;
    if (which & 1) {
        fuzz_request(data, size);
    } else {
        fuzz_response(data, size);
    }
    if (size >= pga::kFramePrefixLen) {
        try {
            const auto n = pga::decode_frame_length(data, pga::kMaxRequestPayload);
            check(n > 0 && n <= pga::kMaxRequestPayload);
        } catch (const pga::Error &e) {
            pga_fuzz::check_error(e, 120);
        }
    }
    return 0;
}
