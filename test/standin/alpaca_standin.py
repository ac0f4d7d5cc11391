#!/usr/bin/python3
"""Alpaca Trading API stand-in for pg_alpaca's tests, demo and benchmarks.

Python 3 standard library only; run it with /usr/bin/python3.  It serves the Trading API
endpoints the sidecar uses (account, positions, orders: read, submit, replace, cancel, close
positions) with Alpaca's JSON shapes and error bodies, from a fixture folder (one subfolder per
key id, see README.md) that seeds an in-memory order book per key, over HTTPS, with fault knobs
that tests change at run time through a plain-HTTP control port on loopback.

    alpaca_standin.py --fixtures DIR --listen paper=127.0.0.1:8443 [--listen live=127.0.0.1:8444]
                      --cert server.crt --key server.key [--control 127.0.0.1:8449]
                      [--log FILE] [--ready-file FILE] [--rate-limit 200] [--fault JSON]...

Never logs or echoes a key id or a secret: the request log holds the listener, method, path,
status, latency and size only.
"""

import argparse
import collections
import datetime
import email.utils
import hmac
import http
import http.server
import ipaddress
import json
import os
import re
import select
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation

try:
    import zoneinfo

    _NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
except Exception:  # no tz database: fall back to EST, good enough for a stand-in
    _NEW_YORK = datetime.timezone(datetime.timedelta(hours=-5), "EST")

JSON_CT = "application/json; charset=utf-8"
LISTENERS = ("paper", "live")

# Alpaca's error bodies, byte for byte as the live service sends them.
ERR_FORBIDDEN = b'{"message":"forbidden."}'  # 403, authentication headers missing
ERR_UNAUTHORIZED = b'{"code":40110000,"message":"request is not authorized"}'  # 401
ERR_ENDPOINT = b'{"code":40410000,"message":"endpoint not found"}'  # 404, unknown path
ERR_POSITION = b'{"code":40410000,"message":"position does not exist"}'  # 404
ERR_ORDER = b'{"code":40410000,"message":"order not found"}'  # 404
ERR_METHOD = b'{"code":40510000,"message":"method not allowed"}'  # 405
ERR_RATELIMIT = b'{"code":42910000,"message":"rate limit exceeded"}'  # 429
ERR_INTERNAL = b'{"code":50010000,"message":"internal server error occurred"}'  # 500

# Terminal order states; every other status (new, partially_filled, accepted, pending_new,
# accepted_for_bidding, stopped, calculated, pending_cancel, pending_replace, held,
# done_for_day, suspended, and any status Alpaca adds later) counts as open.
CLOSED_STATUSES = frozenset({"filled", "canceled", "expired", "replaced", "rejected"})

FAULT_MODES = ("delay", "status", "ratelimit", "truncated", "malformed", "oversized", "hang", "reset",
               "accept_drop", "accept_504")
FAULT_KEYS = {
    "mode", "count", "key_id", "path", "listener", "method", "delay_ms", "status", "body",
    "content_type", "reset_in", "retry_after", "size_bytes", "chunked", "rst",
}
MALFORMED_BODY = (
    b'[{"asset_id":"b0b6dd9d-8b9b-48a9-ba46-b9d54906e415","symbol":"AAPL","qty":"10",,'
    b'"side":"long","market_value":}'
)


def _gateway_page(status):
    phrase = http.HTTPStatus(status).phrase
    return ("<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1>"
            "</center>\r\n</body>\r\n</html>\r\n" % (status, phrase, status, phrase)).encode()


def _error_json(code, message):
    return json.dumps({"code": code, "message": message}, separators=(",", ":")).encode()


def _err422(message):
    return 422, _error_json(40010001, message)


# ---------------------------------------------------------------------------------------------
# Fixtures


def _skip_ws(text, i):
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _array_items(text, what):
    """Split a JSON array into (object, exact original text) pairs, so the stand-in serves the
    fixture's own bytes (key order, number spelling) instead of a re-serialisation."""
    dec = json.JSONDecoder()
    i = _skip_ws(text, 0)
    if i >= len(text) or text[i] != "[":
        raise ValueError("%s: not a JSON array" % what)
    i = _skip_ws(text, i + 1)
    items = []
    if i < len(text) and text[i] == "]":
        i += 1
    else:
        while True:
            obj, end = dec.raw_decode(text, i)
            if not isinstance(obj, dict):
                raise ValueError("%s: element %d is not an object" % (what, len(items)))
            items.append((obj, text[i:end]))
            i = _skip_ws(text, end)
            if i < len(text) and text[i] == ",":
                i = _skip_ws(text, i + 1)
                continue
            if i < len(text) and text[i] == "]":
                i += 1
                break
            raise ValueError("%s: expected ',' or ']' at offset %d" % (what, i))
    if _skip_ws(text, i) != len(text):
        raise ValueError("%s: trailing data after the array" % what)
    return items


def parse_time(text):
    """RFC 3339 timestamp or date -> aware datetime (UTC when no offset); ValueError if bad."""
    if not isinstance(text, str) or not text:
        raise ValueError("empty timestamp")
    t = datetime.datetime.fromisoformat(text.strip())
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t


def _compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class OrderEntry:
    __slots__ = ("id", "status", "symbol", "side", "submitted", "body", "flat_body", "legs")

    def __init__(self, obj, body, flat_body, legs):
        self.id = str(obj.get("id", ""))
        self.status = obj.get("status") or ""
        self.symbol = obj.get("symbol") or ""
        self.side = obj.get("side") or ""
        stamp = obj.get("submitted_at") or obj.get("created_at")
        try:
            self.submitted = parse_time(stamp)
        except (ValueError, TypeError):
            self.submitted = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
        self.body = body  # as served with nested=true (fixture text)
        self.flat_body = flat_body  # as served with nested=false (legs null)
        self.legs = legs  # list of OrderEntry (legs of a bracket/oco/oto/mleg order)


class FixtureAccount:
    def __init__(self, folder, key_id):
        self.key_id = key_id
        with open(os.path.join(folder, "secret"), "r", encoding="utf-8") as f:
            self.secret = f.readline().strip().encode()
        if not self.secret:
            raise ValueError("%s: empty secret" % key_id)
        env_path = os.path.join(folder, "environment")
        self.environment = "paper"
        if os.path.exists(env_path):
            with open(env_path, "r", encoding="utf-8") as f:
                self.environment = f.read().strip() or "paper"
        if self.environment not in LISTENERS:
            raise ValueError("%s: environment must be paper or live" % key_id)

        text = self._read(folder, "account.json", None)
        account = json.loads(text)
        if not isinstance(account, dict):
            raise ValueError("%s/account.json: not an object" % key_id)
        self.account_body = text.strip().encode()

        text = self._read(folder, "positions.json", "[]")
        items = _array_items(text, key_id + "/positions.json")
        self.positions_body = text.strip().encode()
        self.positions = [(o.get("symbol") or "", o.get("asset_id") or "", raw.encode())
                          for o, raw in items]

        text = self._read(folder, "orders.json", "[]")
        self.orders = []
        self.orders_by_id = {}
        for o, raw in _array_items(text, key_id + "/orders.json"):
            legs = []
            for leg in o.get("legs") or []:
                if isinstance(leg, dict):
                    b = _compact(leg)
                    legs.append(OrderEntry(leg, b, b, []))
            flat = dict(o)
            if "legs" in flat:
                flat["legs"] = None
            entry = OrderEntry(o, raw.encode(), _compact(flat), legs)
            self.orders.append(entry)
            self.orders_by_id[entry.id] = entry
            for leg in legs:
                self.orders_by_id.setdefault(leg.id, leg)

    @staticmethod
    def _read(folder, name, default):
        path = os.path.join(folder, name)
        if default is not None and not os.path.exists(path):
            return default
        with open(path, "r", encoding="utf-8") as f:
            return f.read()


def load_fixtures(root):
    accounts = {}
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder) or name.startswith("."):
            continue
        if not os.path.exists(os.path.join(folder, "secret")):
            continue
        accounts[name] = FixtureAccount(folder, name)
    if not accounts:
        raise ValueError("no fixture accounts (subfolders with a secret file) in %s" % root)
    return accounts


# ---------------------------------------------------------------------------------------------
# Shared state: faults, rate windows, statistics, log


class Fault:
    def __init__(self, fid, spec):
        unknown = set(spec) - FAULT_KEYS
        if unknown:
            raise ValueError("unknown fault field(s): %s" % ", ".join(sorted(unknown)))
        self.id = fid
        self.spec = dict(spec)
        self.mode = spec.get("mode")
        if self.mode not in FAULT_MODES:
            raise ValueError("mode must be one of %s" % ", ".join(FAULT_MODES))
        self.remaining = spec.get("count")
        if self.remaining is not None and (not isinstance(self.remaining, int) or self.remaining < 1):
            raise ValueError("count must be a positive integer")
        self.key_id = spec.get("key_id")
        self.path = spec.get("path")
        self.listener = spec.get("listener")
        if self.listener is not None and self.listener not in LISTENERS:
            raise ValueError("listener must be paper or live")
        self.method = spec.get("method")
        self.delay_ms = self._num(spec, "delay_ms", 0, 0, 3_600_000)
        if self.mode == "delay" and "delay_ms" not in spec:
            raise ValueError("mode delay needs delay_ms")
        self.status = self._num(spec, "status", 504 if self.mode == "accept_504" else 500, 400, 599)
        self.body = spec.get("body")
        if self.body is not None and not isinstance(self.body, str):
            raise ValueError("body must be a string")
        self.content_type = spec.get("content_type")
        self.reset_in = self._num(spec, "reset_in", 1, 0, 86400)
        self.retry_after = spec.get("retry_after")
        if self.retry_after is not None:
            self.retry_after = self._num(spec, "retry_after", 0, 0, 86400)
        self.size_bytes = self._num(spec, "size_bytes", 32 * 1024 * 1024, 4, 1 << 34)
        self.chunked = bool(spec.get("chunked", False))
        self.used = 0
        self.cleared = threading.Event()

    @staticmethod
    def _num(spec, name, default, lo, hi):
        v = spec.get(name, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise ValueError("%s must be a number in [%s, %s]" % (name, lo, hi))
        return v

    def matches(self, listener, method, path, key_id):
        if self.listener is not None and self.listener != listener:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        if self.key_id is not None and self.key_id != key_id:
            return False
        if self.path is not None:
            if self.path.endswith("*"):
                if not path.startswith(self.path[:-1]):
                    return False
            elif self.path != path:
                return False
        return True

    def describe(self):
        d = dict(self.spec)
        d["id"] = self.id
        d["used"] = self.used
        d["remaining"] = self.remaining
        return d


class App:
    def __init__(self, fixtures_dir, rate_limit, log_path):
        self.fixtures_dir = fixtures_dir
        self.accounts = load_fixtures(fixtures_dir)
        self.lock = threading.Lock()
        self.faults = []
        self.live_faults = {}  # id -> Fault, until cleared (hung requests wait on these)
        self.next_fault_id = 1
        self.rate_limit = rate_limit
        self.windows = {}  # key_id -> [window_start, count]
        self.counts = collections.Counter()
        self.recent = collections.deque(maxlen=500)
        self.total = 0
        self.tls_failures = 0
        self.in_flight = 0
        self.hanging = 0
        self.stopping = threading.Event()
        self.log_file = open(log_path, "a", encoding="utf-8", buffering=1) if log_path else None
        self.log_lock = threading.Lock()
        self._dummy_secret = os.urandom(40).hex().encode()[:40]
        self.books = {}  # key_id -> Book (trading state), made on first use from the fixture
        self.prices = {}  # symbol -> Decimal, set through POST /prices
        self.orders_created = collections.Counter()  # key_id -> orders created (stats)

    # trading state ----------------------------------------------------------------------------
    def book(self, acct):
        with self.lock:
            b = self.books.get(acct.key_id)
            if b is None:
                b = Book(acct, self.prices)
                self.books[acct.key_id] = b
            return b

    def reset_books(self, key_id=None):
        with self.lock:
            if key_id is None:
                n = len(self.books)
                self.books = {}
            else:
                n = 1 if self.books.pop(key_id, None) is not None else 0
            return n

    def set_prices(self, prices):
        parsed = {}
        for sym, v in prices.items():
            if not isinstance(sym, str) or not sym or isinstance(v, bool) or not isinstance(v, (str, int, float)):
                raise ValueError("prices: {\"SYMBOL\": \"price\"} with positive decimal prices")
            try:
                d = Decimal(str(v))
            except InvalidOperation:
                raise ValueError("prices: %s is not a decimal" % sym) from None
            if not d.is_finite() or d <= 0:
                raise ValueError("prices: %s must be positive" % sym)
            parsed[sym.upper()] = d
        with self.lock:
            self.prices.update(parsed)  # Books hold this very dict
            return {k: fmt(v) for k, v in self.prices.items()}

    def clear_prices(self):
        with self.lock:
            self.prices.clear()

    def count_created(self, key_id, n):
        with self.lock:
            self.orders_created[key_id] += n

    # fixtures ---------------------------------------------------------------------------------
    def reload(self):
        accounts = load_fixtures(self.fixtures_dir)
        with self.lock:
            self.accounts = accounts  # atomic swap; in-flight requests keep the old object
            self.books = {}  # trading state starts again from the new fixtures
        return len(accounts)

    def authenticate(self, key_id, secret, listener):
        """-> (status, account or None). Constant-time secret comparison."""
        acct = self.accounts.get(key_id)
        given = secret.encode("utf-8", "surrogateescape")
        if acct is None:
            hmac.compare_digest(given, self._dummy_secret)
            return 401, None
        if not hmac.compare_digest(given, acct.secret):
            return 401, None
        if acct.environment != listener:
            return 401, None  # a paper key against the live endpoint, or the reverse
        return 200, acct

    # faults -----------------------------------------------------------------------------------
    def add_fault(self, spec):
        with self.lock:
            fault = Fault(self.next_fault_id, spec)
            self.next_fault_id += 1
            self.faults.append(fault)
            self.live_faults[fault.id] = fault
            return fault

    def clear_faults(self, fid=None):
        with self.lock:
            if fid is None:
                gone = list(self.live_faults.values())
                self.faults = []
                self.live_faults = {}
            else:
                f = self.live_faults.pop(fid, None)
                gone = [f] if f else []
                self.faults = [x for x in self.faults if x.id != fid]
        for f in gone:
            f.cleared.set()
        return len(gone)

    def take_fault(self, listener, method, path, key_id):
        if not self.faults:
            return None
        with self.lock:
            for f in self.faults:
                if f.matches(listener, method, path, key_id):
                    f.used += 1
                    if f.remaining is not None:
                        f.remaining -= 1
                        if f.remaining <= 0:
                            self.faults.remove(f)
                            if f.mode != "hang":
                                self.live_faults.pop(f.id, None)
                    return f
        return None

    def list_faults(self):
        with self.lock:
            return [f.describe() for f in self.faults]

    # rate limit -------------------------------------------------------------------------------
    def rate_hit(self, key_id):
        """Count one request of an authenticated key in its fixed 60-second window.
        -> (allowed, limit, remaining, reset_unix_seconds)"""
        now = time.time()
        limit = self.rate_limit
        with self.lock:
            w = self.windows.get(key_id)
            if w is None or now >= w[0] + 60:
                w = [now, 0]
                self.windows[key_id] = w
            allowed = w[1] < limit
            if allowed:
                w[1] += 1
            remaining = max(0, limit - w[1])
            return allowed, limit, remaining, int(w[0] + 60 + 0.999)

    def rate_peek(self, key_id):
        now = time.time()
        limit = self.rate_limit
        with self.lock:
            w = self.windows.get(key_id) if key_id else None
            if w is None or now >= w[0] + 60:
                return limit, limit, int(now + 60 + 0.999)
            return limit, max(0, limit - w[1]), int(w[0] + 60 + 0.999)

    def set_rate_limit(self, limit):
        with self.lock:
            self.rate_limit = limit
            self.windows = {}

    # stats and log ----------------------------------------------------------------------------
    def record(self, listener, method, path, query, status, key_id, fault, latency_s, nbytes,
               seq):
        fmode = fault.mode if fault else None
        with self.lock:
            self.in_flight -= 1
            self.counts[(listener, method, path, status, key_id, fmode)] += 1
            self.recent.append({
                "seq": seq, "time": round(time.time(), 6), "listener": listener, "method": method,
                "path": path, "query": query, "status": status, "key_id": key_id,
                "fault": fmode, "latency_ms": round(latency_s * 1000, 3), "bytes": nbytes,
            })
        if self.log_file:
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            line = "%s %s %s %s %d %.3fms %dB fault=%s\n" % (
                stamp, listener, method, path + ("?" + query if query else ""), status,
                latency_s * 1000, nbytes, fmode or "-")
            with self.log_lock:
                self.log_file.write(line)

    def settle(self, timeout_s=2.0):
        """Waits (at most timeout_s) until every request not hanging on purpose is recorded."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if self.in_flight <= self.hanging:
                    return
            time.sleep(0.005)

    def stats(self):
        with self.lock:
            by = {"by_path": collections.Counter(), "by_status": collections.Counter(),
                  "by_key": collections.Counter(), "by_listener": collections.Counter(),
                  "by_fault": collections.Counter()}
            counts = []
            for (listener, method, path, status, key_id, fmode), n in sorted(
                    self.counts.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
                counts.append({"listener": listener, "method": method, "path": path,
                               "status": status, "key_id": key_id, "fault": fmode, "count": n})
                by["by_path"][path] += n
                by["by_status"][str(status)] += n
                by["by_key"][key_id or ""] += n
                by["by_listener"][listener] += n
                if fmode:
                    by["by_fault"][fmode] += n
            books = dict(self.books)
            out = {"total": self.total, "in_flight": self.in_flight, "hanging": self.hanging,
                   "tls_handshake_failures": self.tls_failures, "counts": counts,
                   # in the order the requests were dispatched (each is recorded just
                   # after its answer, so two threads may record out of order)
                   "recent": sorted(self.recent, key=lambda r: r["seq"]),
                   "orders_created": dict(self.orders_created),
                   "orders_created_total": sum(self.orders_created.values())}
            out.update({k: dict(v) for k, v in by.items()})
        orders = {}
        for key_id, b in sorted(books.items()):
            with b.lock:
                flat = list(b._all())
                orders[key_id] = {"orders": len(flat), "open": sum(1 for o in flat if o.is_open),
                                  "positions": len(b.positions)}
        out["books"] = orders
        return out

    def clear_stats(self):
        with self.lock:
            self.counts.clear()
            self.recent.clear()
            self.total = 0
            self.tls_failures = 0
            self.orders_created.clear()


# ---------------------------------------------------------------------------------------------
# Trading: orders, fills, positions and the account of each key id, in memory, seeded from the
# fixtures.  Every mutation happens under the key's Book lock.


class Refusal(Exception):
    """An Alpaca error answer: status and body (bytes)."""

    def __init__(self, status, body):
        super().__init__(status)
        self.status = status
        self.body = body


def _refuse(code, message, status=422, **extra):
    if extra:  # Alpaca (a Go map) sends such bodies with their keys sorted
        obj = dict(extra)
        obj["code"] = code
        obj["message"] = message
        obj = {k: obj[k] for k in sorted(obj)}
        raise Refusal(status, _compact(obj))
    raise Refusal(status, _error_json(code, message))


ERR_BODY_FORMAT = (400, 40010000, "request body format is invalid")
OCC_RE = re.compile(r"^[A-Z]{1,6}[0-9]{6}[CP][0-9]{8}$")
SAFE_SYMBOL_RE = re.compile(r"^[A-Za-z0-9./-]{1,40}$")
ORDER_CLASSES = ("", "simple", "bracket", "oco", "oto", "mleg")
ORDER_TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
TIME_IN_FORCE = ("day", "gtc", "opg", "cls", "ioc", "fok")
POSITION_INTENTS = ("buy_to_open", "buy_to_close", "sell_to_open", "sell_to_close")
BP_FIELDS = ("buying_power", "regt_buying_power", "daytrading_buying_power", "effective_buying_power",
             "non_marginable_buying_power", "options_buying_power")
CRYPTO_QUOTES = ("USDT", "USDC", "USD", "BTC")

# Prices for symbols no fixture position prices (a position's current_price wins; POST /prices on
# the control port overrides both).  symbol -> (price, exchange)
PRICE_TABLE = {
    "AAPL": ("189.84", "NASDAQ"), "MSFT": ("412.77", "NASDAQ"), "NVDA": ("121.4", "NASDAQ"),
    "TSLA": ("248.5", "NASDAQ"), "AMZN": ("186.51", "NASDAQ"), "GOOGL": ("176.3", "NASDAQ"),
    "META": ("505.2", "NASDAQ"), "AMD": ("158.7", "NASDAQ"), "QQQ": ("471.3", "NASDAQ"),
    "SPY": ("548.1", "ARCA"), "VTI": ("236.12", "ARCA"), "IWM": ("203.9", "ARCA"),
    "GLD": ("215.35", "ARCA"), "JPM": ("201.4", "NYSE"), "KO": ("62.9", "NYSE"),
    "XOM": ("113.2", "NYSE"), "BRK.B": ("412.3", "NYSE"),
    "BTC/USD": ("67012.35", "CRYPTO"), "ETH/USD": ("3512.4", "CRYPTO"), "SOL/USD": ("151.23", "CRYPTO"),
    "LTC/USD": ("72.15", "CRYPTO"), "DOGE/USD": ("0.1234", "CRYPTO"),
    "AAPL241213C00250000": ("0.43", ""), "AAPL241213C00260000": ("0.01", ""),
    "AAPL250620C00100000": ("90.1", ""), "AAPL240119C00200000": ("0.95", ""),
    "SPY261218C00600000": ("12.5", ""), "SPY261218P00500000": ("8.25", ""),
}


def D(text):
    return Decimal(text)


def fmt(x, places=None):
    """Decimal -> Alpaca-style decimal string: no exponent, no trailing zeros."""
    if places is not None:
        x = x.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    s = format(x.normalize(), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _cents(x):
    return x.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def now_stamp():
    ns = time.time_ns()
    t = datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % (ns % 1_000_000_000)


def _close_stamp(days=0):
    day = datetime.datetime.now(_NEW_YORK).date() + datetime.timedelta(days=days)
    close = datetime.datetime(day.year, day.month, day.day, 16, 0, tzinfo=_NEW_YORK)
    return close.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")


def _decimal_field(req, name, label=None):
    """A decimal the client sent as a string or a JSON number; None when absent or null."""
    v = req.get(name)
    if v is None or v == "":
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        _refuse(40010001, "invalid %s" % (label or name))
    try:
        d = Decimal(str(v).strip())
    except InvalidOperation:
        _refuse(40010001, "invalid %s" % (label or name))
    if not d.is_finite():
        _refuse(40010001, "invalid %s" % (label or name))
    return d


def _symbol_text(s):
    return s if SAFE_SYMBOL_RE.match(s) else "?"


class Asset:
    __slots__ = ("asset_class", "order_symbol", "position_symbol", "asset_id", "exchange", "price",
                 "multiplier", "marginable")


class BookOrder:
    """One order (or leg) of a key's book.  d is the order object as Alpaca sends it (legs kept
    apart in self.legs); raw/flat_raw hold the fixture's own bytes while the order is untouched."""

    __slots__ = ("d", "raw", "flat_raw", "legs", "parent", "submitted", "seq", "reserve", "held",
                 "held_symbol", "mult")

    def __init__(self, d, seq, raw=None, flat_raw=None, submitted=None):
        self.d = d
        self.raw = raw
        self.flat_raw = flat_raw
        self.legs = []
        self.parent = None
        self.seq = seq
        self.reserve = Decimal(0)  # buying power this open order holds back
        self.held = Decimal(0)  # position quantity this open order holds back (qty_available)
        self.held_symbol = None
        self.mult = 1
        if submitted is None:
            try:
                submitted = parse_time(d.get("submitted_at") or d.get("created_at"))
            except (ValueError, TypeError):
                submitted = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
        self.submitted = submitted

    id = property(lambda self: str(self.d.get("id", "")))
    status = property(lambda self: self.d.get("status") or "")
    symbol = property(lambda self: self.d.get("symbol") or "")
    side = property(lambda self: self.d.get("side") or "")
    is_open = property(lambda self: self.status not in CLOSED_STATUSES)

    def touch(self, stamp):
        self.d["updated_at"] = stamp
        self.raw = self.flat_raw = None
        if self.parent is not None:
            self.parent.raw = self.parent.flat_raw = None

    def obj(self, nested=True, status=None):
        o = dict(self.d)
        if self.legs:
            o["legs"] = [leg.obj() for leg in self.legs] if nested else None
        if status is not None:
            o["status"] = status
        return o

    def body(self, nested=True):
        if self.raw is not None:
            return self.raw if nested else self.flat_raw
        return _compact(self.obj(nested))


def _new_order(asset, coid, stamp, order_class, otype, side, tif, qty, notional, limit, stop,
               ext, trail_price=None, trail_percent=None, hwm=None, intent=None, ratio=None):
    d = {
        "id": str(uuid.uuid4()), "client_order_id": coid, "created_at": stamp, "updated_at": stamp,
        "submitted_at": stamp, "filled_at": None, "expired_at": None, "canceled_at": None,
        "failed_at": None, "replaced_at": None, "replaced_by": None, "replaces": None,
        "asset_id": asset.asset_id if asset else "", "symbol": asset.order_symbol if asset else "",
        "asset_class": asset.asset_class if asset else "",
        "notional": fmt(notional) if notional is not None else None,
        "qty": fmt(qty) if qty is not None else None, "filled_qty": "0", "filled_avg_price": None,
        "order_class": order_class, "order_type": otype, "type": otype, "side": side,
    }
    if intent:
        d["position_intent"] = intent
    d.update({
        "time_in_force": tif, "limit_price": fmt(limit) if limit is not None else None,
        "stop_price": fmt(stop) if stop is not None else None, "status": "new",
        "extended_hours": bool(ext), "legs": None,
        "trail_percent": fmt(trail_percent) if trail_percent is not None else None,
        "trail_price": fmt(trail_price) if trail_price is not None else None,
        "hwm": fmt(hwm) if hwm is not None else None, "subtag": None, "source": None,
        "expires_at": _close_stamp(0 if tif in ("day", "opg", "cls", "ioc", "fok") else 90),
    })
    if ratio is not None:
        d["ratio_qty"] = fmt(ratio)
    return d


class Book:
    """The trading state of one key id."""

    def __init__(self, acct, prices):
        self.lock = threading.Lock()
        self.key_id = acct.key_id
        self.prices = prices  # App.prices (symbol -> Decimal), shared, read-only here
        self.account = json.loads(acct.account_body)
        self.account_raw = acct.account_body
        self.positions = [[json.loads(raw), raw] for _, _, raw in acct.positions]
        self.positions_raw = acct.positions_body
        self.orders = []
        self.by_id = {}
        self.by_coid = {}
        self.seq = 0
        self.created = 0
        for e in acct.orders:
            top = self._seed(e)
            for leg in e.legs:
                lo = self._seed(leg)
                lo.parent = top
                top.legs.append(lo)
            self.orders.append(top)

    def _seed(self, entry):
        self.seq += 1
        bo = BookOrder(json.loads(entry.body), self.seq, entry.body, entry.flat_body, entry.submitted)
        self.by_id.setdefault(bo.id, bo)
        coid = bo.d.get("client_order_id")
        if coid:
            self.by_coid.setdefault(coid, bo)
        return bo

    # bodies ------------------------------------------------------------------------------------
    def account_body(self):
        if self.account_raw is None:
            self.account_raw = _compact(self.account)
        return self.account_raw

    def positions_body(self):
        if self.positions_raw is None:
            self.positions_raw = b"[" + b",".join(self._pos_body(p) for p in self.positions) + b"]"
        return self.positions_raw

    @staticmethod
    def _pos_body(p):
        if p[1] is None:
            p[1] = _compact(p[0])
        return p[1]

    def find_position(self, ident):
        want = ident.upper().replace("/", "")
        for p in self.positions:
            if (p[0].get("symbol") or "").upper().replace("/", "") == want or p[0].get("asset_id") == ident:
                return p
        return None

    def position_body(self, ident):
        p = self.find_position(ident)
        if p is None:
            return 404, ERR_POSITION
        return 200, self._pos_body(p)

    # assets and prices -------------------------------------------------------------------------
    def _known_crypto(self, s):
        if "/" in s:
            return True
        for p, _ in self.positions:
            if p.get("asset_class") == "crypto" and (p.get("symbol") or "").upper() == s:
                return True
        return any(k.replace("/", "") == s for k in PRICE_TABLE if "/" in k)

    def asset(self, symbol):
        if not isinstance(symbol, str) or not symbol.strip():
            _refuse(40010001, "symbol is required")
        s = symbol.strip()
        try:  # an asset id of a position
            uuid.UUID(s)
            for p, _ in self.positions:
                if p.get("asset_id") == s:
                    s = p.get("symbol") or s
                    break
        except ValueError:
            pass
        s = s.upper()
        a = Asset()
        if OCC_RE.match(s):
            a.asset_class, a.order_symbol, a.position_symbol, a.multiplier = "us_option", s, s, 100
        elif self._known_crypto(s):
            if "/" not in s:
                for q in CRYPTO_QUOTES:
                    if s.endswith(q) and len(s) > len(q):
                        s = s[:-len(q)] + "/" + q
                        break
            a.asset_class, a.order_symbol, a.position_symbol, a.multiplier = "crypto", s, s.replace("/", ""), 1
        else:
            a.asset_class, a.order_symbol, a.position_symbol, a.multiplier = "us_equity", s, s, 1
        pos = self.find_position(a.position_symbol)
        table = PRICE_TABLE.get(a.order_symbol)
        price = self.prices.get(a.order_symbol) or self.prices.get(a.position_symbol)
        if price is None and pos is not None:
            price = D(pos[0]["current_price"])
        if price is None and table is not None:
            price = D(table[0])
        if price is None:
            _refuse(40010001, 'asset "%s" not found' % _symbol_text(s))
        a.price = price
        if pos is not None:
            a.asset_id = pos[0].get("asset_id")
            a.exchange = pos[0].get("exchange", "")
            a.marginable = pos[0].get("asset_marginable", a.asset_class == "us_equity")
        else:
            a.asset_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "alpaca-standin:" + a.order_symbol))
            a.exchange = table[1] if table else ("" if a.asset_class == "us_option" else "NASDAQ")
            a.marginable = a.asset_class == "us_equity"
        return a

    def pos_qty(self, asset):
        p = self.find_position(asset.position_symbol)
        return D(p[0]["qty"]) if p else Decimal(0)

    def held_qty(self, position_symbol):
        return sum((o.held for o in self._all() if o.is_open and o.held_symbol == position_symbol),
                   Decimal(0))

    def _all(self):
        for o in self.orders:
            yield o
            yield from o.legs

    def _bp_field(self, asset):
        f = {"crypto": "non_marginable_buying_power", "us_option": "options_buying_power"}.get(asset.asset_class)
        return f if f and f in self.account else "buying_power"

    def _bp(self, field):
        try:
            return D(str(self.account.get(field, "0")))
        except InvalidOperation:
            return Decimal(0)

    # account arithmetic ------------------------------------------------------------------------
    def _adjust(self, fields, delta):
        if not delta:
            return
        for f in fields:
            if f in self.account:
                try:
                    self.account[f] = fmt(D(str(self.account[f])) + delta)
                except InvalidOperation:
                    pass
        self.account_raw = None

    def _apply_fill(self, asset, side, qty, price, stamp):
        """Book a fill of qty at price: the position and the account, consistently."""
        sign = Decimal(1) if side == "buy" else Decimal(-1)
        mult = Decimal(asset.multiplier)
        crypto = asset.asset_class == "crypto"
        places = 9 if crypto else 2
        cost = (qty * price * mult).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
        p = self.find_position(asset.position_symbol)
        old_qty = D(p[0]["qty"]) if p else Decimal(0)
        old_mv = D(p[0]["market_value"]) if p else Decimal(0)
        new_qty = old_qty + sign * qty
        opening = old_qty == 0 or (old_qty > 0) == (sign > 0)
        if p is None:
            p = [{
                "asset_id": asset.asset_id, "symbol": asset.position_symbol, "exchange": asset.exchange,
                "asset_class": asset.asset_class, "asset_marginable": bool(asset.marginable),
                "qty": "0", "avg_entry_price": fmt(price), "side": "long", "market_value": "0",
                "cost_basis": "0", "unrealized_pl": "0", "unrealized_plpc": "0",
                "unrealized_intraday_pl": "0", "unrealized_intraday_plpc": "0",
                "current_price": fmt(price), "lastday_price": fmt(price), "change_today": "0",
                "qty_available": "0",
            }, None]
            self.positions.append(p)
        pd = p[0]
        if opening and old_qty != 0:
            avg = (D(pd["avg_entry_price"]) * abs(old_qty) + price * qty) / abs(new_qty)
        elif opening or (new_qty != 0 and (new_qty > 0) != (old_qty > 0)):
            avg = price
        else:
            avg = D(pd["avg_entry_price"])
        if new_qty == 0:
            self.positions.remove(p)
            new_mv = Decimal(0)
        else:
            cur = D(pd["current_price"])
            last = D(pd["lastday_price"])
            new_mv = (new_qty * cur * mult).quantize(Decimal(1).scaleb(-places))
            cb = new_qty * avg * mult
            pl = new_mv - cb
            intraday = (cur - last) * new_qty * mult
            pd.update({
                "qty": fmt(new_qty), "avg_entry_price": fmt(avg, 9 if crypto else 4),
                "side": "short" if new_qty < 0 else "long", "market_value": fmt(new_mv, places),
                "cost_basis": fmt(cb, places), "unrealized_pl": fmt(pl, places),
                "unrealized_plpc": fmt(pl / abs(cb), 16) if cb else "0",
                "unrealized_intraday_pl": fmt(intraday, places),
                "unrealized_intraday_plpc": fmt(intraday / abs(last * new_qty * mult), 16) if last else "0",
            })
            p[1] = None
        self._refresh_available(asset.position_symbol)
        self.positions_raw = None
        # account: cash moves by the cost, market values by the position's change; equity
        # moves only by the difference between fill price and current price
        d_long = (max(new_mv, Decimal(0)) - max(old_mv, Decimal(0)))
        d_short = (min(new_mv, Decimal(0)) - min(old_mv, Decimal(0)))
        d_cash = -sign * cost
        self._adjust(("cash",), d_cash)
        self._adjust(("long_market_value",), d_long)
        self._adjust(("short_market_value",), d_short)
        self._adjust(("position_market_value",), d_long - d_short)
        self._adjust(("equity", "portfolio_value"), d_cash + d_long + d_short)
        # buying power: an opening fill uses it, a closing fill gives it back
        self._adjust(BP_FIELDS, -cost if opening else cost)
        return cost

    def _refresh_available(self, position_symbol):
        p = self.find_position(position_symbol)
        if p is None:
            return
        q = D(p[0]["qty"])
        held = self.held_qty(position_symbol)
        avail = q - held if q > 0 else q + held
        if p[0].get("qty_available") != fmt(avail):
            p[0]["qty_available"] = fmt(avail)
            p[1] = None
            self.positions_raw = None

    def _reserve(self, order, amount):
        order.reserve = amount
        self._adjust(BP_FIELDS, -amount)

    def _release(self, order):
        if order.reserve:
            self._adjust(BP_FIELDS, order.reserve)
            order.reserve = Decimal(0)
        if order.held:
            sym = order.held_symbol
            order.held = Decimal(0)
            self._refresh_available(sym)

    def _register(self, order, parent=None):
        self.seq += 1
        order.seq = self.seq
        self.by_id[order.id] = order
        self.by_coid[order.d["client_order_id"]] = order
        if parent is None:
            self.orders.append(order)
        else:
            order.parent = parent
            parent.legs.append(order)

    def _check_coid(self, req):
        coid = req.get("client_order_id")
        if coid is None or coid == "":
            return str(uuid.uuid4())
        if not isinstance(coid, str):
            _refuse(40010001, "invalid client_order_id")
        if len(coid) > 128:
            _refuse(40010001, "client_order_id must be no more than 128 characters")
        if coid in self.by_coid:
            _refuse(40010001, "client_order_id must be unique")
        return coid

    # POST /v2/orders ---------------------------------------------------------------------------
    def submit(self, req):
        """-> (status, body).  The caller holds self.lock."""
        if not isinstance(req, dict):
            _refuse(ERR_BODY_FORMAT[1], ERR_BODY_FORMAT[2], ERR_BODY_FORMAT[0])
        order_class = req.get("order_class") or ""
        if order_class not in ORDER_CLASSES:
            _refuse(40010001, "invalid order_class")
        otype = req.get("type")
        if otype not in ORDER_TYPES:
            _refuse(40010001, "invalid order type")
        tif = req.get("time_in_force") or "day"  # Alpaca's default (alpaca-py#98)
        if tif not in TIME_IN_FORCE:
            _refuse(40010001, "invalid time_in_force")
        ext = req.get("extended_hours")
        if ext is None:
            ext = False
        if not isinstance(ext, bool):
            _refuse(40010001, "invalid extended_hours")
        intent = req.get("position_intent")
        if intent is not None and intent not in POSITION_INTENTS:
            _refuse(40010001, "invalid position_intent")
        qty = _decimal_field(req, "qty")
        notional = _decimal_field(req, "notional")
        limit = _decimal_field(req, "limit_price")
        stop = _decimal_field(req, "stop_price")
        trail_price = _decimal_field(req, "trail_price")
        trail_percent = _decimal_field(req, "trail_percent")
        if qty is not None and notional is not None:
            _refuse(40010001, "qty and notional cannot both be specified")
        if qty is None and notional is None:
            _refuse(40010001, "qty is required")
        if qty is not None and qty <= 0:
            _refuse(40010001, "qty must be > 0")
        if notional is not None and notional <= 0:
            _refuse(40010001, "notional must be > 0")
        if order_class == "mleg":
            return self._submit_mleg(req, otype, tif, qty, notional, limit, ext)
        if req.get("legs"):
            _refuse(40010001, "legs are only allowed for mleg orders")
        side = req.get("side")
        if side not in ("buy", "sell"):
            _refuse(40010001, "invalid side")
        asset = self.asset(req.get("symbol"))

        # asset class rules
        if asset.asset_class == "crypto":
            if tif not in ("gtc", "ioc"):
                _refuse(42210000, "invalid crypto time_in_force")
            if otype not in ("market", "limit", "stop_limit"):
                _refuse(42210000, "invalid crypto order_type")
            if order_class not in ("", "simple"):
                _refuse(42210000, "invalid crypto order_class")
        elif asset.asset_class == "us_option":
            if tif not in ("day", "gtc"):
                _refuse(42210000, "order_time_in_force provided not supported for options trading")
            if otype == "trailing_stop":
                _refuse(42210000, "invalid options order_type")
            if order_class not in ("", "simple"):
                _refuse(42210000, "invalid options order_class")
            if notional is not None:
                _refuse(40010001, "qty is required")
            if qty != qty.to_integral_value():
                _refuse(40010001, "qty must be integer")
        else:
            fractional = notional is not None or qty != qty.to_integral_value()
            if fractional:
                if tif != "day":
                    _refuse(42210000, "fractional orders must be DAY orders")
                if order_class not in ("", "simple"):
                    _refuse(42210000, "fractional orders must be simple orders")
                if otype != "market":
                    _refuse(42210000, "fractional orders must be market orders")
        if notional is not None and otype != "market":
            _refuse(42210000, "notional orders must be market orders")

        # order type rules
        if otype == "market":
            if limit is not None or stop is not None:
                _refuse(40010001, "market orders require no stop or limit price")
        elif otype == "limit":
            if limit is None and order_class != "oco":
                _refuse(40010001, "limit orders require a limit price")
            if stop is not None:
                _refuse(40010001, "limit orders require no stop price")
        elif otype == "stop":
            if stop is None:
                _refuse(40010001, "stop orders require a stop price")
            if limit is not None:
                _refuse(40010001, "stop orders require no limit price")
        elif otype == "stop_limit":
            if limit is None:
                _refuse(40010001, "stop limit orders require a limit price")
            if stop is None:
                _refuse(40010001, "stop limit orders require a stop price")
        else:  # trailing_stop
            if (trail_price is None) == (trail_percent is None):
                _refuse(40010001, "trailing stop orders require exactly one of trail_price or trail_percent")
        if otype != "trailing_stop" and (trail_price is not None or trail_percent is not None):
            _refuse(40010001, "trail_price and trail_percent are only for trailing_stop orders")
        for value, name in ((limit, "limit price"), (stop, "stop price"), (trail_price, "trail price"),
                            (trail_percent, "trail percent")):
            if value is not None and value <= 0:
                _refuse(40010001, "%s must be > 0" % name)
        if ext:
            if otype != "limit":
                _refuse(40010001, 'only type="limit" is allowed for extended hours orders')
            if tif not in ("day", "gtc"):
                _refuse(40010001, 'only time_in_force="day" or "gtc" is allowed for extended hours orders')

        # order class rules
        tp = req.get("take_profit")
        sl = req.get("stop_loss")
        tp_limit = sl_stop = sl_limit = None
        for obj, name in ((tp, "take_profit"), (sl, "stop_loss")):
            if obj is not None and not isinstance(obj, dict):
                _refuse(40010001, "invalid %s" % name)
        if tp:
            tp_limit = _decimal_field(tp, "limit_price", "take_profit.limit_price")
        if sl:
            sl_stop = _decimal_field(sl, "stop_price", "stop_loss.stop_price")
            sl_limit = _decimal_field(sl, "limit_price", "stop_loss.limit_price")
        for value, name in ((tp_limit, "take_profit.limit_price"), (sl_stop, "stop_loss.stop_price"),
                            (sl_limit, "stop_loss.limit_price")):
            if value is not None and value <= 0:
                _refuse(40010001, "%s must be > 0" % name)
        if order_class in ("", "simple"):
            if tp or sl:
                _refuse(40010001, "take_profit and stop_loss are only for bracket, oco and oto orders")
        else:
            if tif not in ("day", "gtc"):
                _refuse(40010001, "%s orders must be day or gtc orders" % order_class)
            if order_class in ("bracket", "oco"):
                if tp_limit is None:
                    _refuse(40010001, "take_profit.limit_price is required")
                if sl_stop is None:
                    _refuse(40010001, "stop_loss.stop_price is required")
            else:  # oto
                if (tp_limit is None) == (sl_stop is None):
                    _refuse(40010001, "oto orders require either take_profit or stop_loss")
            if order_class == "bracket" and otype not in ("market", "limit", "stop", "stop_limit"):
                _refuse(40010001, "bracket orders must be market, limit, stop or stop_limit orders")
            if order_class == "oco":
                if otype != "limit":
                    _refuse(40010001, "oco orders must be limit orders")
                limit = tp_limit
            base = limit if limit is not None else (stop if stop is not None else asset.price)
            if order_class == "bracket" or order_class == "oto":
                up, down = (1, -1) if side == "buy" else (-1, 1)
                if tp_limit is not None and (tp_limit - base) * up < Decimal("0.01"):
                    _refuse(42210000, "take_profit.limit_price must be %s base_price %s 0.01"
                            % ((">=", "+") if side == "buy" else ("<=", "-")))
                if sl_stop is not None and (sl_stop - base) * down < Decimal("0.01"):
                    _refuse(42210000, "stop_loss.stop_price must be %s base_price %s 0.01"
                            % (("<=", "-") if side == "buy" else (">=", "+")))

        coid = self._check_coid(req)

        # quantity and buying power
        held_qty = self.pos_qty(asset)
        exec_qty = qty if qty is not None else (notional / asset.price).quantize(Decimal("0.000000001"), ROUND_DOWN)
        opening = held_qty == 0 or (held_qty > 0) == (side == "buy")
        if asset.asset_class == "us_option" and intent is None:
            intent = ("buy_to_close" if held_qty < 0 else "buy_to_open") if side == "buy" else \
                     ("sell_to_close" if held_qty > 0 else "sell_to_open")
        if not opening or (asset.asset_class == "crypto" and side == "sell"):
            available = abs(held_qty) - self.held_qty(asset.position_symbol)
            if exec_qty > available:
                if asset.asset_class == "crypto":
                    _refuse(40310000, "insufficient balance for %s (requested: %s, available: %s)"
                            % (asset.order_symbol.split("/")[0], fmt(exec_qty), fmt(max(available, Decimal(0)))), 403)
                _refuse(40310000, "insufficient qty available for order (requested: %s, available: %s)"
                        % (fmt(exec_qty), fmt(max(available, Decimal(0)))), 403)
        ref = limit if limit is not None and otype in ("limit", "stop_limit") else (
            stop if stop is not None else asset.price)
        cost = notional if notional is not None else _cents(exec_qty * ref * asset.multiplier)
        if opening:
            bp = self._bp(self._bp_field(asset))
            if cost > bp:
                _refuse(40310000, "insufficient buying power", 403,
                        buying_power=fmt(bp), cost_basis=fmt(cost))

        # create
        stamp = now_stamp()
        hwm = asset.price if otype == "trailing_stop" else None
        oc = order_class if order_class or asset.asset_class != "us_option" else "simple"
        d = _new_order(asset, coid, stamp, oc, otype, side, tif, qty, notional, limit, stop, ext,
                       trail_price, trail_percent, hwm, intent)
        order = BookOrder(d, 0, submitted=parse_time(stamp))
        order.mult = asset.multiplier
        self._register(order)
        self.created += 1
        exit_side = "sell" if side == "buy" else "buy"
        if order_class in ("bracket", "oto") and tp_limit is not None:
            leg = BookOrder(_new_order(asset, str(uuid.uuid4()), stamp, order_class, "limit", exit_side,
                                       tif, qty, None, tp_limit, None, False), 0, submitted=order.submitted)
            self._register(leg, order)
        if order_class in ("bracket", "oto", "oco") and sl_stop is not None:
            sl_type = "stop_limit" if sl_limit is not None else "stop"
            leg = BookOrder(_new_order(asset, str(uuid.uuid4()), stamp, order_class, sl_type,
                                       side if order_class == "oco" else exit_side, tif, qty, None,
                                       sl_limit, sl_stop, False), 0, submitted=order.submitted)
            self._register(leg, order)
        for leg in order.legs:
            leg.d["status"] = "held"
        if otype == "market":
            self._fill(order, asset, exec_qty, asset.price, stamp)
            return 200, order.body()
        if opening:
            self._reserve(order, cost)
        else:
            order.held = exec_qty
            order.held_symbol = asset.position_symbol
            self._refresh_available(asset.position_symbol)
        # Alpaca answers before the order reaches the venue: accepted (equities) or pending_new
        # (options, crypto), as in the spec's examples; it is new right after.
        shown = "accepted" if asset.asset_class == "us_equity" else "pending_new"
        return 200, _compact(order.obj(True, shown))

    def _fill(self, order, asset, qty, price, stamp):
        self._apply_fill(asset, order.side, qty, price, stamp)
        order.d.update({"filled_at": stamp, "filled_qty": fmt(qty), "filled_avg_price": fmt(price),
                        "status": "filled"})
        order.touch(stamp)
        for i, leg in enumerate(order.legs):  # the exit legs go live: the first new, others held
            leg.d["status"] = "new" if i == 0 else "held"
            leg.touch(stamp)

    def _submit_mleg(self, req, otype, tif, qty, notional, limit, ext):
        legs = req.get("legs")
        if not isinstance(legs, list) or not legs:
            _refuse(40010001, "legs are required for mleg orders")
        if len(legs) > 4:
            _refuse(40010001, "mleg orders support at most 4 legs")
        if notional is not None:
            _refuse(40010001, "qty is required")
        if qty != qty.to_integral_value():
            _refuse(40010001, "qty must be integer")
        if otype not in ("market", "limit"):
            _refuse(42210000, "invalid options order_type")
        if tif not in ("day", "gtc"):
            _refuse(42210000, "order_time_in_force provided not supported for options trading")
        if otype == "limit" and limit is None:
            _refuse(40010001, "limit orders require a limit price")
        if otype == "market" and limit is not None:
            _refuse(40010001, "market orders require no stop or limit price")
        if req.get("symbol") or req.get("side"):
            _refuse(40010001, "symbol and side are set per leg for mleg orders")
        if ext:
            _refuse(40010001, 'only type="limit" is allowed for extended hours orders')
        parsed = []
        seen = set()
        for leg in legs:
            if not isinstance(leg, dict):
                _refuse(40010001, "invalid legs")
            asset = self.asset(leg.get("symbol"))
            if asset.asset_class != "us_option":
                _refuse(42210000, "mleg legs must be options contracts")
            if asset.order_symbol in seen:
                _refuse(40010001, "duplicate leg symbol")
            seen.add(asset.order_symbol)
            ratio = _decimal_field(leg, "ratio_qty")
            if ratio is None or ratio <= 0 or ratio != ratio.to_integral_value():
                _refuse(40010001, "invalid ratio_qty")
            side = leg.get("side")
            if side not in ("buy", "sell"):
                _refuse(40010001, "invalid side")
            intent = leg.get("position_intent")
            if intent is not None and intent not in POSITION_INTENTS:
                _refuse(40010001, "invalid position_intent")
            held = self.pos_qty(asset)
            if intent is None:
                intent = ("buy_to_close" if held < 0 else "buy_to_open") if side == "buy" else \
                         ("sell_to_close" if held > 0 else "sell_to_open")
            parsed.append((asset, ratio, side, intent))
        net = sum(((1 if s == "buy" else -1) * r * a.price for a, r, s, _ in parsed), Decimal(0))
        coid = self._check_coid(req)
        ref = limit if limit is not None else net
        cost = _cents(qty * ref * 100)
        if cost > 0:
            bp = self._bp("options_buying_power" if "options_buying_power" in self.account else "buying_power")
            if cost > bp:
                _refuse(40310000, "insufficient buying power", 403, buying_power=fmt(bp), cost_basis=fmt(cost))
        stamp = now_stamp()
        d = _new_order(None, coid, stamp, "mleg", otype, "", tif, qty, None, limit, None, False)
        order = BookOrder(d, 0, submitted=parse_time(stamp))
        self._register(order)
        self.created += 1
        for asset, ratio, side, intent in parsed:
            ld = _new_order(asset, str(uuid.uuid4()), stamp, "mleg", "", side, tif, qty * ratio, None,
                            None, None, False, intent=intent, ratio=ratio)
            self._register(BookOrder(ld, 0, submitted=order.submitted), order)
        if otype == "market":
            for (asset, ratio, side, _), leg in zip(parsed, order.legs):
                self._apply_fill(asset, side, qty * ratio, asset.price, stamp)
                leg.d.update({"filled_at": stamp, "filled_qty": fmt(qty * ratio),
                              "filled_avg_price": fmt(asset.price), "status": "filled"})
            order.d.update({"filled_at": stamp, "filled_qty": fmt(qty), "filled_avg_price": fmt(net),
                            "status": "filled"})
            return 200, order.body()
        if cost > 0:
            self._reserve(order, cost)
        return 200, _compact(order.obj(True, "pending_new"))

    # cancel, replace ---------------------------------------------------------------------------
    def lookup(self, order_id):
        try:
            uuid.UUID(order_id)
        except ValueError:
            _refuse(40010001, "order_id is missing")
        o = self.by_id.get(order_id)
        if o is None:
            raise Refusal(404, ERR_ORDER)
        return o

    def _cancel(self, order, stamp):
        order.d.update({"status": "canceled", "canceled_at": stamp})
        order.touch(stamp)
        self._release(order)
        for leg in order.legs:
            if leg.is_open:
                self._cancel(leg, stamp)
        parent = order.parent
        if parent is not None and parent.d.get("order_class") in ("bracket", "oco", "oto"):
            for sib in parent.legs:  # exit legs are one-cancels-other
                if sib is not order and sib.is_open:
                    sib.d.update({"status": "canceled", "canceled_at": stamp})
                    sib.touch(stamp)
                    self._release(sib)

    def cancel(self, order_id):
        o = self.lookup(order_id)
        if not o.is_open:
            _refuse(42210000, 'order is already in "%s" state' % o.status)
        self._cancel(o, now_stamp())
        return 204, b""

    def cancel_all(self):
        stamp = now_stamp()
        out = []
        for o in list(self._all()):
            if o.is_open:
                self._cancel(o, stamp)
                out.append({"id": o.id, "status": 200, "body": o.obj(False)})
        return 207, _compact(out)

    def replace(self, order_id, req):
        old = self.lookup(order_id)
        if not isinstance(req, dict):
            _refuse(ERR_BODY_FORMAT[1], ERR_BODY_FORMAT[2], ERR_BODY_FORMAT[0])
        st = old.status
        if st in ("accepted", "pending_new", "pending_cancel", "pending_replace"):
            _refuse(42210000, "unable to replace order, order isn't sent to exchange yet")
        if st not in ("new", "partially_filled", "held", "done_for_day"):
            _refuse(42210000, 'order is already in "%s" state' % st)
        if old.d.get("notional") is not None:
            _refuse(42210000, "notional orders cannot be replaced")
        unknown = set(req) - {"qty", "limit_price", "stop_price", "trail", "time_in_force",
                              "client_order_id", "advanced_instructions"}
        if unknown:
            _refuse(40010001, "invalid field(s): %s" % ", ".join(sorted(_symbol_text(str(k)) for k in unknown)))
        qty = _decimal_field(req, "qty")
        limit = _decimal_field(req, "limit_price")
        stop = _decimal_field(req, "stop_price")
        trail = _decimal_field(req, "trail")
        tif = req.get("time_in_force")
        if tif is not None and tif not in TIME_IN_FORCE:
            _refuse(40010001, "invalid time_in_force")
        if all(v is None for v in (qty, limit, stop, trail, tif)) and not req.get("client_order_id"):
            _refuse(40010001, "no fields to replace")
        otype = old.d.get("type")
        if qty is not None and qty <= 0:
            _refuse(40010001, "qty must be > 0")
        for value, name, types in ((limit, "limit price", ("limit", "stop_limit")),
                                   (stop, "stop price", ("stop", "stop_limit")),
                                   (trail, "trail", ("trailing_stop",))):
            if value is None:
                continue
            if otype not in types:
                _refuse(40010001, "%s is not applicable to %s orders" % (name, otype or "these"))
            if value <= 0 and not (name == "limit price" and old.d.get("order_class") == "mleg"):
                _refuse(40010001, "%s must be > 0" % name)
        coid = self._check_coid(req)
        d = dict(old.d)
        stamp = now_stamp()
        d.update({"id": str(uuid.uuid4()), "client_order_id": coid, "created_at": stamp,
                  "updated_at": stamp, "submitted_at": stamp, "replaces": old.id, "status": "new",
                  "replaced_by": None, "replaced_at": None, "canceled_at": None, "filled_at": None})
        if qty is not None:
            d["qty"] = fmt(qty)
        if limit is not None:
            d["limit_price"] = fmt(limit)
        if stop is not None:
            d["stop_price"] = fmt(stop)
        if trail is not None:
            d["trail_percent" if d.get("trail_percent") is not None else "trail_price"] = fmt(trail)
        if tif is not None:
            d["time_in_force"] = tif
        new = BookOrder(d, 0, submitted=parse_time(stamp))
        new.mult = old.mult
        # buying power: the replacement holds what the new order needs, instead of the old
        new_qty = D(d["qty"]) if d.get("qty") else Decimal(0)
        if old.reserve:
            ref = D(d["limit_price"]) if d.get("limit_price") else (
                D(d["stop_price"]) if d.get("stop_price") else old.reserve / (D(old.d["qty"]) * old.mult))
            need = _cents(new_qty * ref * old.mult)
            field = "buying_power"
            if old.d.get("asset_class") == "crypto" and "non_marginable_buying_power" in self.account:
                field = "non_marginable_buying_power"
            elif old.d.get("asset_class") in ("us_option", "") and "options_buying_power" in self.account:
                field = "options_buying_power"
            if need > self._bp(field) + old.reserve:
                _refuse(40310000, "insufficient buying power", 403,
                        buying_power=fmt(self._bp(field) + old.reserve), cost_basis=fmt(need))
        if old.held:
            pos = self.find_position(old.held_symbol)
            have = abs(D(pos[0]["qty"])) if pos else Decimal(0)
            available = have - self.held_qty(old.held_symbol) + old.held
            if new_qty > available:
                _refuse(40310000, "insufficient qty available for order (requested: %s, available: %s)"
                        % (fmt(new_qty), fmt(max(available, Decimal(0)))), 403)
        reserve, held, held_symbol = old.reserve, old.held, old.held_symbol
        self._release(old)
        old.d.update({"status": "replaced", "replaced_by": new.id, "replaced_at": stamp})
        old.touch(stamp)
        if old.parent is not None:
            self._register(new, old.parent)
        else:
            self._register(new)
            new.legs, old.legs = old.legs, old.legs  # the exit legs follow the replacement
            for leg in new.legs:
                leg.parent = new
            old.legs = []
        self.created += 1
        if reserve:
            self._reserve(new, need)
        if held:
            new.held, new.held_symbol = new_qty, held_symbol
            self._refresh_available(held_symbol)
        return 200, new.body()

    # positions ---------------------------------------------------------------------------------
    def _close_request(self, p, qty):
        pd = p[0]
        pos_qty = D(pd["qty"])
        ac = pd.get("asset_class")
        req = {"symbol": pd["symbol"], "qty": fmt(qty), "side": "sell" if pos_qty > 0 else "buy",
               "type": "market", "time_in_force": "gtc" if ac == "crypto" else "day"}
        if ac == "us_option":
            req["position_intent"] = "sell_to_close" if pos_qty > 0 else "buy_to_close"
        return req

    def close_position(self, ident, q):
        p = self.find_position(ident)
        if p is None:
            return 404, ERR_POSITION
        qty_text = (q.get("qty") or [None])[-1]
        pct_text = (q.get("percentage") or [None])[-1]
        if qty_text and pct_text:
            _refuse(40010001, "only one of qty or percentage may be specified")
        pos_qty = abs(D(p[0]["qty"]))
        if qty_text:
            qty = _decimal_field({"qty": qty_text}, "qty")
            if qty <= 0:
                _refuse(40010001, "qty must be > 0")
        elif pct_text:
            pct = _decimal_field({"percentage": pct_text}, "percentage")
            if not 0 < pct <= 100:
                _refuse(40010001, "percentage must be between 0 and 100")
            qty = pos_qty * pct / 100
            if pos_qty == pos_qty.to_integral_value():  # fractional only if the position is
                qty = qty.to_integral_value(ROUND_DOWN)
            else:
                qty = qty.quantize(Decimal("0.000000001"), ROUND_DOWN)
            if qty <= 0:
                _refuse(40010001, "qty must be > 0")
        else:
            qty = pos_qty
        return self.submit(self._close_request(p, qty))

    def close_all(self, q):
        text = ((q.get("cancel_orders") or ["false"])[-1]).lower()
        if text not in _TRUE + _FALSE:
            _refuse(40010001, "invalid cancel_orders: must be true or false")
        if text in _TRUE:
            self.cancel_all()
        out = []
        for p in list(self.positions):
            symbol = p[0]["symbol"]
            try:
                st, body = self.submit(self._close_request(p, abs(D(p[0]["qty"]))))
            except Refusal as r:
                st, body = r.status, r.body
            out.append({"symbol": symbol, "status": st, "body": json.loads(body)})
        return 207, _compact(out)


# ---------------------------------------------------------------------------------------------
# Alpaca endpoints


def _clock_body():
    now = datetime.datetime.now(_NEW_YORK)

    def at(day, hh, mm):
        return datetime.datetime(day.year, day.month, day.day, hh, mm, tzinfo=_NEW_YORK)

    def next_weekday(day):
        day = day + datetime.timedelta(days=1)
        while day.weekday() >= 5:
            day += datetime.timedelta(days=1)
        return day

    today = now.date()
    weekday = now.weekday() < 5
    is_open = weekday and at(today, 9, 30) <= now < at(today, 16, 0)
    if weekday and now < at(today, 9, 30):
        next_open = at(today, 9, 30)
    else:
        next_open = at(next_weekday(today), 9, 30)
    if weekday and now < at(today, 16, 0):
        next_close = at(today, 16, 0)
    else:
        next_close = at(next_weekday(today), 16, 0)
    return _compact({
        "timestamp": now.isoformat(timespec="microseconds"),
        "is_open": is_open,
        "next_open": next_open.isoformat(timespec="seconds"),
        "next_close": next_close.isoformat(timespec="seconds"),
    })


_TRUE = ("true", "1")
_FALSE = ("false", "0")


def _orders_query(book, q):
    def one(name):
        v = q.get(name)
        return v[-1] if v else None

    status = one("status") or "open"
    if status not in ("open", "closed", "all"):
        return _err422("invalid status: must be open, closed or all")
    limit_text = one("limit")
    limit = 50
    if limit_text is not None:
        try:
            limit = int(limit_text)
        except ValueError:
            return _err422("invalid limit: must be an integer")
        if not 1 <= limit <= 500:
            return _err422("invalid limit: must be between 1 and 500")
    direction = one("direction") or "desc"
    if direction not in ("asc", "desc"):
        return _err422("invalid direction: must be asc or desc")
    nested_text = (one("nested") or "false").lower()
    if nested_text not in _TRUE + _FALSE:
        return _err422("invalid nested: must be true or false")
    nested = nested_text in _TRUE
    bounds = {}
    for name in ("after", "until"):
        v = one(name)
        if v:
            try:
                bounds[name] = parse_time(v)
            except ValueError:
                return _err422("invalid %s: must be an RFC 3339 timestamp or a date" % name)
    symbols = None
    if one("symbols"):
        symbols = {s.strip() for s in one("symbols").split(",") if s.strip()}
    side = one("side")

    if nested:
        entries = book.orders
    else:  # legs become orders of their own, the parent's legs field null
        entries = list(book._all())

    out = []
    for e in entries:
        if status == "open" and e.status in CLOSED_STATUSES:
            continue
        if status == "closed" and e.status not in CLOSED_STATUSES:
            continue
        if "after" in bounds and not e.submitted > bounds["after"]:
            continue
        if "until" in bounds and not e.submitted < bounds["until"]:
            continue
        if symbols is not None and e.symbol not in symbols:
            continue
        if side and e.side != side:
            continue
        out.append(e)
    out.sort(key=lambda e: (e.submitted, e.seq), reverse=(direction == "desc"))
    out = out[:limit]
    return 200, b"[" + b",".join(e.body(nested) for e in out) + b"]"


def _nested(q):
    return (q.get("nested") or ["false"])[-1].lower() in _TRUE


def _one_order(book, order_id, q):
    return 200, book.lookup(order_id).body(_nested(q))


def _order_by_client_id(book, q):
    coid = (q.get("client_order_id") or [""])[-1]
    if not coid:
        return _err422("client_order_id is missing")
    o = book.by_coid.get(coid)
    if o is None:
        return 404, ERR_ORDER
    return 200, o.body(_nested(q))


# known paths and the methods Alpaca takes on them
ROUTES = {
    "/v2/account": ("GET",),
    "/v2/clock": ("GET",),
    "/v2/positions": ("GET", "DELETE"),
    "/v2/positions/{symbol}": ("GET", "DELETE"),
    "/v2/orders": ("GET", "POST", "DELETE"),
    "/v2/orders/{id}": ("GET", "PATCH", "DELETE"),
    "/v2/orders:by_client_order_id": ("GET",),
    "/v2/calendar": ("GET",),
    "/v2/assets": ("GET",),
    "/v2/assets/{symbol}": ("GET",),
    "/v2/account/activities": ("GET",),
    "/v2/account/activities/{type}": ("GET",),
    "/v2/account/portfolio/history": ("GET",),
    # Market data (data.alpaca.markets; any listener of the stand-in answers them)
    "/v2/stocks/{symbol}/quotes/latest": ("GET",),
    "/v2/stocks/quotes/latest": ("GET",),
    "/v2/stocks/{symbol}/bars": ("GET",),
    "/v2/stocks/bars": ("GET",),
}
_DATA_RE = re.compile(r"^/v2/stocks/([A-Za-z0-9.]+)/(quotes/latest|bars)$")


def _route_kind(path):
    if path in ROUTES:
        return path
    m = _DATA_RE.match(path)
    if m and m.group(1) not in ("quotes", "bars"):
        return "/v2/stocks/{symbol}/" + m.group(2)
    for prefix, kind in (("/v2/assets/", "/v2/assets/{symbol}"),
                         ("/v2/account/activities/", "/v2/account/activities/{type}")):
        if path.startswith(prefix) and len(path) > len(prefix) and "/" not in path[len(prefix):]:
            return kind
    if path.startswith("/v2/orders/") and len(path) > len("/v2/orders/") and "/" not in path[11:]:
        return "/v2/orders/{id}"
    if (path.startswith("/v2/positions/") and len(path) > len("/v2/positions/")
            and "/" not in path[14:]):
        return "/v2/positions/{symbol}"
    return None


def _json_body(body):
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        _refuse(ERR_BODY_FORMAT[1], ERR_BODY_FORMAT[2], ERR_BODY_FORMAT[0])


def _trade(book, method, kind, path, q, body):
    if kind == "/v2/account":
        return 200, book.account_body()
    if kind == "/v2/positions":
        return (200, book.positions_body()) if method == "GET" else book.close_all(q)
    if kind == "/v2/positions/{symbol}":
        ident = urllib.parse.unquote(path[14:])
        return book.position_body(ident) if method == "GET" else book.close_position(ident, q)
    if kind == "/v2/orders":
        if method == "GET":
            return _orders_query(book, q)
        if method == "POST":
            return book.submit(_json_body(body))
        return book.cancel_all()
    if kind == "/v2/orders/{id}":
        order_id = urllib.parse.unquote(path[11:])
        if method == "GET":
            return _one_order(book, order_id, q)
        if method == "PATCH":
            return book.replace(order_id, _json_body(body))
        return book.cancel(order_id)
    if kind == "/v2/orders:by_client_order_id":
        return _order_by_client_id(book, q)
    if kind == "/v2/assets":
        return 200, _assets_body(book, q)
    if kind == "/v2/assets/{symbol}":
        return 200, _compact(_asset_obj(book, urllib.parse.unquote(path[11:])))
    if kind == "/v2/account/activities":
        return 200, _activities_body(book)
    if kind == "/v2/account/activities/{type}":
        return 200, _activities_body(book, path[len("/v2/account/activities/"):])
    if kind == "/v2/account/portfolio/history":
        return 200, _portfolio_history_body(book, q)
    if kind.startswith("/v2/stocks/"):
        return _data(book, kind, path, q)
    return 404, ERR_ENDPOINT


# ---------------------------------------------------------------------------------------------
# Reference endpoints (calendar, assets), account history, and market data


def _one(q, name, default=None):
    v = q.get(name)
    return v[-1] if v else default


def _day(text, what):
    try:
        return datetime.date.fromisoformat(text[:10])
    except ValueError:
        _refuse(42210000, "invalid %s" % what)


def _calendar_body(q):
    today = datetime.datetime.now(_NEW_YORK).date()
    start = _day(_one(q, "start"), "start") if _one(q, "start") else today - datetime.timedelta(days=7)
    end = _day(_one(q, "end"), "end") if _one(q, "end") else today + datetime.timedelta(days=30)
    if (end - start).days > 3660:
        _refuse(42210000, "the requested range is too long")
    days, d = [], start
    while d <= end:
        if d.weekday() < 5:
            settle = d + datetime.timedelta(days=1)
            while settle.weekday() >= 5:
                settle += datetime.timedelta(days=1)
            days.append({"date": d.isoformat(), "open": "09:30", "close": "16:00",
                         "session_open": "0400", "session_close": "2000",
                         "settlement_date": settle.isoformat()})
        d += datetime.timedelta(days=1)
    return _compact(days)


def _asset_obj(book, symbol):
    a = book.asset(symbol)
    cls = a.asset_class
    return {"id": a.asset_id, "class": cls, "exchange": a.exchange or "OTC",
            "symbol": a.order_symbol, "name": a.order_symbol, "status": "active",
            "tradable": True, "marginable": bool(a.marginable), "shortable": cls == "us_equity",
            "easy_to_borrow": cls == "us_equity", "fractionable": cls != "us_option",
            "maintenance_margin_requirement": 30 if cls == "us_equity" else 100,
            "attributes": []}


def _assets_body(book, q):
    status = _one(q, "status")
    cls = _one(q, "asset_class", "us_equity")
    out = []
    for sym in PRICE_TABLE:
        a = _asset_obj(book, sym)
        if a["class"] == cls and status in (None, "", "active"):
            out.append(a)
    return _compact(out)


def _activities_body(book, activity_type=None):
    if activity_type not in (None, "FILL"):
        return _compact([])
    out = []
    for o in book._all():
        d = o.d
        if d.get("filled_at") and d.get("filled_qty") not in (None, "0"):
            out.append({"id": d["filled_at"].replace("-", "").replace(":", "").replace(".", "")
                        + "::" + d["id"], "activity_type": "FILL",
                        "transaction_time": d["filled_at"], "type": "fill",
                        "price": d.get("filled_avg_price"), "qty": d.get("filled_qty"),
                        "side": d.get("side"), "symbol": d.get("symbol"), "leaves_qty": "0",
                        "order_id": d["id"], "cum_qty": d.get("filled_qty"),
                        "order_status": d.get("status")})
    out.sort(key=lambda a: a["transaction_time"], reverse=True)
    return _compact(out)


def _portfolio_history_body(book, q):
    equity = D(book.account.get("equity", "0"))
    base = D(book.account.get("last_equity", str(equity)))
    now = int(time.time())
    day = 86400
    stamps = [now - (now % day) - i * day for i in range(6, -1, -1)]
    values = [base + (equity - base) * i / 6 for i in range(7)]
    return _compact({
        "timestamp": stamps, "equity": [float(fmt(v, 2)) for v in values],
        "profit_loss": [float(fmt(v - base, 2)) for v in values],
        "profit_loss_pct": [float(fmt((v - base) / base, 6)) if base else 0.0 for v in values],
        "base_value": float(fmt(base, 2)),
        "base_value_asof": datetime.date.fromtimestamp(stamps[0]).isoformat(),
        "timeframe": _one(q, "timeframe", "1D")})


def _price(book, symbol):
    return book.asset(symbol).price


def _quote(book, symbol):
    p = _price(book, symbol)
    cents = Decimal("0.01")
    return {"ap": float((p * Decimal("1.0005")).quantize(cents)), "as": 3, "ax": "V",
            "bp": float((p * Decimal("0.9995")).quantize(cents)), "bs": 2, "bx": "V",
            "c": ["R"], "t": now_stamp(), "z": "C"}


def _bars(book, symbol, q):
    p = _price(book, symbol)
    limit = int(_one(q, "limit", "5") or 5)
    if not 1 <= limit <= 10000:
        _refuse(42210000, "invalid limit")
    today = datetime.datetime.now(datetime.timezone.utc).date()
    out = []
    for i in range(limit, 0, -1):
        d = today - datetime.timedelta(days=i)
        c = float(p)
        out.append({"t": d.isoformat() + "T04:00:00Z", "o": c, "h": c, "l": c, "c": c,
                    "v": 1000 + i, "n": 10 + i, "vw": c})
    return out


def _symbols(q):
    syms = [s for s in (_one(q, "symbols") or "").split(",") if s]
    if not syms:
        _refuse(42210000, "symbols is required")
    return syms


def _data(book, kind, path, q):
    if kind == "/v2/stocks/{symbol}/quotes/latest":
        sym = path.split("/")[3]
        return 200, _compact({"symbol": sym, "quote": _quote(book, sym)})
    if kind == "/v2/stocks/quotes/latest":
        return 200, _compact({"quotes": {s: _quote(book, s) for s in _symbols(q)}})
    if kind == "/v2/stocks/{symbol}/bars":
        sym = path.split("/")[3]
        return 200, _compact({"bars": _bars(book, sym, q), "symbol": sym,
                              "next_page_token": None})
    return 200, _compact({"bars": {s: _bars(book, s, q) for s in _symbols(q)},
                          "next_page_token": None})


def alpaca_answer(app, acct, method, kind, path, q, body=b""):
    """-> (status, body) of an authenticated request to a known path and method."""
    if kind == "/v2/clock":
        return 200, _clock_body()
    if kind == "/v2/calendar":
        try:
            return 200, _calendar_body(q)
        except Refusal as r:
            return r.status, r.body
    book = app.book(acct)
    with book.lock:
        before = book.created
        try:
            st, out = _trade(book, method, kind, path, q, body)
        except Refusal as r:
            st, out = r.status, r.body
        created = book.created - before
    if created:
        app.count_created(acct.key_id, created)
    return st, out


# ---------------------------------------------------------------------------------------------
# HTTP machinery


class _Gone(Exception):
    """The connection was closed or reset on purpose; nothing more to send."""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "alpaca-standin"
    disable_nagle_algorithm = True  # TCP_NODELAY (also set at accept)
    timeout = 300  # idle keep-alive connections are dropped after 5 minutes

    def log_message(self, fmt, *args):  # the App writes its own log, without headers
        pass

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    # response writing: status line, headers and body leave in ONE sendall ------------------
    def _head(self, status, length, rate, ctype=JSON_CT, extra=(), chunked=False):
        lines = ["HTTP/1.1 %d %s" % (status, http.HTTPStatus(status).phrase),
                 "Date: " + email.utils.formatdate(usegmt=True),
                 "Content-Type: " + ctype]
        if status != 204:  # a 204 carries neither a body nor a Content-Length
            lines.append("Transfer-Encoding: chunked" if chunked else "Content-Length: %d" % length)
        if rate is not None:
            lines.append("X-RateLimit-Limit: %d" % rate[0])
            lines.append("X-RateLimit-Remaining: %d" % rate[1])
            lines.append("X-RateLimit-Reset: %d" % rate[2])
        lines.append("X-Request-ID: " + os.urandom(16).hex())
        lines.extend(extra)
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, status, body, rate, ctype=JSON_CT, extra=()):
        self.wfile.write(self._head(status, len(body), rate, ctype, extra) + body)
        return len(body)

    def _read_body(self):
        n = self.headers.get("Content-Length")
        if n:
            try:
                n = int(n)
            except ValueError:
                n = -1
            if n < 0 or n > 1 << 20:
                self.close_connection = True
                return b""
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # we do not take chunked request bodies
        return b""

    def _abort(self, rst, status=0, nbytes=0):
        """Close the connection now: with SO_LINGER 0 (a TCP reset) when rst is true.
        status/nbytes: what to record for this request (0 = no answer)."""
        sock = self.connection
        try:
            if rst:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            fd = sock.detach()  # leaves the socket object closed (fd -1) for everyone else
            if fd >= 0:
                os.close(fd)
        except OSError:
            pass
        self.close_connection = True
        raise _Gone(status, nbytes)

    # ---------------------------------------------------------------------------------------
    def dispatch(self, method):
        app = self.server.app
        listener = self.server.listener
        t0 = time.perf_counter()
        split = urllib.parse.urlsplit(self.path)
        path, query = split.path, split.query
        key_id = self.headers.get("APCA-API-KEY-ID")
        secret = self.headers.get("APCA-API-SECRET-KEY")
        status, nbytes, fault = 0, 0, None
        # A request counts in `total` from the moment it is dispatched (before its answer
        # leaves), and leaves `in_flight` only once record() has counted it in `counts` and
        # `recent`: a client that has its answer never reads a total without it, and
        # in_flight == hanging means every answered request is in the stats.
        with app.lock:
            app.in_flight += 1
            app.total += 1
            seq = app.total
        try:
            body = self._read_body()
            fault = app.take_fault(listener, method, path, key_id)
            status, nbytes = self._serve(app, listener, method, path, query, key_id, secret, fault,
                                         body)
        except _Gone as gone:
            status, nbytes = gone.args
        except (OSError, ssl.SSLError):
            self.close_connection = True
        finally:
            app.record(listener, method, path, query, status, key_id, fault,
                       time.perf_counter() - t0, nbytes, seq)

    def _fault_status(self, app, fault, key_id):
        st = fault.status
        if fault.body is not None:
            body, ctype = fault.body.encode(), fault.content_type or JSON_CT
        elif st == 500:
            body, ctype = ERR_INTERNAL, JSON_CT
        elif st in (502, 503, 504):
            body, ctype = _gateway_page(st), "text/html"
        else:
            body, ctype = _error_json(st * 100000 + 10000, http.HTTPStatus(st).phrase.lower()), JSON_CT
        return st, self._send(st, body, app.rate_peek(key_id), ctype)

    def _serve(self, app, listener, method, path, query, key_id, secret, fault, req_body=b""):
        if fault is not None:
            if fault.delay_ms:
                fault.cleared.wait(fault.delay_ms / 1000.0)  # clearing the fault ends the wait
            mode = fault.mode
            if mode == "hang":
                self._hang(app, fault)
            elif mode == "reset":
                self._abort(rst=True)
            elif mode == "status":
                return self._fault_status(app, fault, key_id)
            elif mode == "ratelimit":
                limit = app.rate_peek(key_id)[0]
                rate = (limit, 0, int(time.time() + fault.reset_in + 0.999))
                extra = ["Retry-After: %d" % fault.retry_after] if fault.retry_after is not None else []
                return 429, self._send(429, ERR_RATELIMIT, rate, JSON_CT, extra)
            elif mode == "malformed":
                body = fault.body.encode() if fault.body is not None else MALFORMED_BODY
                return 200, self._send(200, body, app.rate_peek(key_id), fault.content_type or JSON_CT)
            elif mode == "oversized":
                return 200, self._oversized(app, fault, key_id)

        status, body, rate = self._alpaca(app, listener, method, path, query, key_id, secret, req_body)
        if fault is not None and fault.mode == "accept_drop":  # done, but the answer is lost
            self._abort(rst=bool(fault.spec.get("rst")))
        if fault is not None and fault.mode == "accept_504":
            return self._fault_status(app, fault, key_id)
        if fault is not None and fault.mode == "truncated":
            half = body[: len(body) // 2]
            self.close_connection = True
            self.wfile.write(self._head(status, len(body), rate) + half)
            self._abort(rst=False, status=status, nbytes=len(half))
        return status, self._send(status, body, rate)

    def _alpaca(self, app, listener, method, path, query, key_id, secret, req_body=b""):
        kind = _route_kind(path)
        if kind is None:
            return 404, ERR_ENDPOINT, app.rate_peek(None)
        if method not in ROUTES[kind]:
            return 405, ERR_METHOD, app.rate_peek(None)
        if not key_id or not secret:
            return 403, ERR_FORBIDDEN, app.rate_peek(None)
        st, acct = app.authenticate(key_id, secret, listener)
        if acct is None:
            return st, ERR_UNAUTHORIZED, app.rate_peek(None)
        allowed, limit, remaining, reset = app.rate_hit(key_id)
        if not allowed:
            return 429, ERR_RATELIMIT, (limit, 0, reset)
        q = urllib.parse.parse_qs(query, keep_blank_values=True) if query else {}
        st, body = alpaca_answer(app, acct, method, kind, path, q, req_body)
        return st, body, (limit, remaining, reset)

    def _hang(self, app, fault):
        """Answer nothing until the fault is cleared (then answer normally) or the client goes."""
        sock = self.connection
        with app.lock:
            app.hanging += 1
        try:
            while not fault.cleared.is_set():
                if app.stopping.is_set():
                    self._abort(rst=False)
                try:
                    readable, _, _ = select.select([sock], [], [], 0.05)
                except (OSError, ValueError):
                    self._abort(rst=False)
                if readable:
                    try:
                        data = sock.recv(4096)
                    except ssl.SSLWantReadError:
                        continue
                    except OSError:
                        self._abort(rst=False)
                    if not data:
                        self._abort(rst=False)  # the client gave up
                    self.close_connection = True  # it sent more: answer, then close
            if app.stopping.is_set():
                self._abort(rst=False)
        finally:
            with app.lock:
                app.hanging -= 1

    def _oversized(self, app, fault, key_id):
        """A valid JSON array of exactly size_bytes bytes, streamed in 256 KiB pieces."""
        acct = app.accounts.get(key_id) if key_id else None
        if acct is not None and acct.positions:
            elem = acct.positions[0][2]
        else:
            elem = (b'{"asset_id":"b0b6dd9d-8b9b-48a9-ba46-b9d54906e415","symbol":"AAPL",'
                    b'"exchange":"NASDAQ","asset_class":"us_equity","qty":"1","side":"long"}')
        n = int(fault.size_bytes)
        if n < 2 + len(elem):
            k, pad = 0, n - 2
        else:
            k = 1 + (n - 2 - len(elem)) // (len(elem) + 1)
            pad = n - 2 - len(elem) - (k - 1) * (len(elem) + 1)
        chunked = fault.chunked
        head = self._head(200, n, app.rate_peek(key_id), JSON_CT, chunked=chunked)
        per = max(1, (256 * 1024) // (len(elem) + 1))
        block = (b"," + elem) * per
        sent = 0

        def emit(piece, first=False):
            nonlocal sent
            sent += len(piece)
            data = piece
            if chunked:
                data = b"%x\r\n" % len(piece) + piece + b"\r\n"
            self.wfile.write(head + data if first else data)

        if k == 0:
            emit(b"[" + b" " * pad + b"]", first=True)
        else:
            emit(b"[" + elem, first=True)
            left = k - 1
            while left > 0:
                m = min(left, per)
                emit(block if m == per else (b"," + elem) * m)
                left -= m
            emit(b" " * pad + b"]")
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        return sent


class ControlHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "alpaca-standin-control"
    disable_nagle_algorithm = True
    timeout = 300

    def log_message(self, fmt, *args):
        pass

    def _reply(self, status, obj):
        body = _compact(obj)
        head = ("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
                % (status, http.HTTPStatus(status).phrase, JSON_CT, len(body))).encode()
        self.wfile.write(head + body)

    def _json_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        return json.loads(raw or b"{}")

    def do_GET(self):
        app = self.server.app
        path = urllib.parse.urlsplit(self.path).path
        if path == "/stats":
            if "settled" in urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query):
                app.settle()
            return self._reply(200, app.stats())
        if path == "/faults":
            return self._reply(200, app.list_faults())
        if path == "/health":
            return self._reply(200, {"ok": True, "accounts": len(app.accounts)})
        if path == "/ratelimit":
            return self._reply(200, {"limit": app.rate_limit})
        if path == "/prices":
            with app.lock:
                return self._reply(200, {k: fmt(v) for k, v in app.prices.items()})
        return self._reply(404, {"message": "unknown control path"})

    def do_POST(self):
        app = self.server.app
        path = urllib.parse.urlsplit(self.path).path
        try:
            body = self._json_body()
        except ValueError as e:
            return self._reply(400, {"message": "body is not JSON: %s" % e})
        try:
            if path == "/faults":
                specs = body if isinstance(body, list) else [body]
                ids = [app.add_fault(s if isinstance(s, dict) else {}).id for s in specs]
                return self._reply(201, {"id": ids[0], "ids": ids} if len(ids) == 1 else {"ids": ids})
            if path == "/ratelimit":
                limit = body.get("limit")
                if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                    return self._reply(400, {"message": "limit must be a positive integer"})
                app.set_rate_limit(limit)
                return self._reply(200, {"limit": limit})
            if path == "/reload":
                return self._reply(200, {"accounts": app.reload()})
            if path == "/reset":
                key_id = body.get("key_id") if isinstance(body, dict) else None
                return self._reply(200, {"reset": app.reset_books(key_id)})
            if path == "/prices":
                if not isinstance(body, dict):
                    return self._reply(400, {"message": "prices: a JSON object"})
                return self._reply(200, app.set_prices(body))
        except (ValueError, OSError) as e:
            return self._reply(400, {"message": str(e)})
        return self._reply(404, {"message": "unknown control path"})

    def do_DELETE(self):
        app = self.server.app
        path = urllib.parse.urlsplit(self.path).path
        if path == "/faults":
            return self._reply(200, {"cleared": app.clear_faults()})
        if path.startswith("/faults/"):
            try:
                fid = int(path[len("/faults/"):])
            except ValueError:
                return self._reply(400, {"message": "fault id must be an integer"})
            return self._reply(200, {"cleared": app.clear_faults(fid)})
        if path == "/stats":
            app.clear_stats()
            return self._reply(200, {"cleared": True})
        if path == "/prices":
            app.clear_prices()
            return self._reply(200, {"cleared": True})
        return self._reply(404, {"message": "unknown control path"})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # never wait for idle keep-alive connections at exit
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, addr, family, handler, app, listener, ssl_ctx):
        self.address_family = family
        self.app = app
        self.listener = listener
        self.ssl_ctx = ssl_ctx
        super().__init__(addr, handler)

    def server_bind(self):  # no reverse DNS lookup of the host (HTTPServer does getfqdn)
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.server_address[0]
        self.server_port = self.server_address[1]

    def get_request(self):
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr

    def finish_request(self, request, client_address):
        conn = request
        if self.ssl_ctx is not None:  # handshake in the worker thread, never in accept
            try:
                request.settimeout(10)
                conn = self.ssl_ctx.wrap_socket(request, server_side=True)
                conn.settimeout(None)
            except (ssl.SSLError, OSError):
                with self.app.lock:
                    self.app.tls_failures += 1
                return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            if conn is not request:
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                conn.close()

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, _Gone)):
            return
        sys.stderr.write("alpaca-standin: %s: %r\n" % (self.listener or "control", exc))


# ---------------------------------------------------------------------------------------------
# Command line


def parse_hostport(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return host, int(port), family


def parse_listen(text):
    name, sep, rest = text.partition("=")
    if not sep or name not in LISTENERS:
        raise argparse.ArgumentTypeError("--listen takes paper=HOST:PORT or live=HOST:PORT")
    return name, parse_hostport(rest)


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv=None):
    ap = argparse.ArgumentParser(description="Alpaca Trading API stand-in (tests only)")
    ap.add_argument("--fixtures", required=True, help="folder with one subfolder per key id")
    ap.add_argument("--listen", action="append", type=parse_listen, required=True,
                    help="paper=HOST:PORT or live=HOST:PORT (port 0 picks a free port)")
    ap.add_argument("--cert", help="server certificate (PEM)")
    ap.add_argument("--key", help="server private key (PEM)")
    ap.add_argument("--insecure-http", action="store_true",
                    help="serve plain HTTP instead of HTTPS (debugging only)")
    ap.add_argument("--control", type=parse_hostport, help="loopback HOST:PORT for test control")
    ap.add_argument("--log", help="request log file (never holds keys or secrets)")
    ap.add_argument("--ready-file", help="written (JSON with the URLs) once listening")
    ap.add_argument("--rate-limit", type=int, default=200,
                    help="requests per key per 60-second window (default 200, as Alpaca)")
    ap.add_argument("--fault", action="append", default=[],
                    help="a fault as JSON, same fields as POST /faults (repeatable)")
    args = ap.parse_args(argv)

    names = [n for n, _ in args.listen]
    if len(set(names)) != len(names):
        ap.error("each of paper and live may be given once")
    ssl_ctx = None
    if args.insecure_http:
        if args.cert or args.key:
            ap.error("--insecure-http and --cert/--key exclude each other")
    else:
        if not (args.cert and args.key):
            ap.error("HTTPS needs --cert and --key (or --insecure-http for debugging)")
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ssl_ctx.load_cert_chain(args.cert, args.key)
        ssl_ctx.set_alpn_protocols(["http/1.1"])
    if args.control and not _is_loopback(args.control[0]):
        ap.error("--control must be a loopback address")
    if args.rate_limit < 1:
        ap.error("--rate-limit must be positive")

    app = App(args.fixtures, args.rate_limit, args.log)
    for text in args.fault:
        try:
            app.add_fault(json.loads(text))
        except ValueError as e:
            ap.error("--fault: %s" % e)

    servers = []
    ready = {"pid": os.getpid()}
    scheme = "http" if ssl_ctx is None else "https"
    for name, (host, port, family) in args.listen:
        srv = Server((host, port), family, Handler, app, name, ssl_ctx)
        servers.append(srv)
        h = "[%s]" % host if family == socket.AF_INET6 else host
        ready[name] = "%s://%s:%d" % (scheme, h, srv.server_address[1])
    if args.control:
        host, port, family = args.control
        srv = Server((host, port), family, ControlHandler, app, None, None)
        servers.append(srv)
        h = "[%s]" % host if family == socket.AF_INET6 else host
        ready["control"] = "http://%s:%d" % (h, srv.server_address[1])

    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
               for s in servers]
    for t in threads:
        t.start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def on_hup(*_):
        try:
            app.reload()
        except Exception as e:  # keep serving the old fixtures
            sys.stderr.write("alpaca-standin: reload failed: %s\n" % e)

    signal.signal(signal.SIGHUP, on_hup)

    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(ready, f)
            f.write("\n")
        os.replace(tmp, args.ready_file)
    sys.stderr.write("alpaca-standin: %s\n" % json.dumps(ready))

    while not stop.wait(0.1):
        pass
    app.stopping.set()  # hung requests close their connections
    closers = [threading.Thread(target=s.shutdown) for s in servers]
    for t in closers:
        t.start()
    for t in closers:
        t.join()
    for s in servers:
        s.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
