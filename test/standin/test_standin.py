#!/usr/bin/python3
"""Self-test of the Alpaca stand-in: /usr/bin/python3 -m unittest test/standin/test_standin.py
(or run this file).  Starts the stand-in over HTTPS with a CA made by scripts/make_test_ca.sh,
checks every endpoint against the fixtures, Alpaca's error bodies, the rate-limit headers,
each fault mode, the control port, the log, and curl with and without the CA.  < 30 s."""

import datetime
import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import validate_fixtures
except SystemExit:  # python3-jsonschema missing: answers are not checked against the spec
    validate_fixtures = None

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
STANDIN = os.path.join(HERE, "alpaca_standin.py")
FIXTURES = os.path.join(HERE, "fixtures")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

ALICE = "PKTESTALICE000000001"
BOB = "PKTESTBOB00000000002"
LIVE = "AKTESTLIVE0000000003"
CLOSED = {"filled", "canceled", "expired", "replaced", "rejected"}


def secret_of(key):
    with open(os.path.join(FIXTURES, key, "secret"), encoding="utf-8") as f:
        return f.readline().strip()


def fixture_text(key, name):
    with open(os.path.join(FIXTURES, key, name), encoding="utf-8") as f:
        return f.read()


def fixture(key, name):
    return json.loads(fixture_text(key, name))


def ts(text):
    return datetime.datetime.fromisoformat(text)


def start_standin(tmp, cert, key, extra=(), name="s"):
    ready = os.path.join(tmp, name + ".ready")
    log = os.path.join(tmp, name + ".log")
    args = [PYTHON, STANDIN, "--fixtures", FIXTURES, "--listen", "paper=127.0.0.1:0",
            "--listen", "live=127.0.0.1:0", "--cert", cert, "--key", key,
            "--control", "127.0.0.1:0", "--log", log, "--ready-file", ready] + list(extra)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 10
    while not os.path.exists(ready):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError("stand-in did not start: %s" % proc.stderr.read().decode())
        time.sleep(0.02)
    with open(ready, encoding="utf-8") as f:
        return proc, json.load(f), log


class StandinTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="standin-test-")
        cls.ca_dir = os.path.join(cls.tmp, "ca")
        subprocess.run(["sh", os.path.join(ROOT, "scripts", "make_test_ca.sh"), cls.ca_dir],
                       check=True, stdout=subprocess.DEVNULL)
        cls.cafile = os.path.join(cls.ca_dir, "ca.crt")
        cls.proc, cls.urls, cls.logfile = start_standin(
            cls.tmp, os.path.join(cls.ca_dir, "server.crt"), os.path.join(cls.ca_dir, "server.key"))
        cls.ports = {k: int(v.rsplit(":", 1)[1]) for k, v in cls.urls.items() if k != "pid"}
        cls.ctx = ssl.create_default_context(cafile=cls.cafile)

    @classmethod
    def tearDownClass(cls):
        cls.proc.send_signal(signal.SIGTERM)
        try:
            cls.proc.wait(5)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
        cls.proc.stderr.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.control("DELETE", "/faults")
        self.control("POST", "/ratelimit", {"limit": 200})  # also resets every key's window
        self.control("POST", "/reset", {})  # every key's orders, positions, account: the fixtures'
        self.control("DELETE", "/prices")
        self.control("DELETE", "/stats")  # the orders-created counters with them

    # helpers ---------------------------------------------------------------------------------
    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.urls["control"] + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def fault(self, **spec):
        st, body = self.control("POST", "/faults", spec)
        self.assertEqual(st, 201, body)
        return body["id"]

    def conn(self, listener="paper", timeout=10):
        return http.client.HTTPSConnection("localhost", self.ports[listener], context=self.ctx,
                                           timeout=timeout)

    def get(self, path, key=ALICE, listener="paper", conn=None, headers=None, method="GET"):
        h = {}
        if key is not None:
            h = {"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret_of(key)}
        h.update(headers or {})
        c = conn or self.conn(listener)
        try:
            c.request(method, path, headers=h)
            r = c.getresponse()
            return r.status, r.headers, r.read()
        finally:
            if conn is None:
                c.close()

    def get_json(self, path, **kw):
        st, h, body = self.get(path, **kw)
        self.assertEqual(st, 200, body)
        self.assertEqual(h["Content-Type"], "application/json; charset=utf-8")
        return json.loads(body)

    # endpoints -------------------------------------------------------------------------------
    def test_account_positions_equal_fixture_bytes(self):
        for key, listener in ((ALICE, "paper"), (BOB, "paper"), (LIVE, "live")):
            for path, name in (("/v2/account", "account.json"), ("/v2/positions", "positions.json")):
                st, h, body = self.get(path, key=key, listener=listener)
                self.assertEqual(st, 200)
                self.assertEqual(body.decode(), fixture_text(key, name).strip(), (key, path))
        # Alice and Bob see different accounts
        self.assertNotEqual(self.get_json("/v2/account")["id"], self.get_json("/v2/account", key=BOB)["id"])

    def test_alice_fixture_has_what_the_issue_asks(self):
        pos = {p["symbol"]: p for p in fixture(ALICE, "positions.json")}
        self.assertEqual(pos["AAPL"]["qty"], "10")
        self.assertEqual((pos["TSLA"]["qty"], pos["TSLA"]["side"]), ("-5", "short"))
        self.assertEqual(pos["VTI"]["qty"], "0.123456789")
        self.assertEqual((pos["BTCUSD"]["qty"], pos["BTCUSD"]["asset_class"]), ("0.0012345678", "crypto"))
        opts = [s for s, p in pos.items() if p["asset_class"] == "us_option"]
        self.assertIn("AAPL240119C00190000", opts)
        self.assertIn("SPY250321P00450000", opts)
        self.assertEqual(sum(1 for s in opts if s.startswith("AAPL")), 2)
        acct = fixture(ALICE, "account.json")
        for gone in ("pattern_day_trader", "daytrade_count", "daytrading_buying_power"):
            self.assertNotIn(gone, acct)
        orders = fixture(ALICE, "orders.json")
        classes = {o["order_class"] for o in orders if o["legs"]}
        self.assertEqual(classes, {"mleg", "bracket"})
        self.assertTrue(any(o["status"] in CLOSED for o in orders))
        self.assertTrue(any(o["status"] not in CLOSED for o in orders))
        self.assertTrue(any(o["filled_avg_price"] is None for o in orders))

    def _flat(self, orders):
        out = []
        for o in orders:
            p = dict(o)
            if "legs" in p:
                p["legs"] = None
            out.append(p)
            out.extend(o.get("legs") or [])
        return out

    def test_orders_default_open_flat_desc(self):
        got = self.get_json("/v2/orders")
        want = [o for o in self._flat(fixture(ALICE, "orders.json")) if o["status"] not in CLOSED]
        want.sort(key=lambda o: ts(o["submitted_at"]), reverse=True)
        self.assertEqual(got, want)
        self.assertTrue(all(o["legs"] is None for o in got))

    def test_orders_all_nested_asc_and_limit(self):
        fx = fixture(ALICE, "orders.json")
        got = self.get_json("/v2/orders?status=all&nested=true&direction=asc&limit=500")
        self.assertEqual(got, sorted(fx, key=lambda o: ts(o["submitted_at"])))
        mleg = [o for o in got if o["order_class"] == "mleg"][0]
        self.assertEqual(len(mleg["legs"]), 2)
        self.assertEqual(len(self.get_json("/v2/orders?status=all&limit=2")), 2)
        closed = self.get_json("/v2/orders?status=closed&nested=true")
        self.assertEqual({o["id"] for o in closed}, {o["id"] for o in fx if o["status"] in CLOSED})
        default_limit = self.get_json("/v2/orders?status=all&nested=true")
        self.assertEqual(len(default_limit), min(50, len(fx)))

    def test_orders_after_until_symbols_side(self):
        fx = fixture(ALICE, "orders.json")
        got = self.get_json("/v2/orders?status=all&nested=true&after=2026-07-08T00:00:00Z&until=2026-07-14")
        want = {o["id"] for o in fx
                if ts("2026-07-08T00:00:00+00:00") < ts(o["submitted_at"]) < ts("2026-07-14T00:00:00+00:00")}
        self.assertEqual({o["id"] for o in got}, want)
        self.assertTrue(want)
        got = self.get_json("/v2/orders?status=all&nested=true&symbols=TSLA,VTI&side=sell")
        self.assertEqual({o["id"] for o in got},
                         {o["id"] for o in fx if o["symbol"] in ("TSLA", "VTI") and o["side"] == "sell"})
        self.assertEqual(self.get_json("/v2/orders", key=LIVE, listener="live"), [])

    def test_order_by_id(self):
        fx = fixture(ALICE, "orders.json")
        bracket = [o for o in fx if o["order_class"] == "bracket"][0]
        self.assertEqual(self.get_json("/v2/orders/%s?nested=true" % bracket["id"]), bracket)
        flat = self.get_json("/v2/orders/%s" % bracket["id"])
        self.assertIsNone(flat["legs"])
        leg = bracket["legs"][1]
        self.assertEqual(self.get_json("/v2/orders/%s" % leg["id"]), leg)
        st, _, body = self.get("/v2/orders/5d5c4bde-0000-4000-8000-000000000000")
        self.assertEqual((st, body), (404, b'{"code":40410000,"message":"order not found"}'))
        st, _, body = self.get("/v2/orders/not-a-uuid")
        self.assertEqual(st, 422)
        self.assertEqual(json.loads(body)["code"], 40010001)
        # Bob cannot read Alice's order
        st, _, _ = self.get("/v2/orders/%s" % bracket["id"], key=BOB)
        self.assertEqual(st, 404)

    def test_position_by_symbol_or_asset_id(self):
        fx = {p["symbol"]: p for p in fixture(ALICE, "positions.json")}
        self.assertEqual(self.get_json("/v2/positions/AAPL"), fx["AAPL"])
        self.assertEqual(self.get_json("/v2/positions/BTC%2FUSD"), fx["BTCUSD"])
        self.assertEqual(self.get_json("/v2/positions/" + fx["TSLA"]["asset_id"]), fx["TSLA"])
        self.assertEqual(self.get_json("/v2/positions/SPY250321P00450000"), fx["SPY250321P00450000"])
        st, _, body = self.get("/v2/positions/MSFT")  # Bob's, not Alice's
        self.assertEqual((st, body), (404, b'{"code":40410000,"message":"position does not exist"}'))

    def test_clock(self):
        c = self.get_json("/v2/clock")
        self.assertEqual(set(c), {"timestamp", "is_open", "next_open", "next_close"})
        self.assertIsInstance(c["is_open"], bool)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(abs((ts(c["timestamp"]) - now).total_seconds()), 5)
        self.assertGreater(ts(c["next_open"]), now)
        self.assertGreater(ts(c["next_close"]), now)

    def test_reference_and_market_data(self):
        """What the gateway's SDK tests need beyond trading: calendar, assets, activities,
        portfolio history, and the market-data paths alpaca-py and the JS SDK request."""
        days = self.get_json("/v2/calendar?start=2026-11-27&end=2026-12-02")
        self.assertEqual([d["date"] for d in days], ["2026-11-27", "2026-11-30", "2026-12-01",
                                                     "2026-12-02"])
        self.assertEqual(set(days[0]), {"date", "open", "close", "session_open", "session_close",
                                        "settlement_date"})
        assets = self.get_json("/v2/assets")
        self.assertIn("AAPL", [a["symbol"] for a in assets])
        self.assertEqual({a["class"] for a in assets}, {"us_equity"})
        self.assertEqual(self.get_json("/v2/assets/aapl")["symbol"], "AAPL")
        self.assertEqual(self.get("/v2/assets/NOPE0")[0], 422)
        fills = self.get_json("/v2/account/activities/FILL")
        self.assertTrue(all(a["activity_type"] == "FILL" for a in fills))
        self.assertEqual(self.get_json("/v2/account/activities/DIV"), [])
        hist = self.get_json("/v2/account/portfolio/history")
        self.assertEqual(len(hist["timestamp"]), len(hist["equity"]))
        q = self.get_json("/v2/stocks/AAPL/quotes/latest")
        self.assertEqual(q["symbol"], "AAPL")
        self.assertLess(q["quote"]["bp"], q["quote"]["ap"])
        many = self.get_json("/v2/stocks/quotes/latest?symbols=AAPL,MSFT")
        self.assertEqual(set(many["quotes"]), {"AAPL", "MSFT"})
        self.assertEqual(many["quotes"]["AAPL"]["ap"], q["quote"]["ap"])
        bars = self.get_json("/v2/stocks/AAPL/bars?timeframe=1Day&limit=3")
        self.assertEqual((bars["symbol"], len(bars["bars"])), ("AAPL", 3))
        self.assertEqual(set(self.get_json("/v2/stocks/bars?symbols=AAPL,SPY&timeframe=1Day")["bars"]),
                         {"AAPL", "SPY"})
        self.assertEqual(self.get("/v2/stocks/quotes/latest")[0], 422)
        for path in ("/v2/calendar", "/v2/stocks/AAPL/quotes/latest", "/v2/assets"):
            self.assertEqual(self.get(path, key=None)[:3:2], (403, b'{"message":"forbidden."}'))
            self.assertEqual(self.get(path, method="POST")[0], 405)

    # errors ----------------------------------------------------------------------------------
    def test_auth_errors_exact_bodies(self):
        forbidden = (403, b'{"message":"forbidden."}')
        unauthorized = (401, b'{"code":40110000,"message":"request is not authorized"}')
        cases = [
            (dict(key=None), forbidden),
            (dict(key=None, headers={"APCA-API-KEY-ID": ALICE}), forbidden),
            (dict(key=None, headers={"APCA-API-SECRET-KEY": secret_of(ALICE)}), forbidden),
            (dict(key=None, headers={"APCA-API-KEY-ID": ALICE, "APCA-API-SECRET-KEY": secret_of(BOB)}), unauthorized),
            (dict(key=None, headers={"APCA-API-KEY-ID": "PKNOSUCHKEY000000000", "APCA-API-SECRET-KEY": "x" * 40}), unauthorized),
            (dict(key=ALICE, listener="live"), unauthorized),  # paper key at the live endpoint
            (dict(key=LIVE, listener="paper"), unauthorized),  # live key at the paper endpoint
        ]
        for kw, want in cases:
            st, h, body = self.get("/v2/account", **kw)
            self.assertEqual((st, body), want, kw)
            self.assertEqual(h["Content-Type"], "application/json; charset=utf-8")

    def test_unknown_path_and_method(self):
        for path in ("/v2/nope", "/v1/account", "/v2/positions/AAPL/extra", "/"):
            st, _, body = self.get(path)
            self.assertEqual((st, body), (404, b'{"code":40410000,"message":"endpoint not found"}'), path)
        for method, path in (("POST", "/v2/account"), ("PUT", "/v2/orders"), ("POST", "/v2/clock"),
                             ("PATCH", "/v2/positions/AAPL"), ("DELETE", "/v2/orders:by_client_order_id")):
            st, _, body = self.get(path, method=method)
            self.assertEqual((st, json.loads(body)["code"]), (405, 40510000), (method, path))

    def test_invalid_queries_422(self):
        for q in ("status=bogus", "limit=0", "limit=501", "limit=abc", "limit=-1", "direction=up",
                  "nested=maybe", "after=yesterday", "until=2026-13-45"):
            st, _, body = self.get("/v2/orders?" + q)
            self.assertEqual(st, 422, q)
            b = json.loads(body)
            self.assertEqual(b["code"], 40010001, q)
            self.assertTrue(b["message"], q)
        everything = self._flat(fixture(ALICE, "orders.json"))  # legs listed as orders of their own
        self.assertEqual(len(self.get_json("/v2/orders?status=all&limit=500")), len(everything))
        self.assertEqual(len(self.get_json("/v2/orders?status=all&limit=1")), 1)

    # rate limit ------------------------------------------------------------------------------
    def test_rate_limit_headers_on_every_answer(self):
        c = self.conn()
        try:
            last = None
            for i in range(5):
                st, h, _ = self.get("/v2/positions", conn=c)
                self.assertEqual(st, 200)
                self.assertEqual(h["X-RateLimit-Limit"], "200")
                rem = int(h["X-RateLimit-Remaining"])
                self.assertEqual(rem, 199 - i)
                reset = int(h["X-RateLimit-Reset"])
                self.assertTrue(time.time() - 1 < reset <= time.time() + 61, reset)
                last = reset
            self.assertEqual(last, reset)  # a fixed window
            for kw in (dict(key=None), dict(key=ALICE, listener="live"), dict(path="/v2/nope"),
                       dict(path="/v2/orders?limit=0")):
                path = kw.pop("path", "/v2/account")
                st, h, _ = self.get(path, **kw)
                for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
                    self.assertIn(name, h, (path, kw, st))
        finally:
            c.close()

    def test_rate_limit_enforced_per_key(self):
        self.control("POST", "/ratelimit", {"limit": 3})
        for i in range(3):
            self.assertEqual(self.get("/v2/account")[0], 200)
        st, h, body = self.get("/v2/account")
        self.assertEqual((st, body), (429, b'{"code":42910000,"message":"rate limit exceeded"}'))
        self.assertEqual(h["X-RateLimit-Remaining"], "0")
        self.assertEqual(h["X-RateLimit-Limit"], "3")
        self.assertGreater(int(h["X-RateLimit-Reset"]), time.time())
        self.assertEqual(self.get("/v2/account", key=BOB)[0], 200)  # another key's own window

    # keep-alive and speed --------------------------------------------------------------------
    def test_keepalive_one_connection_and_no_delayed_ack_stall(self):
        c = self.conn()
        try:
            self.get("/v2/positions", conn=c)
            sock = c.sock
            lat = []
            for _ in range(50):
                t = time.perf_counter()
                st, h, _ = self.get("/v2/positions", conn=c)
                lat.append(time.perf_counter() - t)
                self.assertEqual(st, 200)
                self.assertIs(c.sock, sock)  # the same TLS connection every time
            lat.sort()
            self.assertLess(lat[25], 0.02, "median %.1f ms: headers and body not in one send?" % (lat[25] * 1e3))
        finally:
            c.close()

    def test_32_concurrent_clients(self):
        self.fault(mode="delay", delay_ms=150)
        results = []

        def one():
            results.append(self.get("/v2/clock")[0])

        t0 = time.time()
        threads = [threading.Thread(target=one) for _ in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 32)
        self.assertLess(time.time() - t0, 2.0)  # served in parallel, not 32 x 150 ms

    # faults ----------------------------------------------------------------------------------
    def test_fault_delay_count(self):
        self.fault(mode="delay", delay_ms=300, count=1)
        t = time.time()
        self.assertEqual(self.get("/v2/account")[0], 200)
        self.assertGreaterEqual(time.time() - t, 0.3)
        t = time.time()
        self.assertEqual(self.get("/v2/account")[0], 200)
        self.assertLess(time.time() - t, 0.25)

    def test_fault_status_then_recovery_and_stats(self):
        self.control("DELETE", "/stats")
        self.fault(mode="status", status=503, count=2, key_id=BOB, path="/v2/positions")
        self.assertEqual(self.get("/v2/positions")[0], 200)  # Alice: not matched
        c = self.conn()
        try:
            for want in (503, 503, 200):
                st, h, body = self.get("/v2/positions", key=BOB, conn=c)
                self.assertEqual(st, want)
                if st == 503:
                    self.assertTrue(h["Content-Type"].startswith("text/html"))
                    self.assertIn(b"503 Service Unavailable", body)
                    self.assertIn("X-RateLimit-Remaining", h)
        finally:
            c.close()
        self.fault(mode="status", status=500, count=1)
        st, _, body = self.get("/v2/account")
        self.assertEqual((st, body), (500, b'{"code":50010000,"message":"internal server error occurred"}'))
        self.fault(mode="status", status=502, count=1, body='{"message":"custom"}')
        self.assertEqual(self.get("/v2/account")[1:][1], b'{"message":"custom"}')
        stats = self.control("GET", "/stats?settled=1")[1]
        bob = [x for x in stats["counts"] if x["key_id"] == BOB and x["path"] == "/v2/positions"]
        self.assertEqual({(x["status"], x["fault"], x["listener"]): x["count"] for x in bob},
                         {(503, "status", "paper"): 2, (200, None, "paper"): 1})
        self.assertEqual(self.control("GET", "/faults")[1], [])  # counts used up

    def test_fault_ratelimit(self):
        self.fault(mode="ratelimit", reset_in=5, retry_after=2, count=1)
        st, h, body = self.get("/v2/positions")
        self.assertEqual((st, body), (429, b'{"code":42910000,"message":"rate limit exceeded"}'))
        self.assertEqual(h["X-RateLimit-Remaining"], "0")
        self.assertEqual(h["Retry-After"], "2")
        self.assertTrue(time.time() + 3 <= int(h["X-RateLimit-Reset"]) <= time.time() + 7)
        st, h, _ = self.get("/v2/positions")
        self.assertEqual(st, 200)
        self.assertNotIn("Retry-After", h)

    def test_fault_truncated(self):
        self.fault(mode="truncated", count=1)
        c = self.conn()
        try:
            c.request("GET", "/v2/positions", headers={"APCA-API-KEY-ID": ALICE,
                                                       "APCA-API-SECRET-KEY": secret_of(ALICE)})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(int(r.headers["Content-Length"]), len(fixture_text(ALICE, "positions.json").strip()))
            with self.assertRaises(http.client.IncompleteRead):
                r.read()
        finally:
            c.close()

    def test_fault_malformed(self):
        self.fault(mode="malformed", count=1, path="/v2/account")
        st, h, body = self.get("/v2/account")
        self.assertEqual(st, 200)
        self.assertEqual(h["Content-Type"], "application/json; charset=utf-8")
        with self.assertRaises(ValueError):
            json.loads(body)

    def test_fault_oversized_streamed(self):
        size = 32 * 1024 * 1024
        self.fault(mode="oversized", size_bytes=size, count=1)
        c = self.conn(timeout=20)
        try:
            c.request("GET", "/v2/positions", headers={"APCA-API-KEY-ID": ALICE,
                                                       "APCA-API-SECRET-KEY": secret_of(ALICE)})
            r = c.getresponse()
            self.assertEqual(int(r.headers["Content-Length"]), size)
            n, first, tail = 0, b"", b""
            while True:
                piece = r.read(1 << 20)
                if not piece:
                    break
                if not first:
                    first = piece[:200]
                tail = (tail + piece)[-4096:]
                n += len(piece)
            self.assertEqual(n, size)
            self.assertTrue(first.startswith(b'[{'))
            self.assertTrue(tail.endswith(b"]") and tail.replace(b" ", b"").endswith(b"}]"), tail[-20:])
        finally:
            c.close()
        self.fault(mode="oversized", size_bytes=1_000_003, chunked=True, count=1)
        st, h, body = self.get("/v2/positions")
        self.assertEqual(h["Transfer-Encoding"], "chunked")
        self.assertEqual(len(body), 1_000_003)
        doc = json.loads(body)
        self.assertGreater(len(doc), 100)
        self.assertEqual(doc[0], fixture(ALICE, "positions.json")[0])

    def _wait_stat(self, name, value, timeout=3):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.control("GET", "/stats")[1][name] == value:
                return True
            time.sleep(0.02)
        return False

    def test_fault_hang_until_client_gives_up(self):
        self.fault(mode="hang", path="/v2/positions")
        c = self.conn(timeout=0.5)
        t = time.time()
        with self.assertRaises((socket.timeout, TimeoutError)):
            self.get("/v2/positions", conn=c)
        self.assertGreaterEqual(time.time() - t, 0.45)
        self.assertEqual(self.control("GET", "/stats")[1]["hanging"], 1)
        c.close()
        self.assertTrue(self._wait_stat("hanging", 0), "hung request not released when the client left")
        self.assertEqual(self.get("/v2/account")[0], 200)  # other paths unaffected

    def test_fault_hang_released_by_clear(self):
        self.fault(mode="hang", count=1)
        out = []
        th = threading.Thread(target=lambda: out.append(self.get("/v2/account")[0]))
        th.start()
        self.assertTrue(self._wait_stat("hanging", 1))
        time.sleep(0.2)
        self.assertEqual(out, [])
        self.control("DELETE", "/faults")
        th.join(3)
        self.assertEqual(out, [200])

    def test_fault_reset_is_a_tcp_rst(self):
        self.fault(mode="reset", count=1)
        with self.assertRaises(ConnectionResetError):
            self.get("/v2/account")
        self.assertEqual(self.get("/v2/account")[0], 200)

    def test_fault_filters_listener_and_delete_one(self):
        fid = self.fault(mode="status", status=504, listener="live")
        self.assertEqual(self.get("/v2/account")[0], 200)
        self.assertEqual(self.get("/v2/account", key=LIVE, listener="live")[0], 504)
        faults = self.control("GET", "/faults")[1]
        self.assertEqual([(f["id"], f["used"]) for f in faults], [(fid, 1)])
        self.assertEqual(self.control("DELETE", "/faults/%d" % fid)[1], {"cleared": 1})
        self.assertEqual(self.get("/v2/account", key=LIVE, listener="live")[0], 200)
        st, body = self.control("POST", "/faults", {"mode": "explode"})
        self.assertEqual(st, 400)
        st, body = self.control("POST", "/faults", {"mode": "delay", "delay_ms": 5, "typo": 1})
        self.assertEqual(st, 400)
        self.assertIn("typo", body["message"])

    def test_stats_listener_routing(self):
        self.control("DELETE", "/stats")
        self.get("/v2/positions", key=LIVE, listener="live")
        self.get("/v2/positions", key=ALICE, listener="paper")
        stats = self.control("GET", "/stats?settled=1")[1]
        self.assertEqual(stats["by_listener"], {"live": 1, "paper": 1})
        self.assertEqual(stats["by_key"], {LIVE: 1, ALICE: 1})
        self.assertEqual([r["listener"] for r in stats["recent"]], ["live", "paper"])

    # log, TLS, command line ------------------------------------------------------------------
    def test_log_has_requests_never_keys_or_secrets(self):
        self.get("/v2/orders?status=all")
        self.get("/v2/account", key=BOB)
        time.sleep(0.05)
        with open(self.logfile, encoding="utf-8") as f:
            log = f.read()
        self.assertIn("paper GET /v2/orders?status=all 200 ", log)
        for key in (ALICE, BOB, LIVE):
            self.assertNotIn(key, log)
            self.assertNotIn(secret_of(key), log)

    def test_curl_with_and_without_ca(self):
        if not shutil.which("curl"):
            self.skipTest("curl not installed")
        url = "https://localhost:%d/v2/account" % self.ports["paper"]
        hdr = ["-H", "APCA-API-KEY-ID: " + ALICE, "-H", "APCA-API-SECRET-KEY: " + secret_of(ALICE)]
        r = subprocess.run(["curl", "-sS", "--cacert", self.cafile] + hdr + [url],
                           capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), fixture(ALICE, "account.json"))
        r = subprocess.run(["curl", "-sS", "--capath", "/nonexistent", "--cacert", os.devnull] + hdr + [url],
                           capture_output=True, timeout=10)
        self.assertNotEqual(r.returncode, 0)
        r = subprocess.run(["curl", "-sS"] + hdr + [url], capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 60, r.stderr)  # not trusted by the system store

    def test_untrusted_certificate_refused_and_cli_fault(self):
        proc, urls, _ = start_standin(
            self.tmp, os.path.join(self.ca_dir, "untrusted.crt"), os.path.join(self.ca_dir, "untrusted.key"),
            extra=["--fault", '{"mode":"status","status":503,"count":1}'], name="untrusted")
        try:
            port = int(urls["paper"].rsplit(":", 1)[1])
            c = http.client.HTTPSConnection("localhost", port, context=self.ctx, timeout=5)
            with self.assertRaises(ssl.SSLCertVerificationError):
                c.request("GET", "/v2/clock")
            c.close()
            if shutil.which("curl"):
                r = subprocess.run(["curl", "-sS", "--cacert", self.cafile,
                                    "https://localhost:%d/v2/clock" % port], capture_output=True, timeout=10)
                self.assertEqual(r.returncode, 60)
            # its own certificate as trust anchor: the --fault from the command line applies once
            ctx = ssl.create_default_context(cafile=os.path.join(self.ca_dir, "untrusted.crt"))
            for want in (503, 200):
                c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=5)
                c.request("GET", "/v2/account", headers={"APCA-API-KEY-ID": ALICE,
                                                          "APCA-API-SECRET-KEY": secret_of(ALICE)})
                self.assertEqual(c.getresponse().status, want)
                c.close()
            with urllib.request.urlopen(urls["control"] + "/stats") as r:
                self.assertGreaterEqual(json.loads(r.read())["tls_handshake_failures"], 1)
        finally:
            t = time.time()
            proc.terminate()
            self.assertEqual(proc.wait(5), 0)  # SIGTERM: clean exit
            self.assertLess(time.time() - t, 1.0)
            proc.stderr.close()

    def test_command_line_refusals(self):
        base = [PYTHON, STANDIN, "--fixtures", FIXTURES, "--listen", "paper=127.0.0.1:0"]
        for extra in ([],  # HTTPS without a certificate
                      ["--insecure-http", "--control", "0.0.0.0:0"],  # control off loopback
                      ["--insecure-http", "--fault", '{"mode":"nope"}']):
            r = subprocess.run(base + extra, capture_output=True, timeout=10)
            self.assertEqual(r.returncode, 2, (extra, r.stderr))

    def test_validate_fixtures(self):
        if importlib.util.find_spec("jsonschema") is None:
            self.skipTest("python3-jsonschema not installed")
        r = subprocess.run([PYTHON, os.path.join(HERE, "validate_fixtures.py")],
                           capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())

    def test_control_reload(self):
        st, body = self.control("POST", "/reload", {})
        self.assertEqual((st, body), (200, {"accounts": 3}))
        self.assertEqual(self.get("/v2/account")[0], 200)

    # trading -----------------------------------------------------------------------------------
    SPEC = None

    def valid(self, instance, schema, array=False):
        """Assert instance validates against the spec's schema (validate_fixtures' reading)."""
        if validate_fixtures is None:
            return
        if StandinTest.SPEC is None:
            StandinTest.SPEC = validate_fixtures.Checker(validate_fixtures.DEFAULT_SPEC, quiet=True)
        errors = StandinTest.SPEC.problems(instance, schema, array)
        self.assertEqual(errors, [], "%s: %s" % (schema, instance))

    def call(self, method, path, body=None, key=ALICE, listener="paper", raw=None):
        h = {"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret_of(key)}
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            h["Content-Type"] = "application/json"
        c = self.conn(listener)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            out = r.read()
            return r.status, r.headers, (json.loads(out) if out and out[:1] in b"[{" else out)
        finally:
            c.close()

    def order(self, key=ALICE, listener="paper", **body):
        st, _, out = self.call("POST", "/v2/orders", body, key=key, listener=listener)
        if st == 200:
            self.valid(out, "Order")
        return st, out

    def ok_order(self, key=ALICE, listener="paper", **body):
        st, out = self.order(key=key, listener=listener, **body)
        self.assertEqual(st, 200, out)
        return out

    def account(self, key=ALICE):
        a = self.get_json("/v2/account", key=key)
        self.valid(a, "Account")
        return a

    def positions(self, key=ALICE):
        p = self.get_json("/v2/positions", key=key)
        self.valid(p, "Position", array=True)
        return {x["symbol"]: x for x in p}

    def assert_balanced(self, a):
        self.assertEqual(Decimal(a["equity"]),
                         Decimal(a["cash"]) + Decimal(a["long_market_value"]) + Decimal(a["short_market_value"]))

    def created(self, key=ALICE):
        return self.control("GET", "/stats")[1]["orders_created"].get(key, 0)

    def test_trade_market_buy_fills_and_moves_cash_positions(self):
        a0, p0 = self.account(), self.positions()
        o = self.ok_order(symbol="AAPL", qty="2", side="buy", type="market", time_in_force="day",
                          client_order_id="mkt-1")
        self.assertEqual((o["status"], o["filled_qty"], o["filled_avg_price"], o["qty"]), ("filled", "2", "189.84", "2"))
        self.assertEqual((o["symbol"], o["asset_class"], o["asset_id"]), ("AAPL", "us_equity", p0["AAPL"]["asset_id"]))
        self.assertEqual(o["client_order_id"], "mkt-1")
        a1, p1 = self.account(), self.positions()
        self.assertEqual(p1["AAPL"]["qty"], "12")
        self.assertEqual(p1["AAPL"]["market_value"], "2278.08")
        self.assertEqual(Decimal(a0["cash"]) - Decimal(a1["cash"]), Decimal("379.68"))
        self.assertEqual(Decimal(a0["buying_power"]) - Decimal(a1["buying_power"]), Decimal("379.68"))
        self.assertEqual(a1["equity"], a0["equity"])  # filled at the current price
        self.assert_balanced(a0)
        self.assert_balanced(a1)
        self.assertEqual(self.get_json("/v2/orders/" + o["id"]), o)
        self.assertEqual(self.get_json("/v2/orders:by_client_order_id?client_order_id=mkt-1"), o)
        self.assertIn(o["id"], [x["id"] for x in self.get_json("/v2/orders?status=closed")])
        self.assertNotIn(o["id"], [x["id"] for x in self.get_json("/v2/orders")])
        # a new symbol opens a position; selling it closes it and gives the cash back
        self.ok_order(symbol="NVDA", qty="3", side="buy", type="market", time_in_force="day")
        nv = self.positions()["NVDA"]
        self.assertEqual((nv["qty"], nv["side"], nv["market_value"], nv["exchange"]), ("3", "long", "364.2", "NASDAQ"))
        s = self.ok_order(symbol="NVDA", qty="3", side="sell", type="market", time_in_force="day")
        self.assertEqual(s["status"], "filled")
        self.assertNotIn("NVDA", self.positions())
        self.assertEqual(self.account()["cash"], a1["cash"])
        self.assertEqual(self.created(), 3)

    def test_trade_notional_and_fractional_rules(self):
        o = self.ok_order(symbol="AAPL", notional="100", side="buy", type="market", time_in_force="day")
        self.assertEqual((o["qty"], o["notional"]), (None, "100"))
        self.assertEqual(Decimal(o["filled_qty"]), (Decimal(100) / Decimal("189.84")).quantize(Decimal("1e-9"), "ROUND_DOWN"))
        f = self.ok_order(symbol="VTI", qty="0.5", side="buy", type="market", time_in_force="day")
        self.assertEqual(self.positions()["VTI"]["qty"], "0.623456789")
        self.assertEqual(f["filled_qty"], "0.5")
        cases = [
            (dict(symbol="AAPL", notional="100", side="buy", type="market", time_in_force="gtc"),
             42210000, "fractional orders must be DAY orders"),
            (dict(symbol="AAPL", qty="0.5", side="buy", type="limit", limit_price="150", time_in_force="day"),
             42210000, "fractional orders must be market orders"),
            (dict(symbol="AAPL", qty="1.5", side="buy", type="market", time_in_force="day", order_class="bracket",
                  take_profit={"limit_price": "250"}, stop_loss={"stop_price": "150"}),
             42210000, "fractional orders must be simple orders"),
            (dict(symbol="AAPL", qty="1", notional="100", side="buy", type="market", time_in_force="day"),
             40010001, "qty and notional cannot both be specified"),
        ]
        for body, code, msg in cases:
            st, out = self.order(**body)
            self.assertEqual((st, out), (422, {"code": code, "message": msg}), body)

    def test_trade_validation_errors_are_alpacas(self):
        base = dict(symbol="AAPL", qty="1", side="buy", type="limit", limit_price="150", time_in_force="gtc")
        cases = [
            (dict(qty=None), 40010001, "qty is required"),
            (dict(qty="-1"), 40010001, "qty must be > 0"),
            (dict(qty="0"), 40010001, "qty must be > 0"),
            (dict(qty="abc"), 40010001, "invalid qty"),
            (dict(limit_price=None), 40010001, "limit orders require a limit price"),
            (dict(limit_price="0"), 40010001, "limit price must be > 0"),
            (dict(type="market"), 40010001, "market orders require no stop or limit price"),
            (dict(type="stop", limit_price=None), 40010001, "stop orders require a stop price"),
            (dict(type="stop_limit"), 40010001, "stop limit orders require a stop price"),
            (dict(type="trailing_stop", limit_price=None), 40010001,
             "trailing stop orders require exactly one of trail_price or trail_percent"),
            (dict(type="market", limit_price=None, extended_hours=True), 40010001,
             'only type="limit" is allowed for extended hours orders'),
            (dict(type="bogus"), 40010001, "invalid order type"),
            (dict(time_in_force="forever"), 40010001, "invalid time_in_force"),
            (dict(side="up"), 40010001, "invalid side"),
            (dict(order_class="weird"), 40010001, "invalid order_class"),
            (dict(symbol="NOPE"), 40010001, 'asset "NOPE" not found'),
            (dict(symbol="\x01" * 500), 40010001, 'asset "?" not found'),
            (dict(client_order_id="x" * 129), 40010001, "client_order_id must be no more than 128 characters"),
            (dict(position_intent="sideways"), 40010001, "invalid position_intent"),
            (dict(symbol="BTC/USD", time_in_force="day"), 42210000, "invalid crypto time_in_force"),
            (dict(symbol="BTCUSD", time_in_force="fok"), 42210000, "invalid crypto time_in_force"),
            (dict(symbol="AAPL240119C00190000", time_in_force="ioc"), 42210000,
             "order_time_in_force provided not supported for options trading"),
            (dict(symbol="AAPL240119C00190000", qty="1.5"), 40010001, "qty must be integer"),
            (dict(symbol="AAPL240119C00190000", type="trailing_stop", limit_price=None, trail_percent="5"),
             42210000, "invalid options order_type"),
            (dict(order_class="bracket", take_profit={"limit_price": "140"}, stop_loss={"stop_price": "130"}),
             42210000, "take_profit.limit_price must be >= base_price + 0.01"),
            (dict(order_class="bracket", take_profit={"limit_price": "160"}, stop_loss={"stop_price": "151"}),
             42210000, "stop_loss.stop_price must be <= base_price - 0.01"),
            (dict(order_class="bracket", stop_loss={"stop_price": "130"}), 40010001, "take_profit.limit_price is required"),
        ]
        before = self.created()
        for change, code, msg in cases:
            body = {k: v for k, v in dict(base, **change).items() if v is not None}
            st, out = self.order(**body)
            self.assertEqual((st, out), (422, {"code": code, "message": msg}), change)
            self.valid(out, "Error")
        st, _, out = self.call("POST", "/v2/orders", raw=b"{not json")
        self.assertEqual((st, out), (400, {"code": 40010000, "message": "request body format is invalid"}))
        st, _, out = self.call("POST", "/v2/orders", raw=b"")
        self.assertEqual(st, 400)
        self.assertEqual(self.created(), before)  # nothing refused was created

    def test_trade_insufficient_buying_power_and_qty(self):
        bp = self.account()["buying_power"]
        c = self.conn()
        try:
            c.request("POST", "/v2/orders", body=json.dumps(dict(symbol="AAPL", qty="1000", side="buy",
                      type="market", time_in_force="day")),
                      headers={"APCA-API-KEY-ID": ALICE, "APCA-API-SECRET-KEY": secret_of(ALICE)})
            r = c.getresponse()
            body = r.read()
        finally:
            c.close()
        self.assertEqual(r.status, 403)
        self.assertEqual(body, ('{"buying_power":"%s","code":40310000,"cost_basis":"189840","message":'
                                '"insufficient buying power"}' % bp).encode())
        st, out = self.order(symbol="AAPL", qty="11", side="sell", type="market", time_in_force="day")
        self.assertEqual((st, out), (403, {"code": 40310000,
                         "message": "insufficient qty available for order (requested: 11, available: 10)"}))
        st, out = self.order(symbol="BTC/USD", qty="1", side="sell", type="market", time_in_force="gtc")
        self.assertEqual((st, out), (403, {"code": 40310000,
                         "message": "insufficient balance for BTC (requested: 1, available: 0.0012345678)"}))
        # an open sell holds its quantity
        self.ok_order(symbol="AAPL", qty="8", side="sell", type="limit", limit_price="250", time_in_force="gtc")
        self.assertEqual(self.positions()["AAPL"]["qty_available"], "2")
        st, out = self.order(symbol="AAPL", qty="3", side="sell", type="market", time_in_force="day")
        self.assertEqual(out["message"], "insufficient qty available for order (requested: 3, available: 2)")
        self.assertEqual(self.account()["buying_power"], bp)  # selling long reserves no buying power

    def test_trade_limit_open_cancel_and_reserve(self):
        a0 = self.account()
        o = self.ok_order(symbol="MSFT", qty="2", side="buy", type="limit", limit_price="400",
                          time_in_force="gtc", client_order_id="lim-1")
        self.assertEqual((o["status"], o["filled_qty"], o["filled_avg_price"], o["limit_price"]), ("accepted", "0", None, "400"))
        got = self.get_json("/v2/orders/" + o["id"])
        self.assertEqual(got["status"], "new")
        self.assertIn(o["id"], [x["id"] for x in self.get_json("/v2/orders?status=open")])
        self.assertEqual(Decimal(a0["buying_power"]) - Decimal(self.account()["buying_power"]), Decimal(800))
        self.assertEqual(self.account()["cash"], a0["cash"])  # nothing filled
        st, h, body = self.call("DELETE", "/v2/orders/" + o["id"])
        self.assertEqual((st, body), (204, b""))
        self.assertNotIn("Content-Length", h)
        got = self.get_json("/v2/orders/" + o["id"])
        self.assertEqual(got["status"], "canceled")
        self.assertIsNotNone(got["canceled_at"])
        self.valid(got, "Order")
        self.assertEqual(self.account()["buying_power"], a0["buying_power"])
        st, _, out = self.call("DELETE", "/v2/orders/" + o["id"])
        self.assertEqual((st, out), (422, {"code": 42210000, "message": 'order is already in "canceled" state'}))
        filled = [x for x in fixture(ALICE, "orders.json") if x["status"] == "filled"][0]
        st, _, out = self.call("DELETE", "/v2/orders/" + filled["id"])
        self.assertEqual((st, out), (422, {"code": 42210000, "message": 'order is already in "filled" state'}))
        st, _, out = self.call("DELETE", "/v2/orders/5d5c4bde-0000-4000-8000-000000000000")
        self.assertEqual((st, out), (404, {"code": 40410000, "message": "order not found"}))
        st, _, out = self.call("DELETE", "/v2/orders/nope")
        self.assertEqual((st, out), (422, {"code": 40010001, "message": "order_id is missing"}))

    def test_trade_replace(self):
        a0 = self.account()
        o = self.ok_order(symbol="MSFT", qty="1", side="buy", type="limit", limit_price="400", time_in_force="day")
        st, _, n = self.call("PATCH", "/v2/orders/" + o["id"], {"qty": "2", "limit_price": "401.5",
                                                                "time_in_force": "gtc", "client_order_id": "rep-2"})
        self.assertEqual(st, 200, n)
        self.valid(n, "Order")
        self.assertNotEqual(n["id"], o["id"])
        self.assertEqual((n["replaces"], n["qty"], n["limit_price"], n["time_in_force"], n["client_order_id"], n["status"]),
                         (o["id"], "2", "401.5", "gtc", "rep-2", "new"))
        old = self.get_json("/v2/orders/" + o["id"])
        self.assertEqual((old["status"], old["replaced_by"]), ("replaced", n["id"]))
        self.assertIsNotNone(old["replaced_at"])
        self.assertEqual(Decimal(a0["buying_power"]) - Decimal(self.account()["buying_power"]), Decimal("803"))
        st, _, out = self.call("PATCH", "/v2/orders/" + o["id"], {"qty": "3"})
        self.assertEqual((st, out), (422, {"code": 42210000, "message": 'order is already in "replaced" state'}))
        st, _, out = self.call("PATCH", "/v2/orders/" + n["id"], {"stop_price": "3"})
        self.assertEqual(st, 422)
        st, _, out = self.call("PATCH", "/v2/orders/" + n["id"], {"qty": "1", "client_order_id": "rep-2"})
        self.assertEqual((st, out), (422, {"code": 40010001, "message": "client_order_id must be unique"}))
        st, _, out = self.call("PATCH", "/v2/orders/" + n["id"], {"qty": "1000"})
        self.assertEqual((st, out["message"]), (403, "insufficient buying power"))
        st, _, out = self.call("PATCH", "/v2/orders/5d5c4bde-0000-4000-8000-000000000000", {"qty": "1"})
        self.assertEqual(st, 404)
        self.assertEqual(self.created(), 2)  # the replacement is an order of its own

    def test_trade_crypto(self):
        p0 = self.positions()["BTCUSD"]
        o = self.ok_order(symbol="BTCUSD", qty="0.001", side="buy", type="market", time_in_force="gtc")
        self.assertEqual((o["symbol"], o["asset_class"], o["status"], o["asset_id"]),
                         ("BTC/USD", "crypto", "filled", p0["asset_id"]))
        self.assertEqual(self.positions()["BTCUSD"]["qty"], "0.0022345678")
        self.assert_balanced(self.account())
        lim = self.ok_order(symbol="ETH/USD", qty="0.02", side="buy", type="limit", limit_price="2100", time_in_force="gtc")
        self.assertEqual(lim["status"], "pending_new")  # as the spec's crypto example

    def test_trade_options_single_and_mleg(self):
        o = self.ok_order(symbol="AAPL240119C00190000", qty="1", side="buy", type="market", time_in_force="day")
        self.assertEqual((o["order_class"], o["position_intent"], o["filled_avg_price"]), ("simple", "buy_to_open", "3.2"))
        self.assertEqual(self.positions()["AAPL240119C00190000"]["qty"], "3")
        s = self.ok_order(symbol="SPY250321P00450000", qty="1", side="buy", type="market", time_in_force="day")
        self.assertEqual(s["position_intent"], "buy_to_close")  # Alice is short one
        self.assertNotIn("SPY250321P00450000", self.positions())
        a0 = self.account()
        legs = [{"symbol": "AAPL241213C00250000", "ratio_qty": "3", "side": "buy", "position_intent": "buy_to_open"},
                {"symbol": "AAPL241213C00260000", "ratio_qty": "1", "side": "sell", "position_intent": "sell_to_open"}]
        m = self.ok_order(order_class="mleg", qty="1", type="market", time_in_force="day", legs=legs)
        self.assertEqual((m["symbol"], m["side"], m["asset_class"], m["status"], m["filled_avg_price"]),
                         ("", "", "", "filled", "1.28"))  # 3 x 0.43 - 1 x 0.01, as the spec's example
        self.assertEqual([(x["symbol"], x["qty"], x["ratio_qty"], x["type"], x["status"]) for x in m["legs"]],
                         [("AAPL241213C00250000", "3", "3", "", "filled"), ("AAPL241213C00260000", "1", "1", "", "filled")])
        self.assertEqual(Decimal(a0["cash"]) - Decimal(self.account()["cash"]), Decimal(128))
        p = self.positions()
        self.assertEqual((p["AAPL241213C00250000"]["qty"], p["AAPL241213C00260000"]["qty"]), ("3", "-1"))
        lm = self.ok_order(order_class="mleg", qty="2", type="limit", limit_price="-0.5", time_in_force="day", legs=legs)
        self.assertEqual((lm["status"], [x["status"] for x in lm["legs"]]), ("pending_new", ["new", "new"]))
        flat = self.get_json("/v2/orders?status=open&limit=500")
        self.assertIn(lm["legs"][0]["id"], [x["id"] for x in flat])
        st, out = self.order(order_class="mleg", qty="1", type="market", time_in_force="day", legs=legs * 3)
        self.assertEqual((st, out), (422, {"code": 40010001, "message": "mleg orders support at most 4 legs"}))
        st, out = self.order(order_class="mleg", qty="1", type="market", time_in_force="day")
        self.assertEqual(out["message"], "legs are required for mleg orders")

    def test_trade_bracket_oco_oto_and_types(self):
        b = self.ok_order(symbol="NVDA", qty="2", side="buy", type="market", time_in_force="gtc", order_class="bracket",
                          take_profit={"limit_price": "130"}, stop_loss={"stop_price": "110", "limit_price": "109"})
        self.assertEqual(b["status"], "filled")
        self.assertEqual([(x["type"], x["side"], x["status"], x["limit_price"], x["stop_price"]) for x in b["legs"]],
                         [("limit", "sell", "new", "130", None), ("stop_limit", "sell", "held", "109", "110")])
        flat = self.get_json("/v2/orders/" + b["id"])
        self.assertIsNone(flat["legs"])
        self.assertEqual(self.get_json("/v2/orders/%s?nested=true" % b["id"])["legs"], b["legs"])
        self.assertEqual(self.call("DELETE", "/v2/orders/" + b["legs"][0]["id"])[0], 204)
        self.assertEqual(self.get_json("/v2/orders/" + b["legs"][1]["id"])["status"], "canceled")  # one cancels other
        lb = self.ok_order(symbol="NVDA", qty="1", side="buy", type="limit", limit_price="120", time_in_force="day",
                           order_class="bracket", take_profit={"limit_price": "130"}, stop_loss={"stop_price": "110"})
        self.assertEqual((lb["status"], [x["status"] for x in lb["legs"]]), ("accepted", ["held", "held"]))
        self.assertEqual(self.call("DELETE", "/v2/orders/" + lb["id"])[0], 204)
        self.assertEqual([x["status"] for x in self.get_json("/v2/orders/%s?nested=true" % lb["id"])["legs"]],
                         ["canceled", "canceled"])
        oco = self.ok_order(symbol="AAPL", qty="5", side="sell", type="limit", time_in_force="gtc", order_class="oco",
                            take_profit={"limit_price": "220"}, stop_loss={"stop_price": "170"})
        self.assertEqual((oco["limit_price"], oco["legs"][0]["type"], oco["legs"][0]["stop_price"]), ("220", "stop", "170"))
        self.assertEqual(self.positions()["AAPL"]["qty_available"], "5")
        oto = self.ok_order(symbol="AAPL", qty="1", side="buy", type="limit", limit_price="180", time_in_force="day",
                            order_class="oto", stop_loss={"stop_price": "170"})
        self.assertEqual(len(oto["legs"]), 1)
        ts = self.ok_order(symbol="AAPL", qty="1", side="sell", type="trailing_stop", trail_percent="5", time_in_force="gtc")
        self.assertEqual((ts["trail_percent"], ts["hwm"], ts["trail_price"]), ("5", "189.84", None))
        sp = self.ok_order(symbol="TSLA", qty="1", side="buy", type="stop", stop_price="260", time_in_force="day")
        self.assertEqual(sp["stop_price"], "260")
        sl = self.ok_order(symbol="AMD", qty="1", side="buy", type="stop_limit", stop_price="160", limit_price="161",
                           time_in_force="day", extended_hours=False)
        self.assertEqual((sl["asset_id"], sl["limit_price"]), (sl["asset_id"], "161"))
        ext = self.ok_order(symbol="AAPL", qty="1", side="buy", type="limit", limit_price="150", time_in_force="day",
                            extended_hours=True)
        self.assertTrue(ext["extended_hours"])
        everything = self.get_json("/v2/orders?status=all&nested=true&limit=500")
        self.valid(everything, "Order", array=True)

    def test_trade_orders_list_filters_and_by_client_id(self):
        ids = [self.ok_order(symbol=s, qty="1", side="buy", type="limit", limit_price="100", time_in_force="gtc",
                             client_order_id="f-%d" % i)["id"] for i, s in enumerate(("MSFT", "KO", "MSFT"))]
        got = self.get_json("/v2/orders?status=open&symbols=MSFT,KO&direction=asc&limit=500")
        mine = [x["id"] for x in got if x["id"] in ids]
        self.assertEqual(mine, ids)
        self.assertEqual([x["id"] for x in self.get_json("/v2/orders?status=open&limit=2")], ids[::-1][:2])
        first = self.get_json("/v2/orders/" + ids[0])
        after = self.get_json("/v2/orders?status=all&after=" + urllib.parse.quote(first["submitted_at"]))
        self.assertEqual({x["id"] for x in after}, set(ids[1:]))
        self.assertEqual(self.get_json("/v2/orders?status=open&symbols=KO")[0]["id"], ids[1])
        self.assertEqual(self.get_json("/v2/orders:by_client_order_id?client_order_id=f-2")["id"], ids[2])
        leg = [x for x in fixture(ALICE, "orders.json") if x["legs"]][0]["legs"][0]
        self.assertEqual(self.get_json("/v2/orders:by_client_order_id?client_order_id=" + leg["client_order_id"]), leg)
        st, _, out = self.get("/v2/orders:by_client_order_id?client_order_id=nope")
        self.assertEqual((st, json.loads(out)), (404, {"code": 40410000, "message": "order not found"}))
        st, _, out = self.get("/v2/orders:by_client_order_id")
        self.assertEqual(st, 422)
        st, _, _ = self.get("/v2/orders:by_client_order_id?client_order_id=f-2", key=BOB)
        self.assertEqual(st, 404)  # Bob's book is his own
        self.assertEqual(self.get("/v2/orders/" + ids[0], key=BOB)[0], 404)

    def test_trade_close_position_qty_percentage(self):
        a0 = self.account()
        st, _, o = self.call("DELETE", "/v2/positions/AAPL?qty=3")
        self.assertEqual(st, 200, o)
        self.valid(o, "Order")
        self.assertEqual((o["side"], o["qty"], o["type"], o["status"], o["time_in_force"]), ("sell", "3", "market", "filled", "day"))
        self.assertEqual(self.positions()["AAPL"]["qty"], "7")
        st, _, o = self.call("DELETE", "/v2/positions/AAPL?percentage=50")
        self.assertEqual(o["qty"], "3")  # whole shares: the position is not fractional
        st, _, o = self.call("DELETE", "/v2/positions/VTI?percentage=50")
        self.assertEqual(o["qty"], "0.061728394")
        st, _, o = self.call("DELETE", "/v2/positions/TSLA")
        self.assertEqual((o["side"], o["qty"]), ("buy", "5"))
        self.assertNotIn("TSLA", self.positions())
        st, _, o = self.call("DELETE", "/v2/positions/BTC%2FUSD")
        self.assertEqual((o["symbol"], o["time_in_force"]), ("BTC/USD", "gtc"))
        st, _, o = self.call("DELETE", "/v2/positions/SPY250321P00450000")
        self.assertEqual(o["position_intent"], "buy_to_close")
        self.assert_balanced(self.account())
        self.assertNotEqual(self.account()["cash"], a0["cash"])
        st, _, out = self.call("DELETE", "/v2/positions/MSFT")
        self.assertEqual((st, out), (404, {"code": 40410000, "message": "position does not exist"}))
        st, _, out = self.call("DELETE", "/v2/positions/AAPL?qty=1&percentage=5")
        self.assertEqual(st, 422)
        st, _, out = self.call("DELETE", "/v2/positions/AAPL?qty=100")
        self.assertEqual((st, out["message"]), (403, "insufficient qty available for order (requested: 100, available: 4)"))

    def test_trade_cancel_all_and_close_all(self):
        open0 = {x["id"] for x in self.get_json("/v2/orders?limit=500")}
        self.assertTrue(open0)
        st, _, out = self.call("DELETE", "/v2/orders")
        self.assertEqual(st, 207)
        self.valid(out, "CanceledOrderResponse", array=True)
        self.assertTrue(open0 <= {x["id"] for x in out} | {leg["id"] for x in out for leg in (x["body"]["legs"] or [])}
                        or open0 >= {x["id"] for x in out})
        self.assertEqual({x["status"] for x in out}, {200})
        self.assertEqual(self.get_json("/v2/orders"), [])
        self.assertEqual(self.call("DELETE", "/v2/orders")[2], [])
        self.ok_order(symbol="MSFT", qty="1", side="buy", type="limit", limit_price="400", time_in_force="gtc")
        st, _, out = self.call("DELETE", "/v2/positions?cancel_orders=true")
        self.assertEqual(st, 207)
        self.assertEqual({x["symbol"] for x in out}, set(self.positions_fixture()))
        self.assertEqual({x["status"] for x in out}, {200})
        self.valid(out, "PositionClosedReponse", array=True)
        self.assertEqual(self.positions(), {})
        self.assertEqual(self.get_json("/v2/orders"), [])
        a = self.account()
        self.assert_balanced(a)
        # zero but for the fixture's own rounding of long_market_value (sub-cent crypto value)
        self.assertLess(abs(Decimal(a["long_market_value"])), Decimal("0.01"))
        self.assertEqual(Decimal(a["short_market_value"]), 0)
        self.assertEqual(self.call("DELETE", "/v2/positions")[:3:2], (207, []))

    def positions_fixture(self, key=ALICE):
        return {p["symbol"] for p in fixture(key, "positions.json")}

    def test_trade_state_per_key_and_reset(self):
        o = self.ok_order(symbol="MSFT", qty="1", side="sell", type="market", time_in_force="day", key=BOB)
        self.assertEqual(o["status"], "filled")
        self.assertEqual(self.positions(BOB)["MSFT"]["qty"], "2")
        self.assertEqual(self.positions()["AAPL"]["qty"], "10")  # Alice untouched
        st, h, body = self.get("/v2/account")
        self.assertEqual(body.decode(), fixture_text(ALICE, "account.json").strip())
        self.assertEqual(self.get_json("/v2/orders/" + o["id"], key=BOB)["id"], o["id"])  # persists
        self.assertEqual(self.control("POST", "/reset", {"key_id": BOB})[1], {"reset": 1})
        self.assertEqual(self.get("/v2/orders/" + o["id"], key=BOB)[0], 404)
        self.assertEqual(self.get("/v2/positions", key=BOB)[2].decode(), fixture_text(BOB, "positions.json").strip())
        lv = self.ok_order(symbol="SPY", qty="1", side="buy", type="market", time_in_force="day", key=LIVE,
                           listener="live")
        self.assertEqual(lv["status"], "filled")
        st, _, _ = self.call("POST", "/v2/orders", dict(symbol="SPY", qty="1", side="buy", type="market"),
                             key=LIVE, listener="paper")
        self.assertEqual(st, 401)

    def test_trade_control_prices(self):
        self.assertEqual(self.control("POST", "/prices", {"AAPL": "200", "ZZZZ": 5, "YYYY": "1"})[0], 200)
        self.assertEqual(self.control("GET", "/prices")[1], {"AAPL": "200", "ZZZZ": "5", "YYYY": "1"})
        o = self.ok_order(symbol="AAPL", qty="1", side="buy", type="market", time_in_force="day")
        self.assertEqual(o["filled_avg_price"], "200")
        z = self.ok_order(symbol="ZZZZ", qty="2", side="buy", type="market", time_in_force="day")
        self.assertEqual(z["filled_avg_price"], "5")
        self.assertEqual(self.control("POST", "/prices", {"AAPL": "-1"})[0], 400)
        self.control("DELETE", "/prices")
        st, out = self.order(symbol="YYYY", qty="1", side="buy", type="market", time_in_force="day")
        self.assertEqual((st, out["message"]), (422, 'asset "YYYY" not found'))
        z = self.ok_order(symbol="ZZZZ", qty="1", side="buy", type="market", time_in_force="day")
        self.assertEqual(z["filled_avg_price"], "5")  # a held position keeps its current price

    def test_trade_20_concurrent_submits_distinct_ids(self):
        self.control("DELETE", "/stats")
        results = []
        barrier = threading.Barrier(20)

        def one(i):
            barrier.wait(5)
            results.append(self.order(symbol="KO", qty="1", side="buy", type="limit", limit_price="50",
                                      time_in_force="gtc", client_order_id="conc-%02d" % i))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        self.assertEqual(sorted(st for st, _ in results), [200] * 20)
        self.assertEqual(len({o["id"] for _, o in results}), 20)
        self.assertEqual(self.created(), 20)
        stats = self.control("GET", "/stats")[1]
        self.assertEqual(stats["orders_created_total"], 20)
        ko = [x for x in self.get_json("/v2/orders?symbols=KO&limit=500") if x["client_order_id"].startswith("conc-")]
        self.assertEqual(len(ko), 20)

    def test_trade_concurrent_same_client_order_id(self):
        unique = {"code": 40010001, "message": "client_order_id must be unique"}
        for round_ in range(8):
            self.control("DELETE", "/stats")
            results = []
            barrier = threading.Barrier(2)

            def one():
                barrier.wait(5)
                results.append(self.order(symbol="KO", qty="1", side="buy", type="market", time_in_force="day",
                                          client_order_id="same-%d" % round_))

            threads = [threading.Thread(target=one) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            self.assertEqual(sorted(st for st, _ in results), [200, 422])
            self.assertIn((422, unique), results)
            self.assertEqual(self.created(), 1)
        self.assertEqual(self.positions()["KO"]["qty"], "8")

    def test_fault_accept_then_drop(self):
        self.control("DELETE", "/stats")
        self.fault(mode="accept_drop", count=1, path="/v2/orders", method="POST")
        body = dict(symbol="MSFT", qty="1", side="buy", type="limit", limit_price="400", time_in_force="gtc",
                    client_order_id="drop-1")
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.call("POST", "/v2/orders", body)
        self.assertEqual(self.created(), 1)  # it was accepted
        got = self.get_json("/v2/orders:by_client_order_id?client_order_id=drop-1")
        self.assertEqual(got["status"], "new")
        st, out = self.order(**body)  # a blind retry is refused
        self.assertEqual((st, out), (422, {"code": 40010001, "message": "client_order_id must be unique"}))
        self.assertEqual(self.created(), 1)
        stats = self.control("GET", "/stats?settled=1")[1]
        posts = [x for x in stats["counts"] if x["method"] == "POST" and x["path"] == "/v2/orders"]
        self.assertEqual({(x["status"], x["fault"]): x["count"] for x in posts}, {(0, "accept_drop"): 1, (422, None): 1})
        # with rst: a TCP reset instead of a clean close; on DELETE
        self.fault(mode="accept_drop", rst=True, count=1, path="/v2/orders/*", method="DELETE")
        with self.assertRaises(ConnectionResetError):
            self.call("DELETE", "/v2/orders/" + got["id"])
        self.assertEqual(self.get_json("/v2/orders/" + got["id"])["status"], "canceled")

    def test_fault_accept_then_504_n_times(self):
        self.control("DELETE", "/stats")
        self.fault(mode="accept_504", count=2, path="/v2/orders", method="POST")
        for i in range(2):
            st, h, body = self.call("POST", "/v2/orders", dict(symbol="KO", qty="1", side="buy", type="market",
                                                               time_in_force="day", client_order_id="g-%d" % i))
            self.assertEqual(st, 504)
            self.assertTrue(h["Content-Type"].startswith("text/html"))
            self.assertIn(b"504 Gateway Time-out" if b"Time-out" in body else b"504 Gateway Timeout", body)
        self.assertEqual(self.created(), 2)
        self.assertEqual(self.positions()["KO"]["qty"], "2")
        self.ok_order(symbol="KO", qty="1", side="buy", type="market", time_in_force="day")  # the fault is used up
        self.assertEqual(self.created(), 3)
        o = self.ok_order(symbol="MSFT", qty="1", side="buy", type="limit", limit_price="400", time_in_force="gtc")
        self.fault(mode="accept_504", count=1, path="/v2/orders/*", method="PATCH")
        st, _, _ = self.call("PATCH", "/v2/orders/" + o["id"], {"limit_price": "399"})
        self.assertEqual(st, 504)
        self.assertEqual(self.get_json("/v2/orders/" + o["id"])["status"], "replaced")
        self.assertEqual(self.control("GET", "/faults")[1], [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
