// The master key ring. File format, one key a line:   <key id> <base64 of 32 random bytes>
// '#' starts a comment line; blank lines are ignored; ids are decimal 1..4294967295 and unique;
// the highest id is the primary (used for new encryptions and tickets). The file must not be
// group- or world-accessible. Errors name the file and the line, never a key.
//
// Master keys are never used directly: each entry derives, with HKDF-SHA256 (salt "pg_alpaca"),
//   data key         info "pg_alpaca data-key v1"     -> AES-256-GCM for alpaca_secret
//   ticket MAC key   info "pg_alpaca ticket-mac v1"   -> HMAC-SHA256 for tickets
//   fingerprint key  info "pg_alpaca fingerprint v1"  -> HMAC-SHA256 duplicate detection
//   session key      info "pg_alpaca session-token v1" -> HMAC-SHA256 of gateway session tokens
#pragma once
#include "cpp_only.hpp"
#include "crypto.hpp"
#include "secure_memory.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pga {

struct KeyEntry {
    std::uint32_t id = 0;
    SecureBytes ticket_key;       // 32 bytes
    SecureBytes fingerprint_key;  // 32 bytes
    SecureBytes session_key;      // 32 bytes
    std::unique_ptr<AesGcm> data_cipher;
};

class KeyRing {
  public:
    // Parses key file text. source_name (the path) is used in error messages only.
    // Throws Error(ConfigFile) naming source_name:line for any malformed line, a key that is
    // not exactly 32 bytes, a duplicate id, or a ring with no key at all.
    static KeyRing parse(std::string_view text, const std::string &source_name);
    // Reads and parses a file; refuses (Error ConfigFile) a missing/unreadable file, a file
    // that is not regular, or one whose mode grants any group/other permission.
    static KeyRing load_file(const std::string &path);
    // Checks only the file's existence and permissions (used by tooling before rewriting).
    static void check_file_mode(const std::string &path);

    std::uint32_t primary_id() const noexcept { return primary_id_; }
    const KeyEntry &primary() const;                        // throws KeyMissing if empty
    const KeyEntry *find(std::uint32_t id) const noexcept;  // nullptr if absent
    const KeyEntry &require(std::uint32_t id) const;        // throws KeyMissing naming the id
    std::vector<std::uint32_t> ids() const;                 // ascending
    bool empty() const noexcept { return entries_.empty(); }

    KeyRing() = default;
    KeyRing(KeyRing &&) noexcept = default;
    KeyRing &operator=(KeyRing &&) noexcept = default;

    // Derives a key entry from 32 bytes of master key material (exposed for tests/tools).
    static KeyEntry derive(std::uint32_t id, const std::uint8_t master[kAesKeyLen]);

  private:
    std::vector<KeyEntry> entries_;  // sorted by id
    std::uint32_t primary_id_ = 0;
};

// Formats one key file line for a new key: "<id> <base64>\n" (used by alpaca-keygen).
SecureBytes format_key_line(std::uint32_t id, const std::uint8_t master[kAesKeyLen]);

}  // namespace pga
