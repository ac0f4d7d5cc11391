#include "sidecar/http_client.hpp"

#include "common/error.hpp"
#include "common/secure_memory.hpp"
#include "common/version.hpp"

#include <cctype>
#include <chrono>
#include <cstring>

namespace pga::sidecar {
namespace {

const std::string kUserAgent = std::string("pg_alpaca-sidecar/") + pga::kVersion;

struct SlistDeleter {
    // Header lines hold the keys: wipe each before curl frees the list.
    void operator()(curl_slist *list) const noexcept {
        for (curl_slist *n = list; n != nullptr; n = n->next)
            secure_wipe(n->data, std::strlen(n->data));
        curl_slist_free_all(list);
    }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

// Appends "name: value" to list through a wiped buffer.
void append_header(Slist &list, std::string_view name, std::string_view value) {
    SecureBytes line = secure_copy(name);
    line.push_back(':');  // "Name:" alone tells curl to send no such header
    if (!value.empty()) line.push_back(' ');
    line.insert(line.end(), value.begin(), value.end());
    line.push_back(0);
    curl_slist *grown = curl_slist_append(list.get(), reinterpret_cast<const char *>(line.data()));
    if (grown == nullptr) throw Error(ErrorCode::Internal, "out of memory building headers");
    list.release();
    list.reset(grown);
}

// How often a transfer asks whether its client is still there. libcurl calls the progress
// callback on every turn of its loop (several times for a request of a few ms); asking each time
// cost a poll() system call per turn, while noticing a hang-up 50 ms later changes nothing.
constexpr auto kAbortCheckInterval = std::chrono::milliseconds(50);

struct Transfer {
    HttpResponse *resp;
    std::size_t max_body;
    const std::function<bool()> *should_abort;
    std::chrono::steady_clock::time_point next_abort_check;
};

std::size_t on_body(char *data, std::size_t size, std::size_t n, void *user) {
    auto *t = static_cast<Transfer *>(user);
    const std::size_t len = size * n;
    if (t->resp->body.size() + len > t->max_body) {
        t->resp->too_large = true;
        return 0;  // curl stops with CURLE_WRITE_ERROR
    }
    t->resp->body.append(data, len);
    return len;
}

bool header_is(std::string_view line, std::string_view name, std::string_view &value) {
    if (line.size() <= name.size() || line[name.size()] != ':') return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) return false;
    }
    value = line.substr(name.size() + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back())))
        value.remove_suffix(1);
    return true;
}

std::optional<std::int64_t> parse_digits(std::string_view v) {
    if (v.empty() || v.size() > 15) return std::nullopt;
    std::int64_t n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + (c - '0');
    }
    return n;
}

std::size_t on_header(char *data, std::size_t size, std::size_t n, void *user) {
    auto *t = static_cast<Transfer *>(user);
    const std::string_view line(data, size * n);
    std::string_view value;
    if (line.rfind("HTTP/", 0) == 0) {  // a new response (e.g. after 100-continue)
        t->resp->ratelimit_reset.reset();
        t->resp->retry_after.reset();
        t->resp->ratelimit_limit.clear();
        t->resp->ratelimit_remaining.clear();
        t->resp->ratelimit_reset_text.clear();
    } else if (header_is(line, "x-ratelimit-reset", value)) {
        t->resp->ratelimit_reset = parse_digits(value);
        if (t->resp->ratelimit_reset) t->resp->ratelimit_reset_text = std::string(value);
    } else if (header_is(line, "x-ratelimit-limit", value)) {
        if (parse_digits(value)) t->resp->ratelimit_limit = std::string(value);
    } else if (header_is(line, "x-ratelimit-remaining", value)) {
        if (parse_digits(value)) t->resp->ratelimit_remaining = std::string(value);
    } else if (header_is(line, "retry-after", value)) {
        t->resp->retry_after = parse_digits(value);
    } else if (header_is(line, "content-length", value)) {
        // Room for the whole body at once (a compressed answer grows past it, which is fine);
        // never more than the cap, whatever the server claims.
        const auto len = parse_digits(value);
        if (len && std::uint64_t(*len) <= t->max_body) t->resp->body.reserve(std::size_t(*len));
    }
    return size * n;
}

int on_progress(void *user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto *t = static_cast<Transfer *>(user);
    if (!*t->should_abort) return 0;
    const auto now = std::chrono::steady_clock::now();
    if (now < t->next_abort_check) return 0;
    t->next_abort_check = now + kAbortCheckInterval;
    if ((*t->should_abort)()) {
        t->resp->aborted = true;
        return 1;
    }
    return 0;
}

}  // namespace

void http_global_init() {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        throw Error(ErrorCode::Internal, "curl_global_init failed");
    }
}

CurlShare::CurlShare() : share_(curl_share_init()) {
    if (!share_) throw Error(ErrorCode::Internal, "curl_share_init failed");
    CURLSH *s = share_.get();
    curl_share_setopt(s, CURLSHOPT_LOCKFUNC, &CurlShare::lock_cb);
    curl_share_setopt(s, CURLSHOPT_UNLOCKFUNC, &CurlShare::unlock_cb);
    curl_share_setopt(s, CURLSHOPT_USERDATA, this);
    curl_share_setopt(s, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(s, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    // Not CURL_LOCK_DATA_CONNECT: libcurl does not support one connection cache used by
    // concurrent threads (under load it closed and re-handshook connections: 2.5x fewer calls
    // a second at 32 clients). Each worker's easy handle keeps its own connections alive.
}

void CurlShare::lock_cb(CURL *, curl_lock_data data, curl_lock_access, void *user) {
    static_cast<CurlShare *>(user)->locks_[data].lock();
}

void CurlShare::unlock_cb(CURL *, curl_lock_data data, void *user) {
    static_cast<CurlShare *>(user)->locks_[data].unlock();
}

HttpClient::HttpClient(const CurlShare &share) : easy_(curl_easy_init()) {
    if (!easy_) throw Error(ErrorCode::Internal, "curl_easy_init failed");
    CURL *c = easy_.get();
    curl_easy_setopt(c, CURLOPT_SHARE, share.get());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");  // whatever curl can decode
    curl_easy_setopt(c, CURLOPT_USERAGENT, kUserAgent.c_str());
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &on_body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &on_header);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &on_progress);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
}

void HttpClient::recycle_body(std::string &&body) noexcept {
    if (body.capacity() > kMaxKeptBody || body.capacity() <= spare_body_.capacity()) return;
    body.clear();
    spare_body_.swap(body);
}

HttpResponse HttpClient::perform(const HttpRequest &req) {
    HttpResponse resp;
    resp.body.swap(spare_body_);  // empty, with the capacity of an earlier answer
    Transfer t{&resp, req.max_body_bytes, &req.should_abort,
               std::chrono::steady_clock::now() + kAbortCheckInterval};
    Slist headers;
    append_header(headers, "APCA-API-KEY-ID", req.key_id);
    append_header(headers, "APCA-API-SECRET-KEY", req.secret_key);
    append_header(headers, "Accept", "application/json");
    if (!req.body.empty()) {
        append_header(headers, "Content-Type", "application/json");
        append_header(headers, "Expect", "");  // no 100-continue round trip
    }

    CURL *c = easy_.get();
    // The handle is reused: every request sets its method and body afresh.
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, nullptr);
    if (req.method == "POST" || req.method == "PATCH" ||
        (req.method == "DELETE" && !req.body.empty())) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.c_str());
    }
    // A request that changes the account goes on a fresh connection: on a reused keep-alive
    // connection that dies before any answer byte, libcurl silently sends the request again
    // (it takes the server for having closed an idle connection), and a lost answer to a POST
    // must never turn into a second POST behind our back (sidecar/trade_flow decides).
    curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, req.method == "GET" ? 0L : 1L);
    if (req.method == "PATCH" || req.method == "DELETE") {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    } else if (req.method != "GET" && req.method != "POST") {
        throw Error(ErrorCode::InvalidParameter, "unsupported HTTP method");
    }
    curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(c, CURLOPT_CAINFO, req.ca_file.empty() ? nullptr : req.ca_file.c_str());
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, req.connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req.timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);

    resp.curl_code = curl_easy_perform(c);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);  // the list is wiped and freed below
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, nullptr);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, nullptr);
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    if (resp.curl_code == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
    } else {
        resp.error = curl_easy_strerror(resp.curl_code);
        resp.body.clear();
    }
    return resp;
}

bool is_permanent_transport_error(const HttpResponse &r) noexcept {
    if (r.too_large || r.aborted) return true;
    switch (r.curl_code) {
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
        case CURLE_OUT_OF_MEMORY:
            return true;
        default:
            return false;
    }
}

}  // namespace pga::sidecar
