#include "common/wire.hpp"

#include "common/error.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace {

using pga::Error;
using pga::ErrorCode;
using pga::Outcome;
using pga::SecureBytes;
using pga::SidecarRequest;
using pga::SidecarResponse;

constexpr const char *kTicket = "pgat1.AAAAAQ-_payload_.c2lnbmF0dXJl";

SidecarRequest sample_request() {
    SidecarRequest r;
    r.request_id = "req-0001";
    r.operation = "orders";
    r.ticket = pga::secure_copy(kTicket);
    r.query = {{"status", "open"}, {"limit", "50"}, {"nested", "true"}};
    return r;
}

// Payload of a frame (bytes after the 4-byte prefix), checking the prefix on the way.
std::vector<std::uint8_t> payload_of(const std::uint8_t *frame, std::size_t n,
                                     std::size_t max = pga::kDefaultMaxResponsePayload) {
    EXPECT_GE(n, pga::kFramePrefixLen);
    const std::uint32_t len = pga::decode_frame_length(frame, max);
    EXPECT_EQ(len, n - pga::kFramePrefixLen);
    return std::vector<std::uint8_t>(frame + pga::kFramePrefixLen, frame + n);
}

// Build a payload from a raw header and body.
std::vector<std::uint8_t> make_payload(const std::string &header, const std::string &body = {}) {
    std::vector<std::uint8_t> p(4);
    const auto n = static_cast<std::uint32_t>(header.size());
    p[0] = n >> 24;
    p[1] = (n >> 16) & 0xff;
    p[2] = (n >> 8) & 0xff;
    p[3] = n & 0xff;
    p.insert(p.end(), header.begin(), header.end());
    p.insert(p.end(), body.begin(), body.end());
    return p;
}

void expect_protocol_error_request(const std::string &header, const std::string &body = {}) {
    const auto p = make_payload(header, body);
    try {
        pga::decode_request(p.data(), p.size());
        ADD_FAILURE() << "accepted: " << header;
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::Protocol) << header;
        // The message never echoes the ticket.
        EXPECT_EQ(std::string(e.what()).find("pgat1"), std::string::npos) << e.what();
    }
}

void expect_protocol_error_response(const std::string &header, const std::string &body = {}) {
    const auto p = make_payload(header, body);
    try {
        pga::decode_response(p.data(), p.size());
        ADD_FAILURE() << "accepted: " << header;
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::Protocol) << header;
    }
}

const std::string kGoodReq = R"({"v":1,"id":"r1","op":"account","ticket":"pgat1.x.y","query":{}})";
const std::string kGoodResp =
    R"({"v":1,"id":"r1","outcome":"ok","http_status":200,"attempts":1,"message":""})";

TEST(Wire, KnownOperations) {
    for (const char *op : {"validate", "account", "positions", "orders", "clock"}) {
        EXPECT_TRUE(pga::is_known_operation(op)) << op;
    }
    for (const char *op : {"", "Account", "orders ", "delete", "redeem", "positions\n"}) {
        EXPECT_FALSE(pga::is_known_operation(op)) << op;
    }
}

TEST(Wire, OutcomeNamesRoundTrip) {
    const std::vector<std::pair<Outcome, std::string>> all = {
        {Outcome::Ok, "ok"},
        {Outcome::TicketRejected, "ticket_rejected"},
        {Outcome::Unreachable, "unreachable"},
        {Outcome::Timeout, "timeout"},
        {Outcome::RateLimited, "rate_limited"},
        {Outcome::TooLarge, "too_large"},
        {Outcome::Overloaded, "overloaded"},
        {Outcome::BadRequest, "bad_request"},
        {Outcome::DatabaseError, "database_error"},
        {Outcome::Internal, "internal"}};
    for (const auto &[o, name] : all) {
        EXPECT_EQ(pga::outcome_name(o), name);
        Outcome parsed = Outcome::Ok == o ? Outcome::Internal : Outcome::Ok;
        ASSERT_TRUE(pga::parse_outcome(name, parsed)) << name;
        EXPECT_EQ(parsed, o);
    }
    Outcome o = Outcome::Timeout;
    EXPECT_FALSE(pga::parse_outcome("OK", o));
    EXPECT_FALSE(pga::parse_outcome("", o));
    EXPECT_FALSE(pga::parse_outcome("ok ", o));
    EXPECT_EQ(o, Outcome::Timeout);  // untouched on failure
}

TEST(Wire, RequestRoundTrip) {
    const SidecarRequest in = sample_request();
    const SecureBytes frame = pga::encode_request(in);
    const auto payload = payload_of(frame.data(), frame.size(), pga::kMaxRequestPayload);
    const SidecarRequest out = pga::decode_request(payload.data(), payload.size());
    EXPECT_EQ(out.request_id, in.request_id);
    EXPECT_EQ(out.operation, in.operation);
    EXPECT_EQ(pga::as_view(out.ticket), kTicket);
    EXPECT_EQ(out.query, in.query);  // order preserved
}

TEST(Wire, RequestFrameLayout) {
    SidecarRequest r;
    r.request_id = "a";
    r.operation = "clock";
    r.ticket = pga::secure_copy("t");
    const SecureBytes frame = pga::encode_request(r);
    const std::string expected_header = R"({"v":1,"id":"a","op":"clock","ticket":"t","query":{}})";
    const auto hl = expected_header.size();
    ASSERT_EQ(frame.size(), 8 + hl);
    EXPECT_EQ(frame[0], 0);
    EXPECT_EQ(frame[1], 0);
    EXPECT_EQ(frame[2], 0);
    EXPECT_EQ(frame[3], 4 + hl);
    EXPECT_EQ(frame[7], hl);
    EXPECT_EQ(std::string(frame.begin() + 8, frame.end()), expected_header);
}

TEST(Wire, RequestWithoutQueryDecodes) {
    const auto p = make_payload(R"({"v":1,"id":"r1","op":"clock","ticket":"T"})");
    const auto r = pga::decode_request(p.data(), p.size());
    EXPECT_EQ(r.operation, "clock");
    EXPECT_TRUE(r.query.empty());
}

TEST(Wire, RequestEscapesAreDecoded) {
    const auto p = make_payload(R"({"v":1,"id":"r\u0031","op":"clock","ticket":"a\"b\\c\/d"})");
    const auto r = pga::decode_request(p.data(), p.size());
    EXPECT_EQ(r.request_id, "r1");
    EXPECT_EQ(pga::as_view(r.ticket), "a\"b\\c/d");
    // and the same ticket re-encodes and decodes unchanged
    const auto frame = pga::encode_request(r);
    const auto again = pga::decode_request(frame.data() + 4, frame.size() - 4);
    EXPECT_EQ(pga::as_view(again.ticket), "a\"b\\c/d");
}

TEST(Wire, ResponseRoundTrip) {
    SidecarResponse in;
    in.request_id = "req-42";
    in.outcome = Outcome::RateLimited;
    in.http_status = 429;
    in.attempts = 4;
    in.message = "Alpaca rate limit: \"too many\" requests";
    in.body = std::string("{\"code\":42910000}\0binary\xff", 26);
    const std::string frame = pga::encode_response(in);
    const auto payload =
        payload_of(reinterpret_cast<const std::uint8_t *>(frame.data()), frame.size());
    const SidecarResponse out = pga::decode_response(payload.data(), payload.size());
    EXPECT_EQ(out.request_id, in.request_id);
    EXPECT_EQ(out.outcome, in.outcome);
    EXPECT_EQ(out.http_status, 429);
    EXPECT_EQ(out.attempts, 4);
    EXPECT_EQ(out.message, in.message);
    EXPECT_EQ(out.body, in.body);  // raw bytes, unchanged
}

// The sidecar sends the head and the body with one gathering write: together they must be the
// very frame encode_response makes (its length prefix counting the body it does not hold).
TEST(Wire, ResponseHeadPlusBodyIsTheWholeFrame) {
    for (const std::size_t body_len : {std::size_t(0), std::size_t(1), std::size_t(70000)}) {
        SidecarResponse in;
        in.request_id = "r-7";
        in.outcome = Outcome::Ok;
        in.http_status = 200;
        in.attempts = 2;
        in.message = "fine";
        in.body = std::string(body_len, '\xa5');
        const std::string head = pga::encode_response_head(in);
        EXPECT_EQ(head + in.body, pga::encode_response(in));
        const auto *h = reinterpret_cast<const std::uint8_t *>(head.data());
        ASSERT_GE(head.size(), 8u);
        EXPECT_EQ(pga::decode_frame_length(h, pga::kDefaultMaxResponsePayload),
                  head.size() - 4 + body_len);
        EXPECT_EQ(head.find('\xa5'), std::string::npos);  // no body byte in the head
    }
    SidecarResponse bad;
    bad.request_id = std::string(100, 'x');  // over the id limit: refused like encode_response
    EXPECT_THROW(pga::encode_response_head(bad), Error);
}

TEST(Wire, ResponseEveryOutcomeAndEmptyBodyAndEmptyId) {
    for (int i = 0; i <= static_cast<int>(Outcome::Internal); ++i) {
        SidecarResponse in;
        in.outcome = static_cast<Outcome>(i);
        const std::string frame = pga::encode_response(in);
        const auto out = pga::decode_response(
            reinterpret_cast<const std::uint8_t *>(frame.data()) + 4, frame.size() - 4);
        EXPECT_EQ(out.outcome, in.outcome);
        EXPECT_TRUE(out.request_id.empty());
        EXPECT_TRUE(out.body.empty());
    }
}

TEST(Wire, ResponseMessageIsEscapedAndCapped) {
    SidecarResponse in;
    in.request_id = "x";
    in.message = std::string("bad \xff\xfe utf8 \0 nul\n\xc3\xa9", 20) + std::string(5000, 'm');
    const std::string frame = pga::encode_response(in);
    const auto out = pga::decode_response(reinterpret_cast<const std::uint8_t *>(frame.data()) + 4,
                                          frame.size() - 4);
    const std::string head = "bad \\xFF\\xFE utf8 \\x00 nul\\x0A\\xC3\\xA9mm";
    EXPECT_EQ(out.message.substr(0, head.size()), head);
    EXPECT_EQ(out.message.size(), pga::kMaxResponseMessage);
    EXPECT_EQ(out.message.substr(out.message.size() - 5), "mm...");
    EXPECT_TRUE(pga::is_printable_ascii(out.message));
    // Truncation never splits an escape: 1020 'a' then a byte that needs 4 characters.
    SidecarResponse multi;
    multi.message = std::string(1020, 'a') + "\xc3\xa9";
    const std::string f2 = pga::encode_response(multi);
    const auto o2 =
        pga::decode_response(reinterpret_cast<const std::uint8_t *>(f2.data()) + 4, f2.size() - 4);
    EXPECT_EQ(o2.message, std::string(1020, 'a') + "...");
}

// A peer on the socket that is not our sidecar (or an older one) may send any UTF-8 text,
// controls included: the decoder hands back printable ASCII only, and bounded.
TEST(Wire, DecodedMessageFromAHostilePeerIsPrintable) {
    const std::string hdr =
        std::string(R"({"v":1,"id":"r1","outcome":"internal","http_status":0,)") +
        R"("attempts":0,"message":"line1\nline2 \u001b[31mred \u00e9)" + std::string(1500, 'z') +
        R"("})";
    std::vector<std::uint8_t> payload(4 + hdr.size());
    payload[0] = static_cast<std::uint8_t>(hdr.size() >> 24);
    payload[1] = static_cast<std::uint8_t>(hdr.size() >> 16);
    payload[2] = static_cast<std::uint8_t>(hdr.size() >> 8);
    payload[3] = static_cast<std::uint8_t>(hdr.size());
    std::copy(hdr.begin(), hdr.end(), payload.begin() + 4);
    const auto r = pga::decode_response(payload.data(), payload.size());
    const std::string head = "line1\\x0Aline2 \\x1B[31mred \\xC3\\xA9zz";
    EXPECT_EQ(r.message.substr(0, head.size()), head);
    EXPECT_EQ(r.message.size(), pga::kMaxResponseMessage);
    EXPECT_TRUE(pga::is_printable_ascii(r.message));
}

TEST(Wire, EncodeRefusesInvalidRequests) {
    auto expect_refused = [](SidecarRequest r) {
        try {
            pga::encode_request(r);
            ADD_FAILURE() << "encoded an invalid request";
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), ErrorCode::InvalidParameter);
            EXPECT_EQ(std::string(e.what()).find("pgat1"), std::string::npos);
        }
    };
    auto r = sample_request();
    r.request_id = "";
    expect_refused(r);
    r = sample_request();
    r.request_id = std::string(65, 'a');
    expect_refused(r);
    r = sample_request();
    r.request_id = "has space";
    expect_refused(r);
    r = sample_request();
    r.request_id = "tab\t";
    expect_refused(r);
    r = sample_request();
    r.operation = "delete";
    expect_refused(r);
    r = sample_request();
    r.ticket.clear();
    expect_refused(r);
    r = sample_request();
    r.ticket = pga::secure_copy(std::string(2049, 'T'));
    expect_refused(r);
    r = sample_request();
    r.ticket = pga::secure_copy("pgat1.\x01");
    expect_refused(r);
    r = sample_request();
    r.query = {{"status", "open&x=1"}};
    expect_refused(r);
    r = sample_request();
    r.query = {{"st atus", "open"}};
    expect_refused(r);
    r = sample_request();
    r.query = {{"", "open"}};
    expect_refused(r);
    r = sample_request();
    r.query = {{"a", "1"}, {"a", "2"}};
    expect_refused(r);
    r = sample_request();
    r.query.clear();
    for (int i = 0; i < 17; ++i) r.query.emplace_back("k" + std::to_string(i), "v");
    expect_refused(r);
    r = sample_request();
    r.query = {{std::string(65, 'k'), "v"}};
    expect_refused(r);
    r = sample_request();
    r.query = {{"k", std::string(1025, 'v')}};
    expect_refused(r);
}

TEST(Wire, EncodeAcceptsBoundaryValues) {
    auto r = sample_request();
    r.request_id = std::string(64, '~');
    r.ticket = pga::secure_copy(std::string(2048, 'T'));
    r.query.clear();
    for (int i = 0; i < 16; ++i) {
        r.query.emplace_back(std::string(60, 'k') + std::to_string(1000 + i),
                             std::string(1024, i % 2 ? ':' : '-'));
    }
    const auto frame = pga::encode_request(r);
    const auto out = pga::decode_request(frame.data() + 4, frame.size() - 4);
    EXPECT_EQ(out.query, r.query);
    EXPECT_EQ(out.ticket.size(), 2048u);
    EXPECT_EQ(out.request_id, r.request_id);
}

TEST(Wire, EncodeRefusesInvalidResponses) {
    SidecarResponse r;
    r.request_id = "bad id";
    EXPECT_THROW(pga::encode_response(r), Error);
    r.request_id = "ok";
    r.http_status = 1000;
    EXPECT_THROW(pga::encode_response(r), Error);
    r.http_status = -1;
    EXPECT_THROW(pga::encode_response(r), Error);
    r.http_status = 200;
    r.attempts = -1;
    EXPECT_THROW(pga::encode_response(r), Error);
}

TEST(Wire, FrameLength) {
    const std::uint8_t zero[4] = {0, 0, 0, 0};
    EXPECT_THROW(pga::decode_frame_length(zero, 100), Error);
    const std::uint8_t hundred[4] = {0, 0, 0, 100};
    EXPECT_EQ(pga::decode_frame_length(hundred, 100), 100u);
    EXPECT_THROW(pga::decode_frame_length(hundred, 99), Error);
    const std::uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    try {
        pga::decode_frame_length(huge, pga::kDefaultMaxResponsePayload);
        ADD_FAILURE();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::Protocol);
    }
    const std::uint8_t big_endian[4] = {0x00, 0x01, 0x00, 0x02};
    EXPECT_EQ(pga::decode_frame_length(big_endian, pga::kDefaultMaxResponsePayload), 65538u);
    EXPECT_THROW(pga::decode_frame_length(big_endian, pga::kMaxRequestPayload), Error);
}

TEST(Wire, GoodHeadersDecode) {
    auto p = make_payload(kGoodReq);
    EXPECT_NO_THROW(pga::decode_request(p.data(), p.size()));
    p = make_payload(kGoodResp, "body");
    EXPECT_EQ(pga::decode_response(p.data(), p.size()).body, "body");
}

TEST(Wire, MalformedRequestHeaders) {
    expect_protocol_error_request("");
    expect_protocol_error_request("{");
    expect_protocol_error_request("[]");
    expect_protocol_error_request("null");
    expect_protocol_error_request(R"({"v":1,"id":"r1","op":"account","ticket":"pgat1.x"} x)");
    // version
    expect_protocol_error_request(R"({"v":2,"id":"r1","op":"account","ticket":"pgat1.x"})");
    expect_protocol_error_request(R"({"v":"1","id":"r1","op":"account","ticket":"pgat1.x"})");
    expect_protocol_error_request(R"({"v":1.0,"id":"r1","op":"account","ticket":"pgat1.x"})");
    expect_protocol_error_request(R"({"id":"r1","op":"account","ticket":"pgat1.x"})");
    // field types and presence
    expect_protocol_error_request(R"({"v":1,"id":1,"op":"account","ticket":"pgat1.x"})");
    expect_protocol_error_request(R"({"v":1,"op":"account","ticket":"pgat1.x"})");
    expect_protocol_error_request(R"({"v":1,"id":"r1","op":null,"ticket":"pgat1.x"})");
    expect_protocol_error_request(R"({"v":1,"id":"r1","ticket":"pgat1.x"})");
    expect_protocol_error_request(R"({"v":1,"id":"r1","op":"account"})");
    expect_protocol_error_request(R"({"v":1,"id":"r1","op":"account","ticket":["pgat1.x"]})");
    expect_protocol_error_request(
        R"({"v":1,"id":"r1","op":"account","ticket":"pgat1.x","query":[]})");
    expect_protocol_error_request(
        R"({"v":1,"id":"r1","op":"account","ticket":"pgat1.x","query":{"a":1}})");
    // values
    expect_protocol_error_request(R"({"v":1,"id":"","op":"account","ticket":"pgat1.x"})");
    expect_protocol_error_request(R"({"v":1,"id":"a b","op":"account","ticket":"pgat1.x"})");
    expect_protocol_error_request(R"({"v":1,"id":"r\u0000","op":"account","ticket":"pgat1.x"})");
    expect_protocol_error_request(R"({"v":1,"id":")" + std::string(65, 'i') +
                                  R"(","op":"account","ticket":"pgat1.x"})");
    expect_protocol_error_request(R"({"v":1,"id":"r1","op":"trade","ticket":"pgat1.x"})");
    expect_protocol_error_request(R"({"v":1,"id":"r1","op":"account","ticket":""})");
    expect_protocol_error_request(R"({"v":1,"id":"r1","op":"account","ticket":"pgat1\u0000"})");
    expect_protocol_error_request(R"({"v":1,"id":"r1","op":"account","ticket":")" +
                                  std::string(2049, 't') + "\"}");
    expect_protocol_error_request(
        R"({"v":1,"id":"r1","op":"account","ticket":"pgat1.x","query":{"a":"b c"}})");
    expect_protocol_error_request(
        R"({"v":1,"id":"r1","op":"account","ticket":"pgat1.x","query":{"a/b":"c"}})");
    expect_protocol_error_request(
        R"({"v":1,"id":"r1","op":"account","ticket":"pgat1.x","query":{"a":"1","a":"2"}})");
    std::string many = R"({"v":1,"id":"r1","op":"account","ticket":"pgat1.x","query":{)";
    for (int i = 0; i < 17; ++i)
        many += (i ? "," : "") + std::string("\"k") + std::to_string(i) + "\":\"v\"";
    expect_protocol_error_request(many + "}}");
    // duplicates and unknown fields
    expect_protocol_error_request(R"({"v":1,"id":"r1","op":"account","ticket":"a","ticket":"b"})");
    expect_protocol_error_request(R"({"v":1,"id":"r1","op":"account","ticket":"a","extra":0})");
    // a request never carries a body
    expect_protocol_error_request(kGoodReq, "x");
    // invalid UTF-8 inside a string
    expect_protocol_error_request("{\"v\":1,\"id\":\"r1\",\"op\":\"account\",\"ticket\":\"\xff\"}");
    // an embedded NUL byte after a complete object
    expect_protocol_error_request(kGoodReq + std::string("\0junk", 5));
}

TEST(Wire, RequestHeaderLengthMustFit) {
    auto p = make_payload(kGoodReq);
    p[3] += 1;  // header length one past the payload
    EXPECT_THROW(pga::decode_request(p.data(), p.size()), Error);
    p = make_payload(kGoodReq);
    p[0] = 0xff;
    EXPECT_THROW(pga::decode_request(p.data(), p.size()), Error);
    p = make_payload(kGoodReq);
    p[3] = p[2] = p[1] = p[0] = 0;  // zero header length
    EXPECT_THROW(pga::decode_request(p.data(), p.size()), Error);
    const std::uint8_t short_payload[3] = {0, 0, 0};
    EXPECT_THROW(pga::decode_request(short_payload, 3), Error);
    EXPECT_THROW(pga::decode_request(nullptr, 0), Error);
}

TEST(Wire, TruncatedRequestPayload) {
    const auto frame = pga::encode_request(sample_request());
    const std::vector<std::uint8_t> payload(frame.begin() + 4, frame.end());
    for (std::size_t n = 0; n < payload.size(); ++n) {
        EXPECT_THROW(pga::decode_request(payload.data(), n), Error) << n;
    }
}

TEST(Wire, TruncatedResponsePayload) {
    SidecarResponse in;
    in.request_id = "r";
    in.outcome = Outcome::Ok;
    in.http_status = 200;
    const std::string frame = pga::encode_response(in);  // empty body: every cut loses header
    for (std::size_t n = 0; n + 4 < frame.size(); ++n) {
        EXPECT_THROW(
            pga::decode_response(reinterpret_cast<const std::uint8_t *>(frame.data()) + 4, n),
            Error)
            << n;
    }
}

TEST(Wire, OversizeRequestPayload) {
    std::vector<std::uint8_t> big(pga::kMaxRequestPayload + 1, ' ');
    big[0] = big[1] = big[2] = big[3] = 0;
    big[4] = '{';
    EXPECT_THROW(pga::decode_request(big.data(), big.size()), Error);
}

TEST(Wire, MalformedResponseHeaders) {
    expect_protocol_error_response("{}");
    expect_protocol_error_response("[1]");
    expect_protocol_error_response(
        R"({"v":2,"id":"r1","outcome":"ok","http_status":200,"attempts":1,"message":""})");
    expect_protocol_error_response(
        R"({"v":1,"id":"r1","outcome":"fine","http_status":200,"attempts":1,"message":""})");
    expect_protocol_error_response(
        R"({"v":1,"id":"r1","outcome":"ok","http_status":"200","attempts":1,"message":""})");
    expect_protocol_error_response(
        R"({"v":1,"id":"r1","outcome":"ok","http_status":1000,"attempts":1,"message":""})");
    expect_protocol_error_response(
        R"({"v":1,"id":"r1","outcome":"ok","http_status":200,"attempts":-1,"message":""})");
    expect_protocol_error_response(
        R"({"v":1,"id":"r1","outcome":"ok","http_status":200,"attempts":1})");
    expect_protocol_error_response(
        R"({"v":1,"id":"r1","outcome":"ok","http_status":200,"attempts":1,"message":null})");
    expect_protocol_error_response(
        R"({"v":1,"id":"r1","outcome":"ok","http_status":200,"attempts":1,"message":"a\u0000b"})");
    expect_protocol_error_response(
        R"({"v":1,"id":"r1","outcome":"ok","http_status":200,"attempts":1,"message":"","x":1})");
    expect_protocol_error_response(
        R"({"v":1,"id":"r1","outcome":"ok","outcome":"ok","http_status":200,"attempts":1,"message":""})");
    expect_protocol_error_response(
        R"({"v":1,"id":"r 1","outcome":"ok","http_status":200,"attempts":1,"message":""})");
    expect_protocol_error_response(
        R"({"v":1,"id":"r1","outcome":"ok","http_status":200,"attempts":1,"message":")" +
        std::string(2049, 'm') + "\"}");
    auto p = make_payload(kGoodResp);
    p[3] += 1;
    EXPECT_THROW(pga::decode_response(p.data(), p.size()), Error);
}

TEST(Wire, DeeplyNestedHeaderDoesNotOverflowTheStack) {
    const std::string deep = R"({"v":1,"id":"r1","op":"account","ticket":"t","query":)" +
                             std::string(30000, '[') + std::string(30000, ']') + "}";
    expect_protocol_error_request(deep);
    expect_protocol_error_response(std::string(60000, '['));
}

}  // namespace

// ---- Order operations: a target (order id, symbol) and a JSON body ----

namespace {

pga::SidecarRequest trade_request(const std::string &op) {
    pga::SidecarRequest r;
    r.request_id = "t1";
    r.operation = op;
    r.ticket = pga::secure_copy("pgat1.ticket");
    return r;
}

}  // namespace

TEST(Wire, TradeOperationsAndPurposes) {
    for (const char *op :
         {"submit_order", "replace_order", "cancel_order", "cancel_all_orders", "close_position"}) {
        EXPECT_TRUE(pga::is_known_operation(op)) << op;
        EXPECT_TRUE(pga::is_trading_operation(op)) << op;
        EXPECT_EQ(pga::ticket_purpose(op), "trade") << op;
    }
    EXPECT_EQ(pga::ticket_purpose("get_order"), "orders");
    EXPECT_EQ(pga::ticket_purpose("get_order_by_client_id"), "orders");
    EXPECT_EQ(pga::ticket_purpose("positions"), "positions");
    EXPECT_EQ(pga::ticket_purpose("trade"), "");  // not an operation
    EXPECT_FALSE(pga::is_trading_operation("orders"));
    EXPECT_FALSE(pga::is_trading_operation("get_order"));
}

TEST(Wire, TradeRequestRoundTripWithTargetAndBody) {
    auto in = trade_request("replace_order");
    in.target = "61e69015-8549-4bfd-b9c3-01e75843f47d";
    in.body = R"({"qty":"2","client_order_id":"pga-1"})";
    const auto frame = pga::encode_request(in);
    const auto out = pga::decode_request(frame.data() + 4, frame.size() - 4);
    EXPECT_EQ(out.operation, "replace_order");
    EXPECT_EQ(out.target, in.target);
    EXPECT_EQ(out.body, in.body);
    EXPECT_EQ(pga::as_view(out.ticket), "pgat1.ticket");
}

TEST(Wire, TradeRequestRefusals) {
    auto expect_refused = [](pga::SidecarRequest r, const char *why) {
        EXPECT_THROW(pga::encode_request(r), pga::Error) << why;
    };
    auto r = trade_request("submit_order");
    expect_refused(r, "submit without a body");
    r.body = "[1]";
    expect_refused(r, "body not an object");
    r.body = "{\"a\":";
    expect_refused(r, "body not JSON");
    r.body = "{\"qty\":\"" + std::string(pga::kMaxRequestBody, '1') + "\"}";
    expect_refused(r, "body too large");
    r.body = "{}";
    r.target = "AAPL";
    expect_refused(r, "submit takes no target");

    auto c = trade_request("cancel_order");
    expect_refused(c, "cancel without a target");
    for (const char *bad :
         {"../account", "a/b", "a b", "a?x=1", "a%2F", "x#y", "..", ".x", "a..b"}) {
        c.target = bad;
        expect_refused(c, bad);
    }
    c.target = std::string(pga::kMaxTargetLen + 1, 'a');
    expect_refused(c, "target too long");
    c.target = "BRK.B";
    EXPECT_NO_THROW(pga::encode_request(c));
    c.body = "{}";
    expect_refused(c, "cancel takes no body");

    auto g = trade_request("positions");
    g.body = "{}";
    expect_refused(g, "a read takes no body");
}

TEST(Wire, TradeRequestDecoderIsAsStrict) {
    // A body on a read and a target the op does not take are refused on decode too.
    auto r = trade_request("cancel_order");
    r.target = "abc";
    auto frame = pga::encode_request(r);
    std::vector<std::uint8_t> p(frame.begin() + 4, frame.end());
    p.push_back('{');
    p.push_back('}');
    EXPECT_THROW(pga::decode_request(p.data(), p.size()), pga::Error);
    const std::string hdr =
        R"({"v":1,"id":"x","op":"positions","ticket":"t","query":{},"target":"AAPL"})";
    std::vector<std::uint8_t> q(4);
    q[3] = static_cast<std::uint8_t>(hdr.size());
    q.insert(q.end(), hdr.begin(), hdr.end());
    EXPECT_THROW(pga::decode_request(q.data(), q.size()), pga::Error);
}
