// Strict base64 (RFC 4648 §4, padded) and base64url (§5, padding optional on input), hex,
// and UUID text <-> 16 bytes. Decoders reject anything non-canonical and return false.
#pragma once
#include "cpp_only.hpp"
#include "secure_memory.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pga {

std::string base64_encode(const std::uint8_t *data, std::size_t len);
std::string base64url_encode(const std::uint8_t *data, std::size_t len);  // no padding
// Strict decoding: wrong alphabet, bad padding, non-zero trailing bits -> false.
bool base64_decode(std::string_view in, std::vector<std::uint8_t> &out);
bool base64_decode(std::string_view in, SecureBytes &out);
bool base64url_decode(std::string_view in, std::vector<std::uint8_t> &out);  // '=' optional

std::string hex_encode(const std::uint8_t *data, std::size_t len);

using Uuid = std::array<std::uint8_t, 16>;
// Accepts the canonical 8-4-4-4-12 form (either case); returns nullopt otherwise.
std::optional<Uuid> parse_uuid(std::string_view text);
std::string format_uuid(const Uuid &u);  // lower case, canonical

}  // namespace pga
