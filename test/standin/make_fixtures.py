#!/usr/bin/python3
"""Generate a fixture key folder for the Alpaca stand-in, deterministically (seeded).

    make_fixtures.py OUTDIR KEY_ID [--positions N] [--orders M] [--seed S]
                     [--environment paper|live] [--secret SECRET]

writes OUTDIR/KEY_ID/{secret,environment,account.json,positions.json,orders.json} with N
positions (a realistic mix: equities long and short, fractional shares, US options in OCC form,
crypto pairs) and M orders (open and closed, market/limit/stop/stop_limit/trailing_stop, some
brackets with nested legs), in Alpaca's field order and JSON types: every money value and
quantity a decimal string computed with decimal.Decimal, nulls where Alpaca sends nulls.
The same arguments always give byte-identical files.  Used by benchmarks (10, 100, 1000
positions) and by anyone who needs a bigger account than the hand-made ones.
"""

import argparse
import datetime
import json
import os
import random
import string
import sys
import uuid
from decimal import ROUND_HALF_EVEN, Decimal

EQUITIES = [
    ("AAPL", "NASDAQ"), ("MSFT", "NASDAQ"), ("NVDA", "NASDAQ"), ("AMZN", "NASDAQ"),
    ("GOOGL", "NASDAQ"), ("META", "NASDAQ"), ("TSLA", "NASDAQ"), ("AVGO", "NASDAQ"),
    ("COST", "NASDAQ"), ("NFLX", "NASDAQ"), ("AMD", "NASDAQ"), ("INTC", "NASDAQ"),
    ("JPM", "NYSE"), ("V", "NYSE"), ("WMT", "NYSE"), ("XOM", "NYSE"), ("UNH", "NYSE"),
    ("JNJ", "NYSE"), ("PG", "NYSE"), ("HD", "NYSE"), ("KO", "NYSE"), ("BAC", "NYSE"),
    ("DIS", "NYSE"), ("CVX", "NYSE"), ("SPY", "ARCA"), ("VTI", "ARCA"), ("IWM", "ARCA"),
    ("GLD", "ARCA"), ("QQQ", "NASDAQ"), ("BRK.B", "NYSE"),
]
CRYPTO = ["BTCUSD", "ETHUSD", "SOLUSD", "LTCUSD", "AVAXUSD", "DOGEUSD", "LINKUSD", "UNIUSD"]


def fmt(x, places):
    """Decimal -> Alpaca-style decimal string: rounded to `places`, trailing zeros dropped."""
    q = x.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    s = format(q.normalize(), "f")
    return "0" if s in ("-0", "") else s


def new_uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def position(rng, symbol, asset_class, exchange, qty, avg, cur, last, multiplier=1,
             marginable=True, asset_id=None):
    """One element of GET /v2/positions, every figure derived from qty and the three prices."""
    qty, avg, cur, last, mult = (Decimal(str(v)) for v in (qty, avg, cur, last, multiplier))
    mv = qty * cur * mult
    cb = qty * avg * mult
    pl = mv - cb
    intraday = (cur - last) * qty * mult
    return {
        "asset_id": asset_id or new_uuid(rng),
        "symbol": symbol,
        "exchange": exchange,
        "asset_class": asset_class,
        "asset_marginable": marginable,
        "qty": format(qty, "f"),
        "avg_entry_price": fmt(avg, 9 if asset_class == "crypto" else 4),
        "side": "short" if qty < 0 else "long",
        "market_value": fmt(mv, 9 if asset_class == "crypto" else 2),
        "cost_basis": fmt(cb, 9 if asset_class == "crypto" else 2),
        "unrealized_pl": fmt(pl, 9 if asset_class == "crypto" else 2),
        "unrealized_plpc": fmt(pl / abs(cb), 16) if cb else "0",
        "unrealized_intraday_pl": fmt(intraday, 9 if asset_class == "crypto" else 2),
        "unrealized_intraday_plpc": fmt(intraday / abs(last * qty * mult), 16) if last * qty else "0",
        "current_price": fmt(cur, 9 if asset_class == "crypto" else 4),
        "lastday_price": fmt(last, 9 if asset_class == "crypto" else 4),
        "change_today": fmt((cur - last) / last, 16) if last else "0",
        "qty_available": format(qty, "f"),
    }


def stamp(t):
    """Alpaca-style RFC 3339 UTC timestamp with nanoseconds."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%09dZ" % (t.microsecond * 1000 + 123)


def order(rng, t, symbol, asset_class, side, otype, tif, status, qty=None, notional=None,
          limit_price=None, stop_price=None, filled_qty="0", filled_avg_price=None,
          order_class="", legs=None, position_intent=None, trail_percent=None,
          trail_price=None, hwm=None, extended_hours=False, order_id=None):
    """One element of GET /v2/orders, in the field order Alpaca sends."""
    updated = t + datetime.timedelta(milliseconds=rng.randint(5, 900))
    filled_at = stamp(updated) if status in ("filled", "partially_filled") else None
    o = {
        "id": order_id or new_uuid(rng),
        "client_order_id": new_uuid(rng),
        "created_at": stamp(t),
        "updated_at": stamp(updated),
        "submitted_at": stamp(t + datetime.timedelta(microseconds=rng.randint(100, 90000))),
        "filled_at": filled_at,
        "expired_at": stamp(updated) if status == "expired" else None,
        "canceled_at": stamp(updated) if status == "canceled" else None,
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": new_uuid(rng) if symbol else "",
        "symbol": symbol,
        "asset_class": asset_class,
        "notional": notional,
        "qty": qty,
        "filled_qty": filled_qty,
        "filled_avg_price": filled_avg_price,
        "order_class": order_class,
        "order_type": otype,
        "type": otype,
        "side": side,
        "position_intent": position_intent,
        "time_in_force": tif,
        "limit_price": limit_price,
        "stop_price": stop_price,
        "status": status,
        "extended_hours": extended_hours,
        "legs": legs,
        "trail_percent": trail_percent,
        "trail_price": trail_price,
        "hwm": hwm,
        "subtag": None,
        "source": None,
        "expires_at": stamp(t.replace(hour=21, minute=0, second=0, microsecond=0)
                            + datetime.timedelta(days=90 if tif == "gtc" else 0)),
    }
    if position_intent is None:  # Alpaca leaves it out for equity orders
        del o["position_intent"]
    return o


def account(rng, account_number, cash, long_mv, short_mv, created):
    """GET /v2/account as of 2026 (no pattern_day_trader, daytrade_count,
    daytrading_buying_power), with fields the schema does not list, as the live service sends."""
    equity = cash + long_mv + short_mv
    initial = (long_mv - short_mv) * Decimal("0.5")
    maint = (long_mv - short_mv) * Decimal("0.3")
    bp = max(equity - initial, Decimal(0)) * 2
    return {
        "id": new_uuid(rng),
        "admin_configurations": {},
        "user_configurations": None,
        "account_number": account_number,
        "status": "ACTIVE",
        "crypto_status": "ACTIVE",
        "options_approved_level": 3,
        "options_trading_level": 3,
        "currency": "USD",
        "buying_power": fmt(bp, 2),
        "regt_buying_power": fmt(bp, 2),
        "effective_buying_power": fmt(bp, 2),
        "non_marginable_buying_power": fmt(cash, 2),
        "options_buying_power": fmt(max(equity - initial, Decimal(0)), 2),
        "bod_dtbp": 0,
        "cash": fmt(cash, 2),
        "accrued_fees": "0",
        "portfolio_value": fmt(equity, 2),
        "multiplier": "2",
        "shorting_enabled": True,
        "equity": fmt(equity, 2),
        "last_equity": fmt(equity * Decimal("0.9931"), 8),
        "long_market_value": fmt(long_mv, 2),
        "short_market_value": fmt(short_mv, 2),
        "position_market_value": fmt(long_mv - short_mv, 2),
        "initial_margin": fmt(initial, 2),
        "maintenance_margin": fmt(maint, 2),
        "last_maintenance_margin": fmt(maint * Decimal("0.98"), 2),
        "sma": fmt(equity * Decimal("0.97"), 2),
        "balance_asof": "2026-07-14",
        "crypto_tier": 1,
        "intraday_adjustments": "0",
        "pending_reg_taf_fees": "0",
        "pending_transfer_in": "0",
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "trade_suspended_by_user": False,
    }


def occ(underlying, expiry, kind, strike):
    return "%s%s%s%08d" % (underlying, expiry.strftime("%y%m%d"), kind, int(strike * 1000))


def generate(n_positions, n_orders, seed):
    rng = random.Random(seed)
    positions = []
    used = set()
    base = datetime.date(2026, 1, 16)
    while len(positions) < n_positions:
        r = rng.random()
        i = len(positions)
        if r < 0.12 and len(used & {s for s in CRYPTO}) < len(CRYPTO):
            sym = rng.choice([s for s in CRYPTO if s not in used])
            cur = Decimal(rng.randint(50, 9_000_000)) / 100
            qty = Decimal(rng.randint(1, 10**9)) / 10**8
            p = position(rng, sym, "crypto", "CRYPTO", qty, cur * Decimal(rng.uniform(0.7, 1.2)).quantize(Decimal("0.01")),
                         cur, cur * Decimal(rng.uniform(0.95, 1.05)).quantize(Decimal("0.0001")),
                         marginable=False)
        elif r < 0.40:
            und, _ = rng.choice(EQUITIES)
            expiry = base + datetime.timedelta(weeks=rng.randint(0, 80))
            expiry += datetime.timedelta(days=(4 - expiry.weekday()) % 7)  # a Friday
            strike = Decimal(rng.randint(10, 900)) * Decimal("2.5")
            sym = occ(und.replace(".", ""), expiry, rng.choice("CP"), strike)
            if sym in used:
                continue
            qty = Decimal(rng.choice([1, 1, 2, 3, 5, 10, -1, -2]))
            cur = Decimal(rng.randint(5, 4000)) / 100
            p = position(rng, sym, "us_option", "", qty, (cur * Decimal(rng.uniform(0.5, 1.5))).quantize(Decimal("0.01")),
                         cur, (cur * Decimal(rng.uniform(0.8, 1.2))).quantize(Decimal("0.01")), multiplier=100)
        else:
            und, exch = rng.choice(EQUITIES)
            sym = und if und not in used else "%s%d" % (und.replace(".", ""), i)  # synthetic tickers past the list
            cur = Decimal(rng.randint(500, 90000)) / 100
            if rng.random() < 0.15:
                qty = Decimal(rng.randint(1, 10**9)) / 10**9  # fractional
            else:
                qty = Decimal(rng.randint(1, 500)) * (-1 if rng.random() < 0.12 else 1)
            p = position(rng, sym, "us_equity", exch, qty, (cur * Decimal(rng.uniform(0.6, 1.3))).quantize(Decimal("0.01")),
                         cur, (cur * Decimal(rng.uniform(0.96, 1.04))).quantize(Decimal("0.01")))
        if p["symbol"] in used:
            continue
        used.add(p["symbol"])
        positions.append(p)

    orders = []
    t = datetime.datetime(2026, 3, 2, 14, 30, 0, 0)
    statuses = ["filled"] * 5 + ["canceled", "expired", "new", "accepted", "partially_filled",
                                 "held", "pending_new", "rejected", "done_for_day", "replaced"]
    while len(orders) < n_orders:
        t += datetime.timedelta(minutes=rng.randint(1, 600))
        if t.weekday() >= 5:
            continue
        und, _ = rng.choice(EQUITIES)
        status = rng.choice(statuses)
        qty = Decimal(rng.randint(1, 200))
        price = Decimal(rng.randint(500, 90000)) / 100
        otype = rng.choice(["market", "limit", "limit", "stop", "stop_limit", "trailing_stop"])
        filled = qty if status == "filled" else (qty / 2).quantize(Decimal(1)) if status == "partially_filled" else Decimal(0)
        kw = dict(qty=format(qty, "f"), filled_qty=format(filled, "f"),
                  filled_avg_price=fmt(price, 2) if filled else None)
        if otype in ("limit", "stop_limit"):
            kw["limit_price"] = fmt(price, 2)
        if otype in ("stop", "stop_limit"):
            kw["stop_price"] = fmt(price * Decimal("0.97"), 2)
        if otype == "trailing_stop":
            kw["trail_percent"] = str(rng.choice([1, 2, 5]))
            kw["hwm"] = fmt(price, 2)
        if rng.random() < 0.15 and otype == "limit":  # a bracket with nested legs
            legs = [
                order(rng, t, und, "us_equity", "sell", "limit", "gtc",
                      "new" if status == "filled" else "held", qty=format(qty, "f"),
                      limit_price=fmt(price * Decimal("1.1"), 2), order_class="bracket"),
                order(rng, t, und, "us_equity", "sell", "stop", "gtc", "held", qty=format(qty, "f"),
                      stop_price=fmt(price * Decimal("0.9"), 2), order_class="bracket"),
            ]
            kw.update(order_class="bracket", legs=legs)
        orders.append(order(rng, t, und, "us_equity", rng.choice(["buy", "sell"]), otype,
                            rng.choice(["day", "gtc"]), status, **kw))
    orders.reverse()  # newest first, as Alpaca lists them by default

    long_mv = sum((Decimal(p["market_value"]) for p in positions if p["side"] == "long"), Decimal(0))
    short_mv = sum((Decimal(p["market_value"]) for p in positions if p["side"] == "short"), Decimal(0))
    acct = account(rng, "PA3" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(9)),
                   Decimal(rng.randint(1_000_000, 50_000_000)) / 100, long_mv, short_mv,
                   datetime.datetime(2023, 5, 4, 13, 20, 11, 482912))
    secret = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(40))
    return acct, positions, orders, secret


def dump(obj):
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def write_key_folder(outdir, key_id, acct, positions, orders, secret, environment):
    folder = os.path.join(outdir, key_id)
    os.makedirs(folder, exist_ok=True)
    for name, text in (("secret", secret + "\n"), ("environment", environment + "\n"), ("account.json", dump(acct)),
                       ("positions.json", dump(positions)), ("orders.json", dump(orders))):
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write(text)
    return folder


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("key_id")
    ap.add_argument("--positions", type=int, default=100)
    ap.add_argument("--orders", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--environment", choices=("paper", "live"), default="paper")
    ap.add_argument("--secret", help="the secret (default: 40 characters derived from the seed)")
    a = ap.parse_args(argv)
    if a.positions < 0 or a.orders < 0:
        ap.error("counts must be >= 0")
    acct, positions, orders, secret = generate(a.positions, a.orders, a.seed)
    folder = write_key_folder(a.outdir, a.key_id, acct, positions, orders, a.secret or secret,
                              a.environment)
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
