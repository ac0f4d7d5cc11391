"""alpaca.redeem_ticket's checks, done in C over statements prepared once (extension/redeem.cpp),
against the stack: each refusal has its message and SQLSTATE and writes nothing (no nonce row,
no decrypt row), the application user is ended after a redeem and after a refusal in the same
session, the kept plans keep working across search_path changes and a replaced policy, and old
nonces are purged now and then while live ones stay. alpaca.redeem_tickets (the sidecar's
batch): each ticket marked and audited as alone, the arrays in the tickets' order, and any
refusal among them (a replay, the same ticket twice, a forged or expired one) refuses the whole
call with that ticket's message and writes nothing; bad arrays are refused with 22023.
"""
import unittest

import psycopg

import pga_stack as S

SIDECAR = "alpaca_sidecar_login"
CALL = "CALL alpaca.redeem_ticket(%s, %s, NULL, NULL, NULL, NULL)"
BATCH = "CALL alpaca.redeem_tickets(%s, %s, NULL, NULL, NULL, NULL)"


class RedeemChecks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.app = S.connect(role="app")
        cls.su = S.connect()
        cls.user = "redeem-checks-user"
        cls.cred = str(S.store(cls.app, cls.user, S.ALICE, S.fixture_secret(S.ALICE),
                               account_name="redeem checks"))
        cls.sc = S.connect(role=SIDECAR)

    @classmethod
    def tearDownClass(cls):
        cls.sc.close()
        S.as_user(cls.app, cls.user, "SELECT alpaca_delete_credential(%s)", (cls.cred,))
        cls.app.close()
        cls.su.close()

    def mint(self, purpose="account", cred=None, user=None, ttl="1 minute"):
        return self.su.execute(
            "SELECT alpaca._mint_ticket(%s, %s, %s, now() + %s::interval)",
            (cred or self.cred, user or self.user, purpose, ttl)).fetchone()[0]

    def counts(self):
        return self.su.execute(
            "SELECT (SELECT count(*) FROM alpaca.redeemed_tickets),"
            " (SELECT count(*) FROM alpaca.audit_log WHERE action = 'decrypt')").fetchone()

    def refused(self, ticket, purpose, message, sqlstate="42501", call=CALL, detail=None):
        """Refused with message and sqlstate (and detail, when given), having written nothing
        (also for call=BATCH, with lists for ticket and purpose)."""
        before = self.counts()
        with self.assertRaises(psycopg.Error) as cm:
            self.sc.execute(call, (ticket, purpose))
        self.assertEqual((cm.exception.sqlstate, cm.exception.diag.message_primary),
                         (sqlstate, message))
        if detail is not None:
            self.assertEqual(cm.exception.diag.message_detail, detail)
        self.assertEqual(self.counts(), before, "a refused redeem wrote something")
        self.assertIsNone(self.sc.execute("SELECT alpaca_current_user()").fetchone()[0])

    def test_redeem_then_every_refusal_in_order(self):
        t = self.mint()
        before = self.counts()
        row = self.sc.execute(CALL, (t, "account")).fetchone()
        self.assertEqual((str(row[0]), row[1], row[2]), (self.cred, "paper", S.ALICE))
        self.assertEqual(row[3], S.fixture_secret(S.ALICE))
        self.assertEqual(self.counts(), (before[0] + 1, before[1] + 1))
        audit = self.su.execute(
            "SELECT app_user, purpose, outcome, db_role FROM alpaca.audit_log"
            " WHERE action = 'decrypt' AND credential_id = %s ORDER BY id DESC LIMIT 1",
            (self.cred,)).fetchone()
        self.assertEqual(audit, (self.user, "account", "ok", SIDECAR))
        self.assertIsNone(self.sc.execute("SELECT alpaca_current_user()").fetchone()[0])
        # A replay, also with the wrong purpose: the purpose is checked first.
        self.refused(t, "account", "ticket was already redeemed")
        self.refused(t, "orders", "ticket was issued for another purpose")
        self.refused("pgat1.AAAA.BBBB", "account", "malformed ticket")
        # Another user's credential is not found under RLS, and a made-up one is not either.
        self.refused(self.mint(user="someone-else"), "account",
                     "ticket names a credential that does not exist, is not committed yet, or is "
                     "not owned by its user")
        self.refused(self.mint(cred="00000000-0000-4000-8000-00000000abcd"), "account",
                     "ticket names a credential that does not exist, is not committed yet, or is "
                     "not owned by its user")
        expired = self.mint(ttl="-1 second")
        self.refused(expired, "account", "ticket expired")
        # A refused ticket is not consumed: deactivated, refused; reactivated, it works once.
        t2 = self.mint()
        S.as_user(self.app, self.user, "SELECT alpaca_update_credential(%s, is_active => false)",
                  (self.cred,))
        try:
            self.refused(t2, "account", "ticket names a deactivated credential")
        finally:
            S.as_user(self.app, self.user, "SELECT alpaca_update_credential(%s, is_active => true)",
                      (self.cred,))
        self.assertEqual(self.sc.execute(CALL, (t2, "account")).fetchone()[2], S.ALICE)

    def batch_refused(self, tickets, purposes, message, sqlstate="42501", detail=None):
        self.refused(tickets, purposes, message, sqlstate, call=BATCH, detail=detail)

    def test_batch_marks_and_audits_each_ticket_in_order(self):
        bob_user = "redeem-checks-bob"
        bob = str(S.store(self.app, bob_user, S.BOB, S.fixture_secret(S.BOB),
                          account_name="redeem checks bob"))
        try:
            tickets = [self.mint(), self.mint(cred=bob, user=bob_user), self.mint()]
            before = self.counts()
            ids, envs, apis, secrets = self.sc.execute(
                BATCH, (tickets, ["account"] * 3)).fetchone()
            self.assertEqual([str(i) for i in ids], [self.cred, bob, self.cred])
            self.assertEqual(envs, ["paper"] * 3)
            self.assertEqual(apis, [S.ALICE, S.BOB, S.ALICE])
            self.assertEqual(secrets, [S.fixture_secret(k) for k in (S.ALICE, S.BOB, S.ALICE)])
            self.assertEqual(self.counts(), (before[0] + 3, before[1] + 3))
            audit = self.su.execute(
                "SELECT app_user, credential_id::text, purpose, db_role FROM alpaca.audit_log"
                " WHERE action = 'decrypt' ORDER BY id DESC LIMIT 3").fetchall()
            self.assertEqual(sorted(audit), sorted([(self.user, self.cred, "account", SIDECAR),
                                                    (bob_user, bob, "account", SIDECAR),
                                                    (self.user, self.cred, "account", SIDECAR)]))
            self.assertIsNone(self.sc.execute("SELECT alpaca_current_user()").fetchone()[0])
            # Each is spent, alone or in a batch.
            self.refused(tickets[1], "account", "ticket was already redeemed")
            self.batch_refused([self.mint(), tickets[2]], ["account"] * 2,
                               "ticket was already redeemed")
        finally:
            S.as_user(self.app, bob_user, "SELECT alpaca_delete_credential(%s)", (bob,))

    def test_batch_refuses_as_a_whole_and_writes_nothing(self):
        good = self.mint()
        twice = self.mint()
        self.batch_refused([good, twice, twice], ["account"] * 3, "ticket was already redeemed",
                           detail="ticket 3 of 3")
        self.batch_refused([good, "pgat1.AAAA.BBBB"], ["account"] * 2, "malformed ticket",
                           detail="ticket 2 of 2")
        self.batch_refused([good, self.mint(ttl="-1 second")], ["account"] * 2, "ticket expired")
        self.batch_refused([good, self.mint("trade")], ["account"] * 2,
                           "ticket was issued for another purpose")
        foreign = self.mint(user="someone-else")
        for tickets in ([foreign, good], [good, foreign]):  # the user of one is not the next's
            self.batch_refused(tickets, ["account"] * 2,
                               "ticket names a credential that does not exist, is not committed "
                               "yet, or is not owned by its user")
        # Nothing of those was consumed: both still work, once.
        self.assertEqual(self.sc.execute(BATCH, ([good, twice], ["account"] * 2)).fetchone()[2],
                         [S.ALICE, S.ALICE])
        self.refused(good, "account", "ticket was already redeemed")

    def test_batch_arguments_are_checked(self):
        t = self.mint()
        for tickets, purposes, message in (
                ([t], ["account", "account"], "tickets and purposes must have as many elements"),
                ([], [], "alpaca.redeem_tickets takes 1 to 64 tickets"),
                ([t] * 65, ["account"] * 65, "alpaca.redeem_tickets takes 1 to 64 tickets"),
                ([t, None], ["account"] * 2, "tickets must not contain NULL"),
                ([t], [None], "purposes must not contain NULL"),
                ([[t], [t]], [["account"], ["account"]],
                 "tickets must be a one-dimensional array"),
                (None, ["account"], "tickets and purposes must not be null")):
            with self.subTest(message=message, n=len(tickets or [])):
                self.batch_refused(tickets, purposes, message, "22023")
        self.assertEqual(self.sc.execute(CALL, (t, "account")).fetchone()[2], S.ALICE)

    def test_kept_plans_across_search_path_and_policy_changes(self):
        for path in ("pg_catalog", "public, pg_catalog", "pg_temp, public"):
            with self.subTest(search_path=path):
                self.sc.execute(f"SET search_path = {path}")
                self.assertEqual(self.sc.execute(CALL, (self.mint(), "account")).fetchone()[2],
                                 S.ALICE)
        self.sc.execute("RESET search_path")
        # A replaced policy invalidates the kept read; the next redeem plans it again under the
        # new policy (here: nobody's rows), then under the old one again.
        qual = self.su.execute("SELECT qual FROM pg_policies WHERE schemaname = 'alpaca'"
                               " AND policyname = 'credentials_owner'").fetchone()[0]
        self.su.execute("ALTER POLICY credentials_owner ON alpaca.credentials USING (false)")
        try:
            self.refused(self.mint(), "account",
                         "ticket names a credential that does not exist, is not committed yet, or "
                         "is not owned by its user")
        finally:
            self.su.execute(f"ALTER POLICY credentials_owner ON alpaca.credentials USING ({qual})")
        self.assertEqual(self.sc.execute(CALL, (self.mint(), "account")).fetchone()[2], S.ALICE)

    def test_old_nonces_are_purged_now_and_then(self):
        old, live = b"\x01" * 15 + b"\xfe", b"\x01" * 15 + b"\xfd"
        self.su.execute("INSERT INTO alpaca.redeemed_tickets (nonce, expires_at) VALUES"
                        " (%s, now() - interval '1 hour'), (%s, now() + interval '1 hour')",
                        (old, live))
        try:
            tickets = [r[0] for r in self.su.execute(
                "SELECT alpaca._mint_ticket(%s, %s, 'account', now() + interval '5 minutes')"
                " FROM generate_series(1, 3000)", (self.cred, self.user)).fetchall()]
            # 1 % of redeems purge: 3 000 redeems miss it with a probability of 0.99^3000.
            for n, t in enumerate(tickets, 1):
                self.sc.execute(CALL, (t, "account"))
                if n % 100 == 0 and not self.su.execute(
                        "SELECT 1 FROM alpaca.redeemed_tickets WHERE nonce = %s", (old,)).fetchone():
                    break
            left = {bytes(r[0]) for r in self.su.execute(
                "SELECT nonce FROM alpaca.redeemed_tickets WHERE nonce IN (%s, %s)", (old, live))}
            self.assertEqual(left, {live}, f"after {n} redeems")
        finally:
            self.su.execute("DELETE FROM alpaca.redeemed_tickets WHERE nonce IN (%s, %s)", (old, live))


if __name__ == "__main__":
    unittest.main()
