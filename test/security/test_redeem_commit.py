"""Attacks on "each ticket works once" and "the decrypt audit row always remains", as a member
of alpaca_sidecar: every way to get plaintext keys out of alpaca.redeem_ticket and then undo
the single-use mark and the audit row (explicit block and rollback, savepoint, function and
DO wrappers, exception handlers, cursors, multi-statement queries, pipelines, statements that
fail after the rows were sent, prepared transactions). Every attack is made again on the
sidecar's batch, alpaca.redeem_tickets (BatchRedeemCommitsFirst), whose keys must not leave
before the marks and audit rows of all its tickets are committed either.

The invariant checked after every attack: each time keys came back, the ticket is consumed
(a replay is refused) and exactly one committed `decrypt` audit row exists for it.
"""
import re
import unittest
import uuid

import psycopg
from psycopg import pq

import attack_lib  # noqa: F401
import pga_stack as S

SIDECAR = "alpaca_sidecar_login"
CALL = "CALL alpaca.redeem_ticket(%s, %s, NULL, NULL, NULL, NULL)"


class RedeemCommitsFirst(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.app = S.connect(role="app")
        cls.user = "redeem-attacker-victim"
        cls.cred = S.store(cls.app, cls.user, S.ALICE, S.fixture_secret(S.ALICE),
                           account_name="redeem attacks")
        cls.admin = S.connect()

    @classmethod
    def tearDownClass(cls):
        S.as_user(cls.app, cls.user, "SELECT alpaca_delete_credential(%s)", (cls.cred,))
        cls.app.close()
        cls.admin.close()

    # How an attack's SQL and parameters name the redeem (the batch class makes them its own).
    def form(self, sql):
        return sql

    def args(self, ticket, purpose="account"):
        return (ticket, purpose)

    def ticket(self, purpose="account"):
        return S.as_user(self.app, self.user, "SELECT alpaca_issue_ticket(%s, %s)",
                         (self.cred, purpose))[0][0]

    def decrypt_rows(self):
        return self.admin.execute(
            "SELECT count(*) FROM alpaca.audit_log WHERE action = 'decrypt' AND credential_id = %s",
            (self.cred,)).fetchone()[0]

    def redeem_ok(self, ticket, purpose="account"):
        with S.connect(role=SIDECAR) as sc:
            return sc.execute(CALL, (ticket, purpose)).fetchone()

    def assert_consumed_and_audited(self, ticket, before, got_keys):
        """After an attack: if keys came back, the ticket must be spent and audited."""
        after = self.decrypt_rows()
        if got_keys:
            self.assertEqual(after, before + 1, "keys left without a committed decrypt row")
            with S.connect(role=SIDECAR) as sc:
                with self.assertRaises(psycopg.Error) as cm:
                    sc.execute(CALL, (ticket, "account"))
                self.assertEqual(cm.exception.sqlstate, "42501")
        else:
            self.assertEqual(after, before, "a refused redeem left an audit row")
            # Nothing was consumed: the ticket still works, exactly once, audited.
            row = self.redeem_ok(ticket)
            self.assertEqual(row[2], S.ALICE)
            self.assertEqual(self.decrypt_rows(), before + 1)

    def expect_refused(self, sql_steps, sqlstate="2D000"):
        t = self.ticket()
        before = self.decrypt_rows()
        with S.connect(role=SIDECAR, autocommit=True) as sc:
            err = None
            for step in sql_steps:
                try:
                    sc.execute(self.form(step).replace("{T}", t.replace("'", "''")))
                except psycopg.Error as e:
                    err = e
                    break
            self.assertIsNotNone(err, "the wrapped redeem was not refused")
            self.assertEqual(err.sqlstate, sqlstate, str(err))
        self.assert_consumed_and_audited(t, before, got_keys=False)

    # ---- the attacks ------------------------------------------------------------------------
    def test_begin_redeem_rollback(self):
        """BEGIN; redeem; ROLLBACK -- refused before any key leaves."""
        self.expect_refused(["BEGIN", CALL.replace("%s", "'{T}'", 1).replace("%s", "'account'"),
                             "ROLLBACK"])

    def test_begin_redeem_rollback_three_times(self):
        """The review saw one ticket redeem three times this way."""
        t = self.ticket()
        before = self.decrypt_rows()
        for _ in range(3):
            with S.connect(role=SIDECAR, autocommit=False) as sc:
                with self.assertRaises(psycopg.Error) as cm:
                    sc.execute(self.form(CALL), self.args(t))
                self.assertEqual(cm.exception.sqlstate, "2D000")
                sc.rollback()
        self.assert_consumed_and_audited(t, before, got_keys=False)

    def test_savepoint(self):
        """SAVEPOINT s; redeem; ROLLBACK TO s."""
        self.expect_refused(["BEGIN", "SAVEPOINT s",
                             "CALL alpaca.redeem_ticket('{T}', 'account', NULL, NULL, NULL, NULL)",
                             "ROLLBACK TO s"])

    def test_function_wrapper(self):
        """A temp plpgsql function that calls the procedure (functions are atomic)."""
        self.expect_refused([
            "CREATE FUNCTION pg_temp.grab(t text) RETURNS text LANGUAGE plpgsql AS $$"
            " DECLARE c uuid; e text; a text; s text;"
            " BEGIN CALL alpaca.redeem_ticket(t, 'account', c, e, a, s); RETURN a; END $$",
            "SELECT pg_temp.grab('{T}')"])

    def test_do_with_exception_handler(self):
        """A DO block whose exception handler would roll the redeem back (a subtransaction)."""
        self.expect_refused([
            "DO $$ DECLARE c uuid; e text; a text; s text; BEGIN"
            " CALL alpaca.redeem_ticket('{T}', 'account', c, e, a, s);"
            " RAISE EXCEPTION 'undo';"
            " EXCEPTION WHEN raise_exception THEN RAISE NOTICE 'rolled back'; END $$"])

    def test_multi_statement_query(self):
        """One simple-protocol message 'CALL ...; SELECT 1/0' (an implicit transaction block)."""
        t = self.ticket()
        before = self.decrypt_rows()
        with S.connect(role=SIDECAR) as sc:
            raw = sc.pgconn
            raw.send_query(self.form(f"CALL alpaca.redeem_ticket('{t}', 'account', NULL, NULL, NULL,"
                                     " NULL); SELECT 1/0").encode())
            got_keys = False
            states = []
            while (res := raw.get_result()) is not None:
                states.append(res.status)
                if res.status == pq.ExecStatus.TUPLES_OK and res.ntuples == 1 and res.nfields == 4:
                    got_keys = True
            self.assertIn(pq.ExecStatus.FATAL_ERROR, states)
        self.assert_consumed_and_audited(t, before, got_keys)

    def test_do_block_that_fails_afterwards(self):
        """A top-level DO block may call it (non-atomic) but fails after getting the keys:
        the keys came back, so the mark and audit row must have been committed already."""
        t = self.ticket()
        before = self.decrypt_rows()
        with S.connect(role=SIDECAR) as sc:
            with self.assertRaises(psycopg.Error) as cm:
                sc.execute(self.form(
                    "DO $$ DECLARE c uuid; e text; a text; s text; BEGIN"
                    f" CALL alpaca.redeem_ticket('{t}', 'account', c, e, a, s);"
                    " RAISE EXCEPTION 'got %', left(a, 4); END $$"))
            got_keys = "got PKTE" in str(cm.exception)
        self.assertTrue(got_keys)
        self.assert_consumed_and_audited(t, before, got_keys)

    def test_pipeline_then_failure(self):
        """Extended protocol pipeline: redeem then a failing statement before the Sync."""
        t = self.ticket()
        before = self.decrypt_rows()
        got_keys = False
        with S.connect(role=SIDECAR) as sc:
            try:
                with sc.pipeline() as p:
                    cur = sc.execute(self.form(CALL), self.args(t))
                    sc.execute("SELECT 1/0")
                    p.sync()
            except psycopg.Error:
                pass
            try:
                got_keys = cur.fetchone() is not None
            except psycopg.Error:
                got_keys = False
        self.assert_consumed_and_audited(t, before, got_keys)

    def test_select_form_is_gone(self):
        """The 0.1.0 SELECT form (whose rows could be sent before the statement failed), and
        the procedure used as a function."""
        self.expect_refused(["SELECT * FROM alpaca_redeem_ticket('{T}', 'account')"], "42883")
        self.expect_refused(["SELECT * FROM alpaca.redeem_ticket('{T}', 'account', NULL, NULL, NULL, NULL)"],
                            "42883")

    def test_cursor(self):
        """DECLARE CURSOR over the redeem (would leave the consuming transaction open)."""
        self.expect_refused(["BEGIN",
                             "DECLARE c CURSOR FOR CALL alpaca.redeem_ticket('{T}', 'account',"
                             " NULL, NULL, NULL, NULL)"], "42601")

    def test_prepared_transaction(self):
        """BEGIN; redeem; PREPARE TRANSACTION -- never reaches the prepare."""
        self.expect_refused(["BEGIN",
                             "CALL alpaca.redeem_ticket('{T}', 'account', NULL, NULL, NULL, NULL)",
                             "PREPARE TRANSACTION 'keep'"])

    def test_plain_redeem_is_audited_and_single_use(self):
        """The legitimate path: once, audited, then refused."""
        t = self.ticket()
        before = self.decrypt_rows()
        row = self.redeem_ok(t)
        self.assertEqual((str(row[0]), row[1], row[2]), (str(self.cred), "paper", S.ALICE))
        self.assert_consumed_and_audited(t, before, got_keys=True)


class BatchRedeemCommitsFirst(RedeemCommitsFirst):
    """The same attacks on CALL alpaca.redeem_tickets (one ticket in the batch), and the batch's
    own: a replay or a duplicate inside a batch."""
    FORMS = [
        (r"alpaca\.redeem_ticket\(%s, %s,", "alpaca.redeem_tickets(%s, %s,"),
        (r"alpaca\.redeem_ticket\(('[^']*'), 'account',",
         r"alpaca.redeem_tickets(ARRAY[\1], ARRAY['account'],"),
        (r"alpaca\.redeem_ticket\(t, 'account',", "alpaca.redeem_tickets(ARRAY[t], ARRAY['account'],"),
        (r"c uuid; e text; a text; s text;", "c uuid[]; e text[]; a text[]; s text[];"),
        (r"RETURN a;", "RETURN a[1];"),
        (r"left\(a, 4\)", "left(a[1], 4)"),
    ]

    def form(self, sql):
        for pattern, repl in self.FORMS:
            sql = re.sub(pattern, repl, sql)
        self.assertNotIn("redeem_ticket(", sql.replace("alpaca_redeem_ticket(", ""))
        return sql

    def args(self, ticket, purpose="account"):
        return ([ticket], [purpose])

    def test_plain_redeem_is_audited_and_single_use(self):
        """The legitimate batch: each ticket once, audited, then refused alone and in a batch."""
        t1, t2 = self.ticket(), self.ticket()
        before = self.decrypt_rows()
        with S.connect(role=SIDECAR) as sc:
            ids, envs, apis, _ = sc.execute(self.form(CALL), ([t1, t2], ["account"] * 2)).fetchone()
        self.assertEqual(([str(i) for i in ids], envs, apis),
                         ([str(self.cred)] * 2, ["paper"] * 2, [S.ALICE] * 2))
        self.assertEqual(self.decrypt_rows(), before + 2)
        self.assert_consumed_and_audited(t2, before + 1, got_keys=True)
        # Arrays that do not pair up are refused before anything is spent.
        self.expect_refused([self.form(CALL).replace("%s", "ARRAY['{T}']", 1)
                             .replace("%s", "ARRAY['account', 'account']")], "22023")

    def test_replay_inside_a_batch(self):
        """A spent ticket, or one ticket twice, among fresh ones: the whole batch is refused
        before any key leaves, and nothing of it is spent."""
        spent = self.ticket()
        self.redeem_ok(spent)
        for batch in (lambda t: [t, spent], lambda t: [t, t]):
            t = self.ticket()
            before = self.decrypt_rows()
            with S.connect(role=SIDECAR) as sc:
                with self.assertRaises(psycopg.Error) as cm:
                    sc.execute(self.form(CALL), (batch(t), ["account"] * 2))
                self.assertEqual((cm.exception.sqlstate, cm.exception.diag.message_primary),
                                 ("42501", "ticket was already redeemed"))
            self.assert_consumed_and_audited(t, before, got_keys=False)


class RedeemIsDurable(unittest.TestCase):
    def test_mark_survives_a_crash_with_synchronous_commit_off(self):
        """The sidecar role turns synchronous_commit off for its session, redeems, and the
        server crashes right after: the single-use mark and the audit row must survive (the
        procedure flushes its commit), so the ticket cannot work a second time."""
        import hardening_lib as H
        user = f"durable-{uuid.uuid4().hex[:6]}"
        with S.connect(role="app") as app:
            cred = S.store(app, user, S.BOB, S.fixture_secret(S.BOB), account_name="durable")
            t = S.as_user(app, user, "SELECT alpaca_issue_ticket(%s, 'account')", (cred,))[0][0]
        with S.connect(role=SIDECAR) as sc:
            sc.execute("SET synchronous_commit = off")
            self.assertEqual(sc.execute(CALL, (t, "account")).fetchone()[2], S.BOB)
            H.pg_restart(mode="immediate")
        with S.connect(role=SIDECAR) as sc:
            with self.assertRaises(psycopg.Error) as cm:
                sc.execute(CALL, (t, "account"))
            self.assertEqual(cm.exception.sqlstate, "42501")
        with S.connect() as su:
            n = su.execute("SELECT count(*) FROM alpaca.audit_log WHERE action = 'decrypt' AND "
                           "credential_id = %s", (cred,)).fetchone()[0]
        self.assertEqual(n, 1)
        H.sidecar_ensure_running()


if __name__ == "__main__":
    unittest.main()
