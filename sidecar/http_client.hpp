// HTTPS requests to Alpaca with libcurl (GET for reads; POST, PATCH, DELETE with a JSON body
// for trading). One HttpClient per worker thread keeps its easy handle
// (and so its keep-alive connections); all of them share the DNS cache and TLS sessions through
// one CurlShare, so a new connection resumes a session instead of a full handshake. Certificate and
// host checks are always on; redirects are never followed (they would carry the key headers
// elsewhere).
#pragma once
#include "common/cpp_only.hpp"

#include <curl/curl.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace pga::sidecar {

// curl_global_init; call once from main before any thread starts.
void http_global_init();

class CurlShare {
  public:
    CurlShare();
    CurlShare(const CurlShare &) = delete;
    CurlShare &operator=(const CurlShare &) = delete;
    CURLSH *get() const noexcept { return share_.get(); }

  private:
    struct ShareDeleter {
        void operator()(CURLSH *s) const noexcept { curl_share_cleanup(s); }
    };
    static void lock_cb(CURL *, curl_lock_data data, curl_lock_access, void *user);
    static void unlock_cb(CURL *, curl_lock_data data, void *user);
    std::mutex locks_[CURL_LOCK_DATA_LAST];
    std::unique_ptr<CURLSH, ShareDeleter> share_;
};

struct HttpRequest {
    std::string method = "GET";  // GET, POST, PATCH, DELETE
    std::string url;
    std::string body;             // sent with Content-Type: application/json when not empty
    std::string_view key_id;      // APCA-API-KEY-ID
    std::string_view secret_key;  // APCA-API-SECRET-KEY
    std::string ca_file;          // empty: system bundle
    long connect_timeout_ms = 3000;
    long timeout_ms = 10000;
    std::size_t max_body_bytes = 16 * 1024 * 1024;
    std::function<bool()> should_abort;  // polled during the transfer (client hung up)
};

struct HttpResponse {
    long status = 0;  // 0: no HTTP answer (see curl_code)
    CURLcode curl_code = CURLE_OK;
    std::string error;  // curl's description when curl_code != CURLE_OK
    bool too_large = false;
    bool aborted = false;
    std::string body;
    std::optional<std::int64_t> ratelimit_reset;  // X-RateLimit-Reset, Unix seconds
    std::optional<std::int64_t> retry_after;      // Retry-After, seconds
    // X-RateLimit-Limit, -Remaining and -Reset as Alpaca sent them (the gateway passes them on).
    std::string ratelimit_limit, ratelimit_remaining, ratelimit_reset_text;
};

class HttpClient {
  public:
    explicit HttpClient(const CurlShare &share);
    HttpClient(const HttpClient &) = delete;
    HttpClient &operator=(const HttpClient &) = delete;
    HttpResponse get(const HttpRequest &req) { return perform(req); }
    // req.method with req.body (if any). The answer's body is read into the buffer last given
    // back by recycle_body (its capacity kept), grown once from Content-Length when known.
    HttpResponse perform(const HttpRequest &req);
    // Gives an answer's body back once it has been sent: the next perform() reads into it, so a
    // worker serving answers of similar size stops allocating (and faulting in) a fresh buffer
    // and growing it every 16 KB. A buffer above kMaxKeptBody is freed instead: one huge answer
    // does not pin its memory for the worker's lifetime.
    void recycle_body(std::string &&body) noexcept;
    static constexpr std::size_t kMaxKeptBody = 1024 * 1024;

  private:
    std::string spare_body_;
    struct EasyDeleter {
        void operator()(CURL *c) const noexcept { curl_easy_cleanup(c); }
    };
    std::unique_ptr<CURL, EasyDeleter> easy_;
};

// True for transport failures that another attempt cannot fix (certificate problems, our own
// size cap, an abort we asked for).
bool is_permanent_transport_error(const HttpResponse &r) noexcept;

}  // namespace pga::sidecar
