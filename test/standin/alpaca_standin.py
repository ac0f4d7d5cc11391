#!/usr/bin/python3
"""Alpaca Trading API stand-in for pg_alpaca's tests, demo and benchmarks.

Python 3 standard library only; run it with /usr/bin/python3.  It serves the read-only
Trading API endpoints the sidecar uses with Alpaca's JSON shapes and error bodies, from a
fixture folder (one subfolder per key id, see README.md), over HTTPS, with fault knobs that
tests change at run time through a plain-HTTP control port on loopback.

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

FAULT_MODES = ("delay", "status", "ratelimit", "truncated", "malformed", "oversized", "hang", "reset")
FAULT_KEYS = {
    "mode", "count", "key_id", "path", "listener", "method", "delay_ms", "status", "body",
    "content_type", "reset_in", "retry_after", "size_bytes", "chunked",
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
        self.status = self._num(spec, "status", 500, 400, 599)
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

    # fixtures ---------------------------------------------------------------------------------
    def reload(self):
        accounts = load_fixtures(self.fixtures_dir)
        self.accounts = accounts  # atomic swap; in-flight requests keep the old object
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
    def record(self, listener, method, path, query, status, key_id, fault, latency_s, nbytes):
        fmode = fault.mode if fault else None
        with self.lock:
            self.total += 1
            self.counts[(listener, method, path, status, key_id, fmode)] += 1
            self.recent.append({
                "time": round(time.time(), 6), "listener": listener, "method": method,
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
            out = {"total": self.total, "in_flight": self.in_flight, "hanging": self.hanging,
                   "tls_handshake_failures": self.tls_failures, "counts": counts,
                   "recent": list(self.recent)}
            out.update({k: dict(v) for k, v in by.items()})
            return out

    def clear_stats(self):
        with self.lock:
            self.counts.clear()
            self.recent.clear()
            self.total = 0
            self.tls_failures = 0


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


def _orders_query(acct, q):
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
        entries = acct.orders
    else:  # legs become orders of their own, the parent's legs field null
        entries = []
        for e in acct.orders:
            entries.append(e)
            entries.extend(e.legs)

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
    out.sort(key=lambda e: e.submitted, reverse=(direction == "desc"))
    out = out[:limit]
    pieces = [e.body if nested else e.flat_body for e in out]
    return 200, b"[" + b",".join(pieces) + b"]"


def _one_order(acct, order_id, q):
    try:
        uuid.UUID(order_id)
    except ValueError:
        return _err422("order_id is missing")  # what Alpaca answers for a malformed id
    e = acct.orders_by_id.get(order_id)
    if e is None:
        return 404, ERR_ORDER
    nested = (q.get("nested") or ["false"])[-1].lower() in _TRUE
    return 200, (e.body if nested else e.flat_body)


def _one_position(acct, ident):
    want = ident.upper().replace("/", "")
    for symbol, asset_id, body in acct.positions:
        if symbol.upper().replace("/", "") == want or asset_id == ident:
            return 200, body
    return 404, ERR_POSITION


def _route_kind(path):
    if path in ("/v2/account", "/v2/positions", "/v2/orders", "/v2/clock"):
        return path
    if path.startswith("/v2/orders/") and len(path) > len("/v2/orders/") and "/" not in path[11:]:
        return "/v2/orders/{id}"
    if (path.startswith("/v2/positions/") and len(path) > len("/v2/positions/")
            and "/" not in path[14:]):
        return "/v2/positions/{symbol}"
    return None


def alpaca_answer(acct, kind, path, q):
    if kind == "/v2/account":
        return 200, acct.account_body
    if kind == "/v2/positions":
        return 200, acct.positions_body
    if kind == "/v2/orders":
        return _orders_query(acct, q)
    if kind == "/v2/clock":
        return 200, _clock_body()
    if kind == "/v2/orders/{id}":
        return _one_order(acct, urllib.parse.unquote(path[11:]), q)
    if kind == "/v2/positions/{symbol}":
        return _one_position(acct, urllib.parse.unquote(path[14:]))
    return 404, ERR_ENDPOINT


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
        with app.lock:
            app.in_flight += 1
        try:
            self._read_body()
            fault = app.take_fault(listener, method, path, key_id)
            status, nbytes = self._serve(app, listener, method, path, query, key_id, secret, fault)
        except _Gone as gone:
            status, nbytes = gone.args
        except (OSError, ssl.SSLError):
            self.close_connection = True
        finally:
            with app.lock:
                app.in_flight -= 1
            app.record(listener, method, path, query, status, key_id, fault,
                       time.perf_counter() - t0, nbytes)

    def _serve(self, app, listener, method, path, query, key_id, secret, fault):
        if fault is not None:
            if fault.delay_ms:
                fault.cleared.wait(fault.delay_ms / 1000.0)  # clearing the fault ends the wait
            mode = fault.mode
            if mode == "hang":
                self._hang(app, fault)
            elif mode == "reset":
                self._abort(rst=True)
            elif mode == "status":
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

        status, body, rate = self._alpaca(app, listener, method, path, query, key_id, secret)
        if fault is not None and fault.mode == "truncated":
            half = body[: len(body) // 2]
            self.close_connection = True
            self.wfile.write(self._head(status, len(body), rate) + half)
            self._abort(rst=False, status=status, nbytes=len(half))
        return status, self._send(status, body, rate)

    def _alpaca(self, app, listener, method, path, query, key_id, secret):
        kind = _route_kind(path)
        if kind is None:
            return 404, ERR_ENDPOINT, app.rate_peek(None)
        if method != "GET":
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
        st, body = alpaca_answer(acct, kind, path, q)
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
            return self._reply(200, app.stats())
        if path == "/faults":
            return self._reply(200, app.list_faults())
        if path == "/health":
            return self._reply(200, {"ok": True, "accounts": len(app.accounts)})
        if path == "/ratelimit":
            return self._reply(200, {"limit": app.rate_limit})
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
