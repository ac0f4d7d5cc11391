"""Trading from SQL, end to end: real cluster, real alpaca-sidecar, the Alpaca stand-in over
HTTPS (scripts/stack.sh; stack.env in the environment).

What it shows:
  * the life cycle: submit -> in alpaca_orders('open') -> replace -> cancel -> in 'closed';
  * exactly once: with the stand-in's accept_drop (order created, answer lost) and accept_504
    (order created, 504 instead of the answer) faults on the POST, exactly one order exists at
    the stand-in and SQL gets that order; the same for a replace whose answer is lost and a
    cancel whose answer is lost;
  * 20 sessions submitting at once with distinct client_order_ids -> exactly 20 orders; two
    sessions submitting the same client_order_id -> one order, both get it; the same
    client_order_id with another quantity -> PA002, no second order;
  * a ROLLBACK after a submit leaves the order and its audit row (committed by the sidecar);
  * live trading by two keys: a live credential trades only with pg_alpaca.allow_live_trading
    on AND its owner's opt-in, and even a trade ticket minted by hand is refused at redeem
    without them; a ticket minted to read cannot trade;
  * Alpaca's refusals get their SQLSTATEs: 403 buying power PA001, 422 PA002, 404 PA003,
    cancel of a closed order PA004.

Run: cd test/integration && /usr/bin/python3 -m unittest -v test_trading
"""
import threading
import unittest
import uuid

import psycopg

import pga_stack as S

ALICE, LIVE = S.ALICE, S.LIVE


def user_name(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def created(key=ALICE):
    return S.standin_stats().get("orders_created", {}).get(key, 0)


def dicts(conn, user, sql, params=()):
    with conn.transaction():
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            cur.execute("SELECT alpaca_set_user(%s)", (user,))
            cur.execute(sql, params)
            return cur.fetchall()


def sqlstate(conn, user, sql, params=()):
    try:
        S.as_user(conn, user, sql, params)
    except psycopg.Error as e:
        return e.sqlstate, e.diag.message_primary or ""
    return None, ""


def standin_orders(key=ALICE):
    """The key's book as the stand-in holds it (through the control port's stats)."""
    return S.standin_stats()["books"].get(key, {})


class Trading(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        S._control("POST", "/reset", {"key_id": ALICE})
        S._control("POST", "/reset", {"key_id": LIVE})
        S.standin_clear()
        cls.user = user_name("trader")
        with S.connect(role="app") as c:
            cls.cred = S.store(c, cls.user, ALICE, S.fixture_secret(ALICE))

    @classmethod
    def tearDownClass(cls):
        S.standin_clear()
        S._control("POST", "/reset", {"key_id": ALICE})
        S._control("POST", "/reset", {"key_id": LIVE})
        with S.connect() as c:
            c.execute("ALTER SYSTEM RESET pg_alpaca.allow_live_trading")
            c.execute("SELECT pg_reload_conf()")

    def tearDown(self):
        S.standin_clear()

    def submit(self, conn, **kw):
        args = ", ".join("%s => %%(%s)s" % (k, k) for k in kw)
        rows = dicts(conn, self.user, "SELECT * FROM alpaca_submit_order(%%(cred)s, %s)" % args,
                     dict(kw, cred=self.cred))
        self.assertEqual(len(rows), 1)
        return rows[0]

    def test_life_cycle(self):
        with S.connect(role="app") as c:
            o = self.submit(c, symbol="AAPL", side="buy", qty=3, type="limit", limit_price=150,
                            time_in_force="gtc")
            self.assertEqual(o["status"], "accepted")
            self.assertTrue(o["client_order_id"].startswith("pga-"))
            self.assertEqual(len(o["client_order_id"]), 36)
            open_ids = [r[0] for r in S.as_user(c, self.user,
                                                "SELECT id FROM alpaca_orders(%s, 'open', 500)",
                                                (self.cred,))]
            self.assertIn(o["id"], open_ids)
            r = dicts(c, self.user, "SELECT * FROM alpaca_replace_order(%s, %s, qty => 4, "
                      "limit_price => 151.5, client_order_id => 'life-replace-1')",
                      (self.cred, o["id"]))[0]
            self.assertNotEqual(r["id"], o["id"])
            self.assertEqual((r["client_order_id"], str(r["qty"]), str(r["limit_price"])),
                             ("life-replace-1", "4", "151.5"))
            x = dicts(c, self.user, "SELECT * FROM alpaca_cancel_order(%s, %s)",
                      (self.cred, r["id"]))[0]
            self.assertEqual((x["id"], x["status"]), (r["id"], "canceled"))
            closed = {row[0]: row[1] for row in S.as_user(
                c, self.user, "SELECT id, status FROM alpaca_orders(%s, 'closed', 500)",
                (self.cred,))}
            self.assertEqual(closed.get(o["id"]), "replaced")
            self.assertEqual(closed.get(r["id"]), "canceled")
            g = dicts(c, self.user, "SELECT * FROM alpaca_get_order_by_client_id(%s, %s)",
                      (self.cred, "life-replace-1"))[0]
            self.assertEqual((g["id"], g["status"]), (r["id"], "canceled"))
            # A second cancel: the order is closed -> PA004, Alpaca's message in the detail.
            state, _ = sqlstate(c, self.user, "SELECT * FROM alpaca_cancel_order(%s, %s)",
                                (self.cred, r["id"]))
            self.assertEqual(state, "PA004")

    def _fault_once(self, mode, method="POST", path="/v2/orders"):
        S.standin_fault({"mode": mode, "method": method, "path": path, "count": 1})

    def test_faults_on_submit_give_exactly_one_order(self):
        """accept_drop / accept_504: the order exists, its answer is lost -> the look-up by
        client_order_id finds it, no second POST. A 503 before acceptance: the look-up says 404
        and the order is sent again, once."""
        with S.connect(role="app") as c:
            for mode in ("accept_drop", "accept_504", "status"):
                with self.subTest(mode=mode):
                    coid = "fault-%s-%s" % (mode, uuid.uuid4().hex[:8])
                    before = created()
                    fired = S.standin_stats()["by_fault"].get(mode, 0)
                    posts = S.standin_stats()["by_path"].get("/v2/orders", 0)
                    if mode == "status":
                        S.standin_fault({"mode": "status", "status": 503, "method": "POST",
                                         "path": "/v2/orders", "count": 1})
                    else:
                        self._fault_once(mode)
                    o = self.submit(c, symbol="AAPL", side="buy", qty=1, client_order_id=coid)
                    self.assertEqual(created() - before, 1, "exactly one order at the stand-in")
                    self.assertEqual(o["client_order_id"], coid)
                    self.assertEqual(o["status"], "filled")
                    g = dicts(c, self.user, "SELECT id FROM alpaca_get_order_by_client_id(%s, %s)",
                              (self.cred, coid))[0]
                    self.assertEqual(g["id"], o["id"])
                    stats = S.standin_stats(settled=True)
                    self.assertEqual(stats["by_fault"].get(mode, 0) - fired, 1, "the fault fired")
                    # two POSTs after the 503 (refused, then placed), one after the others
                    self.assertEqual(stats["by_path"].get("/v2/orders", 0) - posts,
                                     2 if mode == "status" else 1)

    def test_faults_on_replace_and_cancel(self):
        with S.connect(role="app") as c:
            o = self.submit(c, symbol="MSFT", side="buy", qty=1, type="limit", limit_price=10,
                            time_in_force="gtc")
            before = created()
            self._fault_once("accept_drop", method="PATCH", path="/v2/orders/*")
            r = dicts(c, self.user, "SELECT * FROM alpaca_replace_order(%s, %s, limit_price => 11)",
                      (self.cred, o["id"]))[0]
            self.assertEqual(created() - before, 1, "one replacement order")
            self.assertEqual(str(r["limit_price"]), "11")
            self._fault_once("accept_504", method="DELETE", path="/v2/orders/*")
            x = dicts(c, self.user, "SELECT * FROM alpaca_cancel_order(%s, %s)",
                      (self.cred, r["id"]))[0]
            self.assertEqual((x["id"], x["status"]), (r["id"], "canceled"))

    def test_twenty_sessions_twenty_orders(self):
        before = created()
        results, errors = [], []

        def one(i):
            try:
                with S.connect(role="app") as c:
                    results.append(self.submit(c, symbol="KO", side="buy", qty=1,
                                               client_order_id="many-%d-%s" % (i, uuid.uuid4().hex[:6])))
            except Exception as e:  # noqa: BLE001 -- reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len({r["id"] for r in results}), 20)
        self.assertEqual(created() - before, 20)

    def test_same_client_order_id_twice_is_one_order(self):
        coid = "twice-" + uuid.uuid4().hex[:8]
        before = created()
        results, errors = [], []
        barrier = threading.Barrier(2)

        def one():
            try:
                with S.connect(role="app") as c:
                    barrier.wait(10)
                    results.append(self.submit(c, symbol="AAPL", side="buy", qty=1,
                                               type="limit", limit_price=120,
                                               client_order_id=coid))
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(created() - before, 1)
        self.assertEqual(len({r["id"] for r in results}), 1)
        # The same id for a different order is refused, and nothing is created.
        with S.connect(role="app") as c:
            state, msg = sqlstate(c, self.user, "SELECT * FROM alpaca_submit_order(%s, 'AAPL', "
                                  "'buy', qty => 2, type => 'limit', limit_price => 120, "
                                  "client_order_id => %s)", (self.cred, coid))
            self.assertEqual(state, "PA002")
        self.assertEqual(created() - before, 1)

    def test_rollback_keeps_order_and_audit_row(self):
        coid = "rollback-" + uuid.uuid4().hex[:8]
        with S.connect(role="app", autocommit=False) as c:
            with c.cursor() as cur:
                cur.execute("SELECT alpaca_set_user(%s)", (self.user,))
                cur.execute("SELECT id FROM alpaca_submit_order(%s, 'AAPL', 'buy', qty => 1, "
                            "client_order_id => %s)", (self.cred, coid))
                oid = cur.fetchone()[0]
            c.rollback()
        with S.connect(role="app") as c:
            g = dicts(c, self.user, "SELECT id FROM alpaca_get_order_by_client_id(%s, %s)",
                      (self.cred, coid))
            self.assertEqual([r["id"] for r in g], [oid])
            audit = S.as_user(c, self.user, "SELECT action, purpose, outcome, db_role FROM "
                              "alpaca.audit_log WHERE client_order_id = %s", (coid,))
            self.assertEqual(audit, [("submit_order", "trade", "http 200", "alpaca_sidecar_login")])

    def test_refusals_have_their_sqlstates(self):
        with S.connect(role="app") as c:
            cases = [
                ("SELECT * FROM alpaca_submit_order(%s, 'AAPL', 'buy', qty => 1000000)", "PA001"),
                ("SELECT * FROM alpaca_submit_order(%s, 'ZZZQ', 'buy', qty => 1)", "PA002"),
                ("SELECT * FROM alpaca_get_order(%s, gen_random_uuid())", "PA003"),
                ("SELECT * FROM alpaca_cancel_order(%s, gen_random_uuid())", "PA003"),
                ("SELECT * FROM alpaca_close_position(%s, 'NVDA')", "PA003"),
            ]
            for sql, want in cases:
                with self.subTest(sql=sql):
                    before = created()
                    self.assertEqual(sqlstate(c, self.user, sql, (self.cred,))[0], want)
                    self.assertEqual(created(), before)

    def test_close_position(self):
        with S.connect(role="app") as c:
            o = dicts(c, self.user, "SELECT * FROM alpaca_close_position(%s, 'AAPL', qty => 2)",
                      (self.cred,))[0]
            self.assertEqual((o["symbol"], o["side"], str(o["qty"]), o["status"]),
                             ("AAPL", "sell", "2", "filled"))

    def test_live_trading_needs_both_keys(self):
        user = user_name("live")
        with S.connect(role="app") as c:
            cred = S.store(c, user, LIVE, S.fixture_secret(LIVE), environment="live")
            sql = "SELECT id FROM alpaca_submit_order(%s, 'SPY', 'buy', qty => 1)"
            with S.connect() as su:
                for cluster in (False, True):
                    su.execute("ALTER SYSTEM SET pg_alpaca.allow_live_trading = %s"
                               % ("on" if cluster else "off"))
                    su.execute("SELECT pg_reload_conf()")
                    want = "on" if cluster else "off"
                    S.wait_until(lambda: c.execute(
                        "SHOW pg_alpaca.allow_live_trading").fetchone()[0] == want, 10)
                    for owner in (False, True):
                        S.as_user(c, user, "SELECT alpaca_update_credential(%s, live_trading => %s)",
                                  (cred, owner))
                        before = created(LIVE)
                        state, msg = sqlstate(c, user, sql, (cred,))
                        with self.subTest(cluster=cluster, owner=owner):
                            if cluster and owner:
                                self.assertIsNone(state, msg)
                                self.assertEqual(created(LIVE) - before, 1)
                            else:
                                self.assertEqual(state, "42501")
                                self.assertEqual(created(LIVE), before)
                # Reads are never affected.
                su.execute("ALTER SYSTEM SET pg_alpaca.allow_live_trading = off")
                su.execute("SELECT pg_reload_conf()")
            rows = S.as_user(c, user, "SELECT symbol FROM alpaca_positions(%s)", (cred,))
            self.assertIn(("SPY",), rows)
            audit = S.as_user(c, user, "SELECT action FROM alpaca.audit_log WHERE credential_id = %s "
                              "AND action LIKE 'live_trading%%' ORDER BY id", (cred,))
            self.assertEqual([a[0] for a in audit][:2], ["live_trading_on", "live_trading_off"])

    def test_tickets_for_trading(self):
        """A read ticket cannot trade; a hand-minted trade ticket for a live credential without
        the two keys is refused where the keys would leave."""
        user = user_name("tick")
        with S.connect(role="app") as c:
            cred = S.store(c, user, ALICE, S.fixture_secret(ALICE), account_name="t1")
            live = S.store(c, user, LIVE, S.fixture_secret(LIVE), environment="live",
                           account_name="t2")
            read = S.as_user(c, user, "SELECT alpaca_issue_ticket(%s, 'orders')", (cred,))[0][0]
            trade_live = S.as_user(c, user, "SELECT alpaca_issue_ticket(%s, 'trade')", (live,))[0][0]
            trade = S.as_user(c, user, "SELECT alpaca_issue_ticket(%s, 'trade')", (cred,))[0][0]
        with S.connect(role="alpaca_sidecar_login") as sc:
            call = "CALL alpaca.redeem_ticket(%s, 'trade', NULL, NULL, NULL, NULL)"
            for t, why in ((read, "another purpose"), (trade_live, "live trading is not enabled")):
                with self.assertRaises(psycopg.Error) as cm:
                    sc.execute(call, (t,))
                self.assertEqual(cm.exception.sqlstate, "42501")
                self.assertIn(why, cm.exception.diag.message_primary)
            row = sc.execute(call, (trade,)).fetchone()
            self.assertEqual(str(row[0]), str(cred))


if __name__ == "__main__":
    unittest.main()
