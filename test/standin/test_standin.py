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
import urllib.request

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
        st, _, body = self.get("/v2/orders", method="POST")
        self.assertEqual(st, 405)
        self.assertEqual(json.loads(body)["code"], 40510000)

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
        stats = self.control("GET", "/stats")[1]
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
        stats = self.control("GET", "/stats")[1]
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
