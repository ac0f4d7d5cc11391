// Alpaca Trading API JSON -> values, in one SAX pass of RapidJSON's reader over an in-situ copy
// of the document: no DOM, no copy of a string or a number (strings are decoded in place and
// handed over as views; every JSON number arrives as its exact source text through RawNumber,
// never as a double). Each element's fields are collected by key (first occurrence wins, as a
// DOM lookup would), then validated in a fixed order when the element closes, so the first
// faulty field reported does not depend on the key order of the document.
#ifndef RAPIDJSON_SSE2
#define RAPIDJSON_SSE2  // x86-64 baseline: SIMD scanning of whitespace and unescaped strings
#endif
#if !defined(__SSE2__)
#undef RAPIDJSON_SSE2
#endif

#include "common/alpaca_models.hpp"

#include "common/error.hpp"

// RapidJSON's out-of-line helpers (SkipWhitespace_SIMD, ...) stay inside the library that uses
// them: called directly, not through the PLT of a shared object such as pg_alpaca.so.
#include <cassert>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <new>
// (reader.h first: RapidJSON's internal headers then carry the path fuzz/ubsan.supp names.)
#pragma GCC visibility push(hidden)
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
// (after reader.h, see above)
#include <rapidjson/error/en.h>
#pragma GCC visibility pop

#include <array>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <cstring>
#include <exception>
#include <limits>

// The document's stream: RapidJSON's in-situ stream, as a type of its own so that the reader
// takes our string scanner below. RapidJSON's (for InsituStringStream) checks byte by byte up
// to the next 16-byte boundary before it uses SIMD, because an unaligned load could cross into
// an unmapped page; Alpaca's strings are short (keys, symbols, decimals of 2-20 characters), so
// that scalar prologue was most of the work: 21 % of the reader's instructions (callgrind, 1 000
// positions). Our buffer ends in kPadding zero bytes past the document, so a 16-byte load from
// any position inside it stays inside the buffer, and strings are scanned 16 bytes at a time
// from their first byte.
namespace pga {
namespace {
#if defined(__SSE2__)
struct PaddedInsituStream : rapidjson::InsituStringStream {
    explicit PaddedInsituStream(char *s) : rapidjson::InsituStringStream(s) {}
};
#else
using PaddedInsituStream = rapidjson::InsituStringStream;
#endif
}  // namespace
}  // namespace pga

#if defined(__SSE2__)
namespace rapidjson {
// Copied like InsituStringStream inside the reader (which relies on that: an in-situ raw number
// is handed over from where the original stream still points).
template <>
struct StreamTraits<pga::PaddedInsituStream> {
    enum { copyOptimization = 1 };
};

// Moves the stream past the string's run of plain characters (stopping at '"', '\\' or any byte
// below 0x20, which the reader then handles), copying them down when an escape made the output
// lag behind the input. Unlike RapidJSON 1.1.0's scanner it also stops at 0x1A..0x1F.
template <>
template <>
inline void GenericReader<UTF8<>, UTF8<>, CrtAllocator>::ScanCopyUnescapedString<
    pga::PaddedInsituStream, pga::PaddedInsituStream>(pga::PaddedInsituStream &is,
                                                      pga::PaddedInsituStream &os) {
    (void)os;  // the same stream (in situ)
    char *p = is.src_;
    char *q = is.dst_;
    const __m128i dq = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'), le1f = _mm_set1_epi8(0x1F);
    for (;;) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
        const __m128i stop =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, dq), _mm_cmpeq_epi8(v, bs)),
                         _mm_cmpeq_epi8(_mm_max_epu8(v, le1f), le1f));  // v <= 0x1F
        const unsigned r = unsigned(_mm_movemask_epi8(stop));
        if (r != 0) {
            const unsigned n = unsigned(__builtin_ctz(r));
            if (p != q) std::memmove(q, p, n);
            p += n;
            q += n;
            break;
        }
        // q <= p: the 16 bytes stored at q hold nothing not yet read (those at p were loaded).
        if (p != q) _mm_storeu_si128(reinterpret_cast<__m128i *>(q), v);
        p += 16;
        q += 16;
    }
    is.src_ = p;
    is.dst_ = q;
}

// Whitespace skipping for our stream type (found by argument-dependent lookup; without it the
// reader would take its generic byte loop). RapidJSON's SkipWhitespace_SIMD goes byte by byte
// to the next 16-byte boundary before it loads 16 at a time; between tokens there are 0 to ~8
// bytes of whitespace, so that prologue was all of its work. Here: one test for the common
// case (no whitespace), then unaligned 16-byte loads from the first whitespace byte on (the
// padding after the document, zero bytes, stops the loop inside the buffer).
// The run of whitespace from p (p[0] and p[1] are whitespace), out of line.
[[gnu::noinline]] inline char *SkipWhitespaceRun(char *p) {
    const __m128i sp = _mm_set1_epi8(' '), nl = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r'),
                  tab = _mm_set1_epi8('\t');
    for (;;) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
        const __m128i ws =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, sp), _mm_cmpeq_epi8(v, nl)),
                         _mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, tab)));
        const unsigned other = ~unsigned(_mm_movemask_epi8(ws)) & 0xFFFFu;
        if (other != 0) return p + __builtin_ctz(other);
        p += 16;
    }
}

[[gnu::always_inline]] inline void SkipWhitespace(pga::PaddedInsituStream &is) {
    const auto ws = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
    char *p = is.src_;
    if (!ws(*p)) return;
    ++p;
    is.src_ = ws(*p) ? SkipWhitespaceRun(p) : p;  // one whitespace byte: ": " in indented JSON
}
}  // namespace rapidjson
#endif

namespace pga {
namespace {

using rapidjson::SizeType;

// Strings are validated as UTF-8 once, up front (fast on ASCII), so the reader may use its SIMD
// string scanner, which it only does without kParseValidateEncodingFlag. Not iterative: the
// handler refuses the 65th level before the reader recurses into it, so recursion is bounded.
constexpr unsigned kParseFlags =
    rapidjson::kParseInsituFlag | rapidjson::kParseNumbersAsStringsFlag;
constexpr int kMaxDepth = 64;              // Alpaca nests 4 levels; deeper is hostile or broken
constexpr int kMaxDecimalExponent = 1000;  // PostgreSQL numeric refuses larger exponents
constexpr std::size_t kPadding = 64;       // SIMD loads may read past the NUL (>= 16: see above)
constexpr std::size_t kKeepBuffer = 8 * 1024 * 1024;  // kept between documents

[[noreturn]] void fail(const std::string &where, const std::string &what) {
    throw Error(ErrorCode::Protocol, "alpaca " + where + ": " + what);
}

bool parse_int64_text(std::string_view s, std::int64_t &out) noexcept {
    if (s.empty()) return false;
    bool neg = false;
    std::size_t i = 0;
    if (s[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == s.size()) return false;
    // Accumulate negatively so INT64_MIN fits.
    std::int64_t v = 0;
    const std::int64_t lim = std::numeric_limits<std::int64_t>::min();
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (c < '0' || c > '9') return false;
        const int d = c - '0';
        if (v < (lim + d) / 10) return false;
        v = v * 10 - d;
    }
    if (!neg) {
        if (v == lim) return false;
        v = -v;
    }
    out = v;
    return true;
}

// Offset of the first byte that is not well-formed UTF-8 (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF), or npos.
std::size_t invalid_utf8_at(const unsigned char *s, std::size_t n) noexcept;

// A raw control character (other than the whitespace \t \n \r) is invalid anywhere in JSON.
inline bool is_bad_control(unsigned c) noexcept {
    return c < 0x20 && c != '\t' && c != '\n' && c != '\r';
}

// Offset of the first byte of a document that is a raw control character or not well-formed
// UTF-8, or npos. RapidJSON 1.1.0's SIMD string scanners let 0x1A..0x1F through (they test
// max(c, 0x19) == 0x19), so the reader must never see such a byte: they are refused here.
// Copies the bytes it checked to copy (n bytes of room) on the way, so that the document is
// read once for both (all of it when the answer is npos); with npos, backslash says whether
// the document holds one.
std::size_t invalid_document_byte_at(const unsigned char *s, std::size_t n, unsigned char *copy,
                                     bool &backslash) noexcept {
    std::size_t i = 0;
    bool bs = false;
#if defined(__SSE2__)
    __m128i bs_seen = _mm_setzero_si128();
#endif
    while (i < n) {
#if defined(__SSE2__)
        const __m128i le1f = _mm_set1_epi8(0x1F), tab = _mm_set1_epi8('\t'),
                      nl = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r'),
                      back = _mm_set1_epi8('\\');
        while (i + 16 <= n) {  // ASCII without control characters, 16 bytes at a time
            const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(s + i));
            const __m128i ctl = _mm_cmpeq_epi8(_mm_max_epu8(v, le1f), le1f);  // v <= 0x1F
            const __m128i ws = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, tab), _mm_cmpeq_epi8(v, nl)), _mm_cmpeq_epi8(v, cr));
            if (_mm_movemask_epi8(_mm_or_si128(_mm_andnot_si128(ws, ctl), v)) != 0)
                break;  // or >= 0x80
            bs_seen = _mm_or_si128(bs_seen, _mm_cmpeq_epi8(v, back));
            _mm_storeu_si128(reinterpret_cast<__m128i *>(copy + i), v);
            i += 16;
        }
#endif
        if (i >= n) break;
        if (s[i] < 0x80) {
            if (is_bad_control(s[i])) return i;
            bs |= s[i] == '\\';
            copy[i] = s[i];
            ++i;
            continue;
        }
        // One multi-byte sequence: well-formed (invalid_utf8_at checks it first) or the answer.
        const unsigned c = s[i];
        std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (len > n - i) len = n - i;
        if (invalid_utf8_at(s + i, len) != std::string_view::npos) return i;
        std::memcpy(copy + i, s + i, len);
        i += len;
    }
#if defined(__SSE2__)
    bs |= _mm_movemask_epi8(bs_seen) != 0;
#endif
    backslash = bs;
    return std::string_view::npos;
}

std::size_t invalid_utf8_at(const unsigned char *s, std::size_t n) noexcept {
    std::size_t i = 0;
    while (i < n) {
        // ASCII fast path, 16 bytes at a time.
        while (i + 16 <= n) {
            std::uint64_t a, b;
            std::memcpy(&a, s + i, 8);
            std::memcpy(&b, s + i + 8, 8);
            if (((a | b) & 0x8080808080808080ULL) != 0) break;
            i += 16;
        }
        if (i >= n) break;
        const unsigned c = s[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return i;
        }
        if (i + len > n) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (std::size_t k = 2; k < len; ++k)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
        i += len;
    }
    return std::string_view::npos;
}

// ---------------------------------------------------------------- shapes
enum class Kind : std::uint8_t { Text, RequiredText, Decimal, Integer, Boolean, JsonArray, Raw };

struct Spec {
    const char *name;
    Kind kind;
};

constexpr int kMaxFields = 40;

// What the reader saw for one key of the current element.
enum class Seen : std::uint8_t { Absent, Null, String, Number, Bool, Container, Captured };
struct Slot {
    Seen seen;
    bool boolean;
    std::string_view text;
};

// O(1): length and three characters (a hit is confirmed by comparing the whole key).
std::uint32_t key_hash(const char *s, std::size_t n) noexcept {
    if (n == 0) return 0;
    const auto c = [&](std::size_t i) {
        return static_cast<std::uint32_t>(static_cast<unsigned char>(s[i]));
    };
    std::uint32_t h = static_cast<std::uint32_t>(n) * 0x9E3779B1u;
    h ^= c(0) * 0x85EBCA77u;
    h ^= c(n - 1) * 0xC2B2AE3Du;
    h ^= c(n / 2) * 0x27D4EB2Fu;
    return h ^ (h >> 15);
}

struct Shape {
    static constexpr unsigned kSlots = 128;  // open addressing, > 3 x fields
    const char *what;
    bool array;  // the document is an array of elements (else one object)
    const Spec *specs;
    int n;
    static constexpr std::size_t kNameRoom = 32;  // names padded with NULs, for key_is
    std::array<std::int8_t, kSlots> table{};
    std::array<std::uint8_t, kMaxFields> name_len{};
    std::array<std::array<char, kNameRoom>, kMaxFields> padded{};
    std::array<std::array<std::uint16_t, 2>, kMaxFields> want{};  // key_is: bytes to compare

    Shape(const char *what_, bool array_, const Spec *specs_, int n_)
        : what(what_), array(array_), specs(specs_), n(n_) {
        table.fill(-1);
        for (int i = 0; i < n; ++i) {
            const std::size_t len = std::strlen(specs[i].name);
            name_len[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(len);
            std::memcpy(padded[static_cast<std::size_t>(i)].data(), specs[i].name,
                        len < kNameRoom ? len : kNameRoom);
            for (std::size_t half = 0; half < 2; ++half) {
                const std::size_t k = len > 16 * half ? len - 16 * half : 0;
                want[static_cast<std::size_t>(i)][half] =
                    static_cast<std::uint16_t>(k >= 16 ? 0xFFFFu : (1u << k) - 1);
            }
            unsigned h = key_hash(specs[i].name, len) & (kSlots - 1);
            while (table[h] >= 0) h = (h + 1) & (kSlots - 1);
            table[h] = static_cast<std::int8_t>(i);
        }
    }
    // The field of key s (len bytes), or -1. s must be followed by at least kNameRoom readable
    // bytes: it points into the reader's buffer, whose kPadding bytes follow the document.
    int find(const char *s, std::size_t len) const noexcept {
        unsigned h = key_hash(s, len) & (kSlots - 1);
        for (;;) {
            const int i = table[h];
            if (i < 0) return -1;
            if (name_len[static_cast<std::size_t>(i)] == len && key_is(i, s, len)) return i;
            h = (h + 1) & (kSlots - 1);
        }
    }

  private:
    bool key_is(int i, const char *s, std::size_t len) const noexcept {
        const char *name = padded[static_cast<std::size_t>(i)].data();
#if defined(__SSE2__)
        if (len <= kNameRoom) {  // 16 bytes at a time, only the first len compared
            const std::array<std::uint16_t, 2> &w = want[static_cast<std::size_t>(i)];
            const auto half = [&](std::size_t at, unsigned mask) {
                const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i *>(s + at));
                const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i *>(name + at));
                return (unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(a, b))) & mask) == mask;
            };
            return half(0, w[0]) && (len <= 16 || half(16, w[1]));
        }
#endif
        return std::memcmp(specs[i].name, s, len) == 0;
    }
};

static_assert(kPadding >= Shape::kNameRoom, "key_is reads kNameRoom bytes from a key's start");

const Shape &account_shape() {
    using K = Kind;
    static const Spec specs[] = {{"id", K::RequiredText},
                                 {"account_number", K::RequiredText},
                                 {"status", K::RequiredText},
                                 {"crypto_status", K::Text},
                                 {"currency", K::Text},
                                 {"cash", K::Decimal},
                                 {"buying_power", K::Decimal},
                                 {"regt_buying_power", K::Decimal},
                                 {"daytrading_buying_power", K::Decimal},
                                 {"non_marginable_buying_power", K::Decimal},
                                 {"options_buying_power", K::Decimal},
                                 {"equity", K::Decimal},
                                 {"last_equity", K::Decimal},
                                 {"portfolio_value", K::Decimal},
                                 {"long_market_value", K::Decimal},
                                 {"short_market_value", K::Decimal},
                                 {"initial_margin", K::Decimal},
                                 {"maintenance_margin", K::Decimal},
                                 {"last_maintenance_margin", K::Decimal},
                                 {"sma", K::Decimal},
                                 {"multiplier", K::Decimal},
                                 {"accrued_fees", K::Decimal},
                                 {"pending_transfer_in", K::Decimal},
                                 {"pending_transfer_out", K::Decimal},
                                 {"daytrade_count", K::Integer},
                                 {"options_approved_level", K::Integer},
                                 {"options_trading_level", K::Integer},
                                 {"pattern_day_trader", K::Boolean},
                                 {"shorting_enabled", K::Boolean},
                                 {"trading_blocked", K::Boolean},
                                 {"transfers_blocked", K::Boolean},
                                 {"account_blocked", K::Boolean},
                                 {"trade_suspended_by_user", K::Boolean},
                                 {"created_at", K::Text},
                                 {"balance_asof", K::Text}};
    static_assert(sizeof specs / sizeof specs[0] == account_field::count);
    static const Shape shape("account", false, specs, account_field::count);
    return shape;
}

const Shape &position_shape() {
    using K = Kind;
    static const Spec specs[] = {{"symbol", K::RequiredText},
                                 {"asset_id", K::Text},
                                 {"exchange", K::Text},
                                 {"asset_class", K::Text},
                                 {"side", K::Text},
                                 {"qty", K::Decimal},
                                 {"qty_available", K::Decimal},
                                 {"avg_entry_price", K::Decimal},
                                 {"market_value", K::Decimal},
                                 {"cost_basis", K::Decimal},
                                 {"unrealized_pl", K::Decimal},
                                 {"unrealized_plpc", K::Decimal},
                                 {"unrealized_intraday_pl", K::Decimal},
                                 {"unrealized_intraday_plpc", K::Decimal},
                                 {"current_price", K::Decimal},
                                 {"lastday_price", K::Decimal},
                                 {"change_today", K::Decimal}};
    static_assert(sizeof specs / sizeof specs[0] == position_field::count);
    static const Shape shape("positions", true, specs, position_field::count);
    return shape;
}

const Shape &order_shape() {
    using K = Kind;
    static const Spec specs[] = {{"id", K::RequiredText},     {"client_order_id", K::Text},
                                 {"symbol", K::Text},         {"asset_id", K::Text},
                                 {"asset_class", K::Text},    {"side", K::Text},
                                 {"type", K::Text},           {"order_type", K::Text},
                                 {"time_in_force", K::Text},  {"status", K::Text},
                                 {"order_class", K::Text},    {"position_intent", K::Text},
                                 {"qty", K::Decimal},         {"notional", K::Decimal},
                                 {"filled_qty", K::Decimal},  {"filled_avg_price", K::Decimal},
                                 {"limit_price", K::Decimal}, {"stop_price", K::Decimal},
                                 {"trail_price", K::Decimal}, {"trail_percent", K::Decimal},
                                 {"hwm", K::Decimal},         {"created_at", K::Text},
                                 {"updated_at", K::Text},     {"submitted_at", K::Text},
                                 {"filled_at", K::Text},      {"expired_at", K::Text},
                                 {"canceled_at", K::Text},    {"failed_at", K::Text},
                                 {"replaced_at", K::Text},    {"extended_hours", K::Boolean},
                                 {"legs", K::JsonArray}};
    static_assert(sizeof specs / sizeof specs[0] == order_field::count);
    static const Shape shape("orders", true, specs, order_field::count);
    return shape;
}

// {"code": ..., "message": ...}: Raw fields never fail; boolean says "was a real string".
const Shape &error_shape() {
    static const Spec specs[] = {{"code", Kind::Raw}, {"message", Kind::Raw}};
    static const Shape shape("error", false, specs, 2);
    return shape;
}

// -?digits[.digits][(e|E)[+-]digits], the exponent within what PostgreSQL numeric accepts;
// point: the offset of the '.' (or of the 'e', or the size, when there is no '.').
// Padded: s is followed by at least 16 readable bytes (it lies in the reader's buffer, whose
// kPadding bytes follow the document), so runs of digits are found 16 bytes at a time.
template <bool Padded>
bool decimal_shape(std::string_view s, std::uint32_t &point, bool &exponent) noexcept {
    const char *p = s.data();
    const char *const end = p + s.size();
    const auto digits = [&]() {
        const char *const start = p;
#if defined(__SSE2__)
        if constexpr (Padded) {
            const __m128i zero = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9);
            for (;;) {
                const __m128i t =
                    _mm_sub_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)), zero);
                const unsigned digit =
                    unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(t, nine), t)));
                if (digit != 0xFFFFu) {
                    p += __builtin_ctz(~digit);
                    break;
                }
                p += 16;
            }
            if (p > end) p = end;
            return p != start;
        }
#endif
        while (p < end && static_cast<unsigned char>(*p - '0') < 10) ++p;
        return p != start;
    };
    if (p < end && *p == '-') ++p;
    if (!digits()) return false;
    point = static_cast<std::uint32_t>(p - s.data());
    if (p < end && *p == '.') {
        ++p;
        if (!digits()) return false;
    }
    exponent = p < end && (*p == 'e' || *p == 'E');
    if (exponent) {
        ++p;
        if (p < end && (*p == '+' || *p == '-')) ++p;
        const char *const start = p;
        if (!digits()) return false;
        // Exponent magnitude within what PostgreSQL numeric accepts (leading zeros allowed).
        const char *k = start;
        while (k < p - 1 && *k == '0') ++k;
        if (p - k > 4) return false;
        int e = 0;
        for (; k < p; ++k) e = e * 10 + (*k - '0');
        if (e > kMaxDecimalExponent) return false;
    }
    return p == end;
}

// Validates one slot for its kind into out; returns the complaint, or nullptr.
[[gnu::always_inline]] inline const char *validate(Kind kind, const Slot &s,
                                                   FieldValue &out) noexcept {
    out = FieldValue{};
    switch (kind) {
        case Kind::Text:
        case Kind::RequiredText:
            if (s.seen == Seen::String) {
                out.present = true;
                out.text = s.text;
            } else if (s.seen != Seen::Absent && s.seen != Seen::Null) {
                return "expected a string";
            }
            if (kind == Kind::RequiredText) {
                if (!out.present) return "missing required field";
                if (out.text.empty()) return "expected a non-empty string";
            }
            return nullptr;
        case Kind::Decimal:
            if (s.seen == Seen::Absent || s.seen == Seen::Null) return nullptr;
            if (s.seen != Seen::String && s.seen != Seen::Number)
                return "expected a decimal string";
            if (s.seen == Seen::String && s.text.empty()) return nullptr;  // Alpaca's "no value"
            // (a slot's text lies in the reader's buffer: decimal_shape<true> may read past it)
            if (!decimal_shape<true>(s.text, out.point, out.exponent))
                return "expected a decimal string";
            out.present = true;
            out.text = s.text;
            return nullptr;
        case Kind::Integer:
            if (s.seen == Seen::Absent || s.seen == Seen::Null) return nullptr;
            if ((s.seen != Seen::String && s.seen != Seen::Number) ||
                !parse_int64_text(s.text, out.integer))
                return "expected an integer";
            out.present = true;
            return nullptr;
        case Kind::Boolean:
            if (s.seen == Seen::Absent || s.seen == Seen::Null) return nullptr;
            if (s.seen != Seen::Bool) return "expected a boolean";
            out.present = true;
            out.boolean = s.boolean;
            return nullptr;
        case Kind::JsonArray:
            if (s.seen == Seen::Absent || s.seen == Seen::Null) return nullptr;
            if (s.seen != Seen::Captured) return "expected an array or null";
            out.present = true;
            out.text = s.text;
            return nullptr;
        case Kind::Raw:
            out.present = s.seen == Seen::String || s.seen == Seen::Number;
            out.boolean = s.seen == Seen::String;
            out.text = s.text;
            return nullptr;
    }
    return nullptr;
}

// Not Writer<StringBuffer> with the default flags: RapidJSON 1.1.0 specialises exactly that
// one with a SIMD scanner that would copy a control character (decoded from \u001C, say) raw
// into the output. A write flag that changes nothing else here (no doubles are written) keeps
// the plain scalar path, which escapes every control character.
using LegsWriter = rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                                     rapidjson::CrtAllocator, rapidjson::kWriteNanAndInfFlag>;

// The SAX handler: tracks depth, collects the current element's slots, captures legs.
class Handler {
  public:
    // check_decoded: the document holds \u escapes, so a decoded string may hold a NUL
    // (\u0000) or a lone low surrogate (RapidJSON refuses lone high ones only), neither of which
    // the raw text can (raw NULs and invalid UTF-8 were refused before parsing).
    Handler(const Shape &shape, RecordSink sink, rapidjson::StringBuffer &legs_buf,
            LegsWriter &legs, bool check_decoded)
        : shape_(shape),
          sink_(sink),
          legs_buf_(legs_buf),
          legs_(legs),
          elem_depth_(shape.array ? 2 : 1),
          check_decoded_(check_decoded) {}

    bool Null() { return capturing() ? legs_.Null() : scalar(Seen::Null, {}, false); }
    bool Bool(bool b) { return capturing() ? legs_.Bool(b) : scalar(Seen::Bool, {}, b); }
    // With kParseNumbersAsStringsFlag every number arrives through RawNumber.
    bool Int(int) { return false; }
    bool Uint(unsigned) { return false; }
    bool Int64(std::int64_t) { return false; }
    bool Uint64(std::uint64_t) { return false; }
    bool Double(double) { return false; }
    bool RawNumber(const char *s, SizeType len, bool) {
        if (capturing()) return legs_.RawValue(s, len, rapidjson::kNumberType);
        return scalar(Seen::Number, {s, len}, false);
    }
    bool String(const char *s, SizeType len, bool) {
        if (check_decoded_ && !decoded_ok(s, len)) return false;
        if (capturing()) return legs_.String(s, len);
        return scalar(Seen::String, {s, len}, false);
    }
    bool Key(const char *s, SizeType len, bool) {
        if (check_decoded_ && !decoded_ok(s, len)) return false;
        if (capturing()) return legs_.Key(s, len);
        if (in_elem_ && depth_ == elem_depth_) pending_ = shape_.find(s, len);
        return true;
    }
    bool StartObject() {
        if (capturing()) return enter() && legs_.StartObject();
        const int at = depth_;
        if (!enter()) return false;
        if (at == elem_depth_ - 1 && root_ok()) {
            begin_element();
        } else {
            value_at(at, Seen::Container, {}, false);
        }
        return true;
    }
    bool EndObject(SizeType) {
        if (capturing()) return --depth_, legs_.EndObject();
        if (in_elem_ && depth_ == elem_depth_) end_element();
        --depth_;
        return true;
    }
    bool StartArray() {
        if (capturing()) return enter() && legs_.StartArray();
        const int at = depth_;
        if (!enter()) return false;
        if (at == 0 && shape_.array) {
            root_array_ = true;
        } else if (at == elem_depth_ && in_elem_ && pending_ >= 0 &&
                   shape_.specs[pending_].kind == Kind::JsonArray &&
                   slots_[static_cast<std::size_t>(pending_)].seen == Seen::Absent) {
            capture_field_ = pending_;
            pending_ = -1;
            capture_depth_ = depth_;
            legs_buf_.Clear();
            legs_.Reset(legs_buf_);
            return legs_.StartArray();
        } else {
            value_at(at, Seen::Container, {}, false);
        }
        return true;
    }
    bool EndArray(SizeType) {
        if (capturing()) {
            const bool ok = legs_.EndArray();
            if (depth_ == capture_depth_) {
                Slot &s = slots_[static_cast<std::size_t>(capture_field_)];
                s.seen = Seen::Captured;
                s.text = std::string_view(legs_buf_.GetString(), legs_buf_.GetSize());
                capture_field_ = -1;
            }
            --depth_;
            return ok;
        }
        --depth_;
        return true;
    }

    bool too_deep() const { return too_deep_; }
    bool has_nul() const { return nul_; }
    bool has_lone_surrogate() const { return lone_surrogate_; }
    const std::exception_ptr &deferred() const { return deferred_; }

  private:
    bool capturing() const { return capture_field_ >= 0; }
    [[gnu::noinline]] bool decoded_ok(const char *s, SizeType len) {
        if (std::memchr(s, 0, len) != nullptr) return nul_ = true, false;
        if (invalid_utf8_at(reinterpret_cast<const unsigned char *>(s), len) !=
            std::string_view::npos)
            return lone_surrogate_ = true, false;
        return true;
    }
    bool enter() {
        if (++depth_ > kMaxDepth) return too_deep_ = true, false;
        return true;
    }
    // The document's root is what the shape wants (an array of elements, or one object).
    bool root_ok() const { return shape_.array ? root_array_ : true; }

    bool scalar(Seen seen, std::string_view text, bool b) {
        value_at(depth_, seen, text, b);
        return true;
    }
    // A value (or the start of a container) found at nesting depth `at`.
    void value_at(int at, Seen seen, std::string_view text, bool b) {
        if (at == 0) {
            defer_root();
        } else if (shape_.array && at == 1) {
            defer_element(next_index_++);  // an element that is not an object
        } else if (at == elem_depth_ && in_elem_ && pending_ >= 0) {
            Slot &s = slots_[static_cast<std::size_t>(pending_)];
            if (s.seen == Seen::Absent) s = Slot{seen, b, text};  // first occurrence wins
            pending_ = -1;
        }
    }
    void begin_element() {
        in_elem_ = true;
        pending_ = -1;
        index_ = shape_.array ? next_index_++ : 0;
        for (int i = 0; i < shape_.n; ++i) slots_[static_cast<std::size_t>(i)] = Slot{};
    }
    void end_element() {
        in_elem_ = false;
        if (failed_) return;
        std::array<FieldValue, kMaxFields> &values = values_;
        for (int i = 0; i < shape_.n; ++i) {
            const auto k = static_cast<std::size_t>(i);
            if (const char *bad = validate(shape_.specs[i].kind, slots_[k], values[k])) {
                defer_field(i, bad);
                return;
            }
        }
        try {
            sink_(Record(values.data(), shape_.what, shape_.array, index_));
        } catch (...) {
            deferred_ = std::current_exception();
            failed_ = true;
        }
    }
    // The error paths stay out of line: the hot SAX callbacks keep small frames.
    [[gnu::noinline, gnu::cold]] void defer_root() {
        defer(shape_.what, shape_.array ? "expected an array" : "expected a JSON object");
    }
    [[gnu::noinline, gnu::cold]] void defer_element(std::size_t index) {
        if (!failed_)
            defer(std::string(shape_.what) + "[" + std::to_string(index) + "]",
                  "expected a JSON object");
    }
    [[gnu::noinline, gnu::cold]] void defer_field(int field, const char *what) {
        const Record r(values_.data(), shape_.what, shape_.array, index_);
        defer(r.where() + "." + shape_.specs[field].name, what);
    }
    [[gnu::noinline, gnu::cold]] void defer(const std::string &where, const char *what) {
        if (failed_) return;
        failed_ = true;
        deferred_ =
            std::make_exception_ptr(Error(ErrorCode::Protocol, "alpaca " + where + ": " + what));
    }

    const Shape &shape_;
    RecordSink sink_;
    rapidjson::StringBuffer &legs_buf_;
    LegsWriter &legs_;
    const int elem_depth_;
    const bool check_decoded_;
    int depth_ = 0;
    bool root_array_ = false;
    bool in_elem_ = false;
    int pending_ = -1;        // field of the key just read, -1 for an unknown key
    int capture_field_ = -1;  // the field whose array is being re-serialised
    int capture_depth_ = 0;
    std::size_t index_ = 0, next_index_ = 0;
    bool too_deep_ = false, nul_ = false, lone_surrogate_ = false, failed_ = false;
    std::exception_ptr deferred_;
    std::array<Slot, kMaxFields> slots_{};
    std::array<FieldValue, kMaxFields> values_{};
};

}  // namespace
}  // namespace pga

#if defined(__SSE2__)
namespace rapidjson {
// RapidJSON's ParseString for our stream and handler, with its common case done in one scan: a
// string with no escape up to its closing quote (every key and value Alpaca sends) is found
// with 16-byte loads from its first byte, terminated in place and handed to the handler; from
// the first backslash or control byte on, RapidJSON's own ParseStringToStream goes on from
// there (escapes, errors and their offsets as before). Same stream positions, same results.
// Without kParseCommentsFlag, only the whitespace: inline at every call (the common case is
// no whitespace at all: one test).
template <>
template <>
[[gnu::always_inline]] inline void
GenericReader<UTF8<>, UTF8<>, CrtAllocator>::SkipWhitespaceAndComments<
    pga::kParseFlags, pga::PaddedInsituStream>(pga::PaddedInsituStream &is) {
    static_assert((pga::kParseFlags & kParseCommentsFlag) == 0, "comments: RapidJSON's own");
    SkipWhitespace(is);
}

template <>
template <>
inline void GenericReader<UTF8<>, UTF8<>, CrtAllocator>::ParseString<
    pga::kParseFlags, pga::PaddedInsituStream, pga::Handler>(pga::PaddedInsituStream &is,
                                                             pga::Handler &handler, bool isKey) {
    RAPIDJSON_ASSERT(is.Peek() == '\"');
    is.Take();  // Skip '"'
    char *const head = is.PutBegin();
    char *p = head;
    const __m128i dq = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'), le1f = _mm_set1_epi8(0x1F);
    for (;;) {  // the padding after the document (zero bytes) stops this inside the buffer
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
        const __m128i stop =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, dq), _mm_cmpeq_epi8(v, bs)),
                         _mm_cmpeq_epi8(_mm_max_epu8(v, le1f), le1f));
        const unsigned r = unsigned(_mm_movemask_epi8(stop));
        if (r != 0) {
            p += __builtin_ctz(r);
            break;
        }
        p += 16;
    }
    size_t length;
    if (RAPIDJSON_LIKELY(*p == '"')) {
        *p = '\0';
        is.src_ = is.dst_ = p + 1;
        length = static_cast<size_t>(p - head);
    } else {
        is.src_ = is.dst_ = p;
        ParseStringToStream<pga::kParseFlags, UTF8<>, UTF8<>>(is, is);
        RAPIDJSON_PARSE_ERROR_EARLY_RETURN_VOID;
        length = is.PutEnd(head) - 1;
    }
    RAPIDJSON_ASSERT(length <= 0xFFFFFFFF);
    const bool success = isKey ? handler.Key(head, SizeType(length), false)
                               : handler.String(head, SizeType(length), false);
    if (RAPIDJSON_UNLIKELY(!success)) RAPIDJSON_PARSE_ERROR(kParseErrorTermination, is.Tell());
}
}  // namespace rapidjson
#endif

namespace pga {
namespace {

OptString opt(const FieldValue &v) {
    if (!v.present) return std::nullopt;
    return std::string(v.text);
}
OptInt opt_int(const FieldValue &v) {
    if (!v.present) return std::nullopt;
    return v.integer;
}
OptBool opt_bool(const FieldValue &v) {
    if (!v.present) return std::nullopt;
    return v.boolean;
}

}  // namespace

// ---------------------------------------------------------------- AlpacaReader
struct __attribute__((visibility("hidden"))) AlpacaReader::Impl {
    std::vector<char> buf;  // in-situ copy of the document (+ NUL + SIMD padding)
    rapidjson::StringBuffer legs_buf;
    LegsWriter legs{legs_buf};
    rapidjson::Reader reader;

    void read(const Shape &shape, std::string_view json, RecordSink sink) {
        struct Release {  // a one-off huge document does not stay pinned in memory
            Impl &impl;
            ~Release() {
                if (impl.buf.size() > kKeepBuffer) std::vector<char>().swap(impl.buf);
                if (impl.legs_buf.GetSize() > kKeepBuffer) impl.legs_buf.ShrinkToFit();
            }
        } release{*this};

        const std::size_t need = json.size() + 1 + kPadding;
        if (buf.size() < need) buf.resize(need);
        bool backslash = false;
        const std::size_t bad = invalid_document_byte_at(
            reinterpret_cast<const unsigned char *>(json.data()), json.size(),
            reinterpret_cast<unsigned char *>(buf.data()), backslash);
        if (bad != std::string_view::npos) {
            // JSON text never holds a raw NUL (the in-situ reader would take one for the end):
            // a NUL anywhere is the complaint, before any other bad byte.
            if (std::memchr(json.data(), 0, json.size()) != nullptr)
                fail(shape.what, "malformed JSON (NUL byte)");
            const bool control = static_cast<unsigned char>(json[bad]) < 0x80;
            fail(shape.what, std::string("malformed JSON (") +
                                 (control ? "A control character must be escaped."
                                          : "Invalid encoding in string.") +
                                 ") at offset " + std::to_string(bad));
        }
        std::memset(buf.data() + json.size(), 0, 1 + kPadding);

        const bool check_decoded =
            backslash && std::string_view(json).find("\\u") != std::string_view::npos;
        Handler h(shape, sink, legs_buf, legs, check_decoded);
        PaddedInsituStream is(buf.data());
        const rapidjson::ParseResult result = reader.Parse<kParseFlags>(is, h);
        if (h.too_deep())
            fail(shape.what, "JSON nested deeper than " + std::to_string(kMaxDepth) + " levels");
        if (h.has_nul()) fail(shape.what, "JSON string contains a NUL character");
        if (h.has_lone_surrogate())
            fail(shape.what, "malformed JSON (The surrogate pair in string is invalid.)");
        if (result.IsError()) {
            fail(shape.what, std::string("malformed JSON (") +
                                 rapidjson::GetParseError_En(result.Code()) + ") at offset " +
                                 std::to_string(result.Offset()));
        }
        if (h.deferred()) std::rethrow_exception(h.deferred());
    }
};

AlpacaReader::AlpacaReader() : impl_(std::make_unique<Impl>()) {}
AlpacaReader::~AlpacaReader() = default;

void AlpacaReader::read_account(std::string_view json, RecordSink sink) {
    impl_->read(account_shape(), json, sink);
}
void AlpacaReader::read_positions(std::string_view json, RecordSink sink) {
    impl_->read(position_shape(), json, sink);
}
void AlpacaReader::read_orders(std::string_view json, RecordSink sink) {
    impl_->read(order_shape(), json, sink);
}

std::string Record::where() const {
    std::string w(what_);
    if (in_array_) w += "[" + std::to_string(index_) + "]";
    return w;
}

// ---------------------------------------------------------------- owning structs
bool is_decimal_text(std::string_view s) noexcept {
    std::uint32_t point;
    bool exponent;
    return decimal_shape<false>(s, point, exponent);
}

AlpacaAccount parse_account(std::string_view json) {
    namespace f = account_field;
    AlpacaAccount a;
    bool seen = false;
    AlpacaReader reader;
    reader.read_account(json, [&](const Record &r) {
        seen = true;
        a.id = std::string(r[f::id].text);
        a.account_number = std::string(r[f::account_number].text);
        a.status = std::string(r[f::status].text);
        a.crypto_status = opt(r[f::crypto_status]);
        a.currency = opt(r[f::currency]);
        a.cash = opt(r[f::cash]);
        a.buying_power = opt(r[f::buying_power]);
        a.regt_buying_power = opt(r[f::regt_buying_power]);
        a.daytrading_buying_power = opt(r[f::daytrading_buying_power]);
        a.non_marginable_buying_power = opt(r[f::non_marginable_buying_power]);
        a.options_buying_power = opt(r[f::options_buying_power]);
        a.equity = opt(r[f::equity]);
        a.last_equity = opt(r[f::last_equity]);
        a.portfolio_value = opt(r[f::portfolio_value]);
        a.long_market_value = opt(r[f::long_market_value]);
        a.short_market_value = opt(r[f::short_market_value]);
        a.initial_margin = opt(r[f::initial_margin]);
        a.maintenance_margin = opt(r[f::maintenance_margin]);
        a.last_maintenance_margin = opt(r[f::last_maintenance_margin]);
        a.sma = opt(r[f::sma]);
        a.multiplier = opt(r[f::multiplier]);
        a.accrued_fees = opt(r[f::accrued_fees]);
        a.pending_transfer_in = opt(r[f::pending_transfer_in]);
        a.pending_transfer_out = opt(r[f::pending_transfer_out]);
        a.daytrade_count = opt_int(r[f::daytrade_count]);
        a.options_approved_level = opt_int(r[f::options_approved_level]);
        a.options_trading_level = opt_int(r[f::options_trading_level]);
        a.pattern_day_trader = opt_bool(r[f::pattern_day_trader]);
        a.shorting_enabled = opt_bool(r[f::shorting_enabled]);
        a.trading_blocked = opt_bool(r[f::trading_blocked]);
        a.transfers_blocked = opt_bool(r[f::transfers_blocked]);
        a.account_blocked = opt_bool(r[f::account_blocked]);
        a.trade_suspended_by_user = opt_bool(r[f::trade_suspended_by_user]);
        a.created_at = opt(r[f::created_at]);
        a.balance_asof = opt(r[f::balance_asof]);
    });
    if (!seen) fail("account", "expected a JSON object");  // not reached: the reader says so
    return a;
}

std::vector<AlpacaPosition> parse_positions(std::string_view json) {
    namespace f = position_field;
    std::vector<AlpacaPosition> out;
    AlpacaReader reader;
    reader.read_positions(json, [&](const Record &r) {
        AlpacaPosition &x = out.emplace_back();
        x.symbol = std::string(r[f::symbol].text);
        x.asset_id = opt(r[f::asset_id]);
        x.exchange = opt(r[f::exchange]);
        x.asset_class = opt(r[f::asset_class]);
        x.side = opt(r[f::side]);
        x.qty = opt(r[f::qty]);
        x.qty_available = opt(r[f::qty_available]);
        x.avg_entry_price = opt(r[f::avg_entry_price]);
        x.market_value = opt(r[f::market_value]);
        x.cost_basis = opt(r[f::cost_basis]);
        x.unrealized_pl = opt(r[f::unrealized_pl]);
        x.unrealized_plpc = opt(r[f::unrealized_plpc]);
        x.unrealized_intraday_pl = opt(r[f::unrealized_intraday_pl]);
        x.unrealized_intraday_plpc = opt(r[f::unrealized_intraday_plpc]);
        x.current_price = opt(r[f::current_price]);
        x.lastday_price = opt(r[f::lastday_price]);
        x.change_today = opt(r[f::change_today]);
    });
    return out;
}

std::vector<AlpacaOrder> parse_orders(std::string_view json) {
    namespace f = order_field;
    std::vector<AlpacaOrder> out;
    AlpacaReader reader;
    reader.read_orders(json, [&](const Record &r) {
        AlpacaOrder &o = out.emplace_back();
        o.id = std::string(r[f::id].text);
        o.client_order_id = opt(r[f::client_order_id]);
        o.symbol = opt(r[f::symbol]);
        o.asset_id = opt(r[f::asset_id]);
        o.asset_class = opt(r[f::asset_class]);
        o.side = opt(r[f::side]);
        o.type = opt(r[f::type]);
        o.order_type = opt(r[f::order_type]);
        o.time_in_force = opt(r[f::time_in_force]);
        o.status = opt(r[f::status]);
        o.order_class = opt(r[f::order_class]);
        o.position_intent = opt(r[f::position_intent]);
        o.qty = opt(r[f::qty]);
        o.notional = opt(r[f::notional]);
        o.filled_qty = opt(r[f::filled_qty]);
        o.filled_avg_price = opt(r[f::filled_avg_price]);
        o.limit_price = opt(r[f::limit_price]);
        o.stop_price = opt(r[f::stop_price]);
        o.trail_price = opt(r[f::trail_price]);
        o.trail_percent = opt(r[f::trail_percent]);
        o.hwm = opt(r[f::hwm]);
        o.created_at = opt(r[f::created_at]);
        o.updated_at = opt(r[f::updated_at]);
        o.submitted_at = opt(r[f::submitted_at]);
        o.filled_at = opt(r[f::filled_at]);
        o.expired_at = opt(r[f::expired_at]);
        o.canceled_at = opt(r[f::canceled_at]);
        o.failed_at = opt(r[f::failed_at]);
        o.replaced_at = opt(r[f::replaced_at]);
        o.extended_hours = opt_bool(r[f::extended_hours]);
        o.legs_json = opt(r[f::legs]);
    });
    return out;
}

AlpacaError parse_error_body(std::string_view json) noexcept {
    AlpacaError out;
    try {
        AlpacaReader::Impl impl;
        impl.read(error_shape(), json, [&](const Record &r) {
            std::int64_t c = 0;
            if (r[0].present && parse_int64_text(r[0].text, c)) out.code = c;
            if (r[1].present && r[1].boolean)  // a real string, not a number
                out.message = escape_for_error(r[1].text, kMaxAlpacaErrorMessage);
        });
    } catch (...) {
        out = AlpacaError{};
    }
    return out;
}

}  // namespace pga
