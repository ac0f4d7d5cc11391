"""The sidecar's Prometheus metrics and its status answer (operations issue, items 2 and 4).

Turns metrics_listen on with the stack controller (set-sidecar + restart-sidecar), makes real
broker calls through the stack and checks that the counters and histograms move by exactly
what was done, that only GET /metrics is served, that a non-loopback address is refused, that
no credential id or key appears in the text, and that alpaca_sidecar_status() reports the
sidecar (and a sidecar that is down).
"""
import os
import re
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.request

import psycopg

import hardening_lib as H
import pga_stack as S


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse(text):
    """{(name, frozenset(labels)): value} of a Prometheus text answer."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-z_]+)(?:\{(.*)\})? (\S+)', line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def requests_total(samples, op, outcome, env):
    return samples.get(("pga_sidecar_requests_total",
                        frozenset({("operation", op), ("outcome", outcome), ("environment", env)})), 0)


def plain(samples, name):
    return samples.get((name, frozenset()), 0)


class SidecarMetrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        H.STACK.sidecar.set("metrics_listen", f"127.0.0.1:{cls.port}")
        H.STACK.sidecar.restart()
        cls.user = H.random_user("metrics")
        with S.connect(role="app") as c:
            cls.cred = S.store(c, cls.user, S.ALICE, S.fixture_secret(S.ALICE))
        H.warm_sidecar(cls.user, cls.cred)

    @classmethod
    def tearDownClass(cls):
        H.STACK.sidecar.set("metrics_listen", None)
        H.STACK.sidecar.restart()

    def get(self, path="/metrics"):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()

    def scrape(self):
        status, ctype, body = self.get()
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        return body, parse(body)

    def test_counters_move_with_real_calls(self):
        _, before = self.scrape()
        n = 3
        for _ in range(n):
            rows, err, _ = H.broker_call(self.user, self.cred)
            self.assertIsNone(err)
        text, after = self.scrape()
        self.assertEqual(requests_total(after, "account", "ok", "paper")
                         - requests_total(before, "account", "ok", "paper"), n, text)
        for h in ("pga_sidecar_request_duration_seconds", "pga_sidecar_redeem_duration_seconds",
                  "pga_sidecar_alpaca_call_duration_seconds"):
            self.assertGreaterEqual(plain(after, h + "_count") - plain(before, h + "_count"), n, h)
            self.assertGreater(plain(after, h + "_sum"), plain(before, h + "_sum"), h)
            inf = after[(h + "_bucket", frozenset({("le", "+Inf")}))]
            self.assertEqual(inf, plain(after, h + "_count"), h)
        self.assertEqual(plain(after, "pga_sidecar_workers"), 16)
        self.assertEqual(plain(after, "pga_sidecar_queue_capacity"), 256)
        self.assertGreaterEqual(plain(after, "pga_sidecar_pool_connections"), 1)
        self.assertGreater(plain(after, "pga_sidecar_uptime_seconds"), 0)
        self.assertIn(("pga_sidecar_info", frozenset({("version", "0.2.0")})), after)

    def test_outcome_writer_queue_drains(self):
        """The outcome writer's queue depth, written and dropped counts are exported (no
        labels), the queue drains to 0 after calls and each call's outcome counts as written."""
        names = ("pga_sidecar_outcome_queue_depth", "pga_sidecar_outcomes_written_total",
                 "pga_sidecar_outcomes_dropped_total")
        text, before = self.scrape()
        for name in names:
            self.assertIn((name, frozenset()), before, name)
            self.assertRegex(text, rf"# TYPE {name} (gauge|counter)\n")
        n = 4
        for _ in range(n):
            rows, err, _ = H.broker_call(self.user, self.cred)
            self.assertIsNone(err)
        def drained():
            _, now = self.scrape()
            return (plain(now, names[0]) == 0
                    and plain(now, names[1]) - plain(before, names[1]) >= n)
        self.assertTrue(S.wait_until(drained, 15.0), self.scrape()[0])
        _, after = self.scrape()
        self.assertEqual(plain(after, names[2]), plain(before, names[2]), "outcomes dropped")
        # The rows the counter counts are there.
        with S.connect() as su:
            rows = su.execute("SELECT count(*) FROM alpaca.audit_log WHERE credential_id = %s "
                              "AND action = 'call'", (self.cred,)).fetchone()[0]
        self.assertGreaterEqual(rows, n)

    def test_retries_are_counted(self):
        _, before = self.scrape()
        S.standin_fault({"mode": "status", "status": 503, "count": 2})
        try:
            rows, err, _ = H.broker_call(self.user, self.cred)
        finally:
            S.standin_clear()
        self.assertIsNone(err)
        _, after = self.scrape()
        self.assertEqual(plain(after, "pga_sidecar_retries_total")
                         - plain(before, "pga_sidecar_retries_total"), 2)

    def test_failures_are_counted_by_outcome(self):
        _, before = self.scrape()
        with S.connect(role="app") as app, S.connect(role="alpaca_sidecar_login") as sc:
            ticket = S.as_user(app, self.user, "SELECT alpaca_issue_ticket(%s, 'account')",
                               (self.cred,))[0][0]
            sc.execute("CALL alpaca.redeem_ticket(%s, 'account', NULL, NULL, NULL, NULL)", (ticket,))
        # The ticket is spent: the sidecar's redeem of the same ticket is refused.
        # (As the superuser: only alpaca_owner may call the transport directly.)
        with S.connect() as su, self.assertRaises(psycopg.Error):
            su.execute("SELECT alpaca._alpaca_get(%s, 'account', %s)", (self.cred, ticket))
        _, after = self.scrape()
        self.assertEqual(requests_total(after, "account", "ticket_rejected", "none")
                         - requests_total(before, "account", "ticket_rejected", "none"), 1)
        with S.connect(role="admin") as c:
            err, failed = c.execute("SELECT last_error, failed_requests FROM alpaca_sidecar_status()").fetchone()
        self.assertRegex(err, r"^account: ticket_rejected: ")
        self.assertNotIn(ticket, err)
        self.assertGreaterEqual(failed, 1)

    def test_no_credential_id_or_key_in_the_text(self):
        H.broker_call(self.user, self.cred)
        text, _ = self.scrape()
        self.assertNotIn(str(self.cred), text)
        self.assertNotIn(S.ALICE, text)
        self.assertNotIn(S.fixture_secret(S.ALICE), text)
        labels = set(re.findall(r'(\w+)="', text))
        self.assertLessEqual(labels, {"operation", "outcome", "environment", "le", "version"})

    def test_only_get_metrics_is_served(self):
        for path in ("/", "/metrics/../x", "/status"):
            with self.assertRaises(urllib.error.HTTPError) as e:
                self.get(path)
            self.assertEqual(e.exception.code, 404, path)
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics", data=b"x",
                                     method="POST")
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        self.assertEqual(e.exception.code, 404)

    def test_request_size_and_time_are_bounded(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
            self.assertIn(b" 431 ", s.recv(200))
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"GET /metr")  # and nothing more
            self.assertEqual(s.recv(100), b"")  # closed by the sidecar
        self.assertLess(time.monotonic() - t0, 5)
        self.scrape()  # and it still answers

    def test_non_loopback_address_is_refused(self):
        with open(H.STACK.sidecar.config_path) as f:
            base = f.read()
        cfg = os.path.join(os.path.dirname(H.STACK.sidecar.config_path), "bad-metrics.conf")
        for bad in ("0.0.0.0:9187", "10.1.2.3:9187", "[::]:9187", "example.com:9187",
                    "127.0.0.1:0", "127.0.0.1"):
            with open(cfg, "w") as f:
                f.write(base + f"metrics_listen = {bad}\n")
            try:
                r = subprocess.run([H.STACK.bin("alpaca-sidecar"), "--config", cfg,
                                    "--check-config", "--no-database"],
                                   capture_output=True, text=True, timeout=30)
            finally:
                os.remove(cfg)
            self.assertEqual(r.returncode, 1, (bad, r.stdout, r.stderr))
            self.assertIn("metrics_listen", r.stderr, bad)

    def test_sidecar_status(self):
        with S.connect(role="admin") as c:
            row = c.execute("SELECT answering, version, uptime > interval '0', workers, "
                            "max_queue, pool_connections >= 1, requests > 0, busy_workers >= 1 "
                            "FROM alpaca_sidecar_status()").fetchone()
        self.assertEqual(row, (True, "0.2.0", True, 16, 256, True, True, True))
        with S.connect(role="app") as c, self.assertRaises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT * FROM alpaca_sidecar_status()")

    def test_sidecar_status_when_down_and_last_error(self):
        with S.connect() as su:
            su.execute("SET pg_alpaca.sidecar_socket = '/nonexistent/alpaca.sock'")
            su.execute("SET ROLE admin")
            row = su.execute("SELECT answering, last_error FROM alpaca_sidecar_status()").fetchone()
        self.assertFalse(row[0])
        self.assertIn("could not connect to alpaca-sidecar", row[1])


if __name__ == "__main__":
    unittest.main()
