// libFuzzer: Alpaca JSON models. Any input parses or throws pga::Error(Protocol); every decimal
// that comes out passes is_decimal_text; legs re-serialise to JSON that parses as orders.
// Messages and Alpaca's own error text are printable ASCII and bounded. The streaming reader
// (one reused across inputs, as the extension does) hands over the same elements as the owning
// parse, and an exception thrown by its sink comes back out (or the document's own Protocol
// error, which takes precedence), never a crash.
#include "common/alpaca_models.hpp"
#include "common/error.hpp"
#include "fuzz/fuzz_invariants.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

struct SinkStop {
    int unused = 0;
};

void check(bool cond) {
    if (!cond) std::abort();
}

void check_decimal(const pga::OptString &s) {
    if (s) check(pga::is_decimal_text(*s));
}

template <typename F>
void expect_protocol_or_ok(F f) {
    try {
        f();
    } catch (const pga::Error &e) {
        check(e.code() == pga::ErrorCode::Protocol);
        pga_fuzz::check_error(e, 200);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const std::string_view json(reinterpret_cast<const char *>(data), size);

    expect_protocol_or_ok([&] {
        const auto a = pga::parse_account(json);
        check(!a.id.empty() && !a.account_number.empty() && !a.status.empty());
        for (const auto *d :
             {&a.cash, &a.buying_power, &a.regt_buying_power, &a.daytrading_buying_power,
              &a.non_marginable_buying_power, &a.options_buying_power, &a.equity, &a.last_equity,
              &a.portfolio_value, &a.long_market_value, &a.short_market_value, &a.initial_margin,
              &a.maintenance_margin, &a.last_maintenance_margin, &a.sma, &a.multiplier,
              &a.accrued_fees, &a.pending_transfer_in, &a.pending_transfer_out}) {
            check_decimal(*d);
        }
    });
    expect_protocol_or_ok([&] {
        for (const auto &p : pga::parse_positions(json)) {
            check(!p.symbol.empty());
            for (const auto *d : {&p.qty, &p.qty_available, &p.avg_entry_price, &p.market_value,
                                  &p.cost_basis, &p.unrealized_pl, &p.unrealized_plpc,
                                  &p.unrealized_intraday_pl, &p.unrealized_intraday_plpc,
                                  &p.current_price, &p.lastday_price, &p.change_today}) {
                check_decimal(*d);
            }
        }
    });
    expect_protocol_or_ok([&] {
        for (const auto &o : pga::parse_orders(json)) {
            check(!o.id.empty());
            for (const auto *d :
                 {&o.qty, &o.notional, &o.filled_qty, &o.filled_avg_price, &o.limit_price,
                  &o.stop_price, &o.trail_price, &o.trail_percent, &o.hwm}) {
                check_decimal(*d);
            }
            if (o.legs_json) {
                // Re-serialised legs are valid JSON: parsing them again never reports
                // malformed JSON (it may still refuse them as orders, e.g. a leg without id).
                try {
                    pga::parse_orders(*o.legs_json);
                } catch (const pga::Error &e) {
                    check(std::string_view(e.what()).find("malformed") == std::string_view::npos);
                }
            }
        }
    });
    {
        static pga::AlpacaReader reader;
        std::size_t seen = 0;
        bool owning_ok = true;
        std::size_t owning = 0;
        try {
            owning = pga::parse_positions(json).size();
        } catch (const pga::Error &) {
            owning_ok = false;
        }
        try {
            reader.read_positions(json, [&](const pga::Record &r) {
                check(r.index() == seen);
                check(r[pga::position_field::symbol].present);
                ++seen;
            });
            check(owning_ok && seen == owning);
        } catch (const pga::Error &e) {
            check(e.code() == pga::ErrorCode::Protocol && !owning_ok);
            pga_fuzz::check_error(e, 200);
        }
        bool stopped = false;
        try {
            reader.read_orders(json, [&](const pga::Record &r) {
                if (r.index() == 1) throw SinkStop{};
            });
        } catch (const SinkStop &) {
            stopped = true;
        } catch (const pga::Error &e) {
            check(e.code() == pga::ErrorCode::Protocol);
            pga_fuzz::check_error(e, 200);
        }
        (void)stopped;
    }
    const auto err = pga::parse_error_body(json);  // noexcept
    check(err.message.size() <= pga::kMaxAlpacaErrorMessage &&
          pga::is_printable_ascii(err.message));
    (void)pga::is_decimal_text(json);
    return 0;
}
