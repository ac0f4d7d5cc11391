// Backend <-> sidecar frames. Strict: anything unexpected is Error(Protocol) on decode and
// Error(InvalidParameter) on encode (the caller handed us something we refuse to send).
#include "common/wire.hpp"

#include "common/error.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstring>

namespace pga {
namespace {

constexpr std::size_t kMaxRequestIdLen = 64;
constexpr std::size_t kMaxTicketLen = 2048;
constexpr std::size_t kMaxQueryPairs = 16;
constexpr std::size_t kMaxQueryKeyLen = 64;
constexpr std::size_t kMaxQueryValueLen = 1024;
constexpr std::size_t kMaxMessageLen = 2048;  // bytes accepted on the wire
constexpr std::size_t kMaxResponseHeaderLen = 64 * 1024;
constexpr int kMaxHttpStatus = 999;
constexpr int kMaxAttempts = 1000;

constexpr unsigned kHeaderParseFlags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;

void put_u32(std::uint8_t *p, std::uint32_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v >> 24);
    p[1] = static_cast<std::uint8_t>(v >> 16);
    p[2] = static_cast<std::uint8_t>(v >> 8);
    p[3] = static_cast<std::uint8_t>(v);
}

std::uint32_t get_u32(const std::uint8_t *p) noexcept {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           std::uint32_t{p[3]};
}

[[noreturn]] void fail(ErrorCode code, const std::string &msg) {
    throw Error(code, "wire: " + msg);
}

bool is_query_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ',' || c == ':' || c == '-';
}

bool valid_request_id(std::string_view id, bool allow_empty) noexcept {
    if (id.empty()) return allow_empty;
    if (id.size() > kMaxRequestIdLen) return false;
    for (char c : id) {
        if (c < 0x21 || c > 0x7e) return false;  // printable ASCII, no space
    }
    return true;
}

bool is_target_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-';
}

bool valid_ticket(std::string_view t) noexcept {
    if (t.empty() || t.size() > kMaxTicketLen) return false;
    for (char c : t) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;  // no controls
    }
    return true;
}

// Shared by encoder and decoder so that whatever encodes also decodes.
void validate_request(std::string_view id, std::string_view op, std::string_view ticket,
                      const std::vector<std::pair<std::string, std::string>> &query,
                      std::string_view target, std::string_view body, ErrorCode code) {
    if (!valid_request_id(id, false)) {
        fail(code, "request id must be 1-64 printable ASCII characters");
    }
    if (!is_known_operation(op)) fail(code, "unknown operation");
    if (op == kStatusOperation) {
        if (!ticket.empty() || !query.empty()) fail(code, "status takes no ticket and no query");
    } else if (!valid_ticket(ticket)) {
        fail(code, "ticket must be 1-2048 characters without controls");
    }
    if (query.size() > kMaxQueryPairs) fail(code, "more than 16 query parameters");
    for (std::size_t i = 0; i < query.size(); ++i) {
        const auto &k = query[i].first;
        const auto &v = query[i].second;
        if (k.empty() || k.size() > kMaxQueryKeyLen)
            fail(code, "query key must be 1-64 characters");
        if (v.size() > kMaxQueryValueLen) fail(code, "query value longer than 1024 characters");
        for (char c : k) {
            if (!is_query_char(c)) fail(code, "query key has a character outside [A-Za-z0-9_.,:-]");
        }
        for (char c : v) {
            if (!is_query_char(c)) {
                fail(code, "query value has a character outside [A-Za-z0-9_.,:-]");
            }
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (query[j].first == k) fail(code, "duplicate query key");
        }
    }
    if (operation_takes_target(op)) {
        if (target.empty() || target.size() > kMaxTargetLen)
            fail(code, "target must be 1-64 characters");
        for (char c : target) {
            if (!is_target_char(c)) fail(code, "target has a character outside [A-Za-z0-9.-]");
        }
        if (target.front() == '.' || target.find("..") != std::string_view::npos)
            fail(code, "target must not start with '.' or hold \"..\"");
    } else if (!target.empty()) {
        fail(code, "operation takes no target");
    }
    if (operation_takes_body(op)) {
        if (body.empty() || body.size() > kMaxRequestBody) fail(code, "body must be 1-16384 bytes");
        if (std::memchr(body.data(), 0, body.size()) != nullptr)
            fail(code, "body contains a NUL byte");
        rapidjson::Document doc;
        doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(
            body.data(), body.size());
        if (doc.HasParseError() || !doc.IsObject()) fail(code, "body must be a JSON object");
    } else if (!body.empty()) {
        fail(code, "operation takes no body");
    }
}

void validate_response(const SidecarResponse &r, ErrorCode code) {
    if (!valid_request_id(r.request_id, true)) {
        fail(code, "response id must be empty or 1-64 printable ASCII characters");
    }
    if (r.http_status < 0 || r.http_status > kMaxHttpStatus) fail(code, "http_status out of range");
    if (r.attempts < 0 || r.attempts > kMaxAttempts) fail(code, "attempts out of range");
}

// The message ends up in SQL errors (errdetail): printable ASCII of bounded length, whatever
// the sidecar or a peer impersonating it sent. escape_for_error is idempotent, so a decoded
// message encodes and decodes to itself.
std::string shown_message(std::string_view s) {
    return escape_for_error(s, kMaxResponseMessage);
}

// RapidJSON output stream that writes straight into SecureBytes (the request holds a ticket).
struct SecureStream {
    using Ch = char;
    SecureBytes *out;
    void Put(char c) { out->push_back(static_cast<std::uint8_t>(c)); }
    void Flush() {}
};

// Header bytes -> Document. Returns the header span checked for embedded NULs (JSON text has
// none; RapidJSON would treat one as the end of input).
void check_no_nul(const std::uint8_t *p, std::size_t n) {
    if (std::memchr(p, 0, n) != nullptr) fail(ErrorCode::Protocol, "header contains a NUL byte");
}

[[noreturn]] void json_fail(const rapidjson::ParseResult &r) {
    fail(ErrorCode::Protocol, std::string("header is not valid JSON (") +
                                  rapidjson::GetParseError_En(r.Code()) + ") at offset " +
                                  std::to_string(r.Offset()));
}

std::size_t header_span(const std::uint8_t *payload, std::size_t len) {
    if (payload == nullptr || len < kFramePrefixLen) fail(ErrorCode::Protocol, "payload too short");
    const std::uint32_t hlen = get_u32(payload);
    if (hlen == 0 || hlen > len - kFramePrefixLen) {
        fail(ErrorCode::Protocol, "header length does not fit in the payload");
    }
    return hlen;
}

int get_int_field(const rapidjson::Value &v, const char *name) {
    if (!v.IsInt())
        fail(ErrorCode::Protocol, std::string("field '") + name + "' must be an integer");
    return v.GetInt();
}

std::string_view get_str_field(const rapidjson::Value &v, const char *name) {
    if (!v.IsString())
        fail(ErrorCode::Protocol, std::string("field '") + name + "' must be a string");
    return std::string_view(v.GetString(), v.GetStringLength());
}

}  // namespace

bool is_known_operation(std::string_view op) noexcept {
    return op == "validate" || op == "account" || op == "positions" || op == "orders" ||
           op == "clock" || op == kStatusOperation || op == "get_order" ||
           op == "get_order_by_client_id" || is_trading_operation(op);
}

bool is_trading_operation(std::string_view op) noexcept {
    return op == "submit_order" || op == "replace_order" || op == "cancel_order" ||
           op == "cancel_all_orders" || op == "close_position";
}

std::string_view ticket_purpose(std::string_view op) noexcept {
    if (!is_known_operation(op)) return {};
    if (is_trading_operation(op)) return "trade";
    if (op == "get_order" || op == "get_order_by_client_id") return "orders";
    return op;
}

bool operation_takes_target(std::string_view op) noexcept {
    return op == "get_order" || op == "replace_order" || op == "cancel_order" ||
           op == "close_position";
}

bool operation_takes_body(std::string_view op) noexcept {
    return op == "submit_order" || op == "replace_order";
}

const char *outcome_name(Outcome o) noexcept {
    switch (o) {
        case Outcome::Ok:
            return "ok";
        case Outcome::TicketRejected:
            return "ticket_rejected";
        case Outcome::Unreachable:
            return "unreachable";
        case Outcome::Timeout:
            return "timeout";
        case Outcome::RateLimited:
            return "rate_limited";
        case Outcome::TooLarge:
            return "too_large";
        case Outcome::Overloaded:
            return "overloaded";
        case Outcome::BadRequest:
            return "bad_request";
        case Outcome::DatabaseError:
            return "database_error";
        case Outcome::Internal:
            return "internal";
    }
    return "internal";
}

bool parse_outcome(std::string_view s, Outcome &out) noexcept {
    static const Outcome kAll[] = {
        Outcome::Ok,         Outcome::TicketRejected, Outcome::Unreachable,
        Outcome::Timeout,    Outcome::RateLimited,    Outcome::TooLarge,
        Outcome::Overloaded, Outcome::BadRequest,     Outcome::DatabaseError,
        Outcome::Internal};
    for (Outcome o : kAll) {
        if (s == outcome_name(o)) {
            out = o;
            return true;
        }
    }
    return false;
}

SecureBytes encode_request(const SidecarRequest &req) {
    const std::string_view ticket = as_view(req.ticket);
    validate_request(req.request_id, req.operation, ticket, req.query, req.target, req.body,
                     ErrorCode::InvalidParameter);

    SecureBytes out;
    std::size_t estimate =
        2 * kFramePrefixLen + 96 + req.request_id.size() + req.operation.size() + 6 * ticket.size();
    for (const auto &kv : req.query) estimate += kv.first.size() + kv.second.size() + 6;
    out.reserve(estimate);
    out.resize(2 * kFramePrefixLen);  // frame length + header length, patched below

    SecureStream os{&out};
    rapidjson::Writer<SecureStream, rapidjson::UTF8<>, rapidjson::UTF8<>, rapidjson::CrtAllocator,
                      rapidjson::kWriteValidateEncodingFlag>
        w(os);
    bool ok = w.StartObject();
    ok = ok && w.Key("v") && w.Uint(kWireVersion);
    ok = ok && w.Key("id") && w.String(req.request_id.data(), req.request_id.size());
    ok = ok && w.Key("op") && w.String(req.operation.data(), req.operation.size());
    ok = ok && w.Key("ticket") &&
         w.String(ticket.data(), static_cast<rapidjson::SizeType>(ticket.size()));
    ok = ok && w.Key("query") && w.StartObject();
    for (const auto &kv : req.query) {
        ok = ok && w.Key(kv.first.data(), kv.first.size()) &&
             w.String(kv.second.data(), kv.second.size());
    }
    ok = ok && w.EndObject();
    if (!req.target.empty()) {
        ok = ok && w.Key("target") && w.String(req.target.data(), req.target.size());
    }
    ok = ok && w.EndObject();
    if (!ok) fail(ErrorCode::InvalidParameter, "request is not valid UTF-8");

    const std::size_t header_end = out.size();
    out.insert(out.end(), req.body.begin(), req.body.end());
    const std::size_t payload = out.size() - kFramePrefixLen;
    if (payload > kMaxRequestPayload) fail(ErrorCode::InvalidParameter, "request frame too large");
    put_u32(out.data(), static_cast<std::uint32_t>(payload));
    put_u32(out.data() + kFramePrefixLen,
            static_cast<std::uint32_t>(header_end - 2 * kFramePrefixLen));
    return out;
}

std::string encode_response_head(const SidecarResponse &resp) {
    validate_response(resp, ErrorCode::InvalidParameter);
    const std::string message = shown_message(resp.message);

    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("v");
    w.Uint(kWireVersion);
    w.Key("id");
    w.String(resp.request_id.data(), resp.request_id.size());
    w.Key("outcome");
    w.String(outcome_name(resp.outcome));
    w.Key("http_status");
    w.Int(resp.http_status);
    w.Key("attempts");
    w.Int(resp.attempts);
    w.Key("message");
    w.String(message.data(), message.size());
    w.EndObject();

    const std::size_t hlen = sb.GetSize();
    const std::size_t payload = kFramePrefixLen + hlen + resp.body.size();
    if (payload > 0xffffffffu) fail(ErrorCode::InvalidParameter, "response frame too large");
    std::string out;
    out.resize(2 * kFramePrefixLen);
    put_u32(reinterpret_cast<std::uint8_t *>(&out[0]), static_cast<std::uint32_t>(payload));
    put_u32(reinterpret_cast<std::uint8_t *>(&out[kFramePrefixLen]),
            static_cast<std::uint32_t>(hlen));
    out.append(sb.GetString(), hlen);
    return out;
}

std::string encode_response(const SidecarResponse &resp) {
    std::string out = encode_response_head(resp);
    out.reserve(out.size() + resp.body.size());
    out.append(resp.body);
    return out;
}

std::uint32_t decode_frame_length(const std::uint8_t prefix[kFramePrefixLen],
                                  std::size_t max_payload) {
    const std::uint32_t n = get_u32(prefix);
    if (n == 0) fail(ErrorCode::Protocol, "empty frame");
    if (n > max_payload) fail(ErrorCode::Protocol, "frame larger than the limit");
    return n;
}

SidecarRequest decode_request(const std::uint8_t *payload, std::size_t len) {
    if (len > kMaxRequestPayload) fail(ErrorCode::Protocol, "request frame too large");
    const std::size_t hlen = header_span(payload, len);
    const std::uint8_t *hdr = payload + kFramePrefixLen;
    check_no_nul(hdr, hlen);

    // Parse in place inside wiped memory, so the ticket never lands in RapidJSON's allocator.
    SecureBytes buf(hdr, hdr + hlen);
    buf.push_back(0);
    rapidjson::Document doc;
    doc.ParseInsitu<kHeaderParseFlags>(reinterpret_cast<char *>(buf.data()));
    if (doc.HasParseError()) {
        json_fail(rapidjson::ParseResult(doc.GetParseError(), doc.GetErrorOffset()));
    }
    if (!doc.IsObject()) fail(ErrorCode::Protocol, "header must be a JSON object");

    bool seen_v = false, seen_id = false, seen_op = false, seen_ticket = false, seen_query = false,
         seen_target = false;
    SidecarRequest req;
    for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
        const std::string_view name(m->name.GetString(), m->name.GetStringLength());
        bool *seen = nullptr;
        if (name == "v") {
            seen = &seen_v;
            if (get_int_field(m->value, "v") != static_cast<int>(kWireVersion)) {
                fail(ErrorCode::Protocol, "unsupported version");
            }
        } else if (name == "id") {
            seen = &seen_id;
            req.request_id = std::string(get_str_field(m->value, "id"));
        } else if (name == "op") {
            seen = &seen_op;
            req.operation = std::string(get_str_field(m->value, "op"));
        } else if (name == "ticket") {
            seen = &seen_ticket;
            req.ticket = secure_copy(get_str_field(m->value, "ticket"));
        } else if (name == "query") {
            seen = &seen_query;
            if (!m->value.IsObject()) fail(ErrorCode::Protocol, "field 'query' must be an object");
            if (m->value.MemberCount() > kMaxQueryPairs) {
                fail(ErrorCode::Protocol, "more than 16 query parameters");
            }
            for (auto q = m->value.MemberBegin(); q != m->value.MemberEnd(); ++q) {
                if (!q->value.IsString()) fail(ErrorCode::Protocol, "query values must be strings");
                req.query.emplace_back(
                    std::string(q->name.GetString(), q->name.GetStringLength()),
                    std::string(q->value.GetString(), q->value.GetStringLength()));
            }
        } else if (name == "target") {
            seen = &seen_target;
            req.target = std::string(get_str_field(m->value, "target"));
        } else {
            fail(ErrorCode::Protocol, "unknown header field");
        }
        if (*seen) fail(ErrorCode::Protocol, "duplicate header field");
        *seen = true;
    }
    if (!seen_v || !seen_id || !seen_op || !seen_ticket) {
        fail(ErrorCode::Protocol, "request header lacks v, id, op or ticket");
    }
    req.body.assign(reinterpret_cast<const char *>(hdr + hlen), len - kFramePrefixLen - hlen);
    validate_request(req.request_id, req.operation, as_view(req.ticket), req.query, req.target,
                     req.body, ErrorCode::Protocol);
    return req;
}

SidecarResponse decode_response(const std::uint8_t *payload, std::size_t len) {
    const std::size_t hlen = header_span(payload, len);
    if (hlen > kMaxResponseHeaderLen) fail(ErrorCode::Protocol, "response header too large");
    const std::uint8_t *hdr = payload + kFramePrefixLen;
    check_no_nul(hdr, hlen);

    rapidjson::Document doc;
    doc.Parse<kHeaderParseFlags>(reinterpret_cast<const char *>(hdr), hlen);
    if (doc.HasParseError()) {
        json_fail(rapidjson::ParseResult(doc.GetParseError(), doc.GetErrorOffset()));
    }
    if (!doc.IsObject()) fail(ErrorCode::Protocol, "header must be a JSON object");

    enum { kV, kId, kOutcome, kStatus, kAttempts, kMessage, kCount };
    bool seen[kCount] = {};
    SidecarResponse resp;
    for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
        const std::string_view name(m->name.GetString(), m->name.GetStringLength());
        int field;
        if (name == "v") {
            field = kV;
            if (get_int_field(m->value, "v") != static_cast<int>(kWireVersion)) {
                fail(ErrorCode::Protocol, "unsupported version");
            }
        } else if (name == "id") {
            field = kId;
            resp.request_id = std::string(get_str_field(m->value, "id"));
        } else if (name == "outcome") {
            field = kOutcome;
            if (!parse_outcome(get_str_field(m->value, "outcome"), resp.outcome)) {
                fail(ErrorCode::Protocol, "unknown outcome");
            }
        } else if (name == "http_status") {
            field = kStatus;
            resp.http_status = get_int_field(m->value, "http_status");
        } else if (name == "attempts") {
            field = kAttempts;
            resp.attempts = get_int_field(m->value, "attempts");
        } else if (name == "message") {
            field = kMessage;
            const std::string_view msg = get_str_field(m->value, "message");
            if (msg.size() > kMaxMessageLen) fail(ErrorCode::Protocol, "message too long");
            if (msg.find('\0') != std::string_view::npos) {
                fail(ErrorCode::Protocol, "message contains a NUL character");
            }
            resp.message = shown_message(msg);
        } else {
            fail(ErrorCode::Protocol, "unknown header field");
        }
        if (seen[field]) fail(ErrorCode::Protocol, "duplicate header field");
        seen[field] = true;
    }
    for (bool s : seen) {
        if (!s) fail(ErrorCode::Protocol, "response header lacks a required field");
    }
    validate_response(resp, ErrorCode::Protocol);
    resp.body.assign(reinterpret_cast<const char *>(hdr + hlen), len - kFramePrefixLen - hlen);
    return resp;
}

}  // namespace pga
