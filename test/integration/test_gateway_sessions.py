"""Issue 11, part 1: gateway sessions in SQL. alpaca_open_session returns a pgas_ token once
(192 random bits; only its keyed hash is stored), alpaca_list_sessions shows metadata only,
alpaca_revoke_session ends one; all under RLS (a user sees and revokes only their own). Scopes
read and trade (trade obeys the live two-key rule, also at every request), ttl bounded by the
superuser's pg_alpaca.max_session_ttl, an audit row for each open and revoke. Through the
gateway: a revoked or expired token stops at the next request; the unix socket serves too.
"""
import hashlib
import unittest

import psycopg

import gateway_lib as G
import hardening_lib as H
import pga_stack as S


def show(name):
    with S.connect() as su:
        return su.execute(f"SHOW {name}").fetchone()[0]


class GatewaySessions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.app = S.connect(role="app")
        cls.alice, cls.bob = H.random_user("sa"), H.random_user("sb")
        cls.cred = S.store(cls.app, cls.alice, S.ALICE, S.fixture_secret(S.ALICE))
        cls.bob_cred = S.store(cls.app, cls.bob, S.BOB, S.fixture_secret(S.BOB))

    @classmethod
    def tearDownClass(cls):
        cls.app.close()

    def sqlstate(self, user, sql, params=()):
        try:
            S.as_user(self.app, user, sql, params)
        except psycopg.Error as e:
            return e.sqlstate
        return None

    def open(self, user=None, cred=None, scope="read", ttl="1 hour", label=None):
        return G.open_session(self.app, user or self.alice, cred or self.cred, scope, ttl, label)

    def test_token_shape_and_storage(self):
        tokens = {self.open(label="shape") for _ in range(5)}
        self.assertEqual(len(tokens), 5)
        for t in tokens:
            self.assertRegex(t, r"^pgas_[A-Za-z0-9_-]{38}$")
        with S.connect() as su:
            dump = "\n".join(str(r) for r in su.execute("SELECT * FROM alpaca.sessions"))
            hashes = {bytes(h) for (h,) in su.execute("SELECT token_hash FROM alpaca.sessions")}
        for t in tokens:
            self.assertNotIn(t, dump)
            self.assertNotIn(t[5:20], dump)
            self.assertNotIn(hashlib.sha256(t.encode()).digest(), hashes, "an unkeyed hash")

    def test_list_is_metadata_under_rls(self):
        self.open(label="alice-list")
        self.open(user=self.bob, cred=self.bob_cred, label="bob-list")
        cols = None
        with self.app.transaction():
            cur = self.app.execute("SELECT alpaca_set_user(%s)", (self.alice,))
            cur = self.app.execute("SELECT * FROM alpaca_list_sessions()")
            cols = [d.name for d in cur.description]
            rows = cur.fetchall()
        self.assertEqual(cols, ["id", "credential_id", "scope", "label", "created_at",
                                "expires_at", "last_used_at", "revoked_at", "active"])
        labels = {r[3] for r in rows}
        self.assertIn("alice-list", labels)
        self.assertNotIn("bob-list", labels)
        self.assertEqual({r[1] for r in rows}, {self.cred})
        # The table itself: no hash for applications, and RLS there too.
        self.assertEqual(self.sqlstate(self.alice, "SELECT token_hash FROM alpaca.sessions"), "42501")
        own = S.as_user(self.app, self.alice, "SELECT label FROM alpaca.sessions")
        self.assertNotIn(("bob-list",), own)

    def test_no_user_no_session(self):
        with self.assertRaises(psycopg.Error) as cm:
            self.app.execute("SELECT alpaca_open_session(%s)", (self.cred,))
        self.assertEqual(cm.exception.sqlstate, "42501")
        self.assertEqual(self.app.execute("SELECT count(*) FROM alpaca_list_sessions()").fetchone()[0], 0)

    def test_argument_rules(self):
        q = "SELECT alpaca_open_session(%s, %s, %s::interval, %s)"
        for scope, ttl, label, state in (("admin", "1 hour", None, "22023"),
                                         (None, "1 hour", None, "22023"),
                                         ("read", "0", None, "22023"),
                                         ("read", "-1 minute", None, "22023"),
                                         ("read", "25 hours", None, "22023"),
                                         ("read", None, None, "22023"),
                                         ("read", "1 hour", "x" * 201, "22023")):
            self.assertEqual(self.sqlstate(self.alice, q, (self.cred, scope, ttl, label)), state,
                             (scope, ttl))
        self.assertIsNone(self.sqlstate(self.alice, q, (self.cred, "read", "24 hours", None)))
        # Someone else's credential, an unknown one, a deactivated one.
        self.assertEqual(self.sqlstate(self.bob, q, (self.cred, "read", "1 hour", None)), "42501")
        self.assertEqual(self.sqlstate(self.alice, q, ("00000000-0000-0000-0000-000000000001",
                                                       "read", "1 hour", None)), "42501")
        cred = S.store(self.app, self.alice, S.ALICE, S.fixture_secret(S.ALICE),
                       account_name="deactivated")
        S.as_user(self.app, self.alice, "SELECT alpaca_update_credential(%s, is_active => false)", (cred,))
        self.assertEqual(self.sqlstate(self.alice, q, (cred, "read", "1 hour", None)), "55000")

    def test_max_ttl_is_a_superuser_setting(self):
        for sql in ("SET pg_alpaca.max_session_ttl = '48h'",
                    "SELECT set_config('pg_alpaca.max_session_ttl', '172800', true)"):
            self.assertEqual(self.sqlstate(self.alice, sql), "42501", sql)
        with S.connect() as su:
            su.execute("ALTER SYSTEM SET pg_alpaca.max_session_ttl = '30min'")
            su.execute("SELECT pg_reload_conf()")
        try:
            S.wait_until(lambda: show("pg_alpaca.max_session_ttl") == "30min", 5)
            with S.connect(role="app") as c:
                with self.assertRaises(psycopg.Error) as cm:
                    G.open_session(c, self.alice, self.cred, "read", "31 minutes")
                self.assertEqual(cm.exception.sqlstate, "22023")
                G.open_session(c, self.alice, self.cred, "read", "30 minutes")
        finally:
            with S.connect() as su:
                su.execute("ALTER SYSTEM RESET pg_alpaca.max_session_ttl")
                su.execute("SELECT pg_reload_conf()")

    def test_revoke_own_only_and_audit(self):
        token = self.open(label="to-revoke")
        sid = G.session_id(self.app, self.alice, "to-revoke")
        self.assertEqual(self.sqlstate(self.bob, "SELECT alpaca_revoke_session(%s)", (sid,)), "42501")
        self.assertEqual(self.sqlstate(self.alice, "SELECT alpaca_revoke_session(%s)",
                                       ("00000000-0000-0000-0000-000000000002",)), "42501")
        self.assertEqual(G.request("GET", "/v2/account", token)[0], 200)
        self.assertEqual(S.as_user(self.app, self.alice, "SELECT alpaca_revoke_session(%s)", (sid,)),
                         [(True,)])
        # The very next request is refused: the token is checked on every request.
        status, _, body = G.request("GET", "/v2/account", token)
        self.assertEqual((status, body), (401, b'{"code":40110000,"message":"request is not authorized"}'))
        row = S.as_user(self.app, self.alice,
                        "SELECT active, revoked_at IS NOT NULL FROM alpaca_list_sessions() WHERE id = %s",
                        (sid,))
        self.assertEqual(row, [(False, True)])
        with S.connect() as su:
            acts = [a for (a,) in su.execute(
                "SELECT action FROM alpaca.audit_log WHERE app_user = %s AND credential_id = %s "
                "AND action LIKE 'session_%%' ORDER BY id", (self.alice, self.cred))]
        self.assertIn("session_open", acts)
        self.assertIn("session_revoke", acts)

    def test_expired_token_stops(self):
        token = self.open(label="expiring")
        self.assertEqual(G.request("GET", "/v2/clock", token)[0], 200)
        with S.connect() as su:
            su.execute("UPDATE alpaca.sessions SET expires_at = clock_timestamp() - interval '1 second' "
                       "WHERE label = 'expiring' AND owner_id = %s", (self.alice,))
        self.assertEqual(G.request("GET", "/v2/clock", token)[0], 401)

    def test_deleting_the_credential_ends_its_sessions(self):
        cred = S.store(self.app, self.alice, S.ALICE, S.fixture_secret(S.ALICE), account_name="gone")
        token = self.open(cred=cred)
        self.assertEqual(G.request("GET", "/v2/account", token)[0], 200)
        S.as_user(self.app, self.alice, "SELECT alpaca_delete_credential(%s)", (cred,))
        self.assertEqual(G.request("GET", "/v2/account", token)[0], 401)
        rows = S.as_user(self.app, self.alice, "SELECT count(*) FROM alpaca_list_sessions() "
                         "WHERE credential_id = %s", (cred,))
        self.assertEqual(rows, [(0,)])

    USED_BOUND = 10.0  # seconds for the sidecar's audit queue to record a request's use

    def test_last_used_at(self):
        """The session's and the credential's last_used_at follow a request, set after the
        answer by the audit queue (alpaca._gateway_used), and move forward, never back."""
        user = H.random_user("used")
        cred = S.store(self.app, user, S.ALICE, S.fixture_secret(S.ALICE))
        token = self.open(user, cred, label="used")
        sid = G.session_id(self.app, user, "used")
        q = ("SELECT s.last_used_at, c.last_used_at FROM alpaca_list_sessions() s "
             "JOIN alpaca_list_credentials() c ON c.id = s.credential_id WHERE s.id = %s")
        self.assertEqual(S.as_user(self.app, user, q, (sid,)), [(None, None)])
        self.assertEqual(G.request("GET", "/v2/positions", token, bearer=True)[0], 200)
        stamps = lambda: S.as_user(self.app, user, q, (sid,))[0]  # noqa: E731
        self.assertTrue(S.wait_until(lambda: None not in stamps(), self.USED_BOUND),
                        f"last_used_at not recorded: {stamps()}")
        first = stamps()
        self.assertEqual(G.request("GET", "/v2/account", token)[0], 200)
        self.assertTrue(S.wait_until(lambda: all(b > a for a, b in zip(first, stamps())),
                                     self.USED_BOUND), f"last_used_at did not move: {stamps()}")

    def test_redeem_takes_no_row_lock(self):
        """A gateway request updates neither the credential's nor the session's row on its way:
        with both rows locked by another transaction it is answered all the same, and the use
        is recorded once the lock is gone."""
        user = H.random_user("lock")
        cred = S.store(self.app, user, S.ALICE, S.fixture_secret(S.ALICE))
        token = self.open(user, cred, label="lock")
        sid = G.session_id(self.app, user, "lock")
        with S.connect() as su, su.transaction():
            su.execute("SELECT 1 FROM alpaca.credentials WHERE id = %s FOR UPDATE", (cred,))
            su.execute("SELECT 1 FROM alpaca.sessions WHERE id = %s FOR UPDATE", (sid,))
            for path in ("/v2/account", "/v2/positions", "/v2/clock"):
                self.assertEqual(G.request("GET", path, token)[0], 200, path)
        q = "SELECT last_used_at FROM alpaca_list_sessions() WHERE id = %s"
        self.assertTrue(S.wait_until(
            lambda: S.as_user(self.app, user, q, (sid,))[0][0] is not None, self.USED_BOUND))

    def test_unix_socket_and_headers(self):
        token = self.open()
        status, body = G.unix_request("GET", "/v2/account", token)
        self.assertEqual(status, 200)
        self.assertIn(b'"account_number"', body)
        status, headers, _ = G.request("GET", "/v2/positions", token)
        self.assertEqual(status, 200)
        for h in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
            self.assertRegex(headers.get(h, ""), r"^[0-9]+$", h)

    def test_live_two_key_rule(self):
        user = H.random_user("live")
        cred = S.store(self.app, user, S.LIVE, S.fixture_secret(S.LIVE), environment="live")
        q = "SELECT alpaca_open_session(%s, 'trade')"
        self.assertEqual(self.sqlstate(user, q, (cred,)), "42501")
        read = G.open_session(self.app, user, cred, "read")
        self.assertEqual(G.request("GET", "/v2/account", read)[0], 200)
        S.as_user(self.app, user, "SELECT alpaca_update_credential(%s, live_trading => true)", (cred,))
        self.assertEqual(self.sqlstate(user, q, (cred,)), "42501", "the owner's key alone")
        with S.connect() as su:
            su.execute("ALTER SYSTEM SET pg_alpaca.allow_live_trading = on")
            su.execute("SELECT pg_reload_conf()")
        try:
            S.wait_until(lambda: self.sqlstate(user, q, (cred,)) is None, 5)
            trade = G.open_session(self.app, user, cred, "trade")
        finally:
            with S.connect() as su:
                su.execute("ALTER SYSTEM RESET pg_alpaca.allow_live_trading")
                su.execute("SELECT pg_reload_conf()")
        # The cluster's key is off again: the gateway refuses the trade, whatever the session.
        S.wait_until(lambda: self.sqlstate(user, q, (cred,)) == "42501", 5)
        before = S.standin_stats().get("orders_created", {}).get(S.LIVE, 0)
        status, _, body = G.request("POST", "/v2/orders", trade, body={
            "symbol": "AAPL", "qty": "1", "side": "buy", "type": "limit",
            "time_in_force": "day", "limit_price": "1"})
        self.assertEqual(status, 403, body)
        self.assertIn(b"live trading is not enabled", body)
        self.assertEqual(S.standin_stats().get("orders_created", {}).get(S.LIVE, 0), before)
        S.as_user(self.app, user, "SELECT alpaca_delete_credential(%s)", (cred,))


if __name__ == "__main__":
    unittest.main()
