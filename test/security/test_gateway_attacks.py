"""Attacks on the gateway (issue 11): each one asserts that nothing reached Alpaca (the
stand-in's request count is unchanged) unless said otherwise, and that the answer is the
gateway's own refusal with an Alpaca-style body.

  * a read session POSTing, PATCHing and DELETEing orders and closing a position;
  * 1 000 random tokens (of the token's own shape, which SQL checks, and of others);
  * an expired token, a revoked one (refused at the very next request), a tampered one;
  * a token of one credential used on another credential's order id;
  * paths outside the allowlist: PATCH /v2/account/configurations, /../, encoded slashes and
    dots, //, other versions and methods, bad query characters;
  * a foreign Origin, a foreign Host (DNS rebinding), no Host, a repeated Host;
  * bodies that are too large or not JSON.
"""
import json
import random
import string
import unittest

import psycopg

import attack_lib  # noqa: F401
import gateway_lib as G
import hardening_lib as H
import pga_stack as S

UNAUTHORIZED = b'{"code":40110000,"message":"request is not authorized"}'
ORDER = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "limit", "time_in_force": "day",
         "limit_price": "1"}


class GatewayAttacks(G.NothingReaches, unittest.TestCase):
    TAG = "gwa"

    def refused(self, status, method, path, token, code=None, **kw):
        got, _, body = G.request(method, path, token, **kw)
        self.assertEqual(got, status, f"{method} {path}: {body[:200]}")
        doc = json.loads(body)
        self.assertIsInstance(doc.get("message"), str)
        if code is not None:
            self.assertEqual(doc.get("code"), code)
        return body

    def test_read_session_cannot_trade(self):
        order_id = G.direct("GET", "/v2/orders?status=all&limit=1", S.ALICE,
                            S.fixture_secret(S.ALICE))[0]["id"]
        self.seen = G.standin_requests()
        for method, path, body in (("POST", "/v2/orders", ORDER),
                                   ("PATCH", f"/v2/orders/{order_id}", {"qty": "2"}),
                                   ("DELETE", f"/v2/orders/{order_id}", None),
                                   ("DELETE", "/v2/orders", None),
                                   ("DELETE", "/v2/positions/AAPL", None)):
            self.refused(403, method, path, self.read, 40310000, body=body)
        self.nothing_reached()
        H.count("gateway: read session trading: 5 requests refused, 0 reached Alpaca")

    def test_refused_requests_are_audited(self):
        """A valid session's refused request rolls its redeem back, yet leaves a 'gateway'
        audit row (user, credential, method and path, 'refused 403'), never the token."""
        def rows():
            with S.connect() as su:
                return su.execute("SELECT id, app_user, purpose, outcome FROM alpaca.audit_log "
                                  "WHERE credential_id = %s AND action = 'gateway' ORDER BY id",
                                  (self.cred,)).fetchall()
        last = max([r[0] for r in rows()], default=0)
        self.refused(403, "POST", "/v2/orders", self.read, 40310000, body=ORDER)
        self.refused(403, "PATCH", "/v2/account/configurations", self.trade, 40310000,
                     body={"dtbp_check": "both"})
        self.nothing_reached()
        new = [r[1:] for r in rows() if r[0] > last]
        self.assertEqual(new, [(self.user, "POST /v2/orders", "refused 403"),
                               (self.user, "PATCH /v2/account/configurations", "refused 403")])
        # A bad token is refused with 401 and records nothing (no session to name).
        self.refused(401, "POST", "/v2/orders", "pgas_" + "A" * 38, body=ORDER)
        self.assertEqual(len([r for r in rows() if r[0] > last]), 2)
        with S.connect() as su:
            n = su.execute("SELECT count(*) FROM alpaca.audit_log WHERE purpose LIKE %s OR "
                           "outcome LIKE %s", ("%pgas_%", "%pgas_%")).fetchone()[0]
        self.assertEqual(n, 0, "a token reached the audit log")
        H.count("gateway: refused requests of a valid session: 2 audited 'refused 403'")

    def test_thousand_random_tokens(self):
        rnd = random.Random()
        alphabet = string.ascii_letters + string.digits + "-_"
        refused = 0
        for i in range(1000):
            if i % 2 == 0:  # the token's own shape: checked by SQL, unknown there
                tok = "pgas_" + "".join(rnd.choice(alphabet) for _ in range(38))
            elif i % 4 == 1:  # a tampered real token
                pos = rnd.randrange(5, len(self.read))
                tok = self.read[:pos] + rnd.choice(alphabet.replace(self.read[pos], "")) + self.read[pos + 1:]
            else:  # anything else an attacker might send
                tok = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(1, 80)))
            status, _, body = G.request("GET", "/v2/account", tok, bearer=(i % 3 == 0))
            self.assertEqual((status, body), (401, UNAUTHORIZED), tok)
            refused += 1
        for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
            status, _, body = G.request("GET", "/v2/account", None, headers=headers)
            self.assertEqual((status, body), (401, UNAUTHORIZED))
        self.nothing_reached()
        H.count(f"gateway: random tokens: {refused} of 1000 refused with 401, 0 reached Alpaca")

    def test_expired_and_revoked_tokens(self):
        expired = G.open_session(self.app, self.user, self.cred, "trade", label="atk-expired")
        revoked = G.open_session(self.app, self.user, self.cred, "trade", label="atk-revoked")
        with S.connect() as su:
            su.execute("UPDATE alpaca.sessions SET expires_at = clock_timestamp() - interval '1 ms' "
                       "WHERE label = 'atk-expired'")
        sid = G.session_id(self.app, self.user, "atk-revoked")
        self.assertEqual(G.request("GET", "/v2/clock", revoked)[0], 200)
        self.seen = G.standin_requests()
        S.as_user(self.app, self.user, "SELECT alpaca_revoke_session(%s)", (sid,))
        for tok in (expired, revoked):
            self.assertEqual(G.request("POST", "/v2/orders", tok, body=ORDER)[0], 401)
            self.assertEqual(G.request("GET", "/v2/account", tok)[0], 401)
        self.nothing_reached()

    def test_token_of_one_credential_on_another_credentials_order(self):
        """The session is bound to its credential: an order id of another credential is looked
        up (and cancelled) in the session's own account only, where it does not exist. Nothing
        is ever sent with the other credential's keys, and its order stays as it was."""
        other_order = G.direct("GET", "/v2/orders?status=open&limit=1", S.BOB,
                               S.fixture_secret(S.BOB))[0]
        by_key = S.standin_stats()["by_key"].get(S.BOB, 0)
        for method in ("GET", "DELETE"):
            status, _, body = G.request(method, f"/v2/orders/{other_order['id']}", self.trade)
            self.assertEqual(status, 404, body)
        status, _, _ = G.request("PATCH", f"/v2/orders/{other_order['id']}", self.trade,
                                 body={"qty": "5"})
        self.assertIn(status, (404, 422))
        self.assertEqual(S.standin_stats()["by_key"].get(S.BOB, 0), by_key,
                         "a request went out with the other credential's keys")
        after = G.direct("GET", f"/v2/orders/{other_order['id']}", S.BOB, S.fixture_secret(S.BOB))
        self.assertEqual((after["status"], after["qty"]), (other_order["status"], other_order["qty"]))

    def test_paths_outside_the_allowlist(self):
        cases = [("PATCH", "/v2/account/configurations"), ("GET", "/v2/account/configurations"),
                 ("GET", "/v2/../v2/account"), ("GET", "/v2/orders/../account"),
                 ("GET", "/v2/positions/AAPL%2fX"), ("GET", "/v2/positions/AAPL%2FX"),
                 ("GET", "/v2/%2e%2e/v2/account"), ("GET", "/v2/orders/%2E%2E"),
                 ("GET", "//v2/account"), ("GET", "/v2//account"), ("GET", "/v2/account/"),
                 ("GET", "/v1/account"), ("GET", "/v2/watchlists"), ("DELETE", "/v2/positions"),
                 ("POST", "/v2/positions/AAPL/exercise"), ("GET", "/admin"), ("GET", "/"),
                 ("PUT", "/v2/orders"), ("OPTIONS", "/v2/account"), ("TRACE", "/v2/account"),
                 ("GET", "/v2/orders?status=open;drop"), ("GET", "/v2/orders?x=%0d%0aX:1'\"")]
        for method, path in cases:
            self.refused(403, method, path, self.trade, 40310000)
        self.nothing_reached()
        H.count(f"gateway: {len(cases)} paths outside the allowlist refused with 403, 0 reached Alpaca")

    def test_foreign_origin_and_host(self):
        port = G.port()
        for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                        {"Host": f"evil.example:{port}"}, {"Host": "attacker.localhost.example"},
                        {"Host": "127.0.0.2"}):
            self.refused(403, "GET", "/v2/account", self.trade, 40310000, headers=headers)
            self.refused(403, "POST", "/v2/orders", self.trade, 40310000, headers=headers, body=ORDER)
        # The same checks come first for /mcp (the MCP server's path on this listener).
        for headers in ({"Origin": "https://evil.example"}, {"Host": f"evil.example:{port}"}):
            self.refused(403, "POST", "/mcp", self.trade, 40310000, headers=headers,
                         body={"jsonrpc": "2.0", "id": 1, "method": "initialize"})
        # Allowed: loopback names, no Origin.
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "LOCALHOST"):
            self.assertEqual(G.request("GET", "/v2/clock", self.trade, headers={"Host": host})[0], 200)
        self.seen = G.standin_requests()
        # No Host at all (HTTP/1.1 requires one), two of them, two tokens.
        self.assertEqual(G.request("GET", "/v2/account", self.trade, headers={"Host": ""})[0] // 100, 4)
        self.assertEqual(self.raw(f"GET /v2/account HTTP/1.1\r\nHost: localhost\r\n"
                                  f"Host: evil.example\r\nAPCA-API-KEY-ID: {self.trade}\r\n\r\n"), 400)
        self.assertEqual(self.raw(f"GET /v2/account HTTP/1.1\r\nHost: localhost\r\n"
                                  f"APCA-API-KEY-ID: {self.read}\r\n"
                                  f"APCA-API-KEY-ID: {self.trade}\r\n\r\n"), 400)
        self.nothing_reached()

    def raw(self, text):
        """The status of a request sent byte for byte (headers http.client would not send)."""
        import socket
        with socket.create_connection(("127.0.0.1", G.port()), timeout=10) as s:
            s.sendall(text.encode())
            head = s.recv(4096).decode(errors="replace")
        return int(head.split(" ", 2)[1])

    def test_bodies(self):
        self.refused(413, "POST", "/v2/orders", self.trade,
                     raw_body=b'{"symbol":"' + b"A" * 20000 + b'"}')
        for raw in (b"not json", b"[1,2]", b'{"symbol":"AAPL"', b'{"client_order_id":5}', b'{"client_order_id":""}',
                    b'{"client_order_id":"a","symbol":"AAPL","client_order_id":"b"}',
                    b'{"symbol":"\x01AAPL"}', b"\xff\xfe"):
            self.refused(400, "POST", "/v2/orders", self.trade, 40010000, raw_body=raw)
        self.refused(400, "GET", "/v2/account", self.trade, raw_body=b"{}")
        self.nothing_reached()

    def test_trade_session_orders_carry_a_client_order_id(self):
        """Not an attack but the exactly-once rule: an order without client_order_id gets one
        (so a lost answer is resolved by looking it up, never by sending it again)."""
        status, _, body = G.request("POST", "/v2/orders", self.trade, body=ORDER)
        self.assertEqual(status, 200, body)
        order = json.loads(body)
        self.assertRegex(order["client_order_id"], r"^pga-[0-9a-f]{32}$")
        status, _, body = G.request("DELETE", f"/v2/orders/{order['id']}", self.trade)
        self.assertEqual((status, body), (204, b""))


if __name__ == "__main__":
    unittest.main()
