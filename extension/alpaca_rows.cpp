// Alpaca JSON text -> typed rows: alpaca_parse_account, alpaca_parse_positions,
// alpaca_parse_orders (and their twins alpaca._parse_*). Pure functions (IMMUTABLE PARALLEL
// SAFE).
//
// Each row shape is declared once in SQL, as a composite type (alpaca.account_row,
// alpaca.position_row, alpaca.order_row), and once here, as a column list that names every
// column with its type and how it is filled. At first use in a backend (and again whenever the
// type changes) the list is matched by name against the type's TupleDesc; any difference is an
// internal error naming the column. Adding a column = ALTER TYPE ... ADD ATTRIBUTE in an update
// script + one line in a list below.
//
// Speed: common/alpaca_models streams the document (RapidJSON SAX, in situ, no DOM) and hands
// each element over as views; values are built straight into Datums in a per-row bump arena
// (a memory context reset after every row for what does not fit): numeric from the decimal
// digits (NBASE digits, exactly what numeric_in makes; the point found while common/ validated
// the text), timestamptz from RFC 3339 fields (the arithmetic timestamptz_in does), uuid from
// its hex. Each row's tuple is laid out here as heap_form_minimal_tuple would (TupleBatch) and
// handed to tuplestore_puttuple a few dozen rows per guarded call. Anything outside those fast
// paths (an exponent, a leap second, a non-canonical uuid, an
// impossible date) goes through the type's own input function, as before, so the results and
// the error messages are those of PostgreSQL. A malformed document is XX000 ("malformed Alpaca
// answer: orders[3].filled_at: ...") naming the element and field, never echoing the document.
#include "common/alpaca_models.hpp"
#include "common/error.hpp"
#include "common/occ_symbol.hpp"

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "extension/alpaca_rows.hpp"
#include "extension/pg_values.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/tupmacs.h"
#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/errcodes.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/tuplestore.h"
#include "utils/typcache.h"
}

namespace {

using pga::Record;
using pga::pg::PgError;

// Prefix of every message about a document that is not Alpaca's shape (README, Troubleshooting).
const std::string kMalformed = "malformed Alpaca answer: ";

// YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|+HH:MM|-HH:MM): the form Alpaca sends. Field
// ranges are left to timestamptz_in, which reports them with its own message.
bool is_rfc3339(std::string_view s) {
    std::size_t i = 0;
    auto digits = [&](std::size_t n) {
        for (std::size_t k = 0; k < n; ++k, ++i)
            if (i >= s.size() || s[i] < '0' || s[i] > '9') return false;
        return true;
    };
    auto lit = [&](const char *set) {
        if (i >= s.size() || std::strchr(set, s[i]) == nullptr || s[i] == '\0') return false;
        ++i;
        return true;
    };
    if (!(digits(4) && lit("-") && digits(2) && lit("-") && digits(2) && lit("Tt ") && digits(2) &&
          lit(":") && digits(2) && lit(":") && digits(2)))
        return false;
    if (i < s.size() && s[i] == '.') {
        ++i;
        const std::size_t start = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        if (i == start) return false;
    }
    if (lit("Zz")) return i == s.size();
    return lit("+-") && digits(2) && lit(":") && digits(2) && i == s.size();
}

int num(std::string_view s, std::size_t at, std::size_t n) {
    int v = 0;
    for (std::size_t k = 0; k < n; ++k) v = v * 10 + (s[at + k] - '0');
    return v;
}

// ---------------------------------------------------------------- numeric, built directly
// The varlena layout of numeric (src/backend/utils/adt/numeric.c; the on-disk format, stable):
// int32 varlena header, then either the short header (uint16: 0x8000 | sign 0x2000 |
// dscale << 7 | weight sign 0x0040 | weight & 0x3F) or the long one (uint16 sign 0x4000 |
// dscale, int16 weight), then base-10000 digits, int16 each, leading and trailing zero digits
// stripped; zero is positive with weight 0 and no digits.
constexpr std::uint16_t kNumericShort = 0x8000, kNumericShortSign = 0x2000,
                        kNumericShortWeightSign = 0x0040, kNumericShortWeightMask = 0x003F,
                        kNumericNeg = 0x4000, kNumericDscaleMask = 0x3FFF;
constexpr int kNumericShortDscaleShift = 7, kNumericShortDscaleMax = 0x1F80 >> 7;
constexpr std::size_t kFastDigits = 64;  // longer integer or fraction parts: numeric_in

// ---------------------------------------------------------------- columns
// Scratch memory for the values of one row, which are copied into the row's tuple before the
// next row starts: a bump allocator over a buffer of the call (no palloc per value).
class RowArena {
  public:
    void *take(std::size_t n) {
        n = MAXALIGN(n);
        if (n > sizeof buf_ - used_) return nullptr;
        void *p = reinterpret_cast<char *>(buf_) + used_;
        used_ += n;
        return p;
    }
    void reset() { used_ = 0; }

  private:
    std::uint64_t buf_[512];  // 4 KB: a row of Alpaca's values needs a few hundred bytes
    std::size_t used_ = 0;
};

// One row under construction. Allocations come from the row's arena or, when it is full, from
// a context reset after every row, and never ereport (MCXT_ALLOC_NO_OOM; a failure is
// std::bad_alloc, reported by the guard).
class RowBuilder {
  public:
    RowBuilder(const Record &r, MemoryContext cxt, RowArena &arena, bool verify_text)
        : r_(r), cxt_(cxt), arena_(arena), verify_text_(verify_text) {}
    const Record &record() const { return r_; }

    void *alloc(std::size_t n) {
        if (void *p = arena_.take(n)) return p;
        if (n >= MaxAllocSize) throw std::bad_alloc();
        void *p = MemoryContextAllocExtended(cxt_, n, MCXT_ALLOC_NO_OOM);
        if (p == nullptr) throw std::bad_alloc();
        return p;
    }

    Datum text(std::string_view v, const char *field) {
        // The JSON was UTF-8 with no NUL; other database encodings get their own check.
        if (verify_text_ && !pg_verifymbstr(v.data(), (int)v.size(), true))
            malformed(field, "not valid text");
        auto *t = static_cast<struct varlena *>(alloc(VARHDRSZ + v.size()));
        SET_VARSIZE(t, VARHDRSZ + v.size());
        std::memcpy(VARDATA(t), v.data(), v.size());
        return PointerGetDatum(t);
    }

    // A decimal field, validated by common/ (which found its point).
    Datum numeric(const pga::FieldValue &v, const char *field) {
        Datum d;
        if (!v.exponent && numeric_at_point(v.text, v.point, d)) return d;
        return numeric(v.text, field);
    }

    Datum numeric(std::string_view v, const char *field) {
        Datum d;
        if (numeric_fast(v, d)) return d;
        const std::string s(v);
        return input(field, [&] {
            return DirectFunctionCall3(numeric_in, CStringGetDatum(s.c_str()),
                                       ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
        });
    }

    Datum timestamptz(std::string_view v, const char *field) {
        // Only RFC 3339 with an explicit offset: timestamptz_in alone would also take "now",
        // "infinity" or a zone-less time read in the session's TimeZone, none of which an
        // IMMUTABLE parser may turn into a value.
        if (!is_rfc3339(v)) malformed(field, "not an RFC 3339 timestamp with an offset");
        TimestampTz t;
        if (timestamptz_fast(v, t)) return TimestampTzGetDatum(t);
        const std::string s(v);
        return input(field, [&] {
            return DirectFunctionCall3(timestamptz_in, CStringGetDatum(s.c_str()),
                                       ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
        });
    }

    Datum uuid(std::string_view v, const char *field) {
        if (v.size() == 36) {
            auto *u = static_cast<pg_uuid_t *>(alloc(sizeof(pg_uuid_t)));
            if (uuid_fast(v, u->data)) return UUIDPGetDatum(u);
        }
        const std::string s(v);
        return input(field,
                     [&] { return DirectFunctionCall1(uuid_in, CStringGetDatum(s.c_str())); });
    }

    Datum jsonb(std::string_view v, const char *field) {
        const std::string s(v);
        return input(field,
                     [&] { return DirectFunctionCall1(jsonb_in, CStringGetDatum(s.c_str())); });
    }

    // The OCC fields of an option position, parsed once per row.
    const std::optional<pga::OccSymbol> &occ() {
        if (!occ_done_) {
            occ_done_ = true;
            const pga::FieldValue &cls = r_[pga::position_field::asset_class];
            if (cls.present && cls.text == "us_option")
                occ_ = pga::parse_occ_symbol(r_[pga::position_field::symbol].text);
        }
        return occ_;
    }

    [[noreturn]] void malformed(const char *field, const std::string &what) const {
        throw PgError(ERRCODE_INTERNAL_ERROR, kMalformed + r_.where() + "." + field + ": " + what);
    }

  private:
    // Runs a type input function (in the row context); its error (e.g. an impossible
    // timestamp) becomes XX000 naming the field, with PostgreSQL's own message as detail.
    template <typename F>
    Datum input(const char *field, F &&f) {
        const MemoryContext old = MemoryContextSwitchTo(cxt_);
        try {
            Datum d = pga::pg::call(f);
            MemoryContextSwitchTo(old);
            return d;
        } catch (const PgError &e) {
            MemoryContextSwitchTo(old);
            if (e.sqlstate() == ERRCODE_QUERY_CANCELED || e.sqlstate() == ERRCODE_OUT_OF_MEMORY)
                throw;
            throw PgError(ERRCODE_INTERNAL_ERROR,
                          kMalformed + r_.where() + "." + field + ": not a valid value",
                          pga::escape_for_error(e.what(), 200));
        } catch (...) {
            MemoryContextSwitchTo(old);
            throw;
        }
    }

    // -?digits[.digits] (already validated by common/) into the exact Numeric numeric_in
    // would make; false for what it leaves to numeric_in (an exponent, very long parts).
    bool numeric_fast(std::string_view s, Datum &out) {
        const char *p = s.data();
        const char *const end = p + s.size();
        if (p < end && *p == '-') ++p;
        const auto is_digit = [](char c) { return (unsigned char)(c - '0') < 10; };
        const char *const ib = p;
        while (p < end && is_digit(*p)) ++p;
        const char *const ie = p;
        if (p < end && *p == '.') {
            ++p;
            while (p < end && is_digit(*p)) ++p;
        }
        if (p != end || ie == ib) return false;  // exponent or not a decimal
        return numeric_at_point(s, (std::size_t)(ie - s.data()), out);
    }

    // s: -?digits[.digits] with its '.' (or its end) at offset point.
    bool numeric_at_point(std::string_view s, std::size_t point, Datum &out) {
        const char *const start = s.data();
        const char *const end = start + s.size();
        const bool neg = start < end && *start == '-';
        const char *ib = start + (neg ? 1 : 0);
        const char *const ie = start + point;
        const char *const fb = ie < end ? ie + 1 : ie;
        const char *const fraw = end;
        if ((std::size_t)(ie - ib) > kFastDigits || (std::size_t)(fraw - fb) > kFastDigits)
            return false;
        const int dscale = (int)(fraw - fb);
        while (ib < ie && *ib == '0') ++ib;  // leading zeros of the integer part
        const char *fe = fraw;
        while (fe > fb && fe[-1] == '0') --fe;  // trailing zeros of the fraction

        // Base-10000 digits, grouped by 4 decimal digits from the point: the first integer
        // group may be short (zeros on its left), the last fraction group is padded with
        // zeros on its right. Written straight into the value (room for the most digits).
        const std::size_t il = (std::size_t)(ie - ib);
        const char *f = fb;  // the next fraction digit to group
        int weight;
        if (il > 0) {
            weight = (int)((il + 3) / 4) - 1;
        } else {
            // No integer part: skip whole groups of leading fraction zeros.
            const char *z = fb;
            while (z < fe && *z == '0') ++z;
            if (z == fe) return emit_zero(dscale, out);
            const std::size_t zero_groups = (std::size_t)(z - fb) / 4;
            weight = -1 - (int)zero_groups;
            f = fb + zero_groups * 4;
        }
        const bool is_short = dscale <= kNumericShortDscaleMax &&
                              weight <= kNumericShortWeightMask &&
                              weight >= -(kNumericShortWeightMask + 1);
        const std::size_t hdr = VARHDRSZ + (is_short ? 2 : 4);
        const std::size_t max_nd = (il + 3) / 4 + (std::size_t)(fe - f + 3) / 4;
        char *const p = static_cast<char *>(alloc(hdr + max_nd * sizeof(std::int16_t)));
        char *const d = p + hdr;
        std::size_t nd = 0;
        const auto put = [&](int g) {
            const auto v = (std::int16_t)g;
            std::memcpy(d + sizeof v * nd++, &v, sizeof v);
        };
        const auto group4 = [](const char *x) {  // "dddd" -> its value, two digits at a time
            std::uint32_t v;
            std::memcpy(&v, x, 4);
            v -= 0x30303030u;
            v = (v * 10 + (v >> 8)) & 0x00FF00FFu;
            return (int)((v * 100 + (v >> 16)) & 0xFFFFu);
        };
        if (il > 0) {
            const char *x = ib;
            const char *const first_end = ib + (il - ((il + 3) / 4 - 1) * 4);
            int g = 0;
            for (; x < first_end; ++x) g = g * 10 + (*x - '0');
            put(g);
            for (; x < ie; x += 4) put(group4(x));
        }
        for (; fe - f >= 4; f += 4) put(group4(f));
        if (f < fe) {
            int g = 0, k = 0;
            for (; f < fe; ++f, ++k) g = g * 10 + (*f - '0');
            for (; k < 4; ++k) g *= 10;
            put(g);
        }
        // Strip trailing zero groups (e.g. 10000 -> one digit 1 of weight 1).
        while (nd > 0 && d[2 * nd - 1] == 0 && d[2 * nd - 2] == 0) --nd;
        if (nd == 0) return emit_zero(dscale, out);  // (not reached: a digit is not 0)
        const std::size_t len = hdr + nd * sizeof(std::int16_t);
        SET_VARSIZE(p, len);
        write_numeric_header(p, is_short, neg, weight, dscale);
        out = PointerGetDatum(p);
        return true;
    }

    static void write_numeric_header(char *p, bool is_short, bool neg, int weight, int dscale) {
        if (is_short) {
            const std::uint16_t h = (std::uint16_t)(kNumericShort | (neg ? kNumericShortSign : 0) |
                                                    (dscale << kNumericShortDscaleShift) |
                                                    (weight < 0 ? kNumericShortWeightSign : 0) |
                                                    (weight & kNumericShortWeightMask));
            std::memcpy(p + VARHDRSZ, &h, 2);
        } else {
            const std::uint16_t sd =
                (std::uint16_t)((neg ? kNumericNeg : 0) | (dscale & kNumericDscaleMask));
            const std::int16_t w = (std::int16_t)weight;
            std::memcpy(p + VARHDRSZ, &sd, 2);
            std::memcpy(p + VARHDRSZ + 2, &w, 2);
        }
    }

    // Zero of scale dscale, as numeric_in makes it (no digits, weight 0, positive).
    bool emit_zero(int dscale, Datum &out) {
        const bool is_short = dscale <= kNumericShortDscaleMax;
        const std::size_t len = VARHDRSZ + (is_short ? 2 : 4);
        auto *p = static_cast<char *>(alloc(len));
        SET_VARSIZE(p, len);
        write_numeric_header(p, is_short, false, 0, dscale);
        out = PointerGetDatum(p);
        return true;
    }

    // An RFC 3339 text (is_rfc3339) with ordinary field values, computed the way
    // timestamptz_in does (tm2timestamp; the fraction rounded with rint(strtod * 1e6) as
    // ParseFractionalSecond does); false leaves the value, or the error, to timestamptz_in.
    static bool timestamptz_fast(std::string_view s, TimestampTz &out) {
        const int year = num(s, 0, 4), month = num(s, 5, 2), day = num(s, 8, 2);
        const int hour = num(s, 11, 2), minute = num(s, 14, 2), second = num(s, 17, 2);
        static const int kDays[2][12] = {{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31},
                                         {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}};
        if (year < 1000 || month < 1 || month > 12 || day < 1 ||
            day > kDays[isleap(year) ? 1 : 0][month - 1] || hour > 23 || minute > 59 || second > 59)
            return false;
        std::size_t i = 19;
        std::int64_t fsec = 0;
        if (s[i] == '.') {
            const std::size_t start = i;
            ++i;
            while (s[i] >= '0' && s[i] <= '9') ++i;
            const std::size_t nfrac = i - start - 1;
            if (nfrac <= 6) {
                for (std::size_t k = 0; k < 6; ++k)
                    fsec = fsec * 10 + (k < nfrac ? s[start + 1 + k] - '0' : 0);
            } else {
                char buf[64];
                if (i - start >= sizeof buf) return false;
                std::memcpy(buf, s.data() + start, i - start);
                buf[i - start] = '\0';
                fsec = (std::int64_t)std::rint(std::strtod(buf, nullptr) * 1000000.0);
            }
        }
        int offset = 0;  // seconds east of UTC
        if (s[i] != 'Z' && s[i] != 'z') {
            const int oh = num(s, i + 1, 2), om = num(s, i + 4, 2);
            if (oh > 15 || om > 59) return false;
            offset = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
        }
        const std::int64_t days = date2j(year, month, day) - POSTGRES_EPOCH_JDATE;
        const std::int64_t time =
            ((std::int64_t)((hour * 60 + minute) * 60 + second)) * USECS_PER_SEC + fsec;
        out = days * USECS_PER_DAY + time - (std::int64_t)offset * USECS_PER_SEC;
        return true;
    }

    // 8-4-4-4-12 hex digits.
    static bool uuid_fast(std::string_view s, unsigned char *out) {
        auto hex = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        };
        std::size_t j = 0;
        for (std::size_t i = 0; i < 36;) {
            if (i == 8 || i == 13 || i == 18 || i == 23) {
                if (s[i] != '-') return false;
                ++i;
                continue;
            }
            const int h = hex(s[i]), l = hex(s[i + 1]);
            if (h < 0 || l < 0) return false;
            out[j++] = (unsigned char)(h << 4 | l);
            i += 2;
        }
        return true;
    }

    const Record &r_;
    MemoryContext cxt_;
    RowArena &arena_;
    bool verify_text_;
    bool occ_done_ = false;
    std::optional<pga::OccSymbol> occ_;
};

// A column: its SQL name and type, how it is filled (false = NULL), the JSON field it comes
// from (-1: derived) and the name error messages give that field.
struct Column {
    const char *name;
    Oid type;
    bool (*fill)(RowBuilder &, const Column &, Datum &);
    int field;
    const char *json;
};

const pga::FieldValue &value(RowBuilder &b, const Column &c) {
    return b.record()[c.field];
}
bool text_col(RowBuilder &b, const Column &c, Datum &out) {
    const pga::FieldValue &v = value(b, c);
    if (!v.present) return false;
    out = b.text(v.text, c.json);
    return true;
}
bool numeric_col(RowBuilder &b, const Column &c, Datum &out) {
    const pga::FieldValue &v = value(b, c);
    if (!v.present) return false;
    out = b.numeric(v, c.json);
    return true;
}
bool timestamptz_col(RowBuilder &b, const Column &c, Datum &out) {
    const pga::FieldValue &v = value(b, c);
    if (!v.present) return false;
    out = b.timestamptz(v.text, c.json);
    return true;
}
bool uuid_col(RowBuilder &b, const Column &c, Datum &out) {
    const pga::FieldValue &v = value(b, c);
    if (!v.present) return false;
    out = b.uuid(v.text, c.json);
    return true;
}
bool jsonb_col(RowBuilder &b, const Column &c, Datum &out) {
    const pga::FieldValue &v = value(b, c);
    if (!v.present) return false;
    out = b.jsonb(v.text, c.json);
    return true;
}
bool bool_col(RowBuilder &b, const Column &c, Datum &out) {
    const pga::FieldValue &v = value(b, c);
    if (!v.present) return false;
    out = BoolGetDatum(v.boolean);
    return true;
}
bool int4_col(RowBuilder &b, const Column &c, Datum &out) {
    const pga::FieldValue &v = value(b, c);
    if (!v.present) return false;
    if (v.integer < std::numeric_limits<std::int32_t>::min() ||
        v.integer > std::numeric_limits<std::int32_t>::max())
        b.malformed(c.json, "out of range for integer");
    out = Int32GetDatum((std::int32_t)v.integer);
    return true;
}
// orders.type: "type", or the older "order_type" when "type" is absent.
bool order_type_col(RowBuilder &b, const Column &c, Datum &out) {
    const pga::FieldValue &t = b.record()[pga::order_field::type];
    const pga::FieldValue &v = t.present ? t : b.record()[pga::order_field::order_type];
    if (!v.present) return false;
    out = b.text(v.text, c.json);
    return true;
}
// Option columns, parsed from the OCC symbol of a us_option position; NULL otherwise.
bool occ_underlying(RowBuilder &b, const Column &c, Datum &out) {
    if (!b.occ()) return false;
    out = b.text(b.occ()->underlying, c.json);
    return true;
}
bool occ_expiration(RowBuilder &b, const Column &, Datum &out) {
    if (!b.occ()) return false;
    // parse_occ_symbol guarantees a real calendar date in 2000..2099.
    const pga::OccSymbol &o = *b.occ();
    out = DateADTGetDatum((DateADT)(date2j(o.year, o.month, o.day) - POSTGRES_EPOCH_JDATE));
    return true;
}
bool occ_type(RowBuilder &b, const Column &c, Datum &out) {
    if (!b.occ()) return false;
    out = b.text(b.occ()->type_name(), c.json);
    return true;
}
bool occ_strike(RowBuilder &b, const Column &c, Datum &out) {
    if (!b.occ()) return false;
    out = b.numeric(b.occ()->strike, c.json);
    return true;
}

// COL(name, type, filler): the column `name` filled from the JSON field of the same name.
#define ACCOUNT_COL(name, type, fill) \
    { #name, type, fill, pga::account_field::name, #name }
#define POSITION_COL(name, type, fill) \
    { #name, type, fill, pga::position_field::name, #name }
#define ORDER_COL(name, type, fill) \
    { #name, type, fill, pga::order_field::name, #name }

// alpaca.account_row
const Column kAccountColumns[] = {
    ACCOUNT_COL(id, UUIDOID, uuid_col),
    ACCOUNT_COL(account_number, TEXTOID, text_col),
    ACCOUNT_COL(status, TEXTOID, text_col),
    ACCOUNT_COL(crypto_status, TEXTOID, text_col),
    ACCOUNT_COL(currency, TEXTOID, text_col),
    ACCOUNT_COL(cash, NUMERICOID, numeric_col),
    ACCOUNT_COL(buying_power, NUMERICOID, numeric_col),
    ACCOUNT_COL(regt_buying_power, NUMERICOID, numeric_col),
    ACCOUNT_COL(daytrading_buying_power, NUMERICOID, numeric_col),
    ACCOUNT_COL(non_marginable_buying_power, NUMERICOID, numeric_col),
    ACCOUNT_COL(options_buying_power, NUMERICOID, numeric_col),
    ACCOUNT_COL(equity, NUMERICOID, numeric_col),
    ACCOUNT_COL(last_equity, NUMERICOID, numeric_col),
    ACCOUNT_COL(long_market_value, NUMERICOID, numeric_col),
    ACCOUNT_COL(short_market_value, NUMERICOID, numeric_col),
    ACCOUNT_COL(portfolio_value, NUMERICOID, numeric_col),
    ACCOUNT_COL(initial_margin, NUMERICOID, numeric_col),
    ACCOUNT_COL(maintenance_margin, NUMERICOID, numeric_col),
    ACCOUNT_COL(last_maintenance_margin, NUMERICOID, numeric_col),
    ACCOUNT_COL(sma, NUMERICOID, numeric_col),
    ACCOUNT_COL(multiplier, NUMERICOID, numeric_col),
    ACCOUNT_COL(pattern_day_trader, BOOLOID, bool_col),
    ACCOUNT_COL(daytrade_count, INT4OID, int4_col),
    ACCOUNT_COL(options_approved_level, INT4OID, int4_col),
    ACCOUNT_COL(options_trading_level, INT4OID, int4_col),
    ACCOUNT_COL(shorting_enabled, BOOLOID, bool_col),
    ACCOUNT_COL(trading_blocked, BOOLOID, bool_col),
    ACCOUNT_COL(transfers_blocked, BOOLOID, bool_col),
    ACCOUNT_COL(account_blocked, BOOLOID, bool_col),
    ACCOUNT_COL(trade_suspended_by_user, BOOLOID, bool_col),
    ACCOUNT_COL(created_at, TIMESTAMPTZOID, timestamptz_col),
};

// alpaca.position_row
const Column kPositionColumns[] = {
    POSITION_COL(symbol, TEXTOID, text_col),
    POSITION_COL(asset_class, TEXTOID, text_col),
    POSITION_COL(side, TEXTOID, text_col),
    POSITION_COL(qty, NUMERICOID, numeric_col),
    POSITION_COL(avg_entry_price, NUMERICOID, numeric_col),
    POSITION_COL(market_value, NUMERICOID, numeric_col),
    POSITION_COL(cost_basis, NUMERICOID, numeric_col),
    POSITION_COL(unrealized_pl, NUMERICOID, numeric_col),
    POSITION_COL(unrealized_plpc, NUMERICOID, numeric_col),
    POSITION_COL(current_price, NUMERICOID, numeric_col),
    POSITION_COL(change_today, NUMERICOID, numeric_col),
    {"underlying", TEXTOID, occ_underlying, -1, "symbol"},
    {"expiration", DATEOID, occ_expiration, -1, "symbol"},
    {"option_type", TEXTOID, occ_type, -1, "symbol"},
    {"strike", NUMERICOID, occ_strike, -1, "symbol"},
};

// alpaca.order_row
const Column kOrderColumns[] = {
    ORDER_COL(id, UUIDOID, uuid_col),
    ORDER_COL(client_order_id, TEXTOID, text_col),
    ORDER_COL(symbol, TEXTOID, text_col),
    ORDER_COL(asset_class, TEXTOID, text_col),
    ORDER_COL(side, TEXTOID, text_col),
    ORDER_COL(type, TEXTOID, order_type_col),
    ORDER_COL(time_in_force, TEXTOID, text_col),
    ORDER_COL(qty, NUMERICOID, numeric_col),
    ORDER_COL(filled_qty, NUMERICOID, numeric_col),
    ORDER_COL(filled_avg_price, NUMERICOID, numeric_col),
    ORDER_COL(limit_price, NUMERICOID, numeric_col),
    ORDER_COL(stop_price, NUMERICOID, numeric_col),
    ORDER_COL(status, TEXTOID, text_col),
    ORDER_COL(order_class, TEXTOID, text_col),
    ORDER_COL(submitted_at, TIMESTAMPTZOID, timestamptz_col),
    ORDER_COL(filled_at, TIMESTAMPTZOID, timestamptz_col),
    ORDER_COL(canceled_at, TIMESTAMPTZOID, timestamptz_col),
    ORDER_COL(legs, JSONBOID, jsonb_col),
};

// ---------------------------------------------------------------- the shape check
struct RowShape {
    const char *fn;        // the SQL function, for messages
    const char *sql_type;  // the composite type it is declared to return
    const Column *columns;
    int ncolumns;
    // Cache of the last successful check (per backend): the type and its typcache identity.
    Oid checked_type = InvalidOid;
    std::uint64_t checked_id = 0;
    std::array<std::int16_t, 64> attr_column{};  // attribute -> column, -1: dropped
    int natts = 0;
};

RowShape g_account{"alpaca_parse_account", "alpaca.account_row", kAccountColumns,
                   (int)(sizeof kAccountColumns / sizeof kAccountColumns[0])};
RowShape g_positions{"alpaca_parse_positions", "alpaca.position_row", kPositionColumns,
                     (int)(sizeof kPositionColumns / sizeof kPositionColumns[0])};
RowShape g_orders{"alpaca_parse_orders", "alpaca.order_row", kOrderColumns,
                  (int)(sizeof kOrderColumns / sizeof kOrderColumns[0])};

std::string type_name(Oid type) {
    const char *name = pga::pg::call([&] { return (const char *)format_type_be(type); });
    return std::string(name);
}

std::string cpp_columns(const RowShape &shape) {
    std::string s;
    for (int c = 0; c < shape.ncolumns; ++c) {
        if (c) s += ", ";
        s += std::string(shape.columns[c].name) + " " + type_name(shape.columns[c].type);
    }
    return s;
}

[[noreturn]] void mismatch(const RowShape &shape, Oid fn, const std::string &what) {
    const char *n = pga::pg::call([&] { return (const char *)get_func_name(fn); });
    const std::string name = n ? n : "?";
    throw PgError(
        ERRCODE_INTERNAL_ERROR,
        "pg_alpaca: the result type of " + name + " does not match the C++ column list of " +
            shape.sql_type + ": " + what,
        "C++ fills: " + cpp_columns(shape),
        "The SQL objects and pg_alpaca.so disagree: run ALTER EXTENSION pg_alpaca UPDATE, "
        "or install the library that matches the installed SQL script.");
}

// Matches desc against shape's column list by name and type (cached per backend for a
// composite type, keyed by its typcache identity, which changes with any ALTER TYPE).
void check_shape(RowShape &shape, TupleDesc desc, Oid fn) {
    std::uint64_t id = 0;
    if (desc->tdtypeid != RECORDOID) {
        id = pga::pg::call([&] {
            return lookup_type_cache(desc->tdtypeid, TYPECACHE_TUPDESC)->tupDesc_identifier;
        });
        if (desc->tdtypeid == shape.checked_type && id == shape.checked_id && id != 0 &&
            desc->natts == shape.natts)
            return;
    }
    shape.checked_type = InvalidOid;
    if (desc->natts > (int)shape.attr_column.size())
        mismatch(shape, fn, "it has " + std::to_string(desc->natts) + " attributes");
    std::array<bool, 64> used{};
    for (int a = 0; a < desc->natts; ++a) {
        const Form_pg_attribute att = TupleDescAttr(desc, a);
        shape.attr_column[(std::size_t)a] = -1;
        if (att->attisdropped) continue;
        const char *name = NameStr(att->attname);
        int c = 0;
        while (c < shape.ncolumns && std::strcmp(shape.columns[c].name, name) != 0) ++c;
        if (c == shape.ncolumns)
            mismatch(shape, fn,
                     "column " + pga::quote_for_error(name, 80, '"') + " (" +
                         type_name(att->atttypid) + ") has no C++ filler");
        if (att->atttypid != shape.columns[c].type)
            mismatch(shape, fn,
                     "column " + pga::quote_for_error(name, 80, '"') + " is " +
                         type_name(att->atttypid) + " in SQL but " +
                         type_name(shape.columns[c].type) + " in C++");
        used[(std::size_t)c] = true;
        shape.attr_column[(std::size_t)a] = (std::int16_t)c;
    }
    for (int c = 0; c < shape.ncolumns; ++c)
        if (!used[(std::size_t)c])
            mismatch(shape, fn,
                     "column \"" + std::string(shape.columns[c].name) + "\" (" +
                         type_name(shape.columns[c].type) + ") is missing in SQL");
    shape.natts = desc->natts;
    if (desc->tdtypeid != RECORDOID) {
        shape.checked_type = desc->tdtypeid;
        shape.checked_id = id;
    }
}

// ---------------------------------------------------------------- the rows' tuples
// The tuples tuplestore_putvalues would store (heap_form_minimal_tuple and heap_fill_tuple,
// src/backend/access/common/heaptuple.c: header, null bitmap, each value aligned as its
// attribute says, a varlena that fits converted to a 1-byte header; the on-disk tuple format,
// stable across releases), built here over a per-call plan of the attributes, without palloc,
// a few dozen rows at a time, then handed to tuplestore_puttuple (which copies each as it is)
// in one guarded call.
class TupleBatch {
  public:
    // buf: memory for the waiting tuples, kept by the caller from call to call.
    TupleBatch(TupleDesc desc, std::vector<std::uint64_t> &buf) : natts_(desc->natts), buf_(buf) {
        for (int a = 0; a < natts_; ++a) {
            const Form_pg_attribute att = TupleDescAttr(desc, a);
            Att &p = atts_[(std::size_t)a];
            p.len = att->attlen;
            p.align = att->attalign;
            p.byval = att->attbyval;
            p.packable = att->attstorage != TYPSTORAGE_PLAIN;
        }
    }

    // Adds the row's tuple; false for a value outside what is handled here (an external or
    // expanded varlena, a cstring): the caller then flushes and uses tuplestore_putvalues.
    bool add(const Datum *values, const bool *nulls) {
        const int natts = natts_;
        bool hasnull = false;
        for (int a = 0; a < natts; ++a) hasnull |= nulls[a];
        std::size_t hoff = SizeofMinimalTupleHeader;
        if (hasnull) hoff += BITMAPLEN(natts);
        hoff = MAXALIGN(hoff);
        // MINIMAL_TUPLE_OFFSET bytes for the HeapTupleHeader that the minimal tuple is the
        // tail of (as a minimal tuple slot does), then the tuple, at buf_[used_]. One pass:
        // room for each value is made as it is written; padding bytes are zeroed as they are
        // skipped (bytes past t_len are never read: the tuplestore copies t_len bytes).
        char *t = room(hoff + kRoomAhead);
        std::memset(t, 0, hoff);
        std::uint16_t infomask = 0;
        std::size_t off = hoff;  // offsets from the tuple's (maxaligned) start
        const auto align = [&](char c) {
            const std::size_t to = att_align_nominal(off, c);
            for (; off < to; ++off) t[off] = 0;
        };
        for (int a = 0; a < natts; ++a) {
            if (nulls[a]) {
                infomask |= HEAP_HASNULL;
                continue;
            }
            if (hasnull) reinterpret_cast<MinimalTuple>(t)->t_bits[a >> 3] |= (bits8)(1 << (a & 7));
            const Att &att = atts_[(std::size_t)a];
            if (att.byval) {
                align(att.align);
                store_att_byval(t + off, values[a], att.len);
                off += (std::size_t)att.len;
            } else if (att.len == -1) {
                const Pointer v = DatumGetPointer(values[a]);
                if (VARATT_IS_EXTERNAL(v)) return false;
                infomask |= HEAP_HASVARWIDTH;
                if (VARATT_IS_SHORT(v)) {
                    const std::size_t n = VARSIZE_SHORT(v);
                    if (off + n > room_) t = room(off + n + kRoomAhead);
                    std::memcpy(t + off, v, n);
                    off += n;
                } else if (att.packable && VARATT_CAN_MAKE_SHORT(v)) {
                    const std::size_t n = VARATT_CONVERTED_SHORT_SIZE(v);
                    if (off + n > room_) t = room(off + n + kRoomAhead);
                    SET_VARSIZE_SHORT(t + off, n);
                    std::memcpy(t + off + 1, VARDATA(v), n - 1);
                    off += n;
                } else {
                    const std::size_t n = VARSIZE(v);
                    if (off + 8 + n > room_) t = room(off + 8 + n + kRoomAhead);
                    align(att.align);
                    std::memcpy(t + off, v, n);
                    off += n;
                }
            } else if (att.len > 0) {
                const std::size_t n = (std::size_t)att.len;
                if (off + 8 + n > room_) t = room(off + 8 + n + kRoomAhead);
                align(att.align);
                std::memcpy(t + off, DatumGetPointer(values[a]), n);
                off += n;
            } else {
                return false;  // a cstring
            }
            if (off + kRoomAhead / 2 > room_) t = room(off + kRoomAhead);
        }
        auto *mt = reinterpret_cast<MinimalTuple>(t);
        mt->t_len = (std::uint32_t)off;
        HeapTupleHeaderSetNatts(mt, natts);
        mt->t_infomask = infomask;
        mt->t_hoff = (std::uint8_t)(hoff + MINIMAL_TUPLE_OFFSET);
        rows_[nrows_++] = Row{used_, (std::uint32_t)(off + MINIMAL_TUPLE_OFFSET)};
        used_ += (MINIMAL_TUPLE_OFFSET + off + 7) / 8;
        return true;
    }

    bool full() const { return nrows_ >= kMaxRows || used_ * 8 >= kMaxBytes; }

    // Hands the waiting tuples, in order, to the tuplestore.
    void flush(Tuplestorestate *store) {
        if (nrows_ == 0) return;
        const Row *rows = rows_.data();
        const std::size_t nrows = nrows_;
        std::uint64_t *const buf = buf_.data();
        pga::pg::call([&] {
            HeapTupleData h;
            ItemPointerSetInvalid(&h.t_self);
            h.t_tableOid = InvalidOid;
            for (std::size_t i = 0; i < nrows; ++i) {
                h.t_len = rows[i].len;
                h.t_data = reinterpret_cast<HeapTupleHeader>(buf + rows[i].at);
                tuplestore_puttuple(store, &h);
            }
        });
        nrows_ = 0;
        used_ = 0;
    }

  private:
    static constexpr std::size_t kMaxRows = 64, kMaxBytes = 64 * 1024;
    static constexpr std::size_t kRoomAhead = 128;  // >= 2 x any by-value or short value

    // The tuple being built (at buf_[used_] + MINIMAL_TUPLE_OFFSET) with at least need bytes
    // of room; room_ says how many it has.
    char *room(std::size_t need) {
        const std::size_t words = used_ + (MINIMAL_TUPLE_OFFSET + need + 7) / 8;
        if (buf_.size() < words) buf_.resize(2 * words);
        room_ = (buf_.size() - used_) * 8 - MINIMAL_TUPLE_OFFSET;
        return reinterpret_cast<char *>(buf_.data() + used_) + MINIMAL_TUPLE_OFFSET;
    }
    struct Att {  // what the layout needs of an attribute (pg_attribute)
        std::int16_t len;
        char align;
        bool byval, packable;
    };
    struct Row {
        std::size_t at;     // in buf_, in words: the HeapTupleHeader's place
        std::uint32_t len;  // HeapTupleData.t_len
    };
    int natts_;
    std::array<Att, 64> atts_{};  // natts <= 64: check_shape
    std::vector<std::uint64_t> &buf_;
    std::size_t used_ = 0;  // words
    std::size_t room_ = 0;  // bytes of room for the tuple being built
    std::array<Row, kMaxRows> rows_;
    std::size_t nrows_ = 0;
};

// ---------------------------------------------------------------- the one SRF helper
// What a call works in: the reader and the row buffers, per backend, reused from call to call
// (no heap growth and trim per call). A nested call (none is known: nothing a row builder
// calls parses Alpaca JSON) would get scratch of its own.
struct Scratch {
    pga::AlpacaReader reader;
    RowArena arena;
    std::vector<std::uint64_t> tuples;  // TupleBatch's buffer
};
bool g_scratch_busy = false;
Scratch &shared_scratch() {
    static Scratch s;
    return s;
}
struct ScratchLease {
    std::unique_ptr<Scratch> own;
    Scratch *scratch;
    bool leased;
    ScratchLease() : leased(!g_scratch_busy) {
        if (leased) {
            g_scratch_busy = true;
            scratch = &shared_scratch();
        } else {
            own = std::make_unique<Scratch>();
            scratch = own.get();
        }
    }
    ~ScratchLease() {
        // A one-off huge row (a long legs array) does not stay pinned in memory.
        if (scratch->tuples.size() > kKeepTupleWords)
            std::vector<std::uint64_t>().swap(scratch->tuples);
        if (leased) g_scratch_busy = false;
    }
    static constexpr std::size_t kKeepTupleWords = 256 * 1024 / 8;
    ScratchLease(const ScratchLease &) = delete;
    ScratchLease &operator=(const ScratchLease &) = delete;
};

// Deletes the per-call row context (MemoryContextDelete never ereports).
struct ContextDeleter {
    void operator()(MemoryContextData *c) const { MemoryContextDelete(c); }
};

// Common/'s Error(Protocol) (naming the field) becomes XX000.
[[noreturn]] void rethrow_malformed(const pga::Error &e) {
    // common/ says "alpaca account.cash: ..."; the prefix would repeat ours.
    std::string_view what = e.what();
    if (what.substr(0, 7) == "alpaca ") what.remove_prefix(7);
    throw PgError(ERRCODE_INTERNAL_ERROR, kMalformed + std::string(what), "",
                  "The answer did not have the shape of Alpaca's API.");
}

using ReadFn = void (pga::AlpacaReader::*)(std::string_view, pga::RecordSink);

struct Kind {
    RowShape *shape;
    ReadFn read;
};

Kind kind_of(pga::ext::RowKind k) {
    switch (k) {
        case pga::ext::RowKind::Account:
            return {&g_account, &pga::AlpacaReader::read_account};
        case pga::ext::RowKind::Positions:
            return {&g_positions, &pga::AlpacaReader::read_positions};
        case pga::ext::RowKind::Orders:
            break;
    }
    return {&g_orders, &pga::AlpacaReader::read_orders};
}

}  // namespace

ReturnSetInfo *pga::ext::begin_rows(FunctionCallInfo fcinfo, RowKind kind) {
    RowShape &shape = *kind_of(kind).shape;
    auto *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    if (rsinfo == nullptr || !IsA(rsinfo, ReturnSetInfo))
        throw PgError(ERRCODE_FEATURE_NOT_SUPPORTED,
                      std::string(shape.fn) + " must be called in the FROM clause or select list");
    rsinfo = pga::pg::begin_materialized_srf(fcinfo);
    check_shape(shape, rsinfo->setDesc, fcinfo->flinfo->fn_oid);
    return rsinfo;
}

void pga::ext::put_rows(ReturnSetInfo *rsinfo, RowKind kind, std::string_view body) {
    const Kind k = kind_of(kind);
    const RowShape &shape = *k.shape;
    TupleDesc desc = rsinfo->setDesc;
    std::unique_ptr<MemoryContextData, ContextDeleter> cxt(pga::pg::call([&] {
        return AllocSetContextCreate(CurrentMemoryContext, "pg_alpaca row", ALLOCSET_DEFAULT_SIZES);
    }));
    const bool verify_text = GetDatabaseEncoding() != PG_UTF8;
    const int natts = desc->natts;
    std::array<Datum, 64> values{};
    std::array<bool, 64> nulls{};
    ScratchLease lease;
    RowArena &arena = lease.scratch->arena;
    arena.reset();
    TupleBatch batch(desc, lease.scratch->tuples);

    auto sink = [&](const Record &r) {
        // A long document stays cancellable (pg_cancel_backend, statement_timeout).
        if (InterruptPending) pga::pg::call([] { CHECK_FOR_INTERRUPTS(); });
        RowBuilder b(r, cxt.get(), arena, verify_text);
        for (int a = 0; a < natts; ++a) {
            const int c = shape.attr_column[(std::size_t)a];
            nulls[(std::size_t)a] =
                c < 0 || !shape.columns[c].fill(b, shape.columns[c], values[(std::size_t)a]);
        }
        if (!batch.add(values.data(), nulls.data())) {
            batch.flush(rsinfo->setResult);
            pga::pg::put_row(rsinfo, values.data(), nulls.data());
        } else if (batch.full()) {
            batch.flush(rsinfo->setResult);
        }
        arena.reset();
        MemoryContextReset(cxt.get());
    };
    try {
        (lease.scratch->reader.*k.read)(body, sink);
    } catch (const pga::Error &e) {
        rethrow_malformed(e);
    }
    batch.flush(rsinfo->setResult);
}

namespace {

Datum parse_rows(FunctionCallInfo fcinfo, pga::ext::RowKind kind) {
    ReturnSetInfo *rsinfo = pga::ext::begin_rows(fcinfo, kind);
    pga::ext::put_rows(rsinfo, kind, pga::pg::text_view(PG_GETARG_DATUM(0)));
    return (Datum)0;
}

}  // namespace

// alpaca_parse_account(body text) RETURNS SETOF alpaca.account_row, one row.
PGA_FUNCTION(pga_parse_account) {
    return parse_rows(fcinfo, pga::ext::RowKind::Account);
}

// alpaca_parse_positions(body text) RETURNS SETOF alpaca.position_row
PGA_FUNCTION(pga_parse_positions) {
    return parse_rows(fcinfo, pga::ext::RowKind::Positions);
}

// alpaca_parse_orders(body text) RETURNS SETOF alpaca.order_row
PGA_FUNCTION(pga_parse_orders) {
    return parse_rows(fcinfo, pga::ext::RowKind::Orders);
}
