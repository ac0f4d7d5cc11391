// One exception type for the whole PostgreSQL-free core. Every throw site picks an
// ErrorCode; the extension maps it to a SQLSTATE, the sidecar to a wire error class.
// Messages never contain key material, plaintext, or tickets.
#pragma once
#include "cpp_only.hpp"

#include <stdexcept>
#include <string>

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

}  // namespace pga
