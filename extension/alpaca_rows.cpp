// Alpaca JSON text -> typed rows: alpaca_parse_account, alpaca_parse_positions,
// alpaca_parse_orders. Pure functions (IMMUTABLE PARALLEL SAFE): the JSON is parsed by
// common/alpaca_models (tolerant of added fields, absent optionals and new enum values),
// and each value goes through its type's own input function, so decimals reach numeric
// digit for digit; timestamps must be RFC 3339 with an offset (so no result depends on the
// session's TimeZone) before timestamptz_in reads them. A malformed document is XX000
// ("malformed Alpaca answer: orders[3].filled_at: ...") naming the element and field, never
// echoing the document.
#include "common/alpaca_models.hpp"
#include "common/error.hpp"
#include "common/occ_symbol.hpp"

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "extension/pg_values.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "mb/pg_wchar.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/errcodes.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
}

namespace {

using pga::pg::PgError;

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

// Prefix of every message about a document that is not Alpaca's shape (README, Troubleshooting).
const std::string kMalformed = "malformed Alpaca answer: ";

// One output row under construction: values/nulls for exactly N columns.
template <std::size_t N>
struct Row {
    std::array<Datum, N> values{};
    std::array<bool, N> nulls{};
    Row() { nulls.fill(true); }
};

class RowBuilder {
  public:
    // where: the element the row comes from, as common/ names it ("account", "orders[3]").
    RowBuilder(std::string where, Datum *values, bool *nulls)
        : where_(std::move(where)), values_(values), nulls_(nulls) {}

    void text(int col, const char *field, const std::optional<std::string> &v) {
        if (v) text(col, field, *v);
    }
    void text(int col, const char *field, const std::string &v) {
        // The JSON parser decodes \u escapes; refuse what is not valid in the database
        // encoding (a NUL byte, for instance) instead of storing it.
        bool ok = pga::pg::call([&] { return pg_verifymbstr(v.data(), (int)v.size(), true); });
        if (!ok) malformed(field, "not valid text");
        set(col, pga::pg::text_datum(v));
    }
    void numeric(int col, const char *field, const std::optional<std::string> &v) {
        if (!v) return;
        if (!pga::is_decimal_text(*v)) malformed(field, "not a decimal number");
        set(col, input(field, [&] {
                return DirectFunctionCall3(numeric_in, CStringGetDatum(v->c_str()),
                                           ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
            }));
    }
    void timestamptz(int col, const char *field, const std::optional<std::string> &v) {
        if (!v) return;
        // Only RFC 3339 with an explicit offset: timestamptz_in alone would also take "now",
        // "infinity" or a zone-less time read in the session's TimeZone, none of which an
        // IMMUTABLE parser may turn into a value.
        if (!is_rfc3339(*v)) malformed(field, "not an RFC 3339 timestamp with an offset");
        set(col, input(field, [&] {
                return DirectFunctionCall3(timestamptz_in, CStringGetDatum(v->c_str()),
                                           ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
            }));
    }
    void uuid(int col, const char *field, const std::string &v) {
        set(col,
            input(field, [&] { return DirectFunctionCall1(uuid_in, CStringGetDatum(v.c_str())); }));
    }
    void jsonb(int col, const char *field, const std::optional<std::string> &v) {
        if (!v) return;
        set(col, input(field,
                       [&] { return DirectFunctionCall1(jsonb_in, CStringGetDatum(v->c_str())); }));
    }
    void boolean(int col, const std::optional<bool> &v) {
        if (v) set(col, BoolGetDatum(*v));
    }
    void int4(int col, const char *field, const std::optional<std::int64_t> &v) {
        if (!v) return;
        if (*v < std::numeric_limits<std::int32_t>::min() ||
            *v > std::numeric_limits<std::int32_t>::max())
            malformed(field, "out of range for integer");
        set(col, Int32GetDatum((std::int32_t)*v));
    }
    void date(int col, int y, int m, int d) {
        // parse_occ_symbol guarantees a real calendar date in 2000..2099.
        set(col, DateADTGetDatum((DateADT)(date2j(y, m, d) - POSTGRES_EPOCH_JDATE)));
    }

    [[noreturn]] void malformed(const char *field, const std::string &what) const {
        throw PgError(ERRCODE_INTERNAL_ERROR, kMalformed + where_ + "." + field + ": " + what);
    }

  private:
    void set(int col, Datum d) {
        values_[col] = d;
        nulls_[col] = false;
    }
    // Runs a type input function; its error (e.g. an impossible timestamp) becomes XX000
    // naming the field, with PostgreSQL's own message as detail.
    template <typename F>
    Datum input(const char *field, F &&f) {
        try {
            return pga::pg::call(f);
        } catch (const PgError &e) {
            if (e.sqlstate() == ERRCODE_QUERY_CANCELED || e.sqlstate() == ERRCODE_OUT_OF_MEMORY)
                throw;
            throw PgError(ERRCODE_INTERNAL_ERROR,
                          kMalformed + where_ + "." + field + ": not a valid value",
                          pga::escape_for_error(e.what(), 200));
        }
    }

    std::string where_;
    Datum *values_;
    bool *nulls_;
};

// Parses with the common/ model; its Error(Protocol) (naming the field) becomes XX000.
template <typename F>
auto parse_doc(F &&f) -> decltype(f()) {
    try {
        return f();
    } catch (const pga::Error &e) {
        // common/ says "alpaca account.cash: ..."; the prefix would repeat ours.
        std::string_view what = e.what();
        if (what.substr(0, 7) == "alpaca ") what.remove_prefix(7);
        throw PgError(ERRCODE_INTERNAL_ERROR, kMalformed + std::string(what), "",
                      "The answer did not have the shape of Alpaca's API.");
    }
}

// Starts materialize mode and checks the declared result columns against what we build,
// so a wrong CREATE FUNCTION cannot make us write a Datum of the wrong type.
ReturnSetInfo *begin(FunctionCallInfo fcinfo, const char *fn, const Oid *types, int ncols) {
    auto *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    if (rsinfo == nullptr || !IsA(rsinfo, ReturnSetInfo))
        throw PgError(ERRCODE_FEATURE_NOT_SUPPORTED,
                      std::string(fn) + " must be called in the FROM clause or select list");
    rsinfo = pga::pg::begin_materialized_srf(fcinfo);
    TupleDesc desc = rsinfo->setDesc;
    bool ok = desc != nullptr && desc->natts == ncols;
    for (int i = 0; ok && i < ncols; ++i) ok = TupleDescAttr(desc, i)->atttypid == types[i];
    if (!ok)
        throw PgError(ERRCODE_DATATYPE_MISMATCH,
                      std::string(fn) + " is declared with the wrong result columns", "",
                      "Reinstall the extension's SQL script.");
    return rsinfo;
}

}  // namespace

// alpaca_parse_account(body text) RETURNS TABLE(... 31 columns ...), one row.
PGA_FUNCTION(pga_parse_account) {
    static const Oid types[] = {
        UUIDOID,    TEXTOID,    TEXTOID,       TEXTOID,    TEXTOID,    NUMERICOID, NUMERICOID,
        NUMERICOID, NUMERICOID, NUMERICOID,    NUMERICOID, NUMERICOID, NUMERICOID, NUMERICOID,
        NUMERICOID, NUMERICOID, NUMERICOID,    NUMERICOID, NUMERICOID, NUMERICOID, NUMERICOID,
        BOOLOID,    INT4OID,    INT4OID,       INT4OID,    BOOLOID,    BOOLOID,    BOOLOID,
        BOOLOID,    BOOLOID,    TIMESTAMPTZOID};
    constexpr int N = sizeof types / sizeof types[0];
    ReturnSetInfo *rsinfo = begin(fcinfo, "alpaca_parse_account", types, N);
    std::string_view body = pga::pg::text_view(PG_GETARG_DATUM(0));
    pga::AlpacaAccount a = parse_doc([&] { return pga::parse_account(body); });

    Row<N> row;
    RowBuilder b("account", row.values.data(), row.nulls.data());
    b.uuid(0, "id", a.id);
    b.text(1, "account_number", a.account_number);
    b.text(2, "status", a.status);
    b.text(3, "crypto_status", a.crypto_status);
    b.text(4, "currency", a.currency);
    b.numeric(5, "cash", a.cash);
    b.numeric(6, "buying_power", a.buying_power);
    b.numeric(7, "regt_buying_power", a.regt_buying_power);
    b.numeric(8, "daytrading_buying_power", a.daytrading_buying_power);
    b.numeric(9, "non_marginable_buying_power", a.non_marginable_buying_power);
    b.numeric(10, "options_buying_power", a.options_buying_power);
    b.numeric(11, "equity", a.equity);
    b.numeric(12, "last_equity", a.last_equity);
    b.numeric(13, "long_market_value", a.long_market_value);
    b.numeric(14, "short_market_value", a.short_market_value);
    b.numeric(15, "portfolio_value", a.portfolio_value);
    b.numeric(16, "initial_margin", a.initial_margin);
    b.numeric(17, "maintenance_margin", a.maintenance_margin);
    b.numeric(18, "last_maintenance_margin", a.last_maintenance_margin);
    b.numeric(19, "sma", a.sma);
    b.numeric(20, "multiplier", a.multiplier);
    b.boolean(21, a.pattern_day_trader);
    b.int4(22, "daytrade_count", a.daytrade_count);
    b.int4(23, "options_approved_level", a.options_approved_level);
    b.int4(24, "options_trading_level", a.options_trading_level);
    b.boolean(25, a.shorting_enabled);
    b.boolean(26, a.trading_blocked);
    b.boolean(27, a.transfers_blocked);
    b.boolean(28, a.account_blocked);
    b.boolean(29, a.trade_suspended_by_user);
    b.timestamptz(30, "created_at", a.created_at);
    pga::pg::put_row(rsinfo, row.values.data(), row.nulls.data());
    return (Datum)0;
}

// alpaca_parse_positions(body text) RETURNS TABLE(symbol, asset_class, side, qty, ...,
// underlying, expiration, option_type, strike)
PGA_FUNCTION(pga_parse_positions) {
    static const Oid types[] = {TEXTOID,    TEXTOID,    TEXTOID,    NUMERICOID, NUMERICOID,
                                NUMERICOID, NUMERICOID, NUMERICOID, NUMERICOID, NUMERICOID,
                                NUMERICOID, TEXTOID,    DATEOID,    TEXTOID,    NUMERICOID};
    constexpr int N = sizeof types / sizeof types[0];
    ReturnSetInfo *rsinfo = begin(fcinfo, "alpaca_parse_positions", types, N);
    std::string_view body = pga::pg::text_view(PG_GETARG_DATUM(0));
    std::vector<pga::AlpacaPosition> positions =
        parse_doc([&] { return pga::parse_positions(body); });

    for (std::size_t i = 0; i < positions.size(); ++i) {
        const pga::AlpacaPosition &p = positions[i];
        Row<N> row;
        RowBuilder b("positions[" + std::to_string(i) + "]", row.values.data(), row.nulls.data());
        b.text(0, "symbol", p.symbol);
        b.text(1, "asset_class", p.asset_class);
        b.text(2, "side", p.side);
        b.numeric(3, "qty", p.qty);
        b.numeric(4, "avg_entry_price", p.avg_entry_price);
        b.numeric(5, "market_value", p.market_value);
        b.numeric(6, "cost_basis", p.cost_basis);
        b.numeric(7, "unrealized_pl", p.unrealized_pl);
        b.numeric(8, "unrealized_plpc", p.unrealized_plpc);
        b.numeric(9, "current_price", p.current_price);
        b.numeric(10, "change_today", p.change_today);
        if (p.asset_class && *p.asset_class == "us_option") {
            if (std::optional<pga::OccSymbol> occ = pga::parse_occ_symbol(p.symbol)) {
                b.text(11, "symbol", occ->underlying);
                b.date(12, occ->year, occ->month, occ->day);
                b.text(13, "symbol", std::string(occ->type_name()));
                b.numeric(14, "symbol", occ->strike);
            }
        }
        pga::pg::put_row(rsinfo, row.values.data(), row.nulls.data());
    }
    return (Datum)0;
}

// alpaca_parse_orders(body text) RETURNS TABLE(id, client_order_id, symbol, asset_class, side,
// type, time_in_force, qty, filled_qty, filled_avg_price, limit_price, stop_price, status,
// order_class, submitted_at, filled_at, canceled_at, legs jsonb)
PGA_FUNCTION(pga_parse_orders) {
    static const Oid types[] = {
        UUIDOID, TEXTOID,    TEXTOID,        TEXTOID,        TEXTOID,        TEXTOID,
        TEXTOID, NUMERICOID, NUMERICOID,     NUMERICOID,     NUMERICOID,     NUMERICOID,
        TEXTOID, TEXTOID,    TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, JSONBOID};
    constexpr int N = sizeof types / sizeof types[0];
    ReturnSetInfo *rsinfo = begin(fcinfo, "alpaca_parse_orders", types, N);
    std::string_view body = pga::pg::text_view(PG_GETARG_DATUM(0));
    std::vector<pga::AlpacaOrder> orders = parse_doc([&] { return pga::parse_orders(body); });

    for (std::size_t i = 0; i < orders.size(); ++i) {
        const pga::AlpacaOrder &o = orders[i];
        Row<N> row;
        RowBuilder b("orders[" + std::to_string(i) + "]", row.values.data(), row.nulls.data());
        b.uuid(0, "id", o.id);
        b.text(1, "client_order_id", o.client_order_id);
        b.text(2, "symbol", o.symbol);
        b.text(3, "asset_class", o.asset_class);
        b.text(4, "side", o.side);
        b.text(5, "type", o.type ? o.type : o.order_type);
        b.text(6, "time_in_force", o.time_in_force);
        b.numeric(7, "qty", o.qty);
        b.numeric(8, "filled_qty", o.filled_qty);
        b.numeric(9, "filled_avg_price", o.filled_avg_price);
        b.numeric(10, "limit_price", o.limit_price);
        b.numeric(11, "stop_price", o.stop_price);
        b.text(12, "status", o.status);
        b.text(13, "order_class", o.order_class);
        b.timestamptz(14, "submitted_at", o.submitted_at);
        b.timestamptz(15, "filled_at", o.filled_at);
        b.timestamptz(16, "canceled_at", o.canceled_at);
        b.jsonb(17, "legs", o.legs_json);
        pga::pg::put_row(rsinfo, row.values.data(), row.nulls.data());
    }
    return (Datum)0;
}
