"""Attacks on "a live account trades only by explicit opt-in (both keys)" and "a ticket minted to
read can never place an order", as the application role, the owner of a live credential and the
sidecar role. After every attack the stand-in must have received no live order.
"""
import unittest
import uuid

import psycopg

import attack_lib  # noqa: F401
import pga_stack as S

SUBMIT = "SELECT * FROM alpaca_submit_order(%s, 'AAPL', 'buy', qty => 1)"
CALL = "CALL alpaca.redeem_ticket(%s, %s, NULL, NULL, NULL, NULL)"


def live_orders():
    return S.standin_stats().get("orders_created", {}).get(S.LIVE, 0)


class LiveTrading(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.app = S.connect(role="app")
        cls.user = f"live-{uuid.uuid4().hex[:8]}"
        cls.cred = S.store(cls.app, cls.user, S.LIVE, S.fixture_secret(S.LIVE), environment="live")
        with S.connect() as su:
            assert su.execute("SHOW pg_alpaca.allow_live_trading").fetchone()[0] == "off"

    @classmethod
    def tearDownClass(cls):
        S.as_user(cls.app, cls.user, "SELECT alpaca_delete_credential(%s)", (cls.cred,))
        cls.app.close()

    def setUp(self):
        self.before = live_orders()

    def tearDown(self):
        self.assertEqual(live_orders(), self.before, "an order reached the live account")

    def refused(self, sql, params=()):
        try:
            S.as_user(self.app, self.user, sql, params)
        except psycopg.Error as e:
            return e.sqlstate
        return None

    def test_neither_key(self):
        """The default: no cluster permission, no owner opt-in."""
        self.assertEqual(self.refused(SUBMIT, (self.cred,)), "42501")
        self.assertEqual(self.refused("SELECT * FROM alpaca_close_position(%s, 'AAPL')", (self.cred,)),
                         "42501")
        self.assertEqual(self.refused("SELECT * FROM alpaca_cancel_all_orders(%s)", (self.cred,)), "42501")

    def test_owner_key_alone(self):
        """The owner opts in; the cluster still says no."""
        S.as_user(self.app, self.user, "SELECT alpaca_update_credential(%s, live_trading => true)",
                  (self.cred,))
        try:
            self.assertEqual(self.refused(SUBMIT, (self.cred,)), "42501")
        finally:
            S.as_user(self.app, self.user, "SELECT alpaca_update_credential(%s, live_trading => false)",
                      (self.cred,))

    def test_application_turns_the_cluster_key(self):
        """The application role cannot turn the cluster's key itself, in any scope."""
        for sql in ("SET pg_alpaca.allow_live_trading = on",
                    "SELECT set_config('pg_alpaca.allow_live_trading', 'on', true)",
                    "ALTER SYSTEM SET pg_alpaca.allow_live_trading = on",
                    "ALTER ROLE app SET pg_alpaca.allow_live_trading = on"):
            with self.subTest(sql=sql):
                try:
                    self.app.execute(sql)
                    state = None
                except psycopg.Error as e:
                    state = e.sqlstate
                self.assertEqual(state, "42501")

    def test_read_ticket_cannot_trade(self):
        """A ticket minted to read, redeemed by the sidecar role for trading."""
        t = S.as_user(self.app, self.user, "SELECT alpaca_issue_ticket(%s, 'account')", (self.cred,))[0][0]
        with S.connect(role="alpaca_sidecar_login") as sc:
            with self.assertRaises(psycopg.Error) as cm:
                sc.execute(CALL, (t, "trade"))
            self.assertEqual(cm.exception.sqlstate, "42501")

    def test_hand_minted_trade_ticket(self):
        """A trade ticket minted by hand (as the extension's owner would) for the live credential
        with the owner's key but not the cluster's: refused where the keys leave."""
        S.as_user(self.app, self.user, "SELECT alpaca_update_credential(%s, live_trading => true)",
                  (self.cred,))
        try:
            with S.connect() as su:
                t = su.execute("SELECT alpaca._mint_ticket(%s, %s, 'trade', clock_timestamp() + interval '1 minute')",
                               (self.cred, self.user)).fetchone()[0]
            with S.connect(role="alpaca_sidecar_login") as sc:
                with self.assertRaises(psycopg.Error) as cm:
                    sc.execute(CALL, (t, "trade"))
                self.assertEqual(cm.exception.sqlstate, "42501")
        finally:
            S.as_user(self.app, self.user, "SELECT alpaca_update_credential(%s, live_trading => false)",
                      (self.cred,))

    def test_reading_is_not_affected(self):
        """The control: the same live credential reads without either key."""
        rows = S.as_user(self.app, self.user, "SELECT account_number FROM alpaca_account(%s)", (self.cred,))
        self.assertEqual(rows, [(S.fixture_json(S.LIVE, "account.json")["account_number"],)])


if __name__ == "__main__":
    unittest.main()
