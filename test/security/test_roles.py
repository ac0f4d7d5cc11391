"""Attacks on the README's rows for a compromised application role (alpaca_app), another
application user, a compromised sidecar role (alpaca_sidecar) and an administrator
(alpaca_admin): each tries, with only that role's privileges, something the row says it cannot.
"""
import unittest
import uuid

import psycopg

import attack_lib  # noqa: F401
import pga_stack as S


def refused(conn, sql, params=()):
    """Runs sql on its own (autocommit); returns the SQLSTATE it failed with, or None."""
    try:
        cur = conn.execute(sql, params)
        if cur.description:
            cur.fetchall()
    except psycopg.Error as e:
        return e.sqlstate
    return None


class Roles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.su = S.connect()
        cls.app = S.connect(role="app")
        cls.alice, cls.bob = f"roles-alice-{uuid.uuid4().hex[:6]}", f"roles-bob-{uuid.uuid4().hex[:6]}"
        cls.alice_cred = S.store(cls.app, cls.alice, S.ALICE, S.fixture_secret(S.ALICE))
        cls.bob_cred = S.store(cls.app, cls.bob, S.BOB, S.fixture_secret(S.BOB))

    @classmethod
    def tearDownClass(cls):
        cls.app.close()
        cls.su.close()

    # ---- a compromised application role ----------------------------------------------------
    def test_app_reads_no_secret_column(self):
        """alpaca_app cannot read a secret column, even its own user's."""
        for col in ("api_key", "secret_key", "api_key_fingerprint", "*"):
            with self.subTest(col=col):
                self.assertEqual(refused(self.app, f"SELECT {col} FROM alpaca.credentials"), "42501")

    def test_app_calls_no_internal_primitive(self):
        """alpaca_app cannot call the sealing, ticket or key-ring primitives, nor redeem."""
        t = S.as_user(self.app, self.alice, "SELECT alpaca_issue_ticket(%s, 'account')", (self.alice_cred,))[0][0]
        for sql, params in [
                ("SELECT alpaca._seal('x', %s, 'api_key')", (self.alice_cred,)),
                ("SELECT alpaca._mint_ticket(%s, 'x', 'account', now() + interval '1 minute')", (self.bob_cred,)),
                ("SELECT * FROM alpaca._verify_ticket(%s)", (t,)),
                ("SELECT * FROM alpaca._key_ring()", ()),
                ("SELECT * FROM alpaca._reseal_credential(NULL, NULL, %s)", (self.alice_cred,)),
                ("CALL alpaca.redeem_ticket(%s, 'account', NULL, NULL, NULL, NULL)", (t,)),
                ("CALL alpaca.redeem_tickets(ARRAY[%s], ARRAY['account'], NULL, NULL, NULL, NULL)", (t,)),
                ("SELECT * FROM alpaca.redeemed_tickets", ()),
                ("SELECT alpaca._alpaca_get(%s, 'account', %s)", (self.alice_cred, t)),
                ("SELECT * FROM alpaca_key_status()", ()),
                ("CALL alpaca_rotate_keys()", ())]:
            with self.subTest(sql=sql):
                self.assertEqual(refused(self.app, sql, params), "42501")

    def test_app_changes_no_key_file_or_server_setting(self):
        """alpaca_app cannot point the server at another key file or read one."""
        for sql in ("SET pg_alpaca.key_file = '/tmp/mine.keys'",
                    "ALTER SYSTEM SET pg_alpaca.key_file = '/tmp/mine.keys'",
                    "SELECT pg_read_file(current_setting('data_directory') || '/postgresql.conf')",
                    "COPY (SELECT 1) TO PROGRAM 'true'"):
            with self.subTest(sql=sql):
                self.assertEqual(refused(self.app, sql), "42501")

    def test_app_writes_no_audit_row(self):
        """The audit log is written by the extension only."""
        for sql in ("INSERT INTO alpaca.audit_log (action) VALUES ('forged')",
                    "DELETE FROM alpaca.audit_log", "UPDATE alpaca.audit_log SET outcome = 'x'",
                    "SELECT alpaca._audit('forged', NULL)"):
            with self.subTest(sql=sql):
                self.assertEqual(refused(self.app, sql), "42501")

    # ---- another application user ------------------------------------------------------------
    def test_user_touches_nothing_of_another_user(self):
        """Alice cannot see, change, delete, ticket or call with Bob's credential; a missing and
        a foreign credential give the same 42501 and the same message."""
        missing = uuid.uuid4()
        for sql in ("SELECT alpaca_update_credential(%s, label => 'mine')",
                    "SELECT alpaca_delete_credential(%s)",
                    "SELECT alpaca_issue_ticket(%s, 'account')",
                    "SELECT * FROM alpaca_account(%s)",
                    "SELECT * FROM alpaca_positions(%s)",
                    "SELECT alpaca_validate_credential(%s)"):
            with self.subTest(sql=sql):
                errs = []
                for cred in (self.bob_cred, missing):
                    try:
                        S.as_user(self.app, self.alice, sql, (cred,))
                        errs.append(None)
                    except psycopg.Error as e:
                        errs.append((e.sqlstate, e.diag.message_primary.replace(str(cred), "<id>")))
                self.assertEqual(errs[0], errs[1])
                self.assertEqual(errs[0][0], "42501")
        seen = S.as_user(self.app, self.alice, "SELECT count(*) FROM alpaca.credentials WHERE id = %s",
                         (self.bob_cred,))
        self.assertEqual(seen, [(0,)])
        audit = S.as_user(self.app, self.alice, "SELECT count(*) FROM alpaca.audit_log WHERE app_user <> %s",
                          (self.alice,))
        self.assertEqual(audit, [(0,)])

    def test_no_user_no_rows(self):
        """With no application user set, every table shows nothing and every write fails."""
        self.assertEqual(self.app.execute("SELECT count(*) FROM alpaca.credentials").fetchone(), (0,))
        self.assertEqual(refused(self.app, "SELECT alpaca_create_account('x')"), "42501")
        payload = "x'; SET ROLE postgres; --"
        with self.app.transaction():
            self.app.execute("SELECT alpaca_set_user(%s)", (payload,))
            self.assertEqual(self.app.execute("SELECT alpaca_current_user(), current_user").fetchone(),
                             (payload, "app"))

    # ---- a compromised sidecar role ------------------------------------------------------------
    def test_sidecar_reads_no_table_and_mints_no_ticket(self):
        """alpaca_sidecar may only redeem: no table, no ticket minting, no naming a user."""
        with S.connect(role="alpaca_sidecar_login") as sc:
            for sql, params in [("SELECT count(*) FROM alpaca.credentials", ()),
                                ("SELECT count(*) FROM alpaca.audit_log", ()),
                                ("SELECT count(*) FROM alpaca.accounts", ()),
                                ("SELECT alpaca._mint_ticket(%s, 'x', 'account', now() + interval '1 minute')",
                                 (self.bob_cred,)),
                                ("SELECT alpaca_issue_ticket(%s, 'account')", (self.bob_cred,)),
                                ("SELECT alpaca._set_user('x')", ())]:
                with self.subTest(sql=sql):
                    self.assertEqual(refused(sc, sql, params), "42501")
            # A forged ticket for a credential nobody asked about.
            self.assertEqual(refused(sc, "CALL alpaca.redeem_ticket('pgat1.AAAA.BBBB', 'account', NULL, NULL, NULL, NULL)"),
                             "42501")

    # ---- an administrator -------------------------------------------------------------------------
    def test_admin_reads_no_plaintext(self):
        """alpaca_admin rotates and audits, but reads no secret and redeems nothing."""
        with S.connect(role="admin") as adm:
            t = S.as_user(self.app, self.alice, "SELECT alpaca_issue_ticket(%s, 'account')", (self.alice_cred,))[0][0]
            for sql, params in [("SELECT api_key FROM alpaca.credentials", ()),
                                ("CALL alpaca.redeem_ticket(%s, 'account', NULL, NULL, NULL, NULL)", (t,)),
                                ("CALL alpaca.redeem_tickets(ARRAY[%s], ARRAY['account'], NULL, NULL, NULL, NULL)",
                                 (t,)),
                                ("SELECT * FROM alpaca._reseal_credential(NULL, NULL, %s)", (self.alice_cred,)),
                                ("SELECT alpaca._seal('x', %s, 'api_key')", (self.alice_cred,))]:
                with self.subTest(sql=sql):
                    self.assertEqual(refused(adm, sql, params), "42501")


if __name__ == "__main__":
    unittest.main()
