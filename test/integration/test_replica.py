"""Calls from a hot standby (issue 14, item 1): a real streaming replica made with
`pg_basebackup -R` (scripts/stackctl.py replica-up) with a sidecar of its own beside it, whose
conninfo lists the primary, then the replica, with target_session_attrs=read-write.

What it shows:
  * a credential stored on the primary is usable on the replica once replayed;
  * alpaca_account, alpaca_positions, alpaca_orders and alpaca_validate_credential succeed on
    the replica as the application role, under row-level security (another user's credential
    is refused there as on the primary), and an order can be placed from it;
  * they go through the replica's own sidecar (pg_alpaca.sidecar_socket set per node), which
    redeems on the primary: the primary's audit_log shows each call's decrypt row as soon as
    it returns and its outcome row soon after, with the right application user, and
    last_used_at reaches the replica through replication;
  * what must write (creating accounts, storing, updating, deleting credentials, opening and
    revoking gateway sessions) fails on the replica with 25006, a message naming it and a
    hint; a redeem on the standby is refused with 25006, and a sidecar pointed only at the
    standby answers a database error saying so;
  * after the primary goes away and the replica is promoted, the former replica keeps working:
    its sidecar redeems on it by itself (target_session_attrs=read-write), and it takes writes.

The primary is stopped for the last test and started again afterwards (tearDownModule), and
the replica removed, so the stack is as before for the next test file.

Run: cd test/integration && /usr/bin/python3 -m unittest -v test_replica
"""
import os
import unittest
import uuid

import psycopg

import pga_stack as S
from test_broker_calls import sidecar_request

REPLICA = S.STACK.replica
OUTCOME_BOUND = 15.0  # seconds for the outcome writer (and replication) to catch up


def replica_connect(role="app", autocommit=True):
    return psycopg.connect(host=REPLICA.cluster.sockdir, port=REPLICA.cluster.port,
                           dbname="alpaca", user=role, autocommit=autocommit)


def setUpModule():
    S.standin_clear()
    S._control("POST", "/reset", {"key_id": S.ALICE})  # the fixture's orders, none placed since
    if REPLICA.exists():
        REPLICA.down()
    REPLICA.up()


def tearDownModule():
    try:
        REPLICA.down()
    finally:
        if not S.STACK.cluster.running():
            S.STACK.cluster.start()
        assert S.wait_until(S.STACK.cluster.accepts, 30, 0.1)
        # The stack's own sidecar reconnects by itself; make sure it serves before we leave.
        with S.connect(role="app") as c:
            user = "replica-after-" + uuid.uuid4().hex[:8]
            cred = S.store(c, user, S.ALICE, S.fixture_secret(S.ALICE))

            def serves():
                try:
                    S.as_user(c, user, "SELECT count(*) FROM alpaca_account(%s)", (cred,))
                    return True
                except psycopg.Error:
                    return False
            assert S.wait_until(serves, 30, 0.2), "the stack's sidecar does not serve again"


class Replica(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.user = "replica-" + uuid.uuid4().hex[:8]
        with S.connect(role="app") as c:
            cls.cred = S.store(c, cls.user, S.ALICE, S.fixture_secret(S.ALICE))
        cls.r = replica_connect()

        # Usable on the replica once replayed (poll: replication is asynchronous).
        def replayed():
            return S.as_user(cls.r, cls.user, "SELECT count(*) FROM alpaca_list_credentials() "
                             "WHERE id = %s", (cls.cred,)) == [(1,)]
        assert S.wait_until(replayed, OUTCOME_BOUND), "the credential never reached the replica"

    @classmethod
    def tearDownClass(cls):
        cls.r.close()

    def assertSqlstate(self, sql, params, sqlstate, user=None):
        with self.assertRaises(psycopg.Error) as cm:
            S.as_user(self.r, user or self.user, sql, params)
        self.assertEqual(cm.exception.sqlstate, sqlstate, str(cm.exception))
        return cm.exception

    def primary_audit(self, action):
        with S.connect() as su:
            return su.execute("SELECT purpose, outcome, app_user, db_role FROM alpaca.audit_log "
                              "WHERE credential_id = %s AND action = %s ORDER BY id",
                              (self.cred, action)).fetchall()

    def test_1_calls_on_the_replica(self):
        self.assertEqual(self.r.execute("SELECT pg_is_in_recovery()").fetchone(), (True,))
        self.assertEqual(self.r.execute("SHOW pg_alpaca.sidecar_socket").fetchone(),
                         (REPLICA.sidecar.socket_path,))
        u, cred = self.user, self.cred
        account = S.as_user(self.r, u, "SELECT account_number, status FROM alpaca_account(%s)", (cred,))
        want = S.fixture_json(S.ALICE, "account.json")
        self.assertEqual(account, [(want["account_number"], want["status"])])
        positions = S.as_user(self.r, u, "SELECT symbol FROM alpaca_positions(%s) ORDER BY 1", (cred,))
        self.assertEqual([p for (p,) in positions],
                         sorted(p["symbol"] for p in S.fixture_json(S.ALICE, "positions.json")))
        orders = S.as_user(self.r, u, "SELECT count(*) FROM alpaca_orders(%s, 'all', 500)", (cred,))
        self.assertEqual(orders, [(len(S.fixture_json(S.ALICE, "orders.json")),)])
        self.assertEqual(S.as_user(self.r, u, "SELECT alpaca_validate_credential(%s)", (cred,)), [(True,)])
        # Row-level security on the replica as on the primary.
        self.assertSqlstate("SELECT * FROM alpaca_positions(%s)", (cred,), "42501",
                            user="replica-mallory")
        # The primary's audit: a decrypt row for each call at once, by the sidecar's login...
        self.assertEqual(self.primary_audit("decrypt"),
                         [(p, "ok", u, "alpaca_sidecar_login")
                          for p in ("account", "positions", "orders", "validate")])
        # ...and the outcome rows soon after, naming the caller's login.
        want_calls = [(p, "ok", u, "app") for p in ("account", "positions", "orders", "validate")]
        S.wait_until(lambda: len(self.primary_audit("call")) >= 4, OUTCOME_BOUND)
        self.assertEqual(self.primary_audit("call"), want_calls)
        # last_used_at was written on the primary and reaches the replica by replication.
        stamps = "SELECT last_used_at IS NOT NULL AND last_validated_at IS NOT NULL FROM " \
                 "alpaca_list_credentials() WHERE id = %s"
        self.assertTrue(S.wait_until(lambda: S.as_user(self.r, u, stamps, (cred,)) == [(True,)],
                                     OUTCOME_BOUND), "last_used_at never reached the replica")
        # The replica's own sidecar served them; the stack's sidecar never saw this credential.
        with open(REPLICA.sidecar.log_path, errors="replace") as f:
            self.assertEqual(f.read().count(f"cred={cred}"), 4)
        self.assertNotIn(f"cred={cred}", S.read_log("PGA_SIDECAR_LOG"))

    def test_2_orders_from_the_replica(self):
        coid = "replica-" + uuid.uuid4().hex[:12]
        rows = S.as_user(self.r, self.user, "SELECT client_order_id, symbol FROM alpaca_submit_order("
                         "%s, 'AAPL', 'buy', qty => 1, type => 'limit', limit_price => 1, "
                         "time_in_force => 'gtc', client_order_id => %s)", (self.cred, coid))
        self.assertEqual(rows, [(coid, "AAPL")])
        with S.connect() as su:
            trade = su.execute("SELECT action, outcome, app_user FROM alpaca.audit_log "
                               "WHERE client_order_id = %s", (coid,)).fetchall()
        self.assertEqual(trade, [("submit_order", "http 200", self.user)])
        S._control("POST", "/reset", {"key_id": S.ALICE})

    def test_3_writes_refused_on_the_replica(self):
        cases = [
            ("SELECT alpaca_create_account('x')", (), "creating an account"),
            ("SELECT alpaca_store_credential(gen_random_uuid(), %s, %s)", (S.BOB, "s"),
             "storing a credential"),
            ("SELECT alpaca_update_credential(%s, label => 'x')", (self.cred,), "updating a credential"),
            ("SELECT alpaca_delete_credential(%s)", (self.cred,), "deleting a credential"),
            ("SELECT alpaca_open_session(%s)", (self.cred,), "opening a gateway session"),
            ("SELECT alpaca_revoke_session(gen_random_uuid())", (), "revoking a gateway session"),
        ]
        for sql, params, what in cases:
            with self.subTest(what=what):
                err = self.assertSqlstate(sql, params, "25006")
                self.assertEqual(err.diag.message_primary, f"{what} is not possible on a hot standby")
                self.assertIn("Do it on the primary", err.diag.message_hint or "")
        # The key rotation (an admin's CALL) says the same, before touching anything.
        with replica_connect(role="admin") as admin:
            with self.assertRaises(psycopg.Error) as cm:
                admin.execute("CALL alpaca_rotate_keys()")
        self.assertEqual(cm.exception.sqlstate, "25006", str(cm.exception))
        self.assertEqual(cm.exception.diag.message_primary,
                         "rotating keys is not possible on a hot standby")
        self.assertIn("Do it on the primary", cm.exception.diag.message_hint or "")
        # A redeem on the standby itself (a sidecar whose conninfo names only the standby).
        with S.connect(role="app") as c:
            ticket = S.as_user(c, self.user, "SELECT alpaca_issue_ticket(%s, 'account')", (self.cred,))[0][0]
        with replica_connect(role="alpaca_sidecar_login") as sc:
            with self.assertRaises(psycopg.Error) as cm:
                sc.execute("CALL alpaca.redeem_ticket(%s, 'account', NULL, NULL, NULL, NULL)", (ticket,))
        self.assertEqual(cm.exception.sqlstate, "25006")
        self.assertIn("target_session_attrs=read-write", cm.exception.diag.message_hint or "")
        # The same through a sidecar whose conninfo names only the standby: a database error
        # that says why, and the ticket is not spent (the primary's sidecar redeems it after).
        main = REPLICA.sidecar.get("conninfo").split()
        conninfo = " ".join(["host=127.0.0.1", f"port={REPLICA.cluster.port}"] +
                            [w for w in main if not w.startswith(("host=", "port=", "target_"))])
        wrong = S.STACK.extra_sidecar("standby-only", conninfo=conninfo).start()
        try:
            header, _ = sidecar_request(wrong.socket_path, "account", ticket)
        finally:
            wrong.stop()
        self.assertEqual(header["outcome"], "database_error", header)
        self.assertIn("runs on the primary, not on a hot standby", header["message"])
        header, body = sidecar_request(S.ENV["PGA_SIDECAR_SOCKET"], "account", ticket)
        self.assertEqual((header["outcome"], header["http_status"]), ("ok", 200), header)

    def test_4_promoted_replica_keeps_working(self):
        """Failover: the primary goes, the replica is promoted; its sidecar (conninfo: primary,
        replica, target_session_attrs=read-write) redeems on it without being touched."""
        conninfo = REPLICA.sidecar.get("conninfo")
        self.assertIn("target_session_attrs=read-write", conninfo)
        S.STACK.cluster.stop("fast")
        REPLICA.promote()
        self.assertEqual(self.r.execute("SELECT pg_is_in_recovery()").fetchone(), (False,))
        n = S.as_user(self.r, self.user, "SELECT count(*) FROM alpaca_positions(%s)", (self.cred,))
        self.assertEqual(n, [(len(S.fixture_json(S.ALICE, "positions.json")),)])
        self.assertEqual(REPLICA.sidecar.get("conninfo"), conninfo)  # not reconfigured
        # The decrypt row is on the former replica now, and it takes writes.
        with replica_connect(role="postgres") as su:
            self.assertEqual(su.execute("SELECT app_user FROM alpaca.audit_log WHERE credential_id = %s "
                                        "AND action = 'decrypt' AND purpose = 'positions' ORDER BY id",
                                        (self.cred,)).fetchall(), [(self.user,), (self.user,)])
        acct = S.as_user(self.r, self.user, "SELECT alpaca_create_account('after failover')")[0][0]
        self.assertIsNotNone(acct)


if __name__ == "__main__":
    unittest.main()
