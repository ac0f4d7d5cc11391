// One exception type for the whole PostgreSQL-free core. Every throw site picks an
// ErrorCode; the extension maps it to a SQLSTATE, the sidecar to a wire error class.
// Messages never contain key material, plaintext, or tickets.
#pragma once
#include "cpp_only.hpp"

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pga {

enum class ErrorCode {
    InvalidText,       // malformed input text (22P02): envelope, uuid, base64
    InvalidParameter,  // bad argument value (22023)
    ConfigFile,        // key file / config file problem (F0000)
    KeyMissing,        // envelope or ticket names a key id not in the ring (XX000-class, names id)
    DecryptFailed,     // authentication tag mismatch: wrong row/column, tampered (XX001-class)
    TicketInvalid,     // malformed, bad MAC, expired, wrong purpose (42501)
    Protocol,          // malformed wire frame or upstream JSON (XX000 / 08P01)
    Io,                // socket / file I/O (08006)
    Internal,          // OpenSSL failure and other impossibilities (XX000)
};

class Error : public std::runtime_error {
  public:
    Error(ErrorCode code, const std::string &message, std::string hint = {})
        : std::runtime_error(message), code_(code), hint_(std::move(hint)) {}
    ErrorCode code() const noexcept { return code_; }
    const std::string &hint() const noexcept { return hint_; }

  private:
    ErrorCode code_;
    std::string hint_;
};

// How much of an input an error message may repeat, by default.
constexpr std::size_t kMaxQuotedInput = 64;

// Renders untrusted bytes for an error message. Printable ASCII (0x20..0x7e) is kept; every
// other byte becomes \xNN (upper-case hex). The result is printable ASCII of at most `max`
// characters (max is taken as at least 3): when the rendering would be longer it is cut after
// a whole character or escape, never inside one, and ends in "...". Idempotent: text it
// returned comes back unchanged with the same or a larger max.
std::string escape_for_error(std::string_view in, std::size_t max = kMaxQuotedInput);

// The same wrapped in `quote` characters, e.g. 'abc' or 'abcdef...'; at most `max` characters
// in all (max is taken as at least 5). Quote characters inside are kept as they are.
std::string quote_for_error(std::string_view in, std::size_t max = kMaxQuotedInput,
                            char quote = '\'');

// True when every byte is printable ASCII (0x20..0x7e): what every error message must be.
bool is_printable_ascii(std::string_view s) noexcept;

}  // namespace pga
